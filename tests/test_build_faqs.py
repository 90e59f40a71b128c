"""The FAQ builder: one parser per markup on tiny inline inputs, the cleaning/split logic, the
error messages, and the committed data/faqs. No network, no apt: everything here is offline."""
import json
import re
import subprocess
from collections import Counter
from pathlib import Path

import pytest

from searchtune_utils import build_faqs as B
from searchtune_utils.config import DATA_DIR, ROOT
from searchtune_utils.data import check_no_leakage, load_beir

FAQS = DATA_DIR / "faqs"
LONG = "This answer has more than enough words to pass the minimum length rule easily."


# ----------------------------------------------------------------------------- parsers
def test_parse_pod():
    pod = """=head1 Data: Numbers

=head2 Why is int() broken?

Your C<int()> is most probably working just fine. See L<perlfunc/int>
and L<the docs|perlop>; E<gt> X<int> is not an index entry.

=over 4

=item How do I round?

Use C<< sprintf() >>.

=back

=head1 Data: Dates

Intro text that belongs to no question.

=head2 How do I find the day of the year?

Use L<http://example.org/doy>.
=cut
"""
    pairs = B.parse_pod(pod)
    assert [q for q, _ in pairs] == ["Why is int() broken?", "How do I find the day of the year?"]
    a = B.normalise_ws(pairs[0][1])
    assert a.startswith("Your int() is most probably working just fine. See int in perlfunc and the docs; >")
    assert "How do I round? Use sprintf()." in a and "X<" not in a and "=over" not in a
    assert "Intro text" not in pairs[1][1] and "http://example.org/doy" in pairs[1][1]


def test_parse_numbered_text_skips_toc_and_chapters():
    text = """Table of Contents

1.1 What is cURL?
1.2 Is it free?

1. Philosophy

1.1 What is cURL?

  cURL is the name of the project (https://
  curl.se) .

1.2 Is it free? Does it cost
money?

  Yes.

2. Install

  Chapter intro that belongs to no question.
"""
    pairs = B.parse_numbered_text(text, r"^(?P<num>\d+\.\d+) (?P<q>\S.*)$", r"^\d+\. \S")
    assert [q for q, _ in pairs] == ["What is cURL?", "Is it free? Does it cost money?"]
    assert B.normalise_ws(pairs[0][1]) == "cURL is the name of the project."
    assert B.normalise_ws(pairs[1][1]) == "Yes."


def test_parse_qa_text():
    text = """   screen: frequently asked questions
Q:   Why is it impossible to download a file
     when screen is running?

A:   Screen always interprets control sequences.
     Detach first.

Q: Where is lls?
A: !ls
"""
    pairs = B.parse_qa_text(text)
    assert [B.normalise_ws(q) for q, _ in pairs] == [
        "Why is it impossible to download a file when screen is running?", "Where is lls?"]
    assert B.normalise_ws(pairs[0][1]) == "Screen always interprets control sequences. Detach first."


def test_parse_pod_text():
    text = """RXVT-UNICODE FAQ
  Meta, Features & Commandline Issues
   How do I distinguish whether I'm running rxvt-unicode or a regular
xterm? I need this.
    Check the variable "COLORTERM".

       if [ "$COLORTERM" ]; then

   I use Gentoo, and I have a problem...
    Please try another distribution.
  Rendering Issues
    Section text.
"""
    pairs = B.parse_pod_text(text)
    assert [q for q, _ in pairs] == [
        "How do I distinguish whether I'm running rxvt-unicode or a regular xterm? I need this.",
        "I use Gentoo, and I have a problem..."]
    assert 'if [ "$COLORTERM" ]' in pairs[0][1] and "Section text" not in pairs[1][1]


def test_parse_markdown():
    text = """# Frequently Asked Questions

#### Sudo compiles but when I run it I get:

    sudo must be owned by uid 0

> Sudo must be set-user-ID **root** to do its work; see [the manual](https://x.org).

  * **2.1 How do I set up encrypted swap?**

  Use `cryptsetup` like this:
```
# not a heading inside a fence
swapon /dev/mapper/swap
```
"""
    pairs = B.parse_markdown(text)
    qs = [q for q, _ in pairs]
    assert qs == ["Frequently Asked Questions",
                  "Sudo compiles but when I run it I get: sudo must be owned by uid 0",
                  "2.1 How do I set up encrypted swap?"]
    assert B.normalise_ws(pairs[1][1]) == "Sudo must be set-user-ID root to do its work; see the manual."
    assert "swapon /dev/mapper/swap" in pairs[2][1] and "cryptsetup like" in pairs[2][1]
    assert "```" not in pairs[2][1]


