"""Build ``data/pydocs``: a retrieval dataset of real developer documentation, offline.

Source: the documentation that ships inside every CPython — the language-reference topics in
``pydoc_data.topics`` and the docstrings of a fixed list of standard-library modules
(``MODULES``). Nothing is downloaded. The output is deterministic for a given Python version
(recorded in ``build_info.json``): same version, same bytes.

How it is made (rules only, no model):
1. Passages. Each documented public function, class, method or exception becomes one passage:
   title ``module.Name(signature)``, text = its docstring (long docstrings are cut into
   ``PASSAGE_WORDS``-word chunks, each its own passage). Each language-reference topic is cut
   into chunks too. Exact duplicate docstrings (re-exports, aliases) are kept once.
2. Queries. For each API passage whose one-line summary is unique and specific enough, one
   developer-style question is written from the summary with rules: the leading verb picks a
   question template ("Return X" -> "how do I get X", "Return True if X" -> "how can I check if
   X", "Raised when X" -> "which exception is raised when X" ...), then a fixed synonym table
   swaps documentation words for the words developers type ("directory" -> "folder",
   "dictionary" -> "dict", "remove" -> "delete" ...), each swap taken with probability 1/2 by a
   stable hash. The query never repeats the object's own name. The positive is the passage
   holding the summary (relevance 1); all other passages are unjudged.
3. Split by query, grouped by positive passage: queries about the modules in
   ``HELDOUT_MODULES`` all go to ``test`` (metadata ``slice = "heldout_module"``, the
   generalisation check); the rest are hashed 80/10/10-adjusted so the overall split is close
   to 80/10/10. No-leakage rule: a query id, a query text and a positive passage each belong to
   one split only (checked by ``searchtune_utils.data.check_no_leakage`` and a test).
4. Out-of-scope questions (``out_of_scope.jsonl``): developer questions about other tools
   (numpy, Docker, React, SQL servers ...) whose answer is not in the corpus, for the refusal
   lessons; split 80/10/10 by hash.

Run: ``python -m searchtune_utils.build_pydocs [--out data/pydocs] [--check]``.
"""
from __future__ import annotations

import argparse
import importlib
import inspect
import json
import platform
import re
import sys
import warnings
from collections import Counter
from pathlib import Path

from .config import DATA_DIR, atomic_write_text
from .data import check_no_leakage, stable_hash, write_beir

BUILDER_VERSION = 2
PASSAGE_WORDS = 120
MIN_SUMMARY_WORDS = 4
MAX_SUMMARY_WORDS = 30

MODULES = sorted(set("""
abc argparse array ast asyncio base64 binascii bisect builtins bz2 calendar cmath codecs codeop
collections collections.abc colorsys compileall concurrent.futures configparser contextlib copy csv
ctypes dataclasses datetime decimal difflib dis doctest email email.message email.utils email.parser
email.policy email.header enum filecmp fileinput fnmatch fractions ftplib functools gc getopt getpass
gettext glob graphlib gzip hashlib heapq hmac html html.parser http http.client http.cookies
http.cookiejar http.server imaplib importlib importlib.resources importlib.metadata importlib.util
inspect io ipaddress itertools json keyword linecache locale logging logging.handlers lzma mailbox
math mimetypes mmap multiprocessing multiprocessing.pool multiprocessing.shared_memory netrc numbers
operator optparse os os.path pathlib pdb pickle pickletools pkgutil platform plistlib poplib pprint
profile pstats py_compile pydoc queue quopri random re reprlib rlcompleter runpy sched secrets select
selectors shelve shlex shutil signal site smtplib socket socketserver sqlite3 ssl stat statistics
string struct subprocess symtable sys sysconfig tabnanny tarfile tempfile textwrap threading time
timeit token tokenize tomllib trace traceback tracemalloc types typing unicodedata unittest
unittest.mock urllib.error urllib.parse urllib.request urllib.robotparser uuid warnings wave weakref
wsgiref.simple_server wsgiref.util wsgiref.headers xml.dom.minidom xml.etree.ElementTree xml.sax
xml.sax.saxutils xmlrpc.client xmlrpc.server zipfile zipimport zlib zoneinfo
bdb cmd code contextvars dbm email.generator email.headerregistry email.mime.text
email.mime.multipart faulthandler html.entities json.decoder json.encoder logging.config
importlib.abc importlib.machinery modulefinder multiprocessing.managers multiprocessing.connection
nntplib pty pyclbr resource sunau aifc chunk telnetlib tty uu xdrlib xml.sax.handler
xml.sax.xmlreader xml.dom.pulldom zipapp venv urllib.response cgi cgitb smtpd asynchat asyncore
""".split()))

