"""Build ``data/faqs``: real, human-written FAQ questions and their answers, as a BEIR dataset.

Source: the FAQs that open-source projects ship inside Debian (bookworm) documentation packages.
Each FAQ heading is a question a person asked; the text under it is the answer passage. The
packages are fetched with ``apt-get download`` (no install, no root once the apt lists exist)
into a cache folder and unpacked there with ``dpkg-deb -x``; nothing else is downloaded.

How it is made (rules only, no model):
1. One small parser per markup (``parse_pod``, ``parse_numbered_text``, ``parse_qa_text``,
   ``parse_pod_text``, ``parse_markdown``, ``parse_rst``, ``parse_asciidoc``, and for HTML
   ``parse_html_headings`` / ``parse_html_qanda`` / ``parse_html_dl``) turns a FAQ file into
   ``(question, answer)`` pairs with the markup stripped.
2. ``clean_pairs`` strips question numbering ("4.2.", "Q:", "G1."), normalises whitespace, cuts
   answers to their first ``MAX_WORDS`` words, and drops headings that are not questions (bare
   section titles such as "Introduction"), answers shorter than ``MIN_WORDS`` words or that only
   point elsewhere ("See the manual"), and duplicates (same question or same answer text).
3. Split by SOURCE (domain-held-out, ``SPLIT``): whole FAQs go to test or dev; all others train.
   Every answer is one passage of ONE corpus; each question has exactly one relevant passage.

Standard library only. Deterministic: the same packages give byte-identical files; each
package's exact version is recorded in ``build_info.json``. CPython's own FAQ is deliberately
not used (it is kept out as an independent check).

Run: ``python -m searchtune_utils.build_faqs [--cache DIR] [--out DIR] [--if-missing]``.
Needs ``apt-get`` and ``dpkg-deb`` (Debian/Ubuntu); elsewhere use the committed ``data/faqs``.
"""
from __future__ import annotations

import argparse
import gzip
import json
import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Callable, Iterable

from .config import DATA_DIR, ROOT
from .data import check_no_leakage, write_beir

BUILDER_VERSION = 1
MAX_WORDS = 200          # answers are cut to their first MAX_WORDS words
MIN_WORDS = 8            # shorter answers are dropped
DEFAULT_CACHE = ROOT / ".cache" / "faqs" / "debs"
DEFAULT_OUT = DATA_DIR / "faqs"

# Domain-held-out split: whole sources go to test / dev; every other source is train.
SPLIT = {
    "test": ("perlfaq", "r-faq", "curl-faq", "cryptsetup-faq"),
    "dev": ("debian-faq",),
}
MIN_TEST_QUESTIONS, MIN_TEST_SOURCES, MIN_DEV_QUESTIONS = 500, 4, 120

Pair = tuple[str, str]


# =============================================================================================
# Markup strippers (shared by the parsers)
_WS = re.compile(r"\s+")


def normalise_ws(text: str) -> str:
    """Collapse every run of whitespace (newlines included) to one space; strip the ends."""
    return _WS.sub(" ", text).strip()


_RULE = re.compile(r"\s*(?:([-=~^*_#+'`\".:<>])\1{2,}\s*)+|\s*\+[-=+]{3,}\+\s*")


def _drop_rule_lines(text: str) -> str:
    """Drop lines made of one repeated punctuation character (underlines, rules: ----, ~~~~)."""
    return "\n".join(l for l in text.split("\n") if not _RULE.fullmatch(l))


def strip_pod(text: str) -> str:
    """POD inline markup to text: C<x>, C<< x >>, B<>, I<>, F<>, L<text|target>, E<gt>."""
    text = re.sub(r"[A-Z]<<+\s+(.*?)\s+>>+", r"\1", text, flags=re.S)
    escapes = {"gt": ">", "lt": "<", "verbar": "|", "sol": "/", "quot": '"', "amp": "&"}
    for _ in range(4):  # nested codes, innermost first
        text = re.sub(r"[XZ]<[^<>]*>", "", text)  # index entries, zero-width
        text = re.sub(r"E<(\w+)>", lambda m: escapes.get(m.group(1), ""), text)
        text = re.sub(r"L<((?:https?|ftp)://[^<>|]*)>", r"\1", text)
        text = re.sub(r"L<([^<>|]*)\|[^<>]*>", r"\1", text)
        text = re.sub(r"L<\"?([^<>/\"]*?)\"?/\"?([^<>\"]*)\"?>",
                      lambda m: f"{m.group(2)} in {m.group(1)}" if m.group(1) else m.group(2), text)
        text = re.sub(r"[A-Z]<([^<>]*)>", r"\1", text)
    return text


def strip_rst(text: str) -> str:
    """reStructuredText to text: drops directives' markup, link targets, comments and roles."""
    out, skip_indent = [], None
    for line in text.split("\n"):
        indent = len(line) - len(line.lstrip())
        if skip_indent is not None:
            if not line.strip() or indent > skip_indent:
                continue
            skip_indent = None
        s = line.strip()
        m = re.match(r"\.\.\s+([\w:-]+)::\s*(.*)", s)
        if m:  # directive: keep its argument for admonitions, drop options, keep content
            if m.group(1) in ("image", "figure", "toctree", "contents", "raw", "include", "only",
                              "highlight", "currentmodule", "module", "index", "meta", "rubric"):
                skip_indent = indent if m.group(1) not in ("only",) else None
            elif m.group(2) and m.group(1) not in ("code-block", "code", "sourcecode", "literalinclude"):
                out.append(line[:indent] + m.group(2))
            continue
        if s.startswith("..") or re.match(r"__\s+\S", s):  # target, substitution, comment
            skip_indent = indent
            continue
        if re.match(r":[\w-]+:(\s|$)", s) and out and out[-1].strip() == "":
            continue  # directive option after a dropped directive line
        out.append(line)
    text = _drop_rule_lines("\n".join(out))
    text = re.sub(r"``(.+?)``", lambda m: m.group(1).replace("`", "\x00"), text, flags=re.S)
    text = re.sub(r":[\w:.-]+:`([^`]*)`", lambda m: _rst_role(m.group(1)), text)  # :func:`x`
    text = re.sub(r"`([^`<]+?)\s*<[^`>]+>`__?", r"\1", text)                 # `text <url>`_
    text = re.sub(r"`([^`]+)`__?", r"\1", text)                              # `target`_
    text = re.sub(r"`([^`]+)`", r"\1", text)
    text = re.sub(r"\|([\w -]+)\|_?", r"\1", text)                           # |substitution|
    text = re.sub(r"(?<!\w)\*\*(.+?)\*\*", r"\1", text, flags=re.S)
    text = re.sub(r"(?<![\w*])\*([^*\s][^*]*?)\*(?!\w)", r"\1", text)
    text = re.sub(r"(\S)::(\s|$)", r"\1:\2", text)                            # "example::"
    text = re.sub(r"(^|\s)::(\s|$)", r"\1\2", text)
    text = re.sub(r"(\w)_(\s|[.,;:)]|$)", r"\1\2", text)                      # word_ references
    text = re.sub(r"\\([^\w\\])", r"\1", text)  # escapes: \* \` \_ "\ "
    return text.replace("\x00", "`")


def _rst_role(content: str) -> str:
    """The text a Sphinx role shows: ``text <target>`` -> text, ``~a.b.c`` -> c,
    ``_orm.relationship`` / ``.Session`` -> relationship / Session."""
    m = re.match(r"(.*?)\s*<[^>]*>$", content, flags=re.S)
    if m and m.group(1):
        return m.group(1)
    content = content.strip("<>")
    if content.startswith("~"):
        return content.rsplit(".", 1)[-1]
    return re.sub(r"^(?:_\w+\.|\.|!)", "", content)


def strip_markdown(text: str) -> str:
    """Markdown to text: links, emphasis, code spans and fences, block quotes, HTML tags."""
    text = re.sub(r"^\s*```.*$", "", text, flags=re.M)
    text = re.sub(r"^\s*>\s?", "", text, flags=re.M)
    text = re.sub(r"!\[([^\]]*)\]\([^)]*\)", r"\1", text)
    text = re.sub(r"\[([^\]]+)\]\([^)]*\)", r"\1", text)
    text = re.sub(r"\[([^\]]+)\]\[[^\]]*\]", r"\1", text)
    text = re.sub(r"^\s*\[[^\]]+\]:\s*\S+.*$", "", text, flags=re.M)  # reference definitions
    text = re.sub(r"<[^>\n]+>", lambda m: m.group(0) if "@" in m.group(0) or "://" in m.group(0) else "", text)
    text = re.sub(r"(\*\*|__)(.+?)\1", r"\2", text, flags=re.S)
    text = re.sub(r"(?<![\w*])\*([^*\s][^*]*?)\*(?!\w)", r"\1", text)
    text = re.sub(r"`([^`]+)`", r"\1", text)
    text = re.sub(r"^\s*#{1,6}\s+", "", text, flags=re.M)
    return _drop_rule_lines(text).replace("\\`", "`")


