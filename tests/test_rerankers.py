"""searchtune_utils.rerankers: data shapes for the cross-encoder trainer and evaluator."""
import numpy as np
import pytest

from searchtune_utils import rerankers

CORPUS = {
    "a": {"title": "A", "text": "alpha"},
    "b": {"title": "B", "text": "beta"},
    "c": {"title": "C", "text": "gamma"},
    "d": {"title": "", "text": "delta"},
}
QUERIES = {"q1": "first?", "q2": "second?"}
QRELS = {"q1": {"b": 1}, "q2": {"d": 1, "a": 0}}
RUN = {"q1": {"a": 0.9, "b": 0.8, "c": 0.1}, "q2": {"c": 0.5, "a": 0.4, "b": 0.3}}


def test_reranking_samples_keep_run_order_and_depth():
    samples = rerankers.reranking_samples(QUERIES, QRELS, RUN, CORPUS, k=2)
    assert [s["query"] for s in samples] == ["first?", "second?"]
    assert samples[0]["positive"] == ["B\nbeta"]
    assert samples[0]["documents"] == ["A\nalpha", "B\nbeta"]  # best first, cut to k
    assert samples[1]["positive"] == ["delta"]  # grade 0 is not a positive; empty title -> text only
    assert "delta" not in samples[1]["documents"]  # the retriever missed it: it stays missed


def test_reranking_samples_query_missing_from_run():
    samples = rerankers.reranking_samples(QUERIES, QRELS, {"q1": RUN["q1"]}, CORPUS, k=5)
    assert samples[1]["documents"] == []


def test_labeled_list_to_pairs_explodes_in_order():
    datasets = pytest.importorskip("datasets")
    listwise = datasets.Dataset.from_dict({
        "anchor": ["q1", "q2"],
        "positive": [["p1", "n1", "n2"], ["p2", "n3"]],
        "labels": [[1, 0, 0], [1, 0]],
    })
    pairs = rerankers.labeled_list_to_pairs(listwise)
    assert pairs.column_names == ["query", "document", "label"]
    assert pairs["query"] == ["q1", "q1", "q1", "q2", "q2"]
    assert pairs["document"] == ["p1", "n1", "n2", "p2", "n3"]
    assert pairs["label"] == [1.0, 0.0, 0.0, 1.0, 0.0]


def test_labeled_list_to_pairs_rejects_ragged_rows():
    datasets = pytest.importorskip("datasets")
    bad = datasets.Dataset.from_dict({"q": ["q1"], "docs": [["p1", "n1"]], "labels": [[1]]})
    with pytest.raises(ValueError, match="2 documents but 1 labels"):
        rerankers.labeled_list_to_pairs(bad)


def test_margin_guard_matches_mine_hard_negatives_rule():
    # q1: positive b scores 0.8; threshold with 5% margin = 0.76 -> a (0.9) rejected, c (0.1) kept
    rows = rerankers.margin_guard(QRELS, RUN, {"q1": 0.8}, relative_margin=0.05, depth=3)
    assert [(r["doc_id"], r["rank"], r["rejected"]) for r in rows] == [("a", 1, True), ("c", 3, False)]
    assert rows[0]["threshold"] == pytest.approx(0.76)
    # negative positive scores: threshold = pos - |pos| * m stays below the positive
    rows = rerankers.margin_guard({"q": {"x": 1}}, {"q": {"y": -0.1, "x": -0.2}}, {"q": -0.2}, 0.5, depth=5)
    assert rows == [{"qid": "q", "doc_id": "y", "rank": 1, "score": -0.1, "positive_score": -0.2,
                     "threshold": pytest.approx(-0.3), "rejected": True}]


def test_margin_guard_depth_and_missing_positive_score():
    rows = rerankers.margin_guard(QRELS, RUN, {"q1": 0.8}, relative_margin=0.05, depth=1)
    assert [r["doc_id"] for r in rows] == ["a"]
    assert rerankers.margin_guard(QRELS, RUN, {}, 0.05, depth=3) == []


def test_margin_guard_none_means_no_guard():
    rows = rerankers.margin_guard(QRELS, RUN, {"q1": 0.8}, relative_margin=None, depth=3)
    assert [(r["doc_id"], r["rejected"]) for r in rows] == [("a", False), ("c", False)]
    assert rows[0]["threshold"] == float("inf")


def test_top_k_changes():
    after = {"q1": {"b": 2.0, "a": 1.0, "c": 0.0}, "q2": {"c": 0.5, "a": 0.4, "b": 0.3}}
    changes = rerankers.top_k_changes(RUN, after, k=2)
    assert changes == {"q1": (["a", "b"], ["b", "a"])}  # order counts; q2 unchanged
    assert rerankers.top_k_changes(RUN, {}, k=2) == {}


def test_interpolate_endpoints_and_blend():
    first = {"q": {"a": 0.9, "b": 0.5, "c": 0.1}}
    rerank = {"q": {"a": -2.0, "b": 3.0, "c": 1.0}}
    from searchtune_utils.metrics import ranked
    assert ranked(rerankers.interpolate(first, rerank, 1.0)["q"]) == ["b", "c", "a"]
    assert ranked(rerankers.interpolate(first, rerank, 0.0)["q"]) == ["a", "b", "c"]
    mixed = rerankers.interpolate(first, rerank, 0.5)["q"]
    # a: 0.5*1 + 0.5*0 = 0.5; b: 0.5*0.5 + 0.5*1 = 0.75; c: 0.5*0 + 0.5*0.6 = 0.3
    assert mixed == pytest.approx({"a": 0.5, "b": 0.75, "c": 0.3})