# Whole modules kept out of train and dev: their queries form the test split's
# "heldout_module" slice, so overfitting to the training modules shows up.
HELDOUT_MODULES = ("calendar", "mailbox", "plistlib", "tarfile", "wave")
# Share of API objects that get a second, differently phrased question (same positive passage).
SECOND_QUERY_SHARE = 0.2

# Documentation word -> what a developer might type instead (applied with probability 1/2).
SYNONYMS = {
    "directory": "folder", "directories": "folders", "pathname": "path", "pathnames": "paths",
    "dictionary": "dict", "dictionaries": "dicts", "integer": "int", "integers": "ints",
    "string": "str", "strings": "strs", "boolean": "bool", "character": "char", "characters": "chars",
    "attribute": "attr", "attributes": "attrs", "argument": "arg", "arguments": "args",
    "specified": "given", "specify": "give", "remove": "delete", "removes": "deletes",
    "retrieve": "fetch", "obtain": "get", "construct": "build", "initialize": "init",
    "connection": "conn", "environment": "env", "variable": "var", "variables": "vars",
    "temporary": "temp", "configuration": "config", "message": "msg", "messages": "msgs",
    "maximum": "max", "minimum": "min", "execute": "run", "invoke": "call", "terminate": "kill",
    "element": "item", "elements": "items", "beginning": "start", "occurrence": "match",
    "occurrences": "matches", "sequence": "list", "instance": "object", "exception": "error",
    "determine": "figure out", "iterate": "loop", "iterator": "iterable", "whitespace": "spaces",
    "descriptor": "handle", "subprocess": "child process", "identifier": "id", "parameters": "params",
    "parameter": "param", "number": "count", "returns": "gives", "contents": "content",
    "specification": "spec", "representation": "repr", "approximately": "roughly",
    "create": "make", "creates": "makes", "list": "array", "value": "val",
    "values": "vals", "object": "obj", "objects": "objs", "specific": "particular",
    "default": "standard", "empty": "blank", "buffer": "buf", "server": "host", 
    "process": "proc", "thread": "worker thread", "callback": "handler function", "optional": "optionally",
    "current": "active", "function": "func", "instance's": "object's",
    "corresponding": "matching", "contains": "has", "containing": "with", "entries": "items",
    "entry": "item", "position": "offset", "encoding": "charset", "header": "header line",
    "headers": "header lines", "mapping": "dict", "append": "add", "insert": "put",
    "flag": "option", "flags": "options", "signal": "sig", "socket": "sock", "address": "addr", "response": "reply", "request": "req",
}
# Probability that a documentation word with an entry in SYNONYMS is swapped.
SYNONYM_RATE = 0.75
# Probability that a content word of the summary is left out of the question (users type less).
DROP_RATE = 0.3
STOPWORDS = set("a an the of to in for on by with from as at or and is are be this that its it if".split())

GET_VERBS = {"return", "get", "retrieve", "compute", "calculate", "find", "fetch", "obtain"}
# Imperative verbs that open API summaries ("Return ...", "Create ...").
VERBS = set("""
accept acquire add adjust advance append apply assert attach authenticate block build calculate call
cancel capitalize center change check clean clear close collect combine commit compare compile
compress compute concatenate configure connect construct convert copy count create decode decompress
decorate define delete deliver deserialize detach determine disable discard dispatch display do dump
duplicate emit enable encode end ensure enter escape evaluate execute exit expand export extend
extract fetch fill filter find finish flush force format generate get grow guess handle hash ignore
import initialize insert install interpret invoke iterate join kill list load lock log look make map
mark match merge move normalize notify open pack pad parse pass perform pop prepare prepend print
process produce put quit quote raise read receive record redirect register release reload remove
rename render repeat replace report request reset resolve restore retrieve return reverse rotate run
save scan schedule search seek select send serialize set shut shutdown signal skip sleep sort split
start stop store strip submit substitute subtract swap switch take tell terminate test translate
truncate try turn unlock unpack unquote unregister update upload use validate verify visit wait walk
wrap write yield""".split())
NOUN_STARTS = {"a", "an", "the", "base", "abstract", "class", "interface", "mixin", "helper"}
SKIP_STARTS = ("same as", "deprecated", "alias", "see ", "like ", "this method is", "this function is",
               "xxx", "todo", "internal", "private", "undocumented", "not implemented", "obsolete")