def strip_asciidoc(text: str) -> str:
    """AsciiDoc to text: list continuations (+), delimiters (----), anchors, links, linkgit."""
    text = re.sub(r"^\[\[[^\]]*\]\]\s*$", "", text, flags=re.M)
    text = re.sub(r"^\+\s*$", "", text, flags=re.M)
    text = re.sub(r"^\[(?:source|listing|literal|quote|NOTE|TIP)[^\]]*\]\s*$", "", text, flags=re.M)
    text = re.sub(r"linkgit:([\w.-]+)\[(\d)\]", r"\1(\2)", text)
    text = re.sub(r"(?:link:)?((?:https?|ftp)://[^\s\[]+)\[([^\]]*)\]", lambda m: m.group(2) or m.group(1), text)
    text = re.sub(r"<<[^,>]+,([^>]+)>>", r"\1", text)
    text = re.sub(r"<<([^>]+)>>", r"\1", text)
    text = re.sub(r"(?<![\w`])`([^`]+)`(?![\w`])", r"\1", text)
    text = re.sub(r"(?<![\w*])\*([^*\s][^*]*?)\*(?!\w)", r"\1", text)
    text = re.sub(r"(?<![\w_])_([^_\s][^_]*?)_(?!\w)", r"\1", text)
    text = re.sub(r"\\(-)", r"\1", text)
    text = re.sub(r"\{(?:cpp|plus|nbsp|empty)\}", lambda m: {"{cpp}": "C++", "{plus}": "+"}.get(m.group(0), " "), text)
    return _drop_rule_lines(text)


def strip_plain(text: str) -> str:
    """Plain text: drop rules/underlines, the ' (https:// www.x/...)' copies that debiandoc's
    text output puts after each link (with line breaks inside the URL), and signature lines."""
    text = re.sub(r"\s*\((?:https?|ftp)://[^)]*\)(?:\s+(?=[.,;:]))?", "", text)
    text = re.sub(r"^\s*-- .*<[^>\s]+@[^>\s]+>.*$", "", text, flags=re.M)   # "-- name <mail>  date"
    return _drop_rule_lines(text)


# =============================================================================================
# Text parsers: each takes a file's text and returns (question, answer) pairs, markup stripped.
def _split_at(lines: list[str], is_heading: Callable[[int], str | None],
              is_break: Callable[[int], bool] = lambda i: False) -> list[tuple[str, list[str]]]:
    """Walk ``lines``; ``is_heading(i)`` returns a question for a heading line (else None),
    ``is_break(i)`` ends the current answer without starting a question (section titles)."""
    pairs: list[tuple[str, list[str]]] = []
    current = None
    for i, line in enumerate(lines):
        q = is_heading(i)
        if q is not None:
            current = (q, [])
            pairs.append(current)
        elif is_break(i):
            current = None
        elif current is not None:
            current[1].append(line)
    return pairs


def parse_pod(text: str) -> list[Pair]:
    """POD (perlfaq): each ``=head2`` is a question; the paragraphs up to the next ``=head``
    are its answer. ``=item`` texts are kept as lines, other commands dropped, and a leading
    "(contributed by brian d foy)" credit line is left out of the answer."""
    lines = text.split("\n")
    pairs = _split_at(lines, lambda i: lines[i][7:].strip() if lines[i].startswith("=head2 ") else None,
                      lambda i: bool(re.match(r"=(head[1-4]|cut)\b", lines[i])))
    out = []
    for q, body in pairs:
        body = [re.sub(r"^=item\s+(?:\*\s*)?", "", l) for l in body]
        body = [l for l in body if not re.match(r"=(over|back|pod|begin|end|for|encoding)\b", l)]
        answer = re.sub(r"^\s*\(contributed by [^)]*\)\s*", "", strip_pod("\n".join(body)), flags=re.I)
        out.append((strip_pod(q), answer))
    return out


def parse_numbered_text(text: str, heading: str, section: str | None = None,
                        cleanup: Callable[[str], str] = strip_plain) -> list[Pair]:
    """Numbered plain-text FAQ (debian-faq, zsh, curl, chrony, slrn, mdadm, procmail ...).

    ``heading`` is a regex whose named groups ``num`` and ``q`` match a question line; the
    question continues on the following non-blank lines (wrapped titles) up to a blank line or
    an underline. ``section`` matches chapter lines, which end an answer. A table of contents
    repeats the numbers with empty answers: per number, the entry with the longest answer wins.
    """
    lines = text.expandtabs(8).split("\n")
    head, sect = re.compile(heading), re.compile(section) if section else None
    entries: list[tuple[str, str, list[str]]] = []
    i = 0
    current = None
    while i < len(lines):
        m = head.match(lines[i])
        if m:
            q = [m.group("q")]
            while (i + 1 < len(lines) and lines[i + 1].strip() and len(q) < 4
                   and not head.match(lines[i + 1]) and not (sect and sect.match(lines[i + 1]))
                   and not re.fullmatch(r"\s*([-=~^*_#'])\1{2,}\s*", lines[i + 1])):
                i += 1
                q.append(lines[i])
            current = (m.group("num"), " ".join(s.strip() for s in q), [])
            entries.append(current)
        elif sect and sect.match(lines[i]):
            current = None
        elif current is not None:
            current[2].append(lines[i])
        i += 1
    best: dict[str, tuple[str, str]] = {}
    order: list[str] = []
    for num, q, body in entries:
        answer = cleanup("\n".join(body))
        if num not in best:
            order.append(num)
        if num not in best or len(answer.split()) > len(best[num][1].split()):
            best[num] = (cleanup(q), answer)
    return [best[n] for n in order]


def parse_qa_text(text: str) -> list[Pair]:
    """"Q: ... / A: ..." plain text (lftp, screen): the question runs from ``Q:`` to ``A:``,
    the answer from ``A:`` to the next ``Q:``."""
    pairs, q, a, where = [], [], [], None
    for line in text.expandtabs(8).split("\n") + ["Q:"]:
        if re.match(r"\s*Q:", line):
            if q and a:
                pairs.append((strip_plain("\n".join(q)), strip_plain("\n".join(a))))
            q, a, where = [re.sub(r"^\s*Q:\s*", "", line)], [], "q"
        elif re.match(r"\s*A:", line) and where == "q":
            a, where = [re.sub(r"^\s*A:\s*", "", line)], "a"
        elif where == "q":
            q.append(line)
        elif where == "a":
            a.append(line)
    return pairs


def parse_pod_text(text: str, indent: int = 3) -> list[Pair]:
    """pod2text output (urxvt's README.FAQ): a question is a line indented exactly ``indent``
    spaces (wrapped lines continue at column 0); its answer is the deeper-indented text below.
    Lines indented less are section titles."""
    lines = text.expandtabs(8).split("\n")
    pairs, current, in_q = [], None, False

    def ind(l):
        return len(l) - len(l.lstrip())

    for line in lines:
        if not line.strip():
            in_q = False
            if current:
                current[1].append("")
            continue
        n = ind(line)
        if n == indent:
            current, in_q = (line.strip(), []), True
            pairs.append(current)
        elif n < indent and in_q and current and not current[1]:
            current = (current[0] + " " + line.strip(), current[1])
            pairs[-1] = current
        elif n < indent:
            current, in_q = None, False
        elif current is not None:
            in_q = False
            current[1].append(line)
    return [(q, "\n".join(a)) for q, a in pairs]


_MD_HEADING = re.compile(r"^(?:#{1,6}\s+(?P<h>.+?)\s*#*\s*$|\s*[*-]\s+\*\*(?P<b>.+?)\*\*\s*$)")


def parse_markdown(text: str) -> list[Pair]:
    """Markdown: ``#`` headings and ``* **bold**`` bullet lines (cryptsetup) are questions.
    A question ending in ":" followed by an indented code block ("... I get:" + the error
    message) takes that block into the question."""
    lines = text.split("\n")
    in_fence = [False]

    def heading(i):
        if lines[i].lstrip().startswith("```"):
            in_fence[0] = not in_fence[0]
        if in_fence[0]:
            return None
        m = _MD_HEADING.match(lines[i])
        return (m.group("h") or m.group("b")) if m else None

    out = []
    for q, body in _split_at(lines, heading):
        if q.rstrip().endswith(":"):
            j = 0
            while j < len(body) and not body[j].strip():
                j += 1
            block = []
            while j < len(body) and (body[j].startswith("    ") or body[j].startswith("\t")):
                block.append(body[j].strip())
                j += 1
            if block:
                q, body = q + " " + " ".join(block), body[j:]
        out.append((strip_markdown(q), strip_markdown("\n".join(body))))
    return out


_RST_ADORN = re.compile(r"^([!-/:-@\[-`{-~])\1{2,}\s*$")


def parse_rst(text: str, question: str | None = None) -> list[Pair]:
    """reStructuredText and AsciiDoc-with-underlines (elinks): every section title (a line
    underlined, optionally also overlined, with a repeated punctuation character) is a
    question; its answer runs to the next title. With ``question`` (a regex with group ``q``),
    lines matching it are the questions instead (``**Q: ...**`` in pexpect, ``- ...?`` bullets
    in pika)."""
    lines = text.split("\n")

    def title(i):
        if question:
            m = re.match(question, lines[i])
            return m.group("q") if m else None
        line = lines[i]
        if (i + 1 < len(lines) and line.strip() and not _RST_ADORN.match(line)
                and _RST_ADORN.match(lines[i + 1]) and len(lines[i + 1].rstrip()) >= len(line.rstrip()) - 2
                and not line.startswith(" " * 4)):
            return line.strip()
        return None

    pairs = _split_at(lines, title)
    return [(strip_rst(q), strip_rst("\n".join(b))) for q, b in pairs]


