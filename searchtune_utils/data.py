"""Load, validate and write searchtune's two data formats.

Retrieval data is BEIR format, so a learner's own data and public BEIR sets drop in::

    <folder>/corpus.jsonl        {"_id": "d1", "title": "...", "text": "...", "metadata": {...}}
    <folder>/queries.jsonl       {"_id": "q1", "text": "...", "metadata": {...}}
    <folder>/qrels/<split>.tsv   query-id <TAB> corpus-id <TAB> score   (header line first)

Generator-task data is JSONL, one object per line (see ``GENERATION_FIELDS``)::

    {"id": "g1", "question": "...", "passages": [{"doc_id": "d1", "text": "..."}],
     "answerable": true, "answer": "... [Source 1].", "cited": [1]}

Every loader fails with :class:`DataFormatError`, whose message names the file, the line, what
was expected and how to fix it. Writers go through a temporary folder/file and a rename, so an
interrupted build never leaves a half-written dataset behind.
"""
from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterable, Iterator

SPLITS = ("train", "dev", "test")


class DataFormatError(ValueError):
    """A data file is malformed. ``str(err)`` is ``<file>:<line>: <problem>. Fix: <what to do>``."""

    def __init__(self, path, line: int | None, problem: str, fix: str):
        self.path, self.line, self.problem, self.fix = str(path), line, problem, fix
        where = f"{Path(path).name}:{line}" if line else f"{Path(path).name}"
        super().__init__(f"{where}: {problem}. Fix: {fix} (file: {path})")


def _read_lines(path: Path) -> list[str]:
    """Read a text file as UTF-8 lines, with clear errors for missing, empty and non-UTF-8 files."""
    path = Path(path)
    if not path.exists():
        raise DataFormatError(path, None, "file not found",
                              "check the folder path, or build the dataset with "
                              "`python -m searchtune_utils.build_pydocs`")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")  # a UTF-8 byte-order mark (Windows editors) is dropped
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise DataFormatError(path, line, f"bytes that are not UTF-8 ({raw[err.start:err.start + 4]!r})",
                              "re-save the file as UTF-8 (e.g. `iconv -f latin1 -t utf-8`)") from None
    lines = text.splitlines()
    if not any(l.strip() for l in lines):
        raise DataFormatError(path, None, "the file is empty",
                              "write at least one record, or point the loader at the right folder")
    return lines