SIGNATURE_LINE = re.compile(r"^[\w.]+\(.*\)(\s*->.*)?$|^[\w.]+\s*->")

GET_TEMPLATES = ("how do I get {x}", "how can I find {x} in python", "which {kind} gives me {x}?",
                 "what {mod} {kind} returns {x}?", "is there a way to get {x}?", "python: get {x}",
                 "get {x} python")
CHECK_TEMPLATES = ("how can I check if {x}?", "how do I test whether {x} in python",
                   "what {mod} {kind} tells me if {x}?", "check if {x}")
VERB_TEMPLATES = ("how do I {v} {x}", "how can I {v} {x} with {mod}?", "{v} {x} python",
                  "which {kind} should I use to {v} {x}?", "how to {v} {x} in python", "best way to {v} {x}?")
NOUN_TEMPLATES = ("which {mod} {kind} is {x}?", "what is the {kind} in {mod} that is {x}?",
                  "is there a {kind} for {x} in the standard library?")
RAISED_TEMPLATES = ("which exception is raised {x}?", "what error does python raise {x}?",
                    "what {mod} error do I get {x}?")
CALLED_TEMPLATES = ("which method is called {x}?", "what hook runs {x} in {mod}?")

OUT_OF_SCOPE_TOPICS = {
    "numpy": ["broadcast two arrays of different shapes", "compute the inverse of a matrix",
              "save an array to a .npy file", "generate random normal samples with a seed"],
    "pandas": ["pivot a DataFrame", "read an Excel sheet into a DataFrame", "merge two DataFrames on a key",
               "fill missing values with the column mean"],
    "Django": ["add a field to a model and migrate", "protect a view with login_required",
               "configure static files for production", "write a custom management command"],
    "Docker": ["reduce the size of an image", "mount a volume into a container",
               "pass environment variables to docker compose", "see the logs of a stopped container"],
    "Kubernetes": ["roll back a deployment", "limit the memory of a pod", "expose a service on a node port",
                   "mount a secret as a file"],
    "React": ["memoize a component", "fetch data in useEffect", "lift state up to a parent component",
              "render a list with keys"],
    "PostgreSQL": ["create a partial index", "see which queries are slow", "vacuum a large table",
                   "grant read-only access to a role"],
    "git": ["undo the last commit but keep the changes", "squash the last three commits",
            "delete a remote branch", "find which commit introduced a bug"],
    "Rust": ["borrow a value mutably twice", "convert a String to &str", "return an error with the ? operator",
             "share data between threads with Arc"],
    "JavaScript": ["debounce an input handler", "deep clone an object", "sort an array of objects by a key",
                   "convert a date to ISO format"],
    "PyTorch": ["move a model to the GPU", "freeze the first layers of a network",
                "use mixed precision training", "write a custom Dataset"],
    "scikit-learn": ["run a grid search with cross-validation", "scale features before an SVM",
                     "plot a confusion matrix", "save a trained pipeline"],
    "AWS S3": ["generate a presigned URL", "set a lifecycle rule on a bucket", "enable versioning on a bucket",
               "copy a folder between buckets"],
    "Excel": ["write a VLOOKUP across two sheets", "freeze the top row", "make a pivot chart",
              "remove duplicate rows"],
    "Java Spring": ["inject a bean by qualifier", "configure CORS for a REST controller",
                    "read a property from application.yml", "schedule a method to run every hour"],
    "TensorFlow": ["write a custom training loop with GradientTape", "export a SavedModel",
                   "limit GPU memory growth", "use tf.data to shuffle and batch"],
    "Terraform": ["import an existing resource into state", "use a variable file for each environment",
                  "lock provider versions", "destroy a single resource"],
    "nginx": ["redirect http to https", "set up a reverse proxy to port 8000", "enable gzip compression",
              "limit the request rate per IP"],
    "Redis": ["set a key with an expiry", "use a sorted set as a leaderboard", "publish to a channel",
              "persist data to disk"],
    "CSS": ["center a div vertically", "make a grid with three equal columns", "animate a hover effect",
            "hide an element on small screens"],
}
OUT_OF_SCOPE_TEMPLATES = ("How do I {task} in {tool}?", "What is the best way to {task} with {tool}?",
                          "{tool}: how can I {task}?", "How would you {task} using {tool}?")