def parse_asciidoc(text: str) -> list[Pair]:
    """AsciiDoc (gitfaq, elinks): a labelled-list term ``Question?::`` or a two-line section
    title (a line underlined with ``~ - = ^ +`` of the same length, +-2) is a question; its answer
    is the text up to the next one (list ``+`` continuations, ``----`` delimiters and
    ``[[anchors]]`` stripped)."""
    lines = text.expandtabs(8).split("\n")
    in_block, delimiter = [False] * len(lines), None
    for i, line in enumerate(lines):  # delimited blocks (----, ====, ....) hold no headings
        prev = lines[i - 1].strip() if i else ""
        if delimiter is not None:
            in_block[i] = True
            delimiter = None if line.rstrip() == delimiter else delimiter
        elif re.fullmatch(r"([-=.*_+])\1{3,}", line.rstrip()) and (not prev or prev[0] in ".[+"):
            in_block[i], delimiter = True, line.rstrip()

    def heading(i):
        line = lines[i]
        if in_block[i] or line.startswith((" ", "\t", ".", "[", "/")) or not line.strip():
            return None
        if line.endswith("::"):
            return line[:-2].strip()
        nxt = lines[i + 1].rstrip() if i + 1 < len(lines) else ""
        if (re.fullmatch(r"([-=~^+])\1+", nxt) and abs(len(nxt) - len(line.rstrip())) <= 2
                and not in_block[i + 1]):
            return line.strip()
        return None

    pairs = _split_at(lines, heading)
    return [(strip_asciidoc(q), strip_asciidoc("\n".join(b))) for q, b in pairs]


# =============================================================================================
# HTML: one pass turns a page into blocks (one per paragraph, heading, list item, table row,
# pre ...), each with its tag and the classes around it; the HTML parsers group the blocks.
_BLOCK_TAGS = {"p", "div", "br", "li", "dt", "dd", "tr", "pre", "blockquote", "table", "ul", "ol",
               "dl", "section", "article", "hr", "h1", "h2", "h3", "h4", "h5", "h6", "td", "th",
               "caption", "center", "form", "header", "footer", "main", "aside", "nav", "body"}
_VOID = {"br", "hr", "img", "meta", "link", "input", "area", "base", "col", "wbr", "source"}
_SKIP_TAGS = {"script", "style", "head", "title", "nav", "noscript", "svg", "button", "form", "footer"}
_SKIP_CLASSES = {"headerlink", "sphinxsidebar", "sphinxsidebarwrapper", "related", "footer", "nav",
                 "navpath", "side-nav", "toc", "navigation", "navheader", "navfooter", "header",
                 "contents-heading", "shortcontents", "mini-toc", "menu", "breadcrumbs", "sidebar",
                 "rst-versions", "searchbox", "skip-link"}
_SKIP_IDS = {"top", "titlearea", "nav-tree", "side-nav", "toc", "toctitle", "footer", "header",
             "nav-path"}


@dataclass
class Block:
    tag: str                 # innermost block-level tag (h2, p, li, pre, td ...)
    text: str
    classes: frozenset = frozenset()   # classes of this element and its ancestors


