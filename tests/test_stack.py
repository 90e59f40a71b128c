"""searchtune_utils.stack: the ablation grid, fusion, TREC run files, end-to-end records,
error attribution, token-F1 and Holm's correction, on hand-made cases."""
import pytest

from searchtune_utils import generation, generator_data, metrics, stack


def test_ablation_grid_is_complete_and_named_deterministically():
    grid = stack.ablation_grid()
    assert len(grid) == 8
    combos = {(g["embedder"], g["rewriter"], g["reranker"]) for g in grid}
    assert combos == {(e, w, r) for e in ("base", "fine-tuned") for w in ("none", "fine-tuned") for r in ("none", "fine-tuned")}
    assert grid[0]["name"] == "emb base · rw none · rr none"
    assert grid[-1]["name"] == "emb fine-tuned · rw fine-tuned · rr fine-tuned"
    assert len({g["name"] for g in grid}) == 8 and [g["name"] for g in grid] == [g["name"] for g in stack.ablation_grid()]
    tags = [stack.run_tag(g["name"]) for g in grid]
    assert len(set(tags)) == 8 and not any(" " in t for t in tags)
    assert tags[0] == "emb-base_rw-none_rr-none"


def test_one_at_a_time_walks_from_all_base_to_all_fine_tuned_inside_the_grid():
    path = stack.one_at_a_time()
    names = {g["name"] for g in stack.ablation_grid()}
    assert len(path) == 4 and all(p["name"] in names for p in path)
    assert path[0]["name"] == stack.ablation_grid()[0]["name"] and path[-1]["name"] == stack.ablation_grid()[-1]["name"]
    for a, b in zip(path, path[1:]):  # exactly one stage changes per step
        assert sum(a[s] != b[s] for s in stack.STAGES) == 1


def test_reciprocal_rank_fusion_on_a_hand_example():
    bm25 = {"q": {"a": 9.0, "b": 5.0, "c": 1.0}}
    dense = {"q": {"b": 0.9, "c": 0.8, "d": 0.1}}
    fused = stack.reciprocal_rank_fusion([bm25, dense], k=60)["q"]
    assert fused["a"] == pytest.approx(1 / 61)
    assert fused["b"] == pytest.approx(1 / 62 + 1 / 61)
    assert fused["c"] == pytest.approx(1 / 63 + 1 / 62)
    assert fused["d"] == pytest.approx(1 / 63)
    assert metrics.ranked(fused) == ["b", "c", "a", "d"]
    # depth: only each run's top-1 takes part
    assert stack.reciprocal_rank_fusion([bm25, dense], k=0, depth=1)["q"] == {"a": 1.0, "b": 1.0}


def test_trec_run_file_round_trip_and_pytrec_eval(tmp_path):
    pytrec_eval = pytest.importorskip("pytrec_eval")
    run = {"q1": {"d1": 0.5, "d2": 0.9, "10": 0.1}, "q2": {"d3": 1.0}}
    path = stack.write_trec_run(tmp_path / "run.trec", run, stack.run_tag("emb base · rw none"))
    lines = path.read_text().splitlines()
    assert lines[0] == "q1 Q0 d2 1 0.900000 emb-base_rw-none"
    assert lines[2].split()[:4] == ["q1", "Q0", "10", "3"] and len(lines) == 4
    back = stack.read_trec_run(path)
    assert back == run
    qrels = {"q1": {"d2": 1}, "q2": {"d9": 1}}
    scores = pytrec_eval.RelevanceEvaluator(qrels, {"recip_rank"}).evaluate(back)
    assert scores["q1"]["recip_rank"] == 1.0 and scores["q2"]["recip_rank"] == 0.0
    assert metrics.evaluate_run(qrels, back, ("MRR@10",))["MRR@10"] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="whitespace"):
        stack.write_trec_run(tmp_path / "bad.trec", run, "two words")
    (tmp_path / "broken.trec").write_text("q1 Q0 d1 1 0.5\n")
    with pytest.raises(ValueError, match="line 1"):
        stack.read_trec_run(tmp_path / "broken.trec")


def test_final_run_orders():
    first = {"q": {"a": 0.9, "b": 0.8, "c": 0.1}}
    ce = {"q": {"a": -2.0, "b": 3.0}}
    assert metrics.ranked(stack.final_run(first, None, None, k=2)["q"]) == ["a", "b"]
    assert metrics.ranked(stack.final_run(first, ce, None, k=2)["q"]) == ["b", "a"]
    assert metrics.ranked(stack.final_run(first, ce, 0.3, k=2)["q"]) == ["a", "b"]  # 0.7 * first stage wins
    assert metrics.ranked(stack.final_run(first, ce, 0.7, k=2)["q"]) == ["b", "a"]


class _FakeCrossEncoder:
    def __init__(self):
        self.pairs = 0

    def predict(self, pairs, **kwargs):
        import numpy as np

        self.pairs += len(pairs)
        return np.array([float(len(p)) for _, p in pairs])