def _first_paragraph(doc: str) -> str:
    """The first paragraph of a docstring that is not a bare signature line."""
    for para in re.split(r"\n\s*\n", doc.strip()):
        lines = [l.strip() for l in para.strip().splitlines() if l.strip()]
        lines = [l for l in lines if not SIGNATURE_LINE.match(l)]
        if lines:
            return " ".join(lines)
    return ""


def _first_sentence(text: str) -> str:
    protected = re.sub(r"\b(e\.g|i\.e|etc|vs|cf)\.", lambda m: m.group(0).replace(".", "\x00"), text)
    m = re.match(r"(.+?[.!?])(\s|$)", protected)
    return (m.group(1) if m else protected).replace("\x00", ".").strip()


def _signature(obj) -> str:
    """``inspect.signature`` as text, with object reprs (which hold memory addresses) shortened
    to ``<...>`` and interpreter paths named (``sys.executable``), so the output is the same on
    every run and every machine."""
    try:
        sig = str(inspect.signature(obj))
    except (TypeError, ValueError):
        return ""
    sig = re.sub(r"<[^<>]*\bat 0x[0-9a-fA-F]+>", "<...>", sig)
    # Defaults computed from this interpreter's location (platform.architecture's
    # executable=sys.executable) would put a machine's paths into the dataset.
    for name in ("executable", "prefix", "exec_prefix", "base_prefix", "base_exec_prefix"):
        value = getattr(sys, name, "")
        if value:
            sig = sig.replace(repr(value), f"sys.{name}").replace(value, f"sys.{name}")
    return sig


def collect_api_objects(modules=MODULES) -> list[dict]:
    """Documented public functions, classes, methods and exceptions of ``modules``.

    Returns dicts ``{module, name, kind, signature, doc}`` in a deterministic order; exact
    duplicate docstrings are kept once (the first in module order).
    """
    out, seen_docs = [], set()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for modname in modules:
            try:
                mod = importlib.import_module(modname)
            except Exception:  # a module missing on this platform is skipped (recorded in build_info)
                continue
            names = getattr(mod, "__all__", None) or [n for n in dir(mod) if not n.startswith("_")]
            for name in sorted(set(names)):
                obj = getattr(mod, name, None)
                if obj is None or inspect.ismodule(obj) or not callable(obj):
                    continue
                entries = []
                if inspect.isclass(obj):
                    if not obj.__doc__:
                        continue
                    kind = "exception" if issubclass(obj, BaseException) else "class"
                    entries.append((name, kind, obj))
                    for attr, val in sorted(vars(obj).items()):
                        if attr.startswith("_") or not callable(val) or not isinstance(getattr(val, "__doc__", None), str):
                            continue
                        entries.append((f"{name}.{attr}", "method", val))
                else:
                    entries.append((name, "function", obj))
                for qualname, kind, o in entries:
                    raw = o.__doc__ if kind == "method" else inspect.getdoc(o)
                    doc = inspect.cleandoc(raw or "")
                    if len(doc.split()) < 3 or doc in seen_docs:
                        continue
                    seen_docs.add(doc)
                    out.append({"module": modname, "name": qualname, "kind": kind,
                                "signature": _signature(o) if kind != "exception" else "", "doc": doc})
    return out


def _chunks(words: list[str], size: int = PASSAGE_WORDS) -> list[str]:
    return [" ".join(words[i:i + size]) for i in range(0, len(words), size)] or [""]