def iter_jsonl(path: str | Path, required: Iterable[str] = ()) -> Iterator[tuple[int, dict]]:
    """Yield ``(line_number, record)`` for each non-blank line of a JSONL file.

    Checks UTF-8, emptiness, that each line is a JSON object, and that ``required`` fields are
    present and non-empty. Raises :class:`DataFormatError` on the first problem.
    """
    path = Path(path)
    required = tuple(required)
    for no, line in enumerate(_read_lines(path), start=1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as err:
            raise DataFormatError(path, no, f"malformed JSON ({err.msg} at column {err.colno})",
                                  "write one complete JSON object per line (JSON Lines)") from None
        if not isinstance(rec, dict):
            raise DataFormatError(path, no, f"expected a JSON object, got {type(rec).__name__}",
                                  "write one JSON object ({...}) per line")
        for field in required:
            if field not in rec or rec[field] in (None, ""):
                raise DataFormatError(path, no, f"missing field {field!r} (has: {', '.join(rec) or 'nothing'})",
                                      f"add a non-empty {field!r} to every record")
        yield no, rec


def _unique_ids(path: Path, records, key: str) -> dict:
    seen: dict = {}
    for no, rec in records:
        rid = str(rec[key])
        if rid in seen:
            raise DataFormatError(path, no, f"duplicate {key} {rid!r} (first on line {seen[rid][0]})",
                                  f"give every record a unique {key!r}")
        seen[rid] = (no, rec)
    return {rid: rec for rid, (no, rec) in seen.items()}


def load_corpus(folder: str | Path) -> dict[str, dict]:
    """Load ``corpus.jsonl`` as ``{doc_id: {"title", "text", "metadata"}}`` (BEIR shape)."""
    path = Path(folder) / "corpus.jsonl"
    recs = _unique_ids(path, iter_jsonl(path, ("_id", "text")), "_id")
    return {rid: {"title": r.get("title", ""), "text": r["text"], "metadata": r.get("metadata", {})}
            for rid, r in recs.items()}


def load_queries(folder: str | Path) -> tuple[dict[str, str], dict[str, dict]]:
    """Load ``queries.jsonl`` as ``({query_id: text}, {query_id: metadata})``."""
    path = Path(folder) / "queries.jsonl"
    recs = _unique_ids(path, iter_jsonl(path, ("_id", "text")), "_id")
    return ({rid: r["text"] for rid, r in recs.items()},
            {rid: r.get("metadata", {}) for rid, r in recs.items()})


def load_qrels(folder: str | Path, split: str, queries: dict | None = None,
               corpus: dict | None = None) -> dict[str, dict[str, int]]:
    """Load ``qrels/<split>.tsv`` as ``{query_id: {doc_id: score}}``.

    When ``queries``/``corpus`` are given, every query-id and corpus-id must exist in them.
    """
    path = Path(folder) / "qrels" / f"{split}.tsv"
    lines = _read_lines(path)
    qrels: dict[str, dict[str, int]] = {}
    for no, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        cols = line.split("\t")
        if no == 1 and cols[0].strip().lower() in ("query-id", "query_id", "qid"):
            continue  # header
        if len(cols) != 3:
            raise DataFormatError(path, no, f"expected 3 tab-separated columns, found {len(cols)}",
                                  "write `query-id<TAB>corpus-id<TAB>score` on every line")
        qid, did, score = (c.strip() for c in cols)
        try:
            score_i = int(score)
        except ValueError:
            raise DataFormatError(path, no, f"score {score!r} is not an integer",
                                  "use integer relevance grades (1 = relevant, 0 = not)") from None
        if queries is not None and qid not in queries:
            raise DataFormatError(path, no, f"query-id {qid!r} is not in queries.jsonl",
                                  "add the query to queries.jsonl or remove this line")
        if corpus is not None and did not in corpus:
            raise DataFormatError(path, no, f"corpus-id {did!r} is not in corpus.jsonl",
                                  "add the passage to corpus.jsonl or remove this line")
        if did in qrels.get(qid, {}):
            raise DataFormatError(path, no, f"duplicate judgement for ({qid!r}, {did!r})",
                                  "keep one line per (query-id, corpus-id) pair")
        qrels.setdefault(qid, {})[did] = score_i
    if not qrels:
        raise DataFormatError(path, None, "no judgements (only a header)",
                              "add at least one `query-id<TAB>corpus-id<TAB>score` line")
    return qrels


def load_beir(folder: str | Path, splits: Iterable[str] = SPLITS):
    """Load and cross-check a BEIR folder.

    Returns ``(corpus, queries, qrels_by_split, query_meta)`` where ``qrels_by_split`` maps each
    split present (of ``splits``) to its qrels. Raises :class:`DataFormatError` on any problem.
    """
    folder = Path(folder)
    corpus = load_corpus(folder)
    queries, meta = load_queries(folder)
    qrels = {}
    for split in splits:
        if (folder / "qrels" / f"{split}.tsv").exists():
            qrels[split] = load_qrels(folder, split, queries, corpus)
    if not qrels:
        raise DataFormatError(folder / "qrels", None, f"no qrels file for any of {list(splits)}",
                              "write qrels/train.tsv, qrels/dev.tsv and qrels/test.tsv")
    return corpus, queries, qrels, meta


def check_no_leakage(qrels_by_split: dict[str, dict[str, dict[str, int]]],
                     queries: dict[str, str]) -> None:
    """Check searchtune's no-leakage rule between splits; raise ValueError naming the first breach.

    The rule: (1) a query id appears in one split only; (2) a passage that is relevant to a query
    in one split is never relevant to a query in another split (queries are grouped by their
    positive passage before splitting); (3) no two splits hold the same query text
    (case- and whitespace-insensitive).
    """
    owner_q, owner_d, owner_t = {}, {}, {}
    for split, qrels in qrels_by_split.items():
        for qid, docs in qrels.items():
            if owner_q.setdefault(qid, split) != split:
                raise ValueError(f"query {qid!r} is in both {owner_q[qid]!r} and {split!r}")
            text = " ".join(queries.get(qid, "").lower().split())
            if owner_t.setdefault(text, split) != split:
                raise ValueError(f"query text {text!r} is in both {owner_t[text]!r} and {split!r}")
            for did, score in docs.items():
                if score > 0 and owner_d.setdefault(did, split) != split:
                    raise ValueError(f"passage {did!r} is a positive in both {owner_d[did]!r} and {split!r}")


def stable_hash(text: str) -> int:
    """A process-independent 64-bit hash (Python's ``hash`` is salted per process)."""
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big")


def seeded_order(ids: Iterable, seed: int = 42, salt: str = "") -> list:
    """``ids`` in a fixed pseudo-random order, the same on every machine and run: sorted by
    :func:`stable_hash` of ``"seed|id"`` (``"seed|salt|id"`` with a ``salt``, e.g. a split's name)."""
    prefix = f"{seed}|{salt}|" if salt else f"{seed}|"
    return sorted(ids, key=lambda i: stable_hash(f"{prefix}{i}"))


def answer_passage(qrels_split: dict, qid: str) -> str:
    """The first passage judged relevant (grade > 0) for ``qid`` in one split's qrels."""
    return next(d for d, grade in qrels_split[qid].items() if grade > 0)


def _jsonl(records: Iterable[dict]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False, sort_keys=False) + "\n" for r in records)