def test_parse_rst_sections():
    text = """.. _faq:

============================
 Frequently Asked Questions
============================

.. contents::
    :local:

What kinds of things should I use Celery for?
---------------------------------------------

**Answer:** `Queue everything`_ is a good article; see :func:`~celery.app.task.apply_async`
and :ref:`the guide <guide-tasks>` or ``literal :memory:`` for details::

    app.send_task('x')

.. _`Queue everything`:
    https://example.org/queue

Is it fast?
===========

.. note::

    Yes, very.
"""
    pairs = B.parse_rst(text)
    assert [q for q, _ in pairs] == ["Frequently Asked Questions",
                                    "What kinds of things should I use Celery for?", "Is it fast?"]
    a = B.normalise_ws(pairs[1][1])
    assert a == ("Answer: Queue everything is a good article; see apply_async and the guide or "
                 "literal :memory: for details: app.send_task('x')")
    assert B.normalise_ws(pairs[2][1]) == "Yes, very."


def test_parse_rst_question_lines():
    pexpect = "**Q: Why not just use Expect?**\n\nA: I love it. It's *great*.\n\n**Q: Why?**\n\nA: Because.\n"
    assert B.parse_rst(pexpect, r"^\*\*Q:\s*(?P<q>.+?)\*\*\s*$")[0] == (
        "Why not just use Expect?", "\nA: I love it. It's great.\n")
    pika = "FAQ\n---\n\n- Is Pika thread safe?\n\n    No, it is not.\n"
    assert [q for q, _ in B.parse_rst(pika, r"^- (?P<q>.+)$")] == ["Is Pika thread safe?"]


def test_parse_asciidoc():
    text = """Configuration
-------------

[[user-name]]
What should I put in `user.name`?::
\tYour personal name.
+
See linkgit:git-config[1] and link:https://git-scm.com[the site].
+
----
git config user.name "A U Thor"
----

[[cutnpaste]]
How does cutting and pasting work?
~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~

Hold down the _Shift_ key.

[NOTE]
.Only 16 colors
===============
Console limits.
===============
"""
    pairs = B.parse_asciidoc(text)
    assert [q for q, _ in pairs] == ["Configuration", "What should I put in user.name?",
                                    "How does cutting and pasting work?"]
    a = B.normalise_ws(pairs[1][1])
    assert a == 'Your personal name. See git-config(1) and the site. git config user.name "A U Thor"'
    assert B.normalise_ws(pairs[2][1]).startswith("Hold down the Shift key.")


SPHINX = """<html><head><title>FAQ</title><script>var x = 1;</script></head><body>
<div class="related" role="navigation"><h3>Navigation</h3><a href="i.html">index</a></div>
<div class="document"><h1>FAQ: General<a class="headerlink" href="#g">¶</a></h1>
<h2>Is Django stable?<a class="headerlink" href="#s">¶</a></h2>
<p>Yes, it is <em>quite</em> stable &amp; fast.</p><ul><li>one</li><li>two</ul>
<h2>Does Django scale?</h2><pre>x = 1
y = 2</pre>
</div><div class="sphinxsidebar"><h3>Table of Contents</h3><p>sidebar text</p></div>
<footer>© Copyright</footer></body></html>"""


def test_parse_html_headings_sphinx():
    pairs = B.parse_html_headings(SPHINX, ("h2", "h3"))
    assert pairs == [("Is Django stable?", "Yes, it is quite stable & fast.\none\ntwo"),
                     ("Does Django scale?", "x = 1\ny = 2")]


def test_parse_html_headings_texinfo_and_bold_paragraphs():
    texinfo = """<div class="top" id="Top"><div class="header"><p>Next: <a>R Basics</a></p></div>
<h3 class="section">2.1 What is R?<span class="pull-right"><a aria-hidden="true">TOC</a></span></h3>
<p>R is a system for statistical computation.</p>
<h2 class="chapter">3 R and S</h2><p>Chapter intro.</p></div>"""
    assert B.parse_html_headings(texinfo, ("h3", "h4")) == [
        ("2.1 What is R?", "R is a system for statistical computation.")]
    sqlite = """<ol><li><a href="#q1">How do I create an AUTOINCREMENT field?</a></li></ol>
<p><b>(1) How do I create an AUTOINCREMENT field?</b></p><blockquote>Short answer: use it.</blockquote>
<p>This page last modified on 2021-07-27</p>"""
    assert B.parse_html_headings(sqlite, (), question=r"^\(\d+\)\s", stop=r"This page last") == [
        ("(1) How do I create an AUTOINCREMENT field?", "Short answer: use it.")]


