"""Validation of the data formats, the built-in dataset and its no-leakage split."""
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

from searchtune_utils import build_pydocs
from searchtune_utils.config import DATA_DIR, ROOT
from searchtune_utils.data import (DataFormatError, check_no_leakage, load_beir,
                                   load_generation_jsonl, write_beir)

PYDOCS = DATA_DIR / "pydocs"


def make_beir(tmp_path, corpus=None, queries=None, qrels=None):
    """A tiny valid BEIR folder; pass raw text to replace one of its files."""
    folder = tmp_path / "ds"
    (folder / "qrels").mkdir(parents=True)
    corpus = corpus if corpus is not None else (
        '{"_id": "d1", "title": "os.getcwd()", "text": "Return the current working directory."}\n'
        '{"_id": "d2", "title": "os.listdir()", "text": "Return a list of the entries in a folder."}\n')
    queries = queries if queries is not None else '{"_id": "q1", "text": "where am I in the file system?"}\n'
    qrels = qrels if qrels is not None else "query-id\tcorpus-id\tscore\nq1\td1\t1\n"
    for name, text in (("corpus.jsonl", corpus), ("queries.jsonl", queries), ("qrels/test.tsv", qrels)):
        (folder / name).write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    return folder


def test_valid_folder_loads(tmp_path):
    corpus, queries, qrels, meta = load_beir(make_beir(tmp_path))
    assert set(corpus) == {"d1", "d2"} and queries == {"q1": "where am I in the file system?"}
    assert qrels == {"test": {"q1": {"d1": 1}}}


@pytest.mark.parametrize("kind, files, line, words", [
    ("malformed JSON", {"corpus": '{"_id": "d1", "text": "ok"}\n{"_id": "d2", "text": \n'}, 2, "malformed JSON"),
    ("missing field", {"corpus": '{"_id": "d1", "text": "ok"}\n{"_id": "d2", "title": "no text"}\n'}, 2, "missing field 'text'"),
    ("duplicate id", {"queries": '{"_id": "q1", "text": "a"}\n{"_id": "q1", "text": "b"}\n'}, 2, "duplicate _id 'q1'"),
    ("unknown query", {"qrels": "query-id\tcorpus-id\tscore\nq1\td1\t1\nq9\td1\t1\n"}, 3, "query-id 'q9' is not in queries.jsonl"),
    ("unknown document", {"qrels": "query-id\tcorpus-id\tscore\nq1\td7\t1\n"}, 2, "corpus-id 'd7' is not in corpus.jsonl"),
    ("empty file", {"queries": "\n  \n"}, None, "the file is empty"),
    ("non-UTF-8", {"corpus": '{"_id": "d1", "text": "ok"}\n{"_id": "d2", "text": "caf\xe9"}\n'.encode("latin-1")}, 2, "not UTF-8"),
    ("bad qrels columns", {"qrels": "query-id\tcorpus-id\tscore\nq1 d1 1\n"}, 2, "3 tab-separated columns"),
])
def test_bad_input_gives_one_clear_error(tmp_path, kind, files, line, words):
    folder = make_beir(tmp_path, **files)
    with pytest.raises(DataFormatError) as info:
        load_beir(folder)
    err = info.value
    assert words in str(err), f"{kind}: {err}"
    assert err.line == line
    assert "Fix:" in str(err) and err.fix
    expected_file = {"corpus": "corpus.jsonl", "queries": "queries.jsonl", "qrels": "test.tsv"}[next(iter(files))]
    assert str(err).startswith(expected_file)


def test_generation_jsonl_validation(tmp_path):
    good = {"id": "g1", "question": "how do I list a folder?", "passages": [{"doc_id": "d2", "text": "Return a list."}],
            "answerable": True, "answer": "Use os.listdir [Source 1].", "cited": [1]}
    path = tmp_path / "gen.jsonl"
    path.write_text(json.dumps(good) + "\n", encoding="utf-8")
    assert load_generation_jsonl(path)[0]["cited"] == [1]
    path.write_text(json.dumps({**good, "cited": [2]}) + "\n", encoding="utf-8")
    with pytest.raises(DataFormatError, match=r"gen.jsonl:1: 'cited' must list source numbers 1..1"):
        load_generation_jsonl(path)


def test_interrupted_write_leaves_old_dataset_intact(tmp_path, monkeypatch):
    target = tmp_path / "ds"
    write_beir(target, [{"_id": "d1", "text": "old"}], [{"_id": "q1", "text": "q"}], {"test": [("q1", "d1", 1)]})

    class Boom(Exception):
        pass

    def explode(*a, **k):
        raise Boom()

    import searchtune_utils.data as data_mod
    monkeypatch.setattr(data_mod.csv, "writer", explode)
    with pytest.raises(Boom):
        write_beir(target, [{"_id": "d1", "text": "new"}], [{"_id": "q1", "text": "q"}], {"test": [("q1", "d1", 1)]})
    assert '"old"' in (target / "corpus.jsonl").read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"], "temporary folder left behind"