def write_beir(folder: str | Path, corpus: list[dict], queries: list[dict],
               qrels_by_split: dict[str, list[tuple[str, str, int]]],
               extra_files: dict[str, str] | None = None) -> Path:
    """Write a BEIR folder atomically: everything goes to a temporary sibling folder, which
    replaces ``folder`` only once complete. ``extra_files`` maps relative names to text."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}.building."))
    try:
        (tmp / "qrels").mkdir()
        (tmp / "corpus.jsonl").write_text(_jsonl(corpus), encoding="utf-8")
        (tmp / "queries.jsonl").write_text(_jsonl(queries), encoding="utf-8")
        for split, rows in qrels_by_split.items():
            with open(tmp / "qrels" / f"{split}.tsv", "w", encoding="utf-8", newline="") as fh:
                w = csv.writer(fh, delimiter="\t", lineterminator="\n")
                w.writerow(["query-id", "corpus-id", "score"])
                w.writerows(rows)
        for name, text in (extra_files or {}).items():
            (tmp / name).parent.mkdir(parents=True, exist_ok=True)
            (tmp / name).write_text(text, encoding="utf-8")
        old = None
        if folder.exists():
            old = folder.with_name(f".{folder.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(folder, old)
        os.replace(tmp, folder)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder


# ---------------------------------------------------------------------------------------------
# Generator-task data (notebooks 03-05)
GENERATION_FIELDS = {
    "id": "unique string id",
    "question": "the user's question",
    "passages": "list of {doc_id, text}: the retrieved passages, shown as [Source 1]..[Source k]",
    "answerable": "true when one of the passages holds the answer",
    "answer": "reference answer: cites with [Source N], or the refusal template when not answerable",
    "cited": "list of 1-based source numbers the answer cites ([] for a refusal)",
}


def load_generation_jsonl(path: str | Path) -> list[dict]:
    """Load and validate generator-task JSONL (schema: ``GENERATION_FIELDS``)."""
    path = Path(path)
    records = list(iter_jsonl(path, ("id", "question", "passages", "answer")))
    _unique_ids(path, records, "id")
    out = []
    for no, rec in records:
        ps = rec["passages"]
        if not isinstance(ps, list) or not all(isinstance(p, dict) and p.get("text") for p in ps):
            raise DataFormatError(path, no, "'passages' must be a list of objects with a 'text'",
                                  'write "passages": [{"doc_id": "...", "text": "..."}, ...]')
        if not isinstance(rec.get("answerable", True), bool):
            raise DataFormatError(path, no, "'answerable' must be true or false", "use a JSON boolean")
        cited = rec.get("cited", [])
        if not isinstance(cited, list) or any(not isinstance(c, int) or not 1 <= c <= len(ps) for c in cited):
            raise DataFormatError(path, no, f"'cited' must list source numbers 1..{len(ps)}, got {cited!r}",
                                  "cite only passages that are in the record")
        out.append(rec)
    return out


# ---------------------------------------------------------------------------------------------
# Choosing a dataset and cutting it to a profile's size
BEIR_URL = "https://public.ukp.informatik.tu-darmstadt.de/thakur/BEIR/datasets/{}.zip"


def get_dataset(name_or_path: str | Path, data_dir: str | Path | None = None) -> Path:
    """Return the folder of a BEIR-format dataset.

    ``name_or_path`` is a local folder (returned as is), a folder name under ``data/`` (the
    built-in ``"pydocs"``), or the name of a public BEIR set
    (``scifact``, ``nfcorpus``, ``fiqa`` ...), downloaded once into ``data/beir/<name>`` with
    ``beir.util.download_and_unzip``. Offline, a missing BEIR set raises one clear error.
    """
    from .config import DATA_DIR, hub_offline

    path = Path(name_or_path)
    if path.exists():
        return path
    if (DATA_DIR / str(name_or_path) / "corpus.jsonl").exists():  # e.g. "pydocs"
        return DATA_DIR / str(name_or_path)
    if str(name_or_path) == "faqs":
        raise FileNotFoundError("The built-in dataset data/faqs is missing. It is committed with the repository; "
                                "restore it with `git checkout data/faqs` or rebuild it with "
                                "`python -m searchtune_utils.build_faqs` (needs apt-get and dpkg-deb).")
    if "/" in str(name_or_path) or "\\" in str(name_or_path):
        raise FileNotFoundError(f"Dataset folder {name_or_path} does not exist. Build the built-in set with "
                                "`python -m searchtune_utils.build_pydocs` or point to a BEIR-format folder.")
    target = Path(data_dir or DATA_DIR / "beir") / str(name_or_path)
    if (target / "corpus.jsonl").exists():
        return target
    if hub_offline():
        raise FileNotFoundError(
            f"BEIR dataset {name_or_path!r} is not on disk ({target}) and downloads are switched off "
            "(HF_HUB_OFFLINE=1). Use the built-in `data/pydocs` (cpu/smoke profiles), or run once "
            "with network access and HF_HUB_OFFLINE=0 to download it, or unzip it there yourself.")
    from beir import util

    util.download_and_unzip(BEIR_URL.format(name_or_path), str(target.parent))
    return target


def subsample(corpus: dict, queries: dict, qrels: dict[str, dict], max_queries: int | None = None,
              max_corpus: int | None = None, seed: int = 42):
    """Cut a dataset to a profile's size, deterministically (stable hashes of ids and ``seed``).

    Keeps at most ``max_queries`` queries per split, every passage judged for a kept query, and
    fills the corpus with other passages up to ``max_corpus`` (so the search stays a real search
    among distractors). ``None`` keeps everything. Returns ``(corpus, queries, qrels)``.
    """
    new_qrels = {}
    for split, qr in qrels.items():
        keep = seeded_order(qr, seed)[:max_queries] if max_queries else list(qr)
        new_qrels[split] = {q: qr[q] for q in sorted(keep)}
    kept_q = {q for qr in new_qrels.values() for q in qr}
    if max_corpus:
        needed = {d for qr in new_qrels.values() for docs in qr.values() for d in docs}
        others = [d for d in seeded_order(corpus, seed) if d not in needed]
        keep_docs = needed | set(others[: max(0, max_corpus - len(needed))])
        new_corpus = {d: corpus[d] for d in corpus if d in keep_docs}
    else:
        new_corpus = corpus
    return new_corpus, {q: t for q, t in queries.items() if q in kept_q}, new_qrels


def training_pairs(corpus: dict, queries: dict, qrels: dict[str, dict[str, int]],
                   max_pairs: int | None = None, seed: int = 42):
    """(question, answering passage) pairs as a ``datasets.Dataset`` with columns ``anchor`` and
    ``positive`` (passage text = title + text), plus ``query_id``/``doc_id`` for tracing.

    One row per relevant (query, passage) judgement of ``qrels``; at most ``max_pairs`` rows,
    chosen deterministically with ``seed``. This is the input of sentence-transformers'
    ``mine_hard_negatives`` and of the trainers in notebooks 01-02.
    """
    from datasets import Dataset

    from .retrieval import passage_text

    rows = [(qid, did) for qid, docs in qrels.items() for did, s in docs.items() if s > 0]
    rows.sort(key=lambda r: stable_hash(f"{seed}|{r[0]}|{r[1]}"))
    rows = rows[:max_pairs] if max_pairs else rows
    return Dataset.from_dict({"anchor": [queries[q] for q, _ in rows],
                              "positive": [passage_text(corpus[d]) for _, d in rows],
                              "query_id": [q for q, _ in rows], "doc_id": [d for _, d in rows]})