def build_passages(api: list[dict]) -> tuple[list[dict], dict[int, str]]:
    """Cut API docstrings and language-reference topics into passages.

    Returns (corpus records, {index into ``api``: doc id of its first passage}).
    """
    from pydoc_data.topics import topics

    corpus, first = [], {}
    for i, obj in enumerate(api):
        title = f"{obj['module']}.{obj['name']}{obj['signature']}"
        if len(title) > 160:
            title = f"{obj['module']}.{obj['name']}(...)"
        parts = _chunks(obj["doc"].split())
        for j, text in enumerate(parts):
            did = f"api-{i:05d}" + (f"-{j}" if j else "")
            first.setdefault(i, did)
            corpus.append({"_id": did, "title": title + (f" (part {j + 1})" if j else ""), "text": text,
                           "metadata": {"source": "docstring", "module": obj["module"],
                                        "object": obj["name"], "kind": obj["kind"]}})
    for name in sorted(topics):
        lines = topics[name].strip().splitlines()
        heading = lines[0].strip() if lines else name
        for j, text in enumerate(_chunks(" ".join(lines[1:]).replace("*" * 3, "").split())):
            corpus.append({"_id": f"ref-{name}-{j}", "title": f"Language reference: {heading}"
                           + (f" (part {j + 1})" if j else ""), "text": text,
                           "metadata": {"source": "pydoc_data.topics", "topic": name}})
    return corpus, first


def _swap_synonyms(text: str, key: str) -> str:
    def repl(m):
        word = m.group(0)
        low = word.lower()
        if low in SYNONYMS and stable_hash(f"{key}|{low}|{m.start()}") % 100 < 100 * SYNONYM_RATE:
            return SYNONYMS[low]
        return word
    return re.sub(r"[A-Za-z]+", repl, text)


def _base_verb(word: str) -> str:
    """'returns' -> 'return', 'matches' -> 'match', 'copies' -> 'copy'; other words unchanged."""
    for suffix, repl in (("ies", "y"), ("es", ""), ("s", "")):
        if word.endswith(suffix) and word[: -len(suffix)] + repl in VERBS:
            return word[: -len(suffix)] + repl
    return word


def _simplify(text: str, key: str) -> str:
    """What a developer would keep of a summary: no parentheticals or quoted identifiers, no
    dotted/underscored names, half the articles, and — when the summary has 5+ content words —
    about ``DROP_RATE`` of the middle content words left out (the first and last stay: they carry
    the intent and the object)."""
    text = re.sub(r"\([^()]*\)|\[[^\[\]]*\]|``[^`]*``|`[^`']*'|`[^`]*`|'[^']*'|\"[^\"]*\"", " ", text)
    words = [w for w in text.split() if not re.search(r"[_.]\w|\w\(|[<>=*/]", w)]
    content = [n for n, w in enumerate(words) if w.strip(",;:!?").lower() not in STOPWORDS]
    drop = set()
    if len(content) >= 5:
        middle = [n for n in content[1:-1] if stable_hash(f"{key}|drop|{n}|{words[n].lower()}") % 100 < 100 * DROP_RATE]
        drop = set(middle[: int(len(content) * DROP_RATE)])
    for n, w in enumerate(words):
        if w.lower() in ("the", "a", "an") and stable_hash(f"{key}|article|{n}") % 2:
            drop.add(n)
    out = " ".join(w for n, w in enumerate(words) if n not in drop).strip(" ,;:")
    return out if len(out.split()) >= 2 else " ".join(words)


def _pick(templates, key):
    return templates[stable_hash(key) % len(templates)]