def test_parse_html_qanda_docbook():
    html = """<table><tr class="qandadiv"><td><h3>1. Background</h3></td></tr>
<tr class="question"><td><b>1.1.</b></td><td><b>How do you pronounce "Valgrind"?</b></td></tr>
<tr class="answer"><td><p><b>A:</b></p></td><td><p>The "Val" as in value.</p><p>Rhymes with tinned.</p></td></tr>
<tr class="question"><td><p><b>Q:</b></p></td><td><p>Where does the name come from?</p></td></tr>
<tr class="answer"><td></td><td><p>Nordic mythology.</p></td></tr></table>"""
    assert B.parse_html_qanda(html) == [
        ('How do you pronounce "Valgrind"?', 'The "Val" as in value.\nRhymes with tinned.'),
        ("Where does the name come from?", "Nordic mythology.")]


def test_parse_html_dl():
    html = """<h2>General</h2><dl><dt>How do I pronounce w3m?<dd><p>W-three-M.</p>
<dt>Is there a mailing list?</dt><dd>Yes, w3m-dev.</dd></dl><p><a href="#i">Up to index</a></p>"""
    assert B.parse_html_dl(html, stop=r"Up to index") == [
        ("How do I pronounce w3m?", "W-three-M."), ("Is there a mailing list?", "Yes, w3m-dev.")]


# ----------------------------------------------------------------------------- cleaning
@pytest.mark.parametrize("raw, clean", [
    ("4.2. How do I X?", "How do I X?"), ("1.1 What is cURL?", "What is cURL?"),
    ("2.1 What is R?", "What is R?"), ("Q: Where is lls?", "Where is lls?"),
    ("G1. What is fetchmail?", "What is fetchmail?"), ("(12) Can I?", "Can I?"),
    ("12a. Why?", "Why?"), ("1.7: How do I?", "How do I?"), ("3.14.2 Concatenating", "Concatenating"),
    ("64-bit builds fail", "64-bit builds fail"), ("curl: (1) SSL is disabled", "curl: (1) SSL is disabled"),
])
def test_strip_numbering(raw, clean):
    assert B.strip_numbering(raw) == clean


@pytest.mark.parametrize("heading, expected", [
    ("How do I round a number?", True), ("How to make UTF-8 support work with irssi", True),
    ("Does Perl have a round() function? What about ceil()?", True),
    ("I get build failures in the intl directory.", True), ("Fetchmail is dying with SIGPIPE.", True),
    ("curl: (1) SSL is disabled, https: not supported", True), ('"MySQL Server has gone away"', True),
    ("LUKS2 is insecure!", True), ("Make coughs and dies when building on FreeBSD.", True),
    ("Introduction", False), ("Contents", False), ("Perl Books", False),
    ("Sources of information", False), ("Add-on packages from CRAN", False),
    ("Step two - identify what constructs are blocking caching", False), ("", False),
])
def test_is_question(heading, expected):
    assert B.is_question(heading) is expected


@pytest.mark.parametrize("answer, expected", [
    ("See the manual.", True), ("See question 4.2 for the details on this topic.", True),
    ("Yes. Look at the mailing lists section of our homepage.", True),
    ("Please refer to the history page to read about the various flavors.", True),
    ("Use the -C option; curl supports resumed transfers both ways on FTP and HTTP.", False),
    ("The unlock time for a key-slot is calculated when setting a passphrase. " * 3, False),
])
def test_is_pointer_only(answer, expected):
    assert B.is_pointer_only(answer) is expected


def test_truncate_words_ends_at_a_sentence():
    text = " ".join(f"w{i}." if i == 170 else f"w{i}" for i in range(300))
    cut = B.truncate_words(text, 200)
    assert cut.endswith("w170.") and len(cut.split()) == 171
    assert len(B.truncate_words(" ".join(["x"] * 300), 200).split()) == 200
    assert B.truncate_words("a  b\n c") == "a b c"