def test_rerank_cached_scores_each_pair_once():
    corpus = {"a": {"text": "x"}, "b": {"text": "yy"}, "c": {"text": "zzz"}}
    ce, cache = _FakeCrossEncoder(), {}
    out = stack.rerank_cached(ce, corpus, {"q": "query"}, {"q": {"a": 3, "b": 2, "c": 1}}, k=2, cache=cache)
    assert out == {"q": {"a": 1.0, "b": 2.0}} and ce.pairs == 2
    stack.rerank_cached(ce, corpus, {"q": "query"}, {"q": {"b": 3, "c": 2}}, k=2, cache=cache)
    assert ce.pairs == 3  # only (query, c) was new


CORPUS = {
    "g": {"title": "math.floor(x, /)", "text": "Return the floor of x as an Integral."},
    "o": {"title": "math.ceil(x, /)", "text": "Return the ceiling of x as an Integral."},
    "dup": {"title": "floor (part 2)", "text": "See also. Return the floor of x as an Integral."},
}
SUMMARY = "Return the floor of x as an Integral."


def test_shown_records_and_end_to_end_success():
    shown = generator_data.shown_record("r", "round down?", ["o", "g"], "g", CORPUS, SUMMARY, max_words=40)
    assert shown["kind"] == "answerable" and shown["cited"] == [2] and shown["slot"] == 2
    assert shown["answer"] == "[Source 2] math.floor: Return the floor of x as an Integral."
    missed = generator_data.shown_record("r", "round down?", ["o"], "g", CORPUS, SUMMARY, max_words=40)
    assert missed["kind"] == "unanswerable" and missed["answer"] == generation.REFUSAL and missed["slot"] == 0
    dup = generator_data.shown_record("r", "round down?", ["o", "dup"], "g", CORPUS, SUMMARY, max_words=40)
    assert dup["kind"] == "answerable" and dup["cited"] == [2]  # another passage holding the sentence answers too
    oos = generator_data.shown_record("r", "perl hash?", ["o"], None, CORPUS, "", max_words=40)
    assert oos["kind"] == "out_of_scope" and oos["answer"] == generation.REFUSAL
    # e2e success: a right refusal of an in-domain question whose passage was not shown is still a failure
    refused = generation.score_answer(generation.REFUSAL, missed)
    assert generation.task_success(refused) and not stack.e2e_success(refused)
    answered = generation.score_answer(shown["answer"], shown)
    assert stack.e2e_success(answered)
    assert stack.e2e_success(generation.score_answer(generation.REFUSAL, oos))
    assert not stack.e2e_success(generation.score_answer(generation.REFUSAL, shown))
    # ... but when the answer is not in the index at all, the refusal is what the user should get
    assert stack.e2e_success(refused, answer_in_index=False)
    assert not stack.e2e_success(generation.score_answer("[Source 1] math.ceil: Return the ceiling.", missed), answer_in_index=False)


def test_error_attribution_on_hand_made_cases():
    cands = ["a", "b", "c", "g"]
    assert stack.attribute_error("g", cands, ["g", "a"], True) is None
    assert stack.attribute_error("x", cands, ["a", "b"], False) == "not in candidates (retriever)"
    assert stack.attribute_error("g", cands, ["a", "b"], False, first_stage_top=["g", "a"]) == "pushed out of top-k (reranker)"
    assert stack.attribute_error("g", cands, ["a", "b"], False, first_stage_top=["a", "b"]).startswith("in candidates, below top-k")
    assert stack.attribute_error("g", cands, ["a", "b"], False) .startswith("in candidates, below top-k")
    assert stack.attribute_error("g", cands, ["g", "a"], False) == "shown, generator erred"
    assert stack.attribute_error(None, cands, ["a"], False) == stack.ERROR_STAGES[4]  # nothing to answer from
    assert set(stack.ERROR_STAGES) >= {stack.attribute_error("x", cands, [], False)}


def test_token_f1_on_hand_cases():
    assert stack.token_f1("math.floor: Return the floor [Source 1].", "[Source 2] math.floor: Return the floor.") == 1.0
    assert stack.token_f1("completely different", "math floor") == 0.0
    # prediction "floor of x" vs reference "the floor of y": tokens {floor, of, x} vs {floor, of, y}
    assert stack.token_f1("floor of x", "the floor of y") == pytest.approx(2 / 3)
    assert stack.token_f1("", "") == 1.0 and stack.token_f1("", "x") == 0.0
    assert stack.token_f1(generation.REFUSAL, generation.REFUSAL) == 1.0


def test_holm_correction():
    assert stack.holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert stack.holm({"a": 0.5, "b": 0.001}) == pytest.approx({"a": 0.5, "b": 0.002})
    assert stack.holm([0.6, 0.7]) == pytest.approx([1.0, 1.0])


def test_mean_ci_and_cost_row():
    mean, low, high = stack.mean_ci([0.0, 1.0] * 20)
    assert mean == 0.5 and low < 0.5 < high
    assert stack.mean_ci([1.0, 1.0]) == (1.0, 1.0, 1.0)
    results, seconds, cpu = stack.timed(lambda x: x * 2, [1, 2, 3])
    assert results == [2, 4, 6] and len(seconds) == 3 and cpu >= 0
    row = stack.cost_row([0.01, 0.02, 0.03], 0.06)
    assert row["queries"] == 3 and row["p50 ms"] == pytest.approx(20.0)
    assert row["queries/s"] == pytest.approx(50.0) and row["CPU s per 1,000 queries"] == pytest.approx(20.0)