def test_interpolate_edge_cases():
    assert rerankers.interpolate({"q": {"a": 1.0}}, {"q": {"a": 5.0}}, 0.3) == {"q": {"a": 0.5}}
    assert rerankers.interpolate({}, {"q": {}}, 0.5) == {"q": {}}
    out = rerankers.interpolate({"q": {"a": 1.0, "b": 0.0}}, {"q": {"a": 0.0, "c": 1.0}}, 0.5)["q"]
    assert out == pytest.approx({"a": 0.5, "c": 0.5})  # c missing from the first stage = its floor
    with pytest.raises(ValueError):
        rerankers.interpolate({}, {}, 1.5)


GUARD_CORPUS = {
    "ans": {"title": "m.f", "text": "first chunk", "metadata": {"module": "m", "object": "f"}},
    "ans2": {"title": "m.f", "text": "second chunk", "metadata": {"module": "m", "object": "f"}},
    "dup": {"title": "m.f", "text": "first chunk", "metadata": {}},
    "other": {"title": "m.g", "text": "about g", "metadata": {"module": "m", "object": "g"}},
    "bare1": {"title": "", "text": "no metadata", "metadata": {}},
    "bare2": {"title": "", "text": "no metadata either", "metadata": {}},
}


def test_same_answer_uses_object_metadata_and_exact_duplicates_only():
    assert rerankers.same_answer(GUARD_CORPUS, "ans") == {"ans", "ans2", "dup"}
    assert rerankers.same_answer(GUARD_CORPUS, "other") == {"other"}
    # no metadata: only the entry itself (two passages without an object are not "the same object")
    assert rerankers.same_answer(GUARD_CORPUS, "bare1") == {"bare1"}


def test_hard_negatives_alternate_runs_keep_mistakes_above_the_answer_and_skip_known_answers():
    qrels = {"q": {"ans": 1}}
    bm25 = {"q": {"other": 9.0, "ans2": 8.0, "ans": 7.0, "bare1": 1.0}}
    dense = {"q": {"bare2": 0.9, "ans": 0.8, "dup": 0.7, "bare1": 0.6}}
    rows = rerankers.hard_negatives(qrels, [bm25, dense], GUARD_CORPUS, depth=4, num_negatives=3)
    assert len(rows) == 1
    row = rows[0]
    assert row["positive"] == "ans"
    assert row["negatives"] == ["other", "bare2", "bare1"]  # rank 1 of each run, then rank 4 (bare1)
    assert row["above_answer"] == 2  # "other" and "bare2" outranked the answer in the run that proposed them
    assert row["guarded"] == 2  # ans2 (same object) and dup (same text) were skipped


def test_hard_negatives_skip_questions_without_an_answer_in_the_corpus():
    assert rerankers.hard_negatives({"q": {"missing": 1}}, [{"q": {"ans": 1.0}}], GUARD_CORPUS, 5, 2) == []


class _FakeCrossEncoder:
    def __init__(self):
        self.calls = []

    def predict(self, pairs, **kwargs):
        self.calls.append(list(pairs))
        return np.array([float(len(p)) for _, p in pairs])


def test_rerank_runs_scores_each_pair_once_across_first_stages():
    model = _FakeCrossEncoder()
    runs = {"a": {"q1": {"a": 2.0, "b": 1.0, "c": 0.5}}, "b": {"q1": {"b": 3.0, "d": 2.0}}}
    reranked, pairs, seconds = rerankers.rerank_runs(model, CORPUS, {"q1": "first?"}, runs, k=2)
    assert pairs == 3 and len(model.calls) == 1 and len(model.calls[0]) == 3  # a, b, d: b scored once
    assert set(reranked["a"]["q1"]) == {"a", "b"} and set(reranked["b"]["q1"]) == {"b", "d"}
    assert reranked["a"]["q1"]["b"] == reranked["b"]["q1"]["b"] == float(len("B\nbeta"))
    assert seconds >= 0


def test_rerank_runs_takes_a_depth_per_first_stage():
    runs = {"a": {"q1": {"a": 2.0, "b": 1.0, "c": 0.5}}, "b": {"q1": {"b": 3.0, "d": 2.0}}}
    reranked, pairs, _ = rerankers.rerank_runs(_FakeCrossEncoder(), CORPUS, {"q1": "first?"}, runs, k={"a": 3, "b": 1})
    assert set(reranked["a"]["q1"]) == {"a", "b", "c"} and set(reranked["b"]["q1"]) == {"b"} and pairs == 3


def test_add_random_negatives_never_adds_a_known_answer_or_a_repeat():
    rows = [{"qid": "q", "positive": "ans", "negatives": ["other"], "above_answer": 0, "guarded": 0}]
    out = rerankers.add_random_negatives(rows, GUARD_CORPUS, n=2, seed=0)
    added = out[0]["negatives"][1:]
    assert out[0]["negatives"][0] == "other" and out[0]["random"] == 2 and len(set(added)) == 2
    assert not set(added) & {"ans", "ans2", "dup", "other"}
    assert rows[0]["negatives"] == ["other"]  # the input is left as it was
    # fewer candidates than asked: as many as exist
    assert rerankers.add_random_negatives(rows, GUARD_CORPUS, n=10, seed=0)[0]["random"] == 2
