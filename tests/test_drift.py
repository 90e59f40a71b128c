"""searchtune_utils.drift: the simulated year, the label-free monitors and the retraining policies,
on hand-made cases worked out by hand."""
import math

import numpy as np
import pytest

from searchtune_utils import drift


def _toy(n_groups=8, per_group=3, field="module"):
    """n_groups topics, per_group train questions each, one passage per question, one distractor each."""
    corpus, queries, meta, train = {}, {}, {}, {}
    for g in range(n_groups):
        for i in range(per_group):
            q, d = f"q{g}-{i}", f"d{g}-{i}"
            corpus[d] = {"title": "", "text": f"passage {g} {i}"}
            corpus[f"x{g}-{i}"] = {"title": "", "text": "distractor"}
            queries[q] = f"question {g} {i}"
            meta[q] = {field: f"topic{g}"} if field else {}
            train[q] = {d: 1}
    return corpus, queries, {"train": train}, meta


@pytest.mark.parametrize("field", ["module", "source", None])
def test_schedule_deterministic_complete_and_every_month_non_empty(field):
    corpus, queries, qrels, meta = _toy(field=field)
    a = drift.month_schedule(corpus, queries, qrels, meta, n_months=4, seed=1)
    b = drift.month_schedule(corpus, queries, qrels, meta, n_months=4, seed=1)
    assert a == b
    doc_month, query_month, how = a
    # every passage arrives exactly once (one month each), every question too
    assert set(doc_month) == set(corpus) and set(query_month) == set(queries)
    assert all(0 <= m < 4 for m in list(doc_month.values()) + list(query_month.values()))
    assert set(query_month.values()) == {0, 1, 2, 3} and set(doc_month.values()) == {0, 1, 2, 3}
    # a question never arrives before its answer
    for q, docs in qrels["train"].items():
        assert all(doc_month[d] <= query_month[q] for d in docs)
    assert ("hash" in how) == (field is None)


def test_groups_arrive_together_and_the_seed_changes_the_order():
    corpus, queries, qrels, meta = _toy()
    _, qm, _ = drift.month_schedule(corpus, queries, qrels, meta, n_months=4, seed=1)
    for g in range(8):
        assert len({qm[f"q{g}-{i}"] for i in range(3)}) == 1
    _, qm2, _ = drift.month_schedule(corpus, queries, qrels, meta, n_months=4, seed=2)
    assert qm != qm2


def test_split_groups_fills_every_month_even_with_one_giant_group():
    sizes = {"big": 100, **{f"g{i}": 1 for i in range(4)}}
    months = drift._split_groups(sizes, n_months=5, first_share=0.3, seed=0)
    assert sorted(set(months.values())) == [0, 1, 2, 3, 4]
    with pytest.raises(ValueError):
        drift._split_groups({"a": 1, "b": 1}, n_months=3, first_share=0.3, seed=0)


def test_without_metadata_month_0_still_has_about_first_share_of_the_training_questions():
    # the foreign-BEIR case: no module/source field; before, the hash of passage ids could leave
    # month 0 without a single training question ("only 0 training pairs in month 0")
    corpus, queries, qrels, meta = _toy(n_groups=10, per_group=5, field=None)
    for first_share in (0.3, 0.6):
        _, qm, how = drift.month_schedule(corpus, queries, qrels, meta, n_months=10, first_share=first_share, seed=3)
        in_month_0 = sum(qm[q] == 0 for q in qrels["train"])
        assert abs(in_month_0 - first_share * 50) <= 2, in_month_0
        assert set(qm.values()) == set(range(10)) and "own group" in how
    with pytest.raises(ValueError):  # fewer questions than months
        drift.month_schedule(corpus, queries, qrels, meta, n_months=51)