class _HTMLBlocks(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack: list[tuple[str, frozenset, bool]] = []   # (tag, classes, skipped)
        self.blocks: list[Block] = []
        self.buf: list[str] = []

    def _flush(self):
        raw = "".join(self.buf)
        self.buf = []
        if any(t == "pre" for t, _, _ in self.stack):
            text = raw.strip("\n")
        else:
            text = normalise_ws(raw)
        if text.strip():
            tag = next((t for t, _, _ in reversed(self.stack) if t in _BLOCK_TAGS), "body")
            heading = next((t for t, _, _ in reversed(self.stack) if re.fullmatch(r"h[1-6]", t)), None)
            classes = frozenset(c for _, cs, _ in self.stack for c in cs)
            self.blocks.append(Block(heading or tag, text, classes))

    def _skipping(self):
        return any(s for _, _, s in self.stack)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        classes = frozenset((a.get("class") or "").split())
        if tag in _BLOCK_TAGS:
            self._flush()
        if tag in ("li",):  # an unclosed <li>/<dt>/<dd>/<p> closes its open sibling
            self._close_open(tag)
        if tag in _VOID:
            if tag == "br" and not self._skipping():
                self.buf.append("\n")
            return
        skip = (tag in _SKIP_TAGS or bool(classes & _SKIP_CLASSES) or a.get("id") in _SKIP_IDS
                or a.get("role") == "navigation" or a.get("aria-hidden") == "true")
        self.stack.append((tag, classes, skip))

    def _close_open(self, tag):
        for k in range(len(self.stack) - 1, -1, -1):
            t = self.stack[k][0]
            if t == tag:
                del self.stack[k:]
                return
            if t in ("ul", "ol", "dl", "table", "div", "blockquote"):
                return

    def handle_endtag(self, tag):
        if tag in _BLOCK_TAGS:
            self._flush()
        for k in range(len(self.stack) - 1, -1, -1):
            if self.stack[k][0] == tag:
                del self.stack[k:]
                break

    def handle_data(self, data):
        if not self._skipping():
            self.buf.append(data)

    def close(self):
        super().close()
        self._flush()


def html_blocks(html: str) -> list[Block]:
    """Split an HTML page into text blocks (scripts, navigation and permalink marks dropped)."""
    p = _HTMLBlocks()
    p.feed(html)
    p.close()
    return p.blocks


def _blocks_text(blocks: Iterable[Block]) -> str:
    return "\n".join(b.text for b in blocks)


def parse_html_headings(html: str, levels: Iterable[str] = ("h2", "h3"), question: str | None = None,
                        only: str | None = None, stop: str | None = None) -> list[Pair]:
    """HTML with one heading per question (Sphinx, texinfo, doxygen, asciidoctor, hand-written
    pages): headings of ``levels`` are questions, the blocks up to the next heading of any level
    are the answer. With ``question`` (a regex), other blocks whose text matches it are
    questions too (SQLite's ``<p><b>(12) ...</b></p>``); with ``only``, headings must match it;
    a block matching ``stop`` ends the answer (page footers)."""
    levels = set(levels)
    sre = re.compile(stop) if stop else None
    qre = re.compile(question) if question else None
    ore = re.compile(only) if only else None
    pairs: list[tuple[str, list[Block]]] = []
    current = None
    for b in html_blocks(html):
        is_heading = re.fullmatch(r"h[1-6]", b.tag) is not None
        if (b.tag in levels and (ore is None or ore.match(b.text))) or (qre and not is_heading and qre.match(b.text)):
            current = (b.text, [])
            pairs.append(current)
        elif is_heading or (sre and sre.match(b.text)):
            current = None
        elif current is not None:
            current[1].append(b)
    return [(q, _blocks_text(body)) for q, body in pairs]


def parse_html_qanda(html: str) -> list[Pair]:
    """DocBook ``qandaset`` HTML (valgrind, mplayer): rows/blocks with class ``question`` and
    ``answer``. Label cells ("Q:", "A:", "1.1.") are dropped."""
    pairs: list[tuple[list[str], list[str]]] = []
    last = None
    for b in html_blocks(html):
        kind = "question" if "question" in b.classes else "answer" if "answer" in b.classes else None
        if kind is None:
            last = None
            continue
        if re.fullmatch(r"(?:[QA]:|\d+(?:\.\d+)*\.)", b.text.strip()):
            continue
        if kind == "question" and last != "question":
            pairs.append(([], []))
        if pairs:
            pairs[-1][0 if kind == "question" else 1].append(b.text)
        last = kind
    return [(" ".join(q), "\n".join(a)) for q, a in pairs]


def parse_html_dl(html: str, stop: str | None = None) -> list[Pair]:
    """HTML definition lists (w3m's FAQ): each ``<dt>`` is a question, the ``<dd>`` blocks
    after it its answer (up to a heading, or a block matching ``stop``)."""
    pairs: list[tuple[str, list[str]]] = []
    current = None
    for b in html_blocks(html):
        if b.tag == "dt":
            current = (b.text, [])
            pairs.append(current)
        elif re.fullmatch(r"h[1-6]", b.tag) or (stop and re.match(stop, b.text)):
            current = None
        elif current is not None:
            current[1].append(b.text)
    return [(q, "\n".join(a)) for q, a in pairs]


# =============================================================================================
# Cleaning: numbering, question-likeness, short and pointer-only answers, duplicates, length
_NUMBERING = re.compile(
    r"^(?:Q\d*\s*[:.)]\s*|Question\s*\d*\s*[:.]\s*|\(\d+\)\s*|\[\d+\]\s*|[A-Z]{1,2}\d+(?:\.\d+)*[.:)]\s+"
    r"|\d+(?:\.\d+)*[a-z]?[.:)](?!\d)\s*|\d+(?:\.\d+)+\s+)")
_INTERROGATIVE = re.compile(
    r"^(?:how|what|what's|whats|why|when|where|which|who|whom|whose|can|can't|could|do|does|did|"
    r"don't|doesn't|is|isn't|are|aren't|was|were|should|shouldn't|would|will|won't|may|might|must|"
    r"has|have|shall|am|any)\b", re.I)
_PROBLEM = re.compile(
    r"\b(?:I|I'm|I've|I'd|my|me|we|our|error|errors|fails?|failed|failing|failure|doesn't|does not|"
    r"don't|do not|can't|cannot|won't|isn't|is not|not work\w*|broken|crash\w*|hangs?|freezes?|"
    r"slow|wrong|problems?|bug|missing|segfault\w*|lost|complains?|refuses?|ignor\w+|instead of|"
    r"no longer|too|not|non-functional|non-working|unsupported|disabled|unable|timeouts?|denied|invalid|"
    r"corrupt\w*|unknown|undefined|illegal|abort\w*|dies|die|bombs?|coughs?|strange|weird|funny|"
    r"garbled|mangled|disappear\w*|stuck|leaks?|unexpected\w*|break\w*|nothing|no effect|says?|"
    r"(?:is|are) (?:being )?\w+ing)\b|^[\w./-]+: (?![A-Z][a-z])", re.I)
_POINTER = re.compile(
    r"^(?:please\s+)?(?:see|refer to|read|check|look (?:at|in)|consult|go to|visit|have a look|"
    r"this is (?:answered|covered|described|explained|documented)|(?:it is|this is|that is) "
    r"(?:described|documented|explained) in)\b", re.I)


def strip_numbering(question: str) -> str:
    """Drop question numbering and Q-labels: "4.2. How ..." -> "How ...", "Q: Why" -> "Why",
    "G1. What" -> "What", "(12) How" -> "How"."""
    q = question.strip()
    for _ in range(2):
        q = _NUMBERING.sub("", q, count=1).strip()
    return q


def is_question(question: str) -> bool:
    """A real question or problem statement, not a bare section title.

    True when it has a "?", starts with an interrogative/auxiliary word ("How to ...", "Can I
    ..."), is an exclamation or a quoted error message, or states a problem (first person, an
    error, something failing: "I get 'ld: cannot find -lfoo'", "Make dies when building on
    FreeBSD"). "Introduction", "Contents", "Perl Books", "Sources of information" or "Step two -
    ..." are section titles.
    """
    stripped = question.strip()
    q = stripped.strip('"“”')
    if not q or re.match(r"(?:step|part|chapter|section|appendix)\s+\w+\s*[-:–]", q, re.I):
        return False
    if "?" in q or q.endswith("!") or _INTERROGATIVE.match(q) or stripped[0] in "\"“'":
        return True
    return len(q.split()) >= 3 and _PROBLEM.search(q) is not None


def is_pointer_only(answer: str) -> bool:
    """Answers that only send the reader elsewhere ("See the manual.", "See question 4.2",
    "Read the INSTALL file"): short and starting with a pointer, or tiny and mentioning one."""
    n = len(answer.split())
    answer = re.sub(r"^(?:yes|no|sure|maybe)\b[.,!]?\s*", "", answer, flags=re.I)
    if n <= 25 and _POINTER.match(answer):
        return True
    return n <= 15 and re.search(r"\b(?:see|refer to|described in|documented in)\b", answer, re.I) is not None


def truncate_words(text: str, max_words: int = MAX_WORDS) -> str:
    """The first ``max_words`` words; when that cuts a sentence, end at the last sentence end
    within the final quarter, if any."""
    words = text.split()
    if len(words) <= max_words:
        return " ".join(words)
    cut = " ".join(words[:max_words])
    ends = [m.end() for m in re.finditer(r"[.!?:][\"')\]]?(?=\s)", cut)]
    floor = len(" ".join(words[: max_words * 3 // 4]))
    if ends and ends[-1] >= floor:
        return cut[: ends[-1]]
    return cut


def clean_question(q: str) -> str:
    q = strip_numbering(normalise_ws(q))
    q = re.sub(r"\s*¶$", "", q)
    return q.strip()


_FOOTER = re.compile(r"\s*(?:Last updated \d{4}-\d\d-\d\d[\d: +]*|This document was generated using makeinfo\.?|"
                     r"Go to the next section or return to the index\.?|Up to index)\s*$")


def clean_answer(a: str) -> str:
    a = _FOOTER.sub("", normalise_ws(a))
    a = re.sub(r"^(?:A\s*[:.]|Answer\s*:)\s*", "", a)
    return truncate_words(a)


def _key(text: str) -> str:
    return " ".join(re.sub(r"[^\w]+", " ", text.lower()).split())


def clean_pairs(pairs: Iterable[Pair], seen_q: set | None = None, seen_a: set | None = None,
                drops: Counter | None = None) -> list[Pair]:
    """Clean raw ``(question, answer)`` pairs; return the kept ones in order.

    ``seen_q``/``seen_a`` hold the question/answer keys already used (shared across sources so
    that no text is kept twice anywhere); ``drops`` counts why pairs were dropped (and, under
    ``cut``, how many kept answers were cut to ``MAX_WORDS``).
    """
    seen_q = set() if seen_q is None else seen_q
    seen_a = set() if seen_a is None else seen_a
    drops = Counter() if drops is None else drops
    kept = []
    for q_raw, a_raw in pairs:
        q, a = clean_question(q_raw), clean_answer(a_raw)
        if not is_question(q):
            drops["not_a_question"] += 1
        elif len(a.split()) < MIN_WORDS:
            drops["short_answer"] += 1
        elif is_pointer_only(a):
            drops["pointer_only"] += 1
        elif _key(q) in seen_q or _key(a) in seen_a:
            drops["duplicate"] += 1
        else:
            seen_q.add(_key(q))
            seen_a.add(_key(a))
            kept.append((q, a))
            if len(a_raw.split()) > MAX_WORDS:
                drops["cut"] += 1
    return kept


# =============================================================================================
# The sources: Debian package, file(s) inside it, parser, licence, attribution
@dataclass(frozen=True)
class Source:
    name: str                      # used in ids: faq-<name>-0001
    title: str                     # corpus title: a human-readable FAQ name
    package: str                   # Debian (bookworm) package
    files: tuple[str, ...]         # glob patterns inside the unpacked package
    parse: Callable[[str], list[Pair]]
    markup: str
    licence: str
    attribution: str
    optional: bool = False


def _num(heading: str, section: str | None = None) -> Callable[[str], list[Pair]]:
    return lambda text: parse_numbered_text(text, heading, section)


def _html(*levels: str, question: str | None = None, only: str | None = None,
          stop: str | None = None) -> Callable[[str], list[Pair]]:
    return lambda text: parse_html_headings(text, levels, question=question, only=only, stop=stop)


def _rst(question: str | None = None) -> Callable[[str], list[Pair]]:
    return lambda text: parse_rst(text, question)


_D = "usr/share/doc/"
SOURCES: tuple[Source, ...] = (
    # --- test ---------------------------------------------------------------------------------
    Source("perlfaq", "Perl FAQ (perlfaq)", "perl-doc", ("usr/share/perl/*/pod/perlfaq[1-9].pod",),
           parse_pod, "POD =head2", "GPL-1+ or Artistic-1.0 (Perl's terms)",
           "perlfaq, © Tom Christiansen, Nathan Torkington and the perlfaq contributors"),
    Source("r-faq", "R FAQ", "r-doc-html", ("usr/share/R/doc/manual/R-FAQ.html",),
           _html("h3", "h4"), "texinfo HTML h3/h4", "GPL-2+",
           "The R FAQ, © Kurt Hornik and the R Core Team"),
    Source("curl-faq", "curl FAQ", "libcurl4-doc", (_D + "libcurl4/FAQ.gz",),
           _num(r"^  (?P<num>\d+\.\d+) (?P<q>\S.*)$", r"^\d+\. \S"), "numbered plain text",
           "curl licence (MIT-like)", "curl FAQ, © Daniel Stenberg and the curl contributors"),
    Source("cryptsetup-faq", "cryptsetup/LUKS FAQ", "cryptsetup", (_D + "cryptsetup/FAQ.md.gz",),
           parse_markdown, "markdown `* **N.M question**`", "CC-BY-SA-3.0 (stated in the FAQ)",
           "cryptsetup FAQ, © Arno Wagner, Milan Broz and contributors"),
    # --- dev ----------------------------------------------------------------------------------
    Source("debian-faq", "Debian GNU/Linux FAQ", "debian-faq", (_D + "debian/FAQ/debian-faq.en.txt.gz",),
           _num(r"^(?P<num>\d+(?:\.\d+)+)\.\s+(?P<q>\S.*)$", r"^(?:Chapter )?\d+\.\s+\S"), "numbered plain text",
           "SPI permission notice (verbatim and modified copies with the notice)",
           "The Debian GNU/Linux FAQ, © Software in the Public Interest"),
    # --- train --------------------------------------------------------------------------------
    Source("gitfaq", "Git FAQ (gitfaq)", "git-doc", (_D + "git-doc/gitfaq.txt",),
           parse_asciidoc, "asciidoc labelled list", "GPL-2", "gitfaq(7), © the Git contributors"),
    Source("sqlite-faq", "SQLite FAQ", "sqlite3-doc", (_D + "sqlite3/faq.html",),
           _html(question=r"^\(\d+\)\s", stop=r"This page last modified"), "HTML bold paragraphs", "public domain",
           "SQLite FAQ, by the SQLite developers (public domain)"),
    Source("django-faq", "Django FAQ", "python-django-doc", (_D + "python-django-doc/html/faq/*.html",),
           _html("h2", "h3"), "Sphinx HTML h2/h3", "BSD-3-clause",
           "Django documentation, © Django Software Foundation and contributors"),
    Source("zsh-faq", "Z shell (zsh) FAQ", "zsh-common", (_D + "zsh-common/FAQ.gz",),
           _num(r"^(?P<num>\d+\.\d+):\s+(?P<q>\S.*)$", r"^Chapter \d+:"), "numbered plain text",
           "zsh FAQ licence (free redistribution, notice kept)", "Z-Shell FAQ, © Peter Stephenson"),
    Source("fetchmail-faq", "fetchmail FAQ", "fetchmail", (_D + "fetchmail/fetchmail-FAQ.html",),
           _html("h2", only=r"^[A-Z]\d+\.\s", stop=r"Back to Fetchmail Home Page"), "HTML h2 \"G1.\"",
           "GPL-2+ with OpenSSL exception",
           "Fetchmail FAQ, © Eric S. Raymond, Matthias Andree and contributors"),
    Source("lftp-faq", "lftp FAQ", "lftp", (_D + "lftp/FAQ",), parse_qa_text, "Q:/A: text",
           "GPL-3", "lftp FAQ, © Alexander V. Lukyanov"),
    Source("screen-faq", "GNU screen FAQ", "screen", (_D + "screen/FAQ.gz",), parse_qa_text, "Q:/A: text",
           "GPL-3+", "GNU screen FAQ, © Jürgen Weigert, Oliver Laumann and the screen authors"),
    Source("mdadm-faq", "Debian mdadm FAQ", "mdadm", (_D + "mdadm/FAQ.gz",),
           _num(r"^(?P<num>\d+[a-z]?)\.\s+(?P<q>\S.*)$"), "numbered plain text", "GPL-2+",
           "Debian mdadm FAQ, © Mario Joußen, martin f. krafft and the Debian mdadm maintainers"),
    Source("chrony-faq", "chrony FAQ", "chrony", (_D + "chrony/FAQ.gz",),
           _num(r"^(?P<num>\d+\.\d+)\.\s+(?P<q>\S.*)$", r"^\d+\.\s+[A-Z]"), "numbered plain text",
           "GPL-2", "chrony FAQ, © Richard Curnow, Miroslav Lichvar and contributors"),
    Source("slrn-faq", "slrn newsreader FAQ", "slrn", (_D + "slrn/FAQ.gz",),
           _num(r"^  (?P<num>\d+(?:\.\d+)+)\.  (?P<q>\S.*)$", r"^  \d+\.  \S"), "numbered plain text",
           "GPL-2+", "The slrn FAQ, © John E. Davis, Thomas Schultz and contributors"),
    Source("procmail-faq", "procmail FAQ", "procmail", (_D + "procmail/FAQ",),
           _num(r"^(?P<num>\d+)\.\s+(?P<q>\S.*)$"), "numbered plain text", "GPL-2+ or Artistic",
           "procmail FAQ, © Stephen R. van den Berg and Philip Guenther"),
    Source("sudo-troubleshooting", "sudo troubleshooting FAQ", "sudo", (_D + "sudo/TROUBLESHOOTING.md.gz",),
           parse_markdown, "markdown ####", "ISC", "sudo TROUBLESHOOTING, © Todd C. Miller"),
    Source("urxvt-faq", "rxvt-unicode (urxvt) FAQ", "rxvt-unicode", (_D + "rxvt-unicode/README.FAQ.gz",),
           parse_pod_text, "pod2text outline", "GPL-2+",
           "rxvt-unicode FAQ, © Marc Lehmann and contributors"),
    Source("valgrind-faq", "Valgrind FAQ", "valgrind", (_D + "valgrind/html/faq.html",),
           parse_html_qanda, "DocBook HTML qandaset", "GPL-2+",
           "Valgrind FAQ, © Valgrind developers"),
    Source("mplayer-faq", "MPlayer FAQ", "mplayer-doc", (_D + "mplayer/HTML/en/faq.html",),
           parse_html_qanda, "DocBook HTML qandaset", "GPL-2+", "MPlayer FAQ, © the MPlayer team"),
    Source("nano-faq", "GNU nano FAQ", "nano", (_D + "nano/faq.html",), _html("h3"), "HTML h3",
           "GPL-3+",
           "The GNU nano editor FAQ, © Free Software Foundation (Chris Allegretta, Benno Schulenberg and others)"),
    Source("irssi-faq", "Irssi FAQ", "irssi", (_D + "irssi/faq.html",), _html("h3"), "HTML h3",
           "GPL-2+ with OpenSSL exception", "Irssi FAQ, © Timo Sirainen and the Irssi project"),
    Source("w3m-faq", "w3m FAQ", "w3m", (_D + "w3m/FAQ.html",),
           lambda text: parse_html_dl(text, stop=r"Up to index"), "HTML dl/dt",
           "w3m licence (MIT-like)", "w3m FAQ, © Akinori Ito and the w3m developers"),
    Source("doxygen-faq", "Doxygen FAQ", "doxygen-doc", (_D + "doxygen/html/faq.html",), _html("h1"),
           "doxygen HTML h1", "GPL-2", "Doxygen manual, © Dimitri van Heesch"),
    Source("gettext-faq", "GNU gettext FAQ", "gettext-doc", (_D + "gettext/FAQ.html",), _html("h4"),
           "HTML h4", "GPL-3+ (the package's licence; the page states none)",
           "GNU gettext FAQ, © Free Software Foundation (Bruno Haible)"),
    Source("lxml-faq", "lxml FAQ", "python-lxml-doc", (_D + "python-lxml/html/FAQ.html",), _html("h2", "h3"),
           "docutils HTML h2/h3", "BSD-3-clause", "lxml FAQ, © Stefan Behnel and the lxml contributors"),
    Source("ffmpeg-faq", "FFmpeg FAQ", "ffmpeg-doc", (_D + "ffmpeg/manual/faq.html",), _html("h3", "h4"),
           "texinfo HTML h3/h4", "LGPL-2.1+ (GPL-2+ parts)", "FFmpeg FAQ, © the FFmpeg developers"),
    Source("weechat-faq", "WeeChat FAQ", "weechat-doc", (_D + "weechat-doc/html/weechat_faq.en.html",),
           _html("h3", "h4"), "asciidoctor HTML h3", "GPL-3+", "WeeChat FAQ, © Sébastien Helleu"),
    Source("celery-faq", "Celery FAQ", "python-celery-doc", (_D + "python-celery-doc/html/_sources/faq.rst.txt",),
           _rst(), "reST sections", "CC-BY-SA-4.0 (Celery docs)",
           "Celery documentation, © Ask Solem and contributors"),
    Source("jinja2-faq", "Jinja FAQ", "python-jinja2-doc", (_D + "python-jinja2-doc/html/_sources/faq.rst.txt",),
           _rst(), "reST sections", "BSD-3-clause", "Jinja documentation, © Pallets", optional=True),
    Source("mypy-faq", "mypy FAQ", "mypy-doc", (_D + "mypy/html/_sources/faq.rst.txt",), _rst(),
           "reST sections", "MIT (Expat)", "mypy documentation, © Jukka Lehtosalo and contributors"),
    Source("borg-faq", "BorgBackup FAQ", "borgbackup-doc", (_D + "borgbackup/html/_sources/faq.rst.txt",),
           _rst(), "reST sections", "BSD-3-clause", "Borg documentation, © The Borg Collective"),
    Source("pygments-faq", "Pygments FAQ", "python-pygments-doc",
           (_D + "python-pygments-doc/html/_sources/faq.rst.txt",), _rst(), "reST sections", "BSD-2-clause",
           "Pygments documentation, © Georg Brandl, Matthäus Chajdas and contributors"),
    Source("sqlalchemy-faq", "SQLAlchemy FAQ", "python-sqlalchemy-doc",
           (_D + "python-sqlalchemy-doc/rst/faq/*.rst",), _rst(), "reST sections", "MIT (Expat)",
           "SQLAlchemy documentation, © Michael Bayer and contributors"),
    Source("docutils-faq", "Docutils FAQ", "docutils-doc", (_D + "docutils-doc/FAQ.txt",), _rst(),
           "reST sections", "public domain", "Docutils FAQ, by David Goodger and contributors (public domain)"),
    Source("scrapy-faq", "Scrapy FAQ", "python-scrapy-doc", (_D + "python-scrapy-doc/html/faq.html",),
           _html("h2", "h3"), "Sphinx HTML h2", "BSD-3-clause", "Scrapy documentation, © Scrapy developers"),
    Source("pylint-faq", "Pylint FAQ", "pylint-doc", (_D + "pylint/html/_sources/faq.rst.txt",), _rst(),
           "reST sections", "GPL-2+", "Pylint documentation, © Logilab and the Pylint contributors"),
    Source("coverage-faq", "Coverage.py FAQ", "python-coverage-doc",
           (_D + "python-coverage-doc/html/_sources/faq.rst.txt",), _rst(), "reST sections", "Apache-2.0",
           "Coverage.py documentation, © Ned Batchelder"),
    Source("pexpect-faq", "Pexpect FAQ", "python-pexpect-doc",
           (_D + "python-pexpect-doc/html/_sources/FAQ.rst.txt",), _rst(r"^\*\*Q:\s*(?P<q>.+?)\*\*\s*$"),
           "reST **Q:** paragraphs", "ISC", "Pexpect documentation, © Noah Spurrier and contributors"),
    Source("h5py-faq", "h5py FAQ", "python-h5py-doc", (_D + "python-h5py-doc/html/_sources/faq.rst.txt",),
           _rst(), "reST sections", "BSD-3-clause", "h5py documentation, © Andrew Collette and contributors",
           optional=True),
    Source("tornado-faq", "Tornado FAQ", "python-tornado-doc",
           (_D + "python-tornado-doc/html/_sources/faq.rst.txt",), _rst(), "reST sections", "Apache-2.0",
           "Tornado documentation, © The Tornado Authors", optional=True),
    Source("requests-faq", "Requests FAQ", "python-requests-doc",
           (_D + "python-requests-doc/html/_sources/community/faq.rst.txt",), _rst(), "reST sections",
           "Apache-2.0", "Requests documentation, © Kenneth Reitz and contributors"),
    Source("pika-faq", "Pika FAQ", "python-pika-doc", (_D + "python-pika-doc/html/_sources/faq.rst.txt",),
           _rst(r"^- (?P<q>.+)$"), "reST bullet questions", "MPL-2.0",
           "Pika documentation, © Gavin M. Roy and contributors", optional=True),
    Source("dask-faq", "Dask FAQ", "python-dask-doc", (_D + "python-dask-doc/html/_sources/*faq.rst.txt",),
           _rst(), "reST sections", "BSD-3-clause", "Dask documentation, © Anaconda and contributors"),
    Source("xarray-faq", "xarray FAQ", "python-xarray-doc",
           (_D + "python-xarray-doc/html/_sources/getting-started-guide/faq.rst.txt",), _rst(),
           "reST sections", "Apache-2.0", "xarray documentation, © xarray developers"),
    Source("sklearn-faq", "scikit-learn FAQ", "python-sklearn-doc",
           (_D + "python-sklearn-doc/html/_sources/faq.rst.txt",), _rst(), "reST sections", "BSD-3-clause",
           "scikit-learn documentation, © the scikit-learn developers", optional=True),
    Source("elinks-faq", "ELinks FAQ", "elinks-doc", (_D + "elinks/faq.txt.gz",), parse_asciidoc,
           "asciidoc titles", "GPL-2", "ELinks FAQ, © the ELinks project"),
)
SOURCE_BY_NAME = {s.name: s for s in SOURCES}


def split_of(source: str) -> str:
    """The split a whole source belongs to (``SPLIT``; every other source is train)."""
    for split, names in SPLIT.items():
        if source in names:
            return split
    return "train"


# =============================================================================================
# Reading the unpacked packages
def read_text(path: Path) -> str:
    """A file's text: gunzipped when it ends in .gz; UTF-8, else Latin-1; newlines normalised."""
    raw = Path(path).read_bytes()
    if str(path).endswith(".gz"):
        raw = gzip.decompress(raw)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    return text.replace("\r\n", "\n").replace("\r", "\n")


def source_files(source: Source, root: Path) -> list[Path]:
    """The FAQ files of ``source`` inside the package unpacked at ``root`` (sorted)."""
    files = sorted({p for pattern in source.files for p in Path(root).glob(pattern) if p.is_file()})
    return files


def raw_pairs(source: Source, root: Path) -> list[Pair]:
    """All ``(question, answer)`` pairs the source's parser finds, before cleaning."""
    return [pair for f in source_files(source, root) for pair in source.parse(read_text(f))]


# =============================================================================================
# Assembling the dataset (pure: no apt, no files) — ids, one corpus, qrels, split by source
def assemble(pairs_by_source: dict[str, list[Pair]], versions: dict[str, str],
             sources: Iterable[Source] = SOURCES) -> tuple[list[dict], list[dict], dict, dict]:
    """Turn cleaned pairs into BEIR records.

    ``pairs_by_source`` maps a source name to its cleaned ``(question, answer)`` pairs (in
    document order); ``versions`` maps a package to its version. Returns ``(corpus, queries,
    qrels_by_split, stats)``: one passage ``faq-<source>-NNNN`` per answer, one query
    ``q-<source>-NNNN`` per question, qrels rows ``(query_id, passage_id, 1)`` in the split
    of the whole source (``SPLIT``). Sources keep the order of ``sources``.
    """
    corpus, queries = [], []
    qrels: dict[str, list] = {s: [] for s in ("train", "dev", "test")}
    per_source = {}
    for src in sources:
        pairs = pairs_by_source.get(src.name)
        if not pairs:
            continue
        split = split_of(src.name)
        version = versions.get(src.package, "unknown")
        for n, (question, answer) in enumerate(pairs, start=1):
            did, qid = f"faq-{src.name}-{n:04d}", f"q-{src.name}-{n:04d}"
            corpus.append({"_id": did, "title": src.title, "text": answer,
                           "metadata": {"source": src.name, "package": src.package,
                                        "version": version, "licence": src.licence}})
            queries.append({"_id": qid, "text": question,
                            "metadata": {"split": split, "source": src.name, "licence": src.licence}})
            qrels[split].append((qid, did, 1))
        per_source[src.name] = {"package": src.package, "version": version, "split": split,
                                "pairs": len(pairs)}
    stats = {"passages": len(corpus),
             "queries": {s: len(rows) for s, rows in qrels.items()},
             "sources_per_split": {s: [n for n, v in per_source.items() if v["split"] == s] for s in qrels},
             "per_source": per_source}
    return corpus, queries, qrels, stats


def check_split(stats: dict) -> None:
    """Fail when the held-out splits are too small (``MIN_TEST_*``, ``MIN_DEV_QUESTIONS``)."""
    q, srcs = stats["queries"], stats["sources_per_split"]
    if q["test"] < MIN_TEST_QUESTIONS or len(srcs["test"]) < MIN_TEST_SOURCES:
        raise SystemExit(f"build_faqs: the test split has {q['test']} questions from {len(srcs['test'])} "
                         f"sources (need >= {MIN_TEST_QUESTIONS} from >= {MIN_TEST_SOURCES}). Fix: add a "
                         "mid-size source to SPLIT['test'] in searchtune_utils/build_faqs.py.")
    if q["dev"] < MIN_DEV_QUESTIONS:
        raise SystemExit(f"build_faqs: the dev split has {q['dev']} questions (need >= {MIN_DEV_QUESTIONS}). "
                         "Fix: add a mid-size source to SPLIT['dev'] in searchtune_utils/build_faqs.py.")


# =============================================================================================
# Downloading and unpacking with apt-get / dpkg-deb
NO_APT_MESSAGE = (
    "build_faqs needs `apt-get` and `dpkg-deb` (Debian or Ubuntu) to fetch the FAQ packages; "
    "{missing} not found on this machine. You do not need to build it: the dataset is committed "
    "in data/faqs/ (see data/faqs/README.md), and loads with "
    "searchtune_utils.data.load_beir('data/faqs').")


def missing_tools() -> list[str]:
    return [t for t in ("apt-get", "dpkg-deb") if shutil.which(t) is None]


def _cached_deb(package: str, cache: Path) -> Path | None:
    debs = sorted(cache.glob(f"{package}_*.deb"))
    if len(debs) > 1:
        print(f"build_faqs: several cached versions of {package} ({', '.join(d.name for d in debs)}); "
              f"using {debs[-1].name}. Delete the others to choose.", file=sys.stderr)
    return debs[-1] if debs else None


def download(packages: Iterable[str], cache: Path, optional: Iterable[str] = ()) -> dict[str, Path]:
    """``apt-get download`` every package not already in ``cache``; return {package: .deb}.

    Packages that cannot be fetched raise SystemExit naming them and the fix, unless listed
    in ``optional`` (those are skipped with a warning).
    """
    cache.mkdir(parents=True, exist_ok=True)
    packages, optional = list(dict.fromkeys(packages)), set(optional)
    todo = [p for p in packages if _cached_deb(p, cache) is None]
    failed: dict[str, str] = {}
    if todo:
        print(f"build_faqs: apt-get download {len(todo)} package(s) into {cache.name}/ ...", file=sys.stderr)
        batch = subprocess.run(["apt-get", "download", *todo], cwd=cache, capture_output=True, text=True)
        if batch.returncode != 0:  # find which ones failed
            for p in todo:
                if _cached_deb(p, cache) is None:
                    one = subprocess.run(["apt-get", "download", p], cwd=cache, capture_output=True, text=True)
                    if one.returncode != 0 or _cached_deb(p, cache) is None:
                        failed[p] = (one.stderr.strip().splitlines() or ["unknown error"])[-1]
    hard = {p: e for p, e in failed.items() if p not in optional}
    for p in sorted(set(failed) - set(hard)):
        print(f"build_faqs: optional package {p} could not be downloaded ({failed[p]}); skipped.", file=sys.stderr)
    if hard:
        lines = "\n".join(f"  {p}: {e}" for p, e in sorted(hard.items()))
        raise SystemExit(
            f"build_faqs: could not download {len(hard)} package(s):\n{lines}\n"
            "Fix: run `sudo apt-get update` (apt needs its package lists), check that the machine "
            "uses Debian 12 (bookworm) package names, or mark the source optional in SOURCES; "
            "or skip the build and use the committed data/faqs.")
    return {p: d for p in packages if (d := _cached_deb(p, cache)) is not None}


def deb_version(deb: Path) -> str:
    """The package version recorded inside a .deb (``dpkg-deb -f DEB Version``)."""
    out = subprocess.run(["dpkg-deb", "-f", str(deb), "Version"], capture_output=True, text=True, check=True)
    return out.stdout.strip()


def extract(deb: Path, dest: Path) -> Path:
    """Unpack ``deb`` into a fresh ``dest`` folder (``dpkg-deb -x``)."""
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    subprocess.run(["dpkg-deb", "-x", str(deb), str(dest)], check=True, capture_output=True)
    return dest


# =============================================================================================
# The dataset card (written by the builder, so a rebuild can never leave it stale)
BUILD_TIME_NOTE = ("20 s from scratch with an empty download cache (47 packages, 139 MB from a Debian "
                   "mirror at ~20 MB/s) and 13 s with a warm cache, measured on a 2-CPU Linux machine "
                   "(up to 40 s while another job used the CPUs); unpacking with dpkg-deb takes most "
                   "of it")

KNOWN_NOISE = {
    "perlfaq": "Code examples are inlined into the answer (whitespace collapsed); POD links read "
               "\"int in perlfunc\"; the \"(contributed by ...)\" credit lines are left out of the answers.",
    "r-faq": "A question with sub-questions (\"How can R be installed?\") keeps only its short intro; "
             "16 section titles (\"Legalese\", \"Add-on packages from CRAN\") dropped.",
    "curl-faq": "Some answers refer to other items (\"see item 3.8\"); two table-of-contents entries "
                "without an answer in the file (8.1, 8.2) are dropped.",
    "cryptsetup-faq": "Long answers; 35 bullet headings that are topics, not questions (\"WARNINGS\", "
                      "\"loop-aes with 160 bit key\"), dropped.",
    "debian-faq": "The text edition duplicates every link as \" (https:// ...)\" with a line break in the "
                  "URL: those copies are removed; some answers say \"see Section 12.1\".",
    "gitfaq": "linkgit:git-config[1] rendered as git-config(1); 11 section titles dropped.",
    "sqlite-faq": "Clean.",
    "django-faq": "A few answers are mostly a link (\"Details on how to do this are here: ...\").",
    "zsh-faq": "`quote' style kept; topic headings (\"Similarities with csh\") dropped.",
    "fetchmail-faq": "About half the headings are problem statements, not questions; entries the source marks "
                     "as obsolete (struck out) are kept with their historical answer.",
    "lftp-faq": "Short answers; 2 one-line answers dropped.",
    "screen-faq": "Hyphenated line breaks from the original text remain (\"ap- plication\").",
    "mdadm-faq": "Some answers start with \"See the mdadm(8) manpage:\" and then quote it; 3 pointer-only "
                 "answers dropped.",
    "chrony-faq": "Chapter 3 questions are fragments that need the chapter title (\"Computer is not "
                  "synchronising\") as context, e.g. \"Behind a firewall?\".",
    "slrn-faq": "``double quotes'' kept as written.",
    "procmail-faq": "One question absorbs the topic list that belongs to its answer (\"Where do I look for "
                    "examples about: ...\").",
    "sudo-troubleshooting": "\"... I get:\" headings take the error message from the code block below them, "
                            "so several questions share the same first words.",
    "urxvt-faq": "7 questions whose answer is \"See next entry.\" dropped.",
    "valgrind-faq": "Questions quote long error messages.",
    "mplayer-faq": "8 one-line answers and 5 pointers to other manual sections dropped.",
    "nano-faq": "Some headings are exclamations, not questions (\"Tell me more about this multibuffer "
                "stuff!\").",
    "irssi-faq": "3 one-line answers (\"/TOPIC <tab>\") dropped.",
    "w3m-faq": "5 one-line answers dropped.",
    "doxygen-faq": "Clean.",
    "gettext-faq": "Clean.",
    "lxml-faq": "Code examples with >>> prompts inlined.",
    "ffmpeg-faq": "Sub-sections of \"How can I join video files?\" are separate entries only when phrased "
                  "as questions.",
    "weechat-faq": "External-link marks (↗) kept.",
    "celery-faq": "Some Sphinx cross-references show their label, not their title.",
    "jinja2-faq": "Clean.",
    "mypy-faq": "Clean.",
    "borg-faq": "Sphinx cross-references show their label (\"borg_compact\").",
    "pygments-faq": "Clean.",
    "sqlalchemy-faq": "Sphinx cross-references without text show their label (\"pool_disconnects\").",
    "docutils-faq": "Clean.",
    "scrapy-faq": "5 answers that only link elsewhere dropped.",
    "pylint-faq": "5 one-line answers dropped.",
    "coverage-faq": "Clean.",
    "pexpect-faq": "Clean.",
    "h5py-faq": "Tables are flattened into word lists; 10 topic headings (\"Unicode\", \"Exceptions\") "
                "dropped.",
    "tornado-faq": "Clean.",
    "requests-faq": "Terse headings (\"Encoded Data?\").",
    "pika-faq": "Clean.",
    "dask-faq": "One answer is mostly a BibTeX entry.",
    "xarray-faq": "Clean.",
    "sklearn-faq": "Clean.",
    "elinks-faq": "A table is flattened into a word list.",
}


def _md(text: str) -> str:
    return str(text).replace("|", "\\|")


def render_card(info: dict) -> str:
    """The dataset card ``data/faqs/README.md``, from ``build_info`` and ``SOURCES``."""
    q = info["queries"]
    total = sum(q.values())
    src = info["sources"]
    by_split = {s: [n for n, v in src.items() if v["split"] == s] for s in ("test", "dev", "train")}
    cut = sum(v["answers_cut_to_max_words"] for v in src.values())
    drops = Counter()
    for v in src.values():
        drops.update(v["dropped"])
    rows = []
    for name, v in src.items():
        s = SOURCE_BY_NAME[name]
        rows.append(f"| {name} | `{s.package}` {_md(v['version'])} | {_md(s.licence)} | {_md(s.attribution)} | "
                    f"{v['pairs']} | {v['answers_cut_to_max_words']} | {v['split']} | "
                    f"{_md(KNOWN_NOISE.get(name, ''))} |")
    not_built = [s.name for s in SOURCES if s.name not in src]
    big = max(src, key=lambda n: src[n]["pairs"])
    lines = [
        "# Dataset card: `faqs` — real questions from open-source projects' FAQs",
        "",
        "`data/faqs/` is a retrieval dataset of **questions people actually asked**: the FAQ headings that "
        f"{len(src)} open-source projects ship in Debian's documentation packages, each paired with the answer "
        "written under it. It complements the built-in `pydocs` set, whose questions are rule-made from the "
        "passages: here the wording of questions and answers differs the way real users' questions do.",
        "",
        "**Licences are mixed and many are copyleft** (GPL, LGPL, CC-BY-SA, Artistic, MPL, permissive and "
        "public domain). Each record is redistributed under **its own source's terms**, listed per source "
        "below and in every record's `metadata.licence`; keep the attribution and licence when you reuse "
        "it. searchtune's own MIT licence does not cover this data.",
        "",
        "## Sizes (generated by the builder from `build_info.json`)",
        "| | |",
        "|---|---|",
        f"| Passages (one corpus, every answer) | {info['passages']} |",
        f"| Questions (one relevant passage each) | {total} |",
        f"| … test ({len(by_split['test'])} sources: {', '.join(by_split['test'])}) | {q['test']} |",
        f"| … dev ({len(by_split['dev'])} source: {', '.join(by_split['dev'])}) | {q['dev']} |",
        f"| … train ({len(by_split['train'])} sources) | {q['train']} |",
        f"| Answers cut to their first {info['max_answer_words']} words | {cut} |",
        f"| Dropped: not a question / answer under {info['min_answer_words']} words / only points elsewhere / "
        f"duplicate | {drops['not_a_question']} / {drops['short_answer']} / {drops['pointer_only']} / "
        f"{drops['duplicate']} |",
        "",
        "## Files (BEIR format)",
        "| file | content |",
        "|---|---|",
        "| `corpus.jsonl` | `{\"_id\": \"faq-<source>-NNNN\", \"title\": \"<project> FAQ\", \"text\": answer, "
        "\"metadata\": {source, package, version, licence}}` |",
        "| `queries.jsonl` | `{\"_id\": \"q-<source>-NNNN\", \"text\": question, \"metadata\": {split, source, licence}}` |",
        "| `qrels/{train,dev,test}.tsv` | `query-id  corpus-id  score`: the one answer of each question, score 1 |",
        "| `build_info.json` | counts per source and split, what was dropped, exact package versions, builder version |",
        "| `README.md` | this card (written by the builder) |",
        "",
        "The title is the FAQ's name, never the question, so a model cannot match a question to its own "
        "heading. Load with `searchtune_utils.data.load_beir(\"data/faqs\")`.",
        "",
        "## Split: by source (domain-held-out)",
        "Whole FAQs are held out: **test** = " + ", ".join(f"`{n}`" for n in by_split["test"]) +
        ", **dev** = " + ", ".join(f"`{n}`" for n in by_split["dev"]) + ", **train** = every other source. "
        "No test or dev project appears in train, so test scores measure transfer to projects the model "
        "never saw in training (Perl, R, curl and disk encryption for test; Debian for dev). The split is "
        "the constant `SPLIT` in `searchtune_utils/build_faqs.py`. Every answer is in the one corpus, so at "
        "test time the model searches all sources' answers, not only the test projects'. "
        "`searchtune_utils.data.check_no_leakage` holds at build time and in `tests/test_build_faqs.py` "
        "(no query id, query text or positive passage in two splits).",
        "",
        "## How it is built",
        "`python -m searchtune_utils.build_faqs` (options: `--cache DIR`, default `.cache/faqs/debs`, "
        "git-ignored; `--out DIR`; `--if-missing`). It needs `apt-get` and `dpkg-deb`, so it runs on "
        "Debian/Ubuntu only; on macOS/Windows use the committed folder. Time: " + BUILD_TIME_NOTE + ".",
        "",
        "1. `apt-get download` each package into the cache (no install, no root once apt's lists exist; "
        "run `apt-get update` first on a fresh machine), then `dpkg-deb -x` it into `<cache>/extracted/`. "
        "The exact version of every package (`dpkg-deb -f PKG.deb Version`) is recorded in `build_info.json`.",
        "2. One small parser per markup (POD, numbered plain text, Q:/A: text, pod2text outline, markdown, "
        "reST, AsciiDoc, and HTML from Sphinx, texinfo, DocBook and hand-written pages) yields "
        "(heading, text under it) pairs with the markup stripped.",
        "3. Cleaning: question numbering (\"4.2.\", \"Q:\", \"G1.\", \"(12)\") is stripped and whitespace "
        f"normalised; answers are cut to their first {info['max_answer_words']} words (at a sentence end "
        "when one is near). Dropped: headings that are neither a question nor a problem statement (bare "
        f"section titles such as \"Introduction\" or \"Perl Books\"), answers under {info['min_answer_words']} "
        "words, answers that only point elsewhere (\"See the manual\", \"See next entry\"), and any "
        "question or answer whose text was already kept (across all sources, in the order of the table).",
        "4. Deterministic: no randomness; the same packages give byte-identical files.",
        "",
        "Not included: CPython's own FAQ (`python3.x-doc`) is deliberately kept out, as an independent check "
        "for the `pydocs` models. The two PyPI sdists with \"task → command\" pairs (`cheat`, `eg`) are left "
        "out: only a few dozen of their ~2,000 pairs are phrased as questions; the rest are comments on "
        "shell commands, a different task.",
        "",
        "## Per source",
        f"| source | package and version | licence | attribution | pairs | answers cut to "
        f"{info['max_answer_words']} words | split | known noise |",
        "|---|---|---|---|---:|---:|---|---|",
        *rows,
        "",
        "Licences come from each package's `/usr/share/doc/<package>/copyright` or the FAQ's own statement "
        "(cryptsetup: CC-BY-SA-3.0, stated in the FAQ; zsh: the FAQ's own permission notice; R: GPL-2+, "
        "stated in the FAQ; Celery: CC-BY-SA-4.0 for its docs per the Debian copyright file).",
        "",
        "## Known weaknesses — read before trusting a number",
        "- **One judged passage per question.** Another FAQ's answer can also answer a question (every "
        "project has \"Is there a mailing list?\"); it counts as a miss. Compare systems on the same data.",
        "- **Headings are written by FAQ authors, not typed into a search box**: many are long, some are "
        "problem statements (\"Fetchmail hangs when used with pppd.\") and some need their chapter as "
        "context. They are closer to what users ask than rule-made questions, but they are not search "
        "queries: expect people's own queries to be shorter.",
        "- Answers are cut at 200 words, so the cut-off part of a long answer cannot be matched.",
        "- Several FAQs are old (screen, procmail, fetchmail, mplayer): answers describe old versions.",
        "- The question test is a rule (question mark, question word, or a problem word such as \"fails\", "
        "\"error\", \"I\"): a few topic titles still pass and a few real problem statements are dropped.",
        f"- English only; sources differ a lot in size (the largest, {big}, holds {src[big]['pairs']} of the "
        f"{q[src[big]['split']]} {src[big]['split']} questions).",
    ]
    if not_built:
        lines += ["", "Optional sources missing from this build: " + ", ".join(not_built) + "."]
    return "\n".join(lines) + "\n"


# =============================================================================================
# Build
def collect(roots: dict[str, Path], sources: Iterable[Source] = SOURCES) -> tuple[dict, dict]:
    """Parse and clean every source whose package is unpacked in ``roots``; return
    ``(pairs_by_source, drops_by_source)``. De-duplication runs across all sources in order.
    A required source whose parser finds zero pairs raises SystemExit naming it."""
    seen_q: set = set()
    seen_a: set = set()
    pairs_by_source, drops_by_source = {}, {}
    for src in sources:
        if src.package not in roots:
            continue
        root = roots[src.package]
        files = source_files(src, root)
        drops: Counter = Counter()
        raw = [p for f in files for p in src.parse(read_text(f))]
        kept = clean_pairs(raw, seen_q, seen_a, drops)
        if not kept:
            msg = (f"build_faqs: source {src.name!r} (package {src.package}) gave 0 question/answer pairs "
                   f"({len(files)} file(s) matching {', '.join(src.files)}, {len(raw)} raw pairs). The "
                   "package layout or markup probably changed: fix the file pattern or parser in "
                   "SOURCES (searchtune_utils/build_faqs.py), or mark the source optional.")
            if not src.optional:
                raise SystemExit(msg)
            print(msg.replace("build_faqs:", "build_faqs: warning:"), file=sys.stderr)
            continue
        pairs_by_source[src.name] = kept
        drops_by_source[src.name] = dict(sorted(drops.items()))
    return pairs_by_source, drops_by_source


def build(cache: str | Path = DEFAULT_CACHE, out: str | Path = DEFAULT_OUT) -> dict:
    """Download, unpack, parse, clean, split and write ``out``; return build_info."""
    missing = missing_tools()
    if missing:
        raise SystemExit(NO_APT_MESSAGE.format(missing=" and ".join(f"`{m}`" for m in missing)))
    cache, out = Path(cache), Path(out)
    packages = [s.package for s in SOURCES]
    optional = [s.package for s in SOURCES if s.optional]
    debs = download(packages, cache, optional)
    versions, roots = {}, {}
    for pkg, deb in debs.items():
        versions[pkg] = deb_version(deb)
        roots[pkg] = extract(deb, cache / "extracted" / pkg)
    pairs_by_source, drops = collect(roots)
    corpus, queries, qrels, stats = assemble(pairs_by_source, versions)
    check_split(stats)
    check_no_leakage({s: {q: {d: sc} for q, d, sc in rows} for s, rows in qrels.items()},
                     {q["_id"]: q["text"] for q in queries})
    info = {"builder_version": BUILDER_VERSION,
            "distribution": "Debian 12 (bookworm) documentation packages",
            "max_answer_words": MAX_WORDS, "min_answer_words": MIN_WORDS,
            "split": {"test": list(SPLIT["test"]), "dev": list(SPLIT["dev"]), "train": "all other sources"},
            "passages": stats["passages"], "queries": stats["queries"],
            "sources": {name: {**info, "answers_cut_to_max_words": drops[name].get("cut", 0),
                               "dropped": {k: v for k, v in drops[name].items() if k != "cut"}}
                        for name, info in stats["per_source"].items()},
            "packages": dict(sorted(versions.items()))}
    write_beir(out, corpus, queries, qrels,
               extra_files={"build_info.json": json.dumps(info, indent=2, ensure_ascii=False) + "\n",
                            "README.md": render_card(info)})
    return info


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cache", default=str(DEFAULT_CACHE),
                    help="folder for the downloaded .deb files (unpacked under <cache>/extracted)")
    ap.add_argument("--out", default=str(DEFAULT_OUT), help="output folder (BEIR format)")
    ap.add_argument("--if-missing", action="store_true", help="do nothing when the dataset exists")
    args = ap.parse_args(argv)
    out = Path(args.out)
    if args.if_missing and (out / "build_info.json").exists():
        print(f"build_faqs: {out.name}/ exists; nothing to do.")
        return 0
    start = time.perf_counter()
    info = build(args.cache, out)
    q = info["queries"]
    print(f"build_faqs: wrote {out.name}/ in {time.perf_counter() - start:.0f} s: {info['passages']} passages, "
          f"questions train/dev/test = {q['train']}/{q['dev']}/{q['test']} from {len(info['sources'])} sources.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