def test_clean_pairs_drops_and_dedups_across_sources():
    seen_q, seen_a, drops = set(), set(), Counter()
    first = B.clean_pairs([("1.1. How do I X?", "  A: " + LONG),
                           ("Introduction", LONG + " intro"),
                           ("Why is it slow?", "Too short."),
                           ("Where are the docs?", "See the manual for the details of these options."),
                           ("How do I X?", LONG + " again")], seen_q, seen_a, drops)
    assert first == [("How do I X?", LONG)]
    second = B.clean_pairs([("How do I Y?", LONG), ("How do I Z?", LONG.upper() + " more")],
                           seen_q, seen_a, drops)
    assert second == [("How do I Z?", LONG.upper() + " more")]
    assert drops == Counter(not_a_question=1, short_answer=1, pointer_only=1, duplicate=2)


# ----------------------------------------------------------------------------- split and records
def test_assemble_records_ids_and_split():
    pairs = {"perlfaq": [("What is Perl?", LONG)], "debian-faq": [("What is Debian?", LONG + " d")],
             "gitfaq": [("How do I undo?", LONG + " g1"), ("Why?", LONG + " g2")]}
    corpus, queries, qrels, stats = B.assemble(pairs, {"perl-doc": "5.36", "debian-faq": "11", "git-doc": "2.39"})
    assert [d["_id"] for d in corpus] == ["faq-perlfaq-0001", "faq-debian-faq-0001",
                                         "faq-gitfaq-0001", "faq-gitfaq-0002"]
    assert corpus[2] == {"_id": "faq-gitfaq-0001", "title": "Git FAQ (gitfaq)", "text": LONG + " g1",
                         "metadata": {"source": "gitfaq", "package": "git-doc", "version": "2.39",
                                      "licence": "GPL-2"}}
    assert queries[0] == {"_id": "q-perlfaq-0001", "text": "What is Perl?",
                          "metadata": {"split": "test", "source": "perlfaq",
                                       "licence": B.SOURCE_BY_NAME["perlfaq"].licence}}
    assert qrels == {"test": [("q-perlfaq-0001", "faq-perlfaq-0001", 1)],
                     "dev": [("q-debian-faq-0001", "faq-debian-faq-0001", 1)],
                     "train": [("q-gitfaq-0001", "faq-gitfaq-0001", 1), ("q-gitfaq-0002", "faq-gitfaq-0002", 1)]}
    assert stats["queries"] == {"train": 2, "dev": 1, "test": 1}
    assert stats["sources_per_split"] == {"train": ["gitfaq"], "dev": ["debian-faq"], "test": ["perlfaq"]}
    with pytest.raises(SystemExit, match="test split has 1 questions"):
        B.check_split(stats)


def test_split_constant():
    names = {s.name for s in B.SOURCES}
    assert set(B.SPLIT["test"]) == {"perlfaq", "r-faq", "curl-faq", "cryptsetup-faq"}
    assert set(B.SPLIT["test"]) | set(B.SPLIT["dev"]) <= names
    assert not set(B.SPLIT["test"]) & set(B.SPLIT["dev"])
    assert B.split_of("gitfaq") == "train" and B.split_of("debian-faq") == "dev"
    assert len(names) == len(B.SOURCES)  # unique source names
    assert not any(s.package.startswith("python3.") for s in B.SOURCES)  # CPython's FAQ is kept out


# ----------------------------------------------------------------------------- bad input
def test_zero_pairs_fails_naming_the_package(tmp_path, capsys):
    (tmp_path / "FAQ").write_text("Nothing that looks like a question.\n")
    src = B.Source("empty-faq", "Empty FAQ", "empty-doc", ("FAQ",), B.parse_qa_text, "Q:/A:", "MIT", "nobody")
    with pytest.raises(SystemExit, match=r"'empty-faq' \(package empty-doc\) gave 0 .*SOURCES"):
        B.collect({"empty-doc": tmp_path}, [src])
    opt = B.Source("empty-faq", "Empty FAQ", "empty-doc", ("FAQ",), B.parse_qa_text, "Q:/A:", "MIT",
                   "nobody", optional=True)
    assert B.collect({"empty-doc": tmp_path}, [opt]) == ({}, {})
    assert "warning" in capsys.readouterr().err