def test_leakage_check_catches_a_shared_positive():
    qrels = {"train": {"q1": {"d1": 1}}, "test": {"q2": {"d1": 1}}}
    with pytest.raises(ValueError, match="passage 'd1' is a positive in both"):
        check_no_leakage(qrels, {"q1": "a", "q2": "b"})
    with pytest.raises(ValueError, match="query text"):
        check_no_leakage({"train": {"q1": {"d1": 1}}, "test": {"q2": {"d2": 1}}}, {"q1": "Same  text", "q2": "same text"})


# --- the committed built-in dataset ---------------------------------------------------------

@pytest.fixture(scope="module")
def pydocs():
    return load_beir(PYDOCS)


def test_pydocs_sizes_meet_the_brief(pydocs):
    corpus, queries, qrels, meta = pydocs
    assert len(corpus) >= 3000
    assert len(qrels["train"]) >= 1500 and len(qrels["dev"]) >= 300 and len(qrels["test"]) >= 300
    total = sum(len(q) for q in qrels.values())
    for split, share in (("train", 0.8), ("dev", 0.1), ("test", 0.1)):
        assert abs(len(qrels[split]) / total - share) < 0.02, split
    oos = [json.loads(l) for l in (PYDOCS / "out_of_scope.jsonl").read_text().splitlines()]
    assert len(oos) >= 100 and {r["split"] for r in oos} == {"train", "dev", "test"}


def test_pydocs_split_has_no_leakage(pydocs):
    corpus, queries, qrels, meta = pydocs
    check_no_leakage(qrels, queries)
    heldout = {m for m in build_pydocs.HELDOUT_MODULES}
    for split in ("train", "dev"):
        assert not any(meta[q]["module"] in heldout for q in qrels[split]), f"held-out module in {split}"
    assert any(meta[q]["slice"] == "heldout_module" for q in qrels["test"])
    assert all(meta[q]["split"] == s for s, qr in qrels.items() for q in qr)


def test_pydocs_queries_are_questions_not_copies(pydocs):
    corpus, queries, qrels, meta = pydocs
    for split in qrels.values():
        for qid, docs in split.items():
            q = " ".join(queries[qid].lower().rstrip("?").split())
            for did in docs:
                doc = " ".join((corpus[did]["title"] + " " + corpus[did]["text"]).lower().split())
                assert q not in doc, f"{qid} is a substring of its positive {did}"
            assert q != " ".join(meta[qid]["summary"].lower().rstrip(".").split())


def test_pydocs_is_deterministic(tmp_path):
    info = json.loads((PYDOCS / "build_info.json").read_text())
    if info["python_version"] != platform.python_version():
        pytest.skip(f"committed build is from Python {info['python_version']}; this is {platform.python_version()}")
    out = tmp_path / "pydocs"
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    subprocess.run([sys.executable, "-m", "searchtune_utils.build_pydocs", "--out", str(out)],
                   check=True, cwd=ROOT, env=env, capture_output=True)
    for path in sorted(PYDOCS.rglob("*")):
        if path.is_file():
            assert (out / path.relative_to(PYDOCS)).read_bytes() == path.read_bytes(), path.name


def test_training_pairs_are_deterministic_and_capped(pydocs):
    from searchtune_utils.data import training_pairs

    corpus, queries, qrels, meta = pydocs
    a = training_pairs(corpus, queries, qrels["train"], max_pairs=50, seed=1)
    b = training_pairs(corpus, queries, qrels["train"], max_pairs=50, seed=1)
    assert len(a) == 50 and a["query_id"] == b["query_id"]
    assert set(a.column_names) == {"anchor", "positive", "query_id", "doc_id"}
    row = a[0]
    assert row["anchor"] == queries[row["query_id"]] and corpus[row["doc_id"]]["text"] in row["positive"]
    assert all(qrels["train"][q][d] > 0 for q, d in zip(a["query_id"], a["doc_id"]))


def test_pydocs_holds_no_path_of_the_building_machine():
    text = "".join(p.read_text(encoding="utf-8") for p in PYDOCS.rglob("*.jsonl"))
    for path in {str(ROOT), sys.prefix, sys.executable}:
        assert path not in text, f"the dataset contains a local path: {path}"


def test_seeded_order_is_fixed_by_seed_and_salt_and_answer_passage_skips_zero_grades():
    from searchtune_utils import data

    ids = [f"q{i}" for i in range(30)]
    assert data.seeded_order(ids, 42) == data.seeded_order(reversed(ids), 42)  # the input order does not matter
    assert data.seeded_order(ids, 42) == sorted(ids, key=lambda q: data.stable_hash(f"42|{q}"))
    assert data.seeded_order(ids, 42, salt="test") == sorted(ids, key=lambda q: data.stable_hash(f"42|test|{q}"))
    assert data.seeded_order(ids, 42) != data.seeded_order(ids, 7) and sorted(data.seeded_order(ids, 7)) == sorted(ids)
    assert data.answer_passage({"q1": {"d0": 0, "d2": 1, "d3": 2}}, "q1") == "d2"