def make_query(obj: dict, summary: str, key: str) -> str | None:
    """One developer-style question from an API summary sentence, or None when no rule fits."""
    s = summary.strip().rstrip(".").strip()
    low = s.lower()
    if any(low.startswith(p) for p in SKIP_STARTS):
        return None
    words = s.split()
    first = words[0].lower().strip(",:;")
    rest = " ".join(words[1:])
    mod = obj["module"].split(".")[-1]
    kind = {"method": "method", "function": "function", "class": "class", "exception": "exception"}[obj["kind"]]
    fill = dict(mod=mod, kind=kind)
    verb = _base_verb(first)
    simple = lambda x: _simplify(x, key)  # noqa: E731
    if verb in ("return", "returns") and re.match(r"(?i)(true|a true value|whether)\b", rest):
        x = re.sub(r"(?i)^(true|a true value)\s+(if|when|iff)\s+|^whether\s+", "", rest)
        q = _pick(CHECK_TEMPLATES, key).format(x=simple(x), **fill)
    elif verb in GET_VERBS:
        q = _pick(GET_TEMPLATES, key).format(x=simple(rest), **fill)
    elif first in ("raised", "raise") and words[1:2] and words[1].lower() in ("when", "if", "by", "on", "for"):
        q = _pick(RAISED_TEMPLATES, key).format(x=words[1].lower() + " " + simple(" ".join(words[2:])), **fill)
    elif first == "called" and words[1:2]:
        q = _pick(CALLED_TEMPLATES, key).format(x=words[1].lower() + " " + simple(" ".join(words[2:])), **fill)
    elif first in NOUN_STARTS:
        q = _pick(NOUN_TEMPLATES, key).format(x=simple(s[0].lower() + s[1:]), **fill)
    elif first in ("test", "check") and re.match(r"(?i)(whether|if)\b", rest):
        x = re.sub(r"(?i)^(whether|if)\s+", "", rest)
        q = _pick(CHECK_TEMPLATES, key).format(x=simple(x), **fill)
    elif verb in VERBS:
        q = _pick(VERB_TEMPLATES, key).format(v=verb, x=simple(rest), **fill)
    else:
        return None
    q = _swap_synonyms(q, key)
    if stable_hash(key + "|the") % 2 == 0:
        q = re.sub(r"\bthe\s+", "", q, count=1)
    q = re.sub(r"\s+", " ", q).strip()
    short_name = obj["name"].split(".")[-1]
    if not re.fullmatch(r"[a-z]+", short_name) and re.search(rf"(?<![\w.]){re.escape(short_name)}(?![\w])", q):
        return None  # the question would hand over an identifier only the answer's name has
    return q[0].lower() + q[1:]


def build_queries(api: list[dict], first_passage: dict[int, str], corpus_text: dict[str, str]):
    """Queries, their positive passage and their split. Returns (queries, qrels_by_split)."""
    summaries = {i: _first_sentence(_first_paragraph(o["doc"])) for i, o in enumerate(api)}
    counts = Counter(s.lower() for s in summaries.values())
    candidates, seen_text = [], set()
    for i, obj in enumerate(api):
        s = summaries[i]
        if counts[s.lower()] != 1 or not MIN_SUMMARY_WORDS <= len(s.split()) <= MAX_SUMMARY_WORDS:
            continue
        did = first_passage[i]
        key = f"{obj['module']}.{obj['name']}"
        keys = [key] + ([key + "|2"] if stable_hash(key + "|second") % 100 < 100 * SECOND_QUERY_SHARE else [])
        for n, k in enumerate(keys):
            q = make_query(obj, s, k)
            if not q:
                break
            norm = " ".join(q.lower().split())
            if norm in seen_text or norm.rstrip("?") in " ".join(corpus_text[did].lower().split()):
                continue
            seen_text.add(norm)
            candidates.append((f"q-{i:05d}" + (f"-{n}" if n else ""), q, i, did, s))
    # Held-out modules go to test whole; the other queries are bucketed by their positive passage
    # with thresholds chosen so that the overall split lands at 80/10/10.
    held = sum(api[i]["module"] in HELDOUT_MODULES for _, _, i, _, _ in candidates) / max(len(candidates), 1)
    train_cut, dev_cut = 0.8 / (1 - held), 0.9 / (1 - held)
    queries, qrels = [], {"train": [], "dev": [], "test": []}
    for qid, q, i, did, s in candidates:
        obj = api[i]
        if obj["module"] in HELDOUT_MODULES:
            split, slc = "test", "heldout_module"
        else:
            b = (stable_hash("split|" + did) % 10_000) / 10_000
            split = "train" if b < train_cut else "dev" if b < dev_cut else "test"
            slc = "in_domain"
        queries.append({"_id": qid, "text": q, "metadata": {
            "split": split, "slice": slc, "module": obj["module"], "object": obj["name"],
            "kind": obj["kind"], "summary": s}})
        qrels[split].append((qid, did, 1))
    return queries, qrels