def test_monthly_test_sets_mix_new_and_old_never_the_future_never_twice():
    qm = {f"a{i}": 0 for i in range(10)} | {f"b{i}": 1 for i in range(10)} | {f"c{i}": 2 for i in range(10)}
    sets = drift.monthly_test_sets(qm, qm, n_months=3, n=6, new_share=0.5)
    assert [len(sets[m]) for m in range(3)] == [6, 6, 6]
    assert all(q.startswith("a") for q in sets[0])
    assert sum(q.startswith("b") for q in sets[1]) == 3 and sum(q.startswith("a") for q in sets[1]) == 3
    assert sum(q.startswith("c") for q in sets[2]) == 3 and not any(q.startswith("c") for q in sets[0] + sets[1])
    everything = sets[0] + sets[1] + sets[2]
    assert len(everything) == len(set(everything))  # no question in two months
    assert drift.monthly_test_sets(qm, qm, 3, 6) == sets  # deterministic
    assert drift.monthly_test_sets(qm, qm, 3, 6, seed=1) != sets
    # not enough old questions left: topped up with new ones; arrivals exhausted: fewer than n
    topped = drift.monthly_test_sets(qm, qm, n_months=2, n=8, new_share=0.5)[1]  # 2 a's left after month 0
    assert sum(q.startswith("a") for q in topped) == 2 and sum(q.startswith("b") for q in topped) == 6
    assert [len(v) for v in drift.monthly_test_sets(qm, qm, n_months=3, n=12).values()] == [10, 10, 10]
    # only the questions asked for
    assert drift.monthly_test_sets(qm, ["a1", "b1"], 3, 6) == {0: ["a1"], 1: ["b1"], 2: []}


def test_unseen_term_share():
    assert drift.unseen_term_share(["open a file", "close it"], ["open a socket"]) == pytest.approx(3 / 5)
    assert drift.unseen_term_share(["Open A"], ["open a"]) == 0.0
    assert drift.unseen_term_share([], ["x"]) == 0.0


def test_centroid_distance():
    assert drift.centroid_distance([[1, 0], [1, 0]], [[1, 0]]) == pytest.approx(0.0)
    assert drift.centroid_distance([[0, 1]], [[1, 0], [1, 0]]) == pytest.approx(1.0)
    assert drift.centroid_distance(np.array([[1.0, 1.0]]), np.array([[1.0, 0.0]])) == pytest.approx(1 - 1 / math.sqrt(2))


def test_top1_score():
    assert drift.top1_score({"q1": {"a": 0.9, "b": 0.1}, "q2": {"c": 0.5}, "q3": {}}) == pytest.approx(0.7)


def test_serving_model_and_fixed_schedules():
    assert drift.fixed_schedule(10, 0) == []
    assert drift.fixed_schedule(10, 3) == [2, 5, 8]
    assert drift.fixed_schedule(4, 1) == [0, 1, 2]
    assert [drift.serving_model([2, 5], m) for m in range(7)] == [0, 0, 0, 2, 2, 2, 5]


def test_triggered_schedule_resets_after_a_retrain():
    # drift grows by 0.1 a month since the serving model's data cut-off
    monitor = lambda month, model: 0.1 * (month - model)  # noqa: E731
    retrains, seen = drift.triggered_schedule(monitor, n_months=8, threshold=0.25)
    assert retrains == [3, 6]
    assert seen == pytest.approx([0.0, 0.1, 0.2, 0.3, 0.1, 0.2, 0.3, 0.1])
    # never at the last month, and never when below the threshold
    assert drift.triggered_schedule(lambda m, k: 1.0, 3, 0.5)[0] == [0, 1]
    assert drift.triggered_schedule(lambda m, k: 0.0, 3, 0.5)[0] == []


def test_calibrate_threshold():
    assert drift.calibrate_threshold([0.2, 0.4, 0.3]) == pytest.approx(0.4)
    assert drift.calibrate_threshold([0.2], margin=0.05) == pytest.approx(0.25)
    with pytest.raises(ValueError):
        drift.calibrate_threshold([])


def test_gap_recovered():
    assert drift.gap_recovered(0.5, 0.58, 0.6) == pytest.approx(0.8)
    assert drift.gap_recovered(0.5, 0.5, 0.6) == pytest.approx(0.0)
    assert drift.gap_recovered(0.5, 0.65, 0.6) == pytest.approx(1.5)
    assert math.isnan(drift.gap_recovered(0.6, 0.6, 0.6))
    assert math.isnan(drift.gap_recovered(0.6, 0.7, 0.5))