def test_download_failure_names_package_and_fix(tmp_path, monkeypatch):
    def fake_run(cmd, cwd=None, **kw):
        for pkg in cmd[2:]:
            if pkg == "good-doc":
                (Path(cwd) / "good-doc_1.0-1_all.deb").write_bytes(b"")
        ok = all(p == "good-doc" for p in cmd[2:])
        return subprocess.CompletedProcess(cmd, 0 if ok else 100, "",
                                           "" if ok else "E: Unable to locate package missing-doc")
    monkeypatch.setattr(B.subprocess, "run", fake_run)
    with pytest.raises(SystemExit, match=r"(?s)missing-doc: E: Unable to locate package.*apt-get update"):
        B.download(["good-doc", "missing-doc"], tmp_path)
    debs = B.download(["good-doc", "missing-doc"], tmp_path, optional=["missing-doc"])
    assert list(debs) == ["good-doc"]


def test_without_apt_points_to_committed_copy(monkeypatch, tmp_path):
    monkeypatch.setattr(B.shutil, "which", lambda name: None)
    with pytest.raises(SystemExit, match=r"`apt-get` and `dpkg-deb` not found.*committed in data/faqs"):
        B.build(tmp_path / "cache", tmp_path / "out")


def test_if_missing_does_nothing_when_built(tmp_path, monkeypatch):
    (tmp_path / "build_info.json").write_text("{}")
    monkeypatch.setattr(B, "build", lambda *a, **k: pytest.fail("must not build"))
    assert B.main(["--out", str(tmp_path), "--if-missing"]) == 0


# ----------------------------------------------------------------------------- committed data
@pytest.fixture(scope="module")
def faqs():
    return load_beir(FAQS)


def test_committed_faqs_load_and_have_no_leakage(faqs):
    corpus, queries, qrels, meta = faqs
    check_no_leakage(qrels, queries)
    info = json.loads((FAQS / "build_info.json").read_text(encoding="utf-8"))
    counts = {split: len(q) for split, q in qrels.items()}
    assert counts == info["queries"] and len(corpus) == info["passages"] == sum(counts.values())
    assert counts["test"] >= B.MIN_TEST_QUESTIONS and counts["dev"] >= B.MIN_DEV_QUESTIONS
    for split, q in qrels.items():
        assert all(len(docs) == 1 and list(docs.values()) == [1] for docs in q.values())
        assert all(meta[qid]["split"] == split for qid in q)


def test_committed_faqs_split_by_source(faqs):
    corpus, queries, qrels, meta = faqs
    sources = {split: {meta[qid]["source"] for qid in q} for split, q in qrels.items()}
    assert sources["test"] == set(B.SPLIT["test"]) and len(sources["test"]) >= B.MIN_TEST_SOURCES
    assert sources["dev"] == set(B.SPLIT["dev"])
    assert not (sources["test"] | sources["dev"]) & sources["train"]
    for split, q in qrels.items():  # every positive passage comes from the query's own source
        assert all(corpus[d]["metadata"]["source"] == meta[qid]["source"] for qid, docs in q.items() for d in docs)


def test_committed_faqs_records_have_source_and_licence(faqs):
    corpus, queries, qrels, meta = faqs
    info = json.loads((FAQS / "build_info.json").read_text(encoding="utf-8"))
    for did, doc in corpus.items():
        m = doc["metadata"]
        assert m["source"] and m["licence"] and m["package"] and m["version"]
        assert did.startswith(f"faq-{m['source']}-") and m["version"] == info["packages"][m["package"]]
        assert doc["title"] == B.SOURCE_BY_NAME[m["source"]].title
        assert 8 <= len(doc["text"].split()) <= B.MAX_WORDS
    for qid, m in meta.items():
        assert m["source"] and m["licence"] and m["split"]
        assert not re.match(r"^(?:Q:|\d+(?:\.\d+)*\.\s)", queries[qid])
    text = "".join((FAQS / f).read_text(encoding="utf-8") for f in ("corpus.jsonl", "queries.jsonl", "build_info.json"))
    assert str(ROOT) not in text and ".cache/faqs" not in text  # no path of the building machine


def test_committed_card_matches_build_info():
    info = json.loads((FAQS / "build_info.json").read_text(encoding="utf-8"))
    card = (FAQS / "README.md").read_text(encoding="utf-8")
    assert card == B.render_card(info)  # rebuild data/faqs after changing the card text
    for name, v in info["sources"].items():
        s = B.SOURCE_BY_NAME[name]
        assert f"| {name} | `{s.package}` {v['version']} |" in card and name in B.KNOWN_NOISE
    assert "copyleft" in card and "CPython" in card and "cheat" in card