def build_out_of_scope() -> list[dict]:
    """Questions whose answer is not in the corpus (other tools), split 80/10/10 by hash."""
    rows = []
    for tool in sorted(OUT_OF_SCOPE_TOPICS):
        for task in OUT_OF_SCOPE_TOPICS[tool]:
            for t, template in enumerate(OUT_OF_SCOPE_TEMPLATES):
                key = f"{tool}|{task}|{t}"
                b = stable_hash("oos|" + f"{tool}|{task}") % 10  # all phrasings of a task share a split
                split = "train" if b < 8 else "dev" if b < 9 else "test"
                rows.append({"id": f"oos-{stable_hash(key) % 10**8:08d}",
                             "question": template.format(task=task, tool=tool),
                             "tool": tool, "split": split})
    return rows


def build(out: str | Path = DATA_DIR / "pydocs") -> dict:
    """Build the dataset into ``out`` atomically and return its statistics."""
    api = collect_api_objects()
    corpus, first = build_passages(api)
    text = {c["_id"]: c["title"] + " " + c["text"] for c in corpus}
    queries, qrels = build_queries(api, first, text)
    oos = build_out_of_scope()
    qtext = {q["_id"]: q["text"] for q in queries}
    check_no_leakage({s: {q: {d: sc} for q, d, sc in rows} for s, rows in qrels.items()}, qtext)
    stats = {
        "python_version": platform.python_version(), "builder_version": BUILDER_VERSION,
        "passages": len(corpus),
        "passages_docstring": sum(c["metadata"]["source"] == "docstring" for c in corpus),
        "passages_reference": sum(c["metadata"]["source"] != "docstring" for c in corpus),
        "api_objects": len(api), "modules": len({o["module"] for o in api}),
        "queries": {s: len(r) for s, r in qrels.items()},
        "test_heldout_module": sum(q["metadata"]["slice"] == "heldout_module" for q in queries),
        "heldout_modules": list(HELDOUT_MODULES),
        "out_of_scope": {s: sum(r["split"] == s for r in oos) for s in ("train", "dev", "test")},
        "missing_modules": [m for m in MODULES if m not in sys.modules],
    }
    write_beir(out, corpus, queries, qrels, extra_files={
        "out_of_scope.jsonl": "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in oos),
        "build_info.json": json.dumps(stats, indent=2) + "\n"})
    return stats


def render_card_table(stats: dict) -> str:
    """Markdown table of the dataset's sizes, for the dataset card (generated, never typed)."""
    q = stats["queries"]
    total = sum(q.values())
    rows = [("Python version used to build", stats["python_version"]),
            ("Passages (total)", stats["passages"]),
            ("… from standard-library docstrings", stats["passages_docstring"]),
            ("… from the language reference (`pydoc_data.topics`)", stats["passages_reference"]),
            ("Documented API objects / modules", f"{stats['api_objects']} / {stats['modules']}")]
    rows += [(f"Queries: {s}", f"{n} ({100 * n / total:.1f}%)") for s, n in q.items()]
    rows += [("… of test: held-out-module slice", stats["test_heldout_module"]),
             ("Out-of-scope questions (train/dev/test)",
              "/".join(str(stats["out_of_scope"][s]) for s in ("train", "dev", "test")))]
    return "| | |\n|---|---|\n" + "".join(f"| {a} | {b} |\n" for a, b in rows)


def update_card(stats: dict, card: Path = DATA_DIR / "README.md") -> None:
    """Replace the generated sizes table between the markers in the dataset card."""
    if not card.exists():
        return
    text = card.read_text(encoding="utf-8")
    start, end = "<!-- sizes:start -->", "<!-- sizes:end -->"
    if start in text and end in text:
        head, rest = text.split(start, 1)
        _, tail = rest.split(end, 1)
        atomic_write_text(card, f"{head}{start}\n{render_card_table(stats)}{end}{tail}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=str(DATA_DIR / "pydocs"))
    ap.add_argument("--if-missing", action="store_true", help="do nothing when the dataset exists")
    args = ap.parse_args(argv)
    out = Path(args.out)
    if args.if_missing and (out / "build_info.json").exists():
        print(f"dataset present: {out.name}/ (delete it to rebuild)")
        return 0
    stats = build(out)
    if out.resolve() == (DATA_DIR / "pydocs").resolve():
        update_card(stats)
    print(json.dumps(stats, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
