"""searchtune_utils.metrics against values worked out by hand (and a smoke test of the plots)."""
from math import log2

import matplotlib

matplotlib.use("Agg")

import pandas as pd
import pytest

from searchtune_utils import metrics, plots

TOL = 1e-6


def _ranked_run(doc_ids):
    """A run for one query giving doc_ids[0] the best score, doc_ids[1] the next, ..."""
    return {d: 100.0 - i for i, d in enumerate(doc_ids)}


FILLERS = [f"n{i:02d}" for i in range(30)]  # never judged relevant

QRELS = {
    # three relevant: found at ranks 2 and 4, the third at rank 15
    "q1": {"d1": 1, "d3": 1, "d9": 1, "d2": 0},
    # the only relevant passage sits at rank 11: outside every @10 cutoff, inside recall@40
    "q2": {"r": 1},
    # not in the run at all
    "q3": {"x": 1},
    # graded: g1 is grade 2, g2 grade 1; found at ranks 3 and 1
    "q4": {"g1": 2, "g2": 1},
    # all three candidates tie; trec_eval orders ties by doc id descending: z, b, a
    "q5": {"a": 1},
}

RUN = {
    "q1": _ranked_run(["d2", "d1", "d4", "d3"] + FILLERS[:10] + ["d9"]),   # d9 at rank 15
    "q2": _ranked_run(FILLERS[:10] + ["r", "n20"]),                         # r at rank 11
    "q4": _ranked_run(["g2", "n00", "g1"]),
    "q5": {"a": 0.5, "b": 0.5, "z": 0.5},
    "qx": {"anything": 1.0},  # not in qrels: must be ignored
}

# ---- expected values, by hand ------------------------------------------------------------
# q1: relevant at ranks 2 and 4 within the top 10 (gain 1 each), ideal = three relevant at 1, 2, 3
Q1_NDCG = (1 / log2(2 + 1) + 1 / log2(4 + 1)) / (1 / log2(2) + 1 / log2(3) + 1 / log2(4))
Q1 = {"nDCG@10": Q1_NDCG, "recall@10": 2 / 3, "recall@40": 3 / 3, "MRR@10": 1 / 2, "P@3": 1 / 3}
# q2: nothing relevant in the top 10; recall@40 finds it; MRR@10 = 0 although 1/11 without cutoff
Q2 = {"nDCG@10": 0.0, "recall@10": 0.0, "recall@40": 1.0, "MRR@10": 0.0, "P@3": 0.0}
# q3: missing from the run -> 0 everywhere
Q3 = {"nDCG@10": 0.0, "recall@10": 0.0, "recall@40": 0.0, "MRR@10": 0.0, "P@3": 0.0}
# q4: DCG = 1/log2(2) [g2, grade 1, rank 1] + 2/log2(4) [g1, grade 2, rank 3] = 1 + 1 = 2
#     IDCG = 2/log2(2) + 1/log2(3)
Q4_NDCG = (1 / log2(2) + 2 / log2(4)) / (2 / log2(2) + 1 / log2(3))
Q4 = {"nDCG@10": Q4_NDCG, "recall@10": 1.0, "recall@40": 1.0, "MRR@10": 1.0, "P@3": 2 / 3}
# q5: order z, b, a -> relevant "a" at rank 3
Q5 = {"nDCG@10": 1 / log2(3 + 1), "recall@10": 1.0, "recall@40": 1.0, "MRR@10": 1 / 3, "P@3": 1 / 3}
EXPECTED = {"q1": Q1, "q2": Q2, "q3": Q3, "q4": Q4, "q5": Q5}


def test_hand_computed_values_are_what_we_think():
    # guard the hand arithmetic itself against typos
    # (0.630930 + 0.430677) / (1 + 0.630930 + 0.5) = 1.061606 / 2.130930
    assert Q1_NDCG == pytest.approx(1.061606 / 2.130930, abs=1e-6)
    assert Q4_NDCG == pytest.approx(2 / 2.6309298, abs=1e-6)


def test_per_query_matches_hand_computation():
    df = metrics.evaluate_run(QRELS, RUN, per_query=True)
    assert isinstance(df, pd.DataFrame)
    assert list(df.columns) == list(metrics.METRICS)
    assert sorted(df.index) == ["q1", "q2", "q3", "q4", "q5"]  # qx ignored, q3 present
    for qid, exp in EXPECTED.items():
        for m, v in exp.items():
            assert df.loc[qid, m] == pytest.approx(v, abs=TOL), (qid, m)


def test_means_over_all_qrels_queries():
    got = metrics.evaluate_run(QRELS, RUN)
    assert list(got) == list(metrics.METRICS)
    for m in metrics.METRICS:
        expected = sum(EXPECTED[q][m] for q in EXPECTED) / 5  # q3 (missing) counts as 0
        assert got[m] == pytest.approx(expected, abs=TOL), m
        assert isinstance(got[m], float)


def test_mrr_cutoff_and_tie_order():
    # q2's relevant passage is at rank 11: MRR@11 sees it, MRR@10 does not
    got = metrics.evaluate_run({"q2": QRELS["q2"]}, RUN, metrics=["MRR@10", "MRR@11", "MRR@100"])
    assert got == pytest.approx({"MRR@10": 0.0, "MRR@11": 1 / 11, "MRR@100": 1 / 11}, abs=TOL)
    # q5 ties: z, b, a -> rank 3; the MRR cut must use the same tie order as trec_eval
    got = metrics.evaluate_run({"q5": QRELS["q5"]}, RUN, metrics=["MRR@2", "mrr@3", "P@1", "ndcg@2"])
    assert got == pytest.approx({"MRR@2": 0.0, "mrr@3": 1 / 3, "P@1": 0.0, "ndcg@2": 0.0}, abs=TOL)


def test_other_cutoffs():
    got = metrics.evaluate_run({"q1": QRELS["q1"]}, RUN, metrics=["nDCG@3", "recall@4", "P@5"])
    ndcg3 = (1 / log2(3)) / (1 / log2(2) + 1 / log2(3) + 1 / log2(4))
    assert got == pytest.approx({"nDCG@3": ndcg3, "recall@4": 2 / 3, "P@5": 2 / 5}, abs=TOL)


def test_unknown_metric_raises():
    with pytest.raises(ValueError, match="Unknown metric"):
        metrics.evaluate_run(QRELS, RUN, metrics=["MAP"])
    with pytest.raises(ValueError):
        metrics.evaluate_run(QRELS, RUN, metrics=["nDCG@0"])


def test_missing_query_scores_zero():
    one = {"q3": QRELS["q3"], "q4": QRELS["q4"]}
    got = metrics.evaluate_run(one, RUN, metrics=["MRR@10", "recall@10"])
    assert got == pytest.approx({"MRR@10": 0.5, "recall@10": 0.5}, abs=TOL)
    empty = metrics.evaluate_run(one, {}, metrics=["nDCG@10"], per_query=True)
    assert empty["nDCG@10"].tolist() == [0.0, 0.0]


def test_rank_of_first_relevant():
    assert metrics.rank_of_first_relevant(QRELS, RUN) == {"q1": 2, "q2": 11, "q3": None, "q4": 1, "q5": 3}


def test_compare_deltas():
    results = {"bm25": {"nDCG@10": 0.5, "MRR@10": 0.4},
               "fine-tuned": {"nDCG@10": 0.6, "MRR@10": 0.3}}
    df = metrics.compare(results, baseline="bm25")
    assert list(df.index) == ["bm25", "fine-tuned"]
    assert df.loc["fine-tuned", "nDCG@10"] == pytest.approx(0.6)
    assert df.loc["fine-tuned", "Δ nDCG@10 (pts)"] == pytest.approx(10.0)
    assert df.loc["fine-tuned", "Δ nDCG@10 (%)"] == pytest.approx(20.0)
    assert df.loc["fine-tuned", "Δ MRR@10 (pts)"] == pytest.approx(-10.0)
    assert df.loc["fine-tuned", "Δ MRR@10 (%)"] == pytest.approx(-25.0)
    assert df.loc["bm25", "Δ nDCG@10 (pts)"] == 0.0
    with pytest.raises(KeyError):
        metrics.compare(results, baseline="nope")


def test_latency_summary():
    got = metrics.latency_summary([0.04, 0.01, 0.1, 0.03, 0.02])
    # sorted ms: 10 20 30 40 100; p95 position 0.95 * 4 = 3.8 -> 40 + 0.8 * (100 - 40) = 88
    assert got["median_ms"] == pytest.approx(30.0)
    assert got["mean_ms"] == pytest.approx(40.0)
    assert got["p95_ms"] == pytest.approx(88.0)


def test_plots_smoke(tmp_path, monkeypatch):
    import matplotlib.pyplot as plt

    monkeypatch.setattr(plots, "FIGURES_DIR", tmp_path / "figures")
    results = {"bm25": {"nDCG@10": 0.5, "MRR@10": 0.4}, "dense": {"nDCG@10": 0.6, "MRR@10": 0.3}}
    figs = [
        plots.metric_bars(results, "systems"),
        plots.metric_bars(metrics.compare(results, "bm25"), "systems (from compare)"),
        plots.length_histogram({"query": [3, 5, 8], "passage": [40, 80, 120, 60]}, "lengths", "tokens"),
        plots.rank_shift({"a": 5, "b": None, "c": 1}, {"a": 1, "b": 30, "c": 2}, "shift", k=100),
        plots.loss_curve([{"loss": 2.0, "step": 10}, {"loss": 1.5, "step": 20},
                          {"eval_loss": 1.6, "eval_ndcg@10": 0.4, "eval_runtime": 3.0, "step": 20},
                          {"train_runtime": 9.0, "step": 20}], "training"),
    ]
    for i, fig in enumerate(figs):
        ax = fig.axes[0]
        assert fig.axes[0].get_title() and ax.get_xlabel() and ax.get_ylabel()
        path = plots.save_figure(fig, f"fig{i}")
        assert path == tmp_path / "figures" / f"fig{i}.png" and path.stat().st_size > 0
        plt.close(fig)


# ---- statistics helpers: mean intervals (also by strata), Holm, paired tests with strata --------
def test_mean_ci_plain_matches_scipy_bootstrap_and_edge_cases():
    import numpy as np
    from scipy import stats

    x = np.random.default_rng(3).uniform(0, 1, 50)
    mean, low, high = metrics.mean_ci(x, n_resamples=2000, seed=7)
    ci = stats.bootstrap((x,), np.mean, n_resamples=2000, method="percentile",
                         rng=np.random.default_rng(7)).confidence_interval
    assert mean == pytest.approx(x.mean()) and (low, high) == pytest.approx((ci.low, ci.high))
    assert metrics.mean_ci([0.5, 0.5, 0.5]) == (0.5, 0.5, 0.5)
    assert metrics.mean_ci([0.3])[0] == 0.3 and all(v != v for v in metrics.mean_ci([0.3])[1:])
    assert all(v != v for v in metrics.mean_ci([]))


def test_mean_ci_with_strata_resamples_within_each_group():
    import numpy as np

    # two months: every score of month "a" is 0, of month "b" is 1 -> with the months as strata the
    # year mean cannot move (each resample keeps 3 zeros and 3 ones); without them it can
    scores = pd.Series([0.0, 0.0, 0.0, 1.0, 1.0, 1.0], index=list("uvwxyz"))
    months = pd.Series(["a", "a", "a", "b", "b", "b"], index=list("uvwxyz"))
    assert metrics.mean_ci(scores, strata=months) == (0.5, 0.5, 0.5)
    _, low, high = metrics.mean_ci(scores)
    assert low < 0.5 < high
    # strata as a Series are aligned by index, not position
    assert metrics.mean_ci(scores, strata=months.iloc[::-1]) == (0.5, 0.5, 0.5)
    # spread inside the groups: a proper interval around the pooled mean; a group of one stays fixed
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.uniform(0, 0.2, 40), rng.uniform(0.8, 1.0, 40), [0.5]])
    g = ["a"] * 40 + ["b"] * 40 + ["c"]
    mean, low, high = metrics.mean_ci(x, strata=g, n_resamples=2000)
    assert low < mean < high and high - low < metrics.mean_ci(x, n_resamples=2000)[2] - metrics.mean_ci(x, n_resamples=2000)[1]
    assert metrics.mean_ci(x, strata=g, seed=1) == metrics.mean_ci(x, strata=g, seed=1)
    with pytest.raises(ValueError, match="one group per score"):
        metrics.mean_ci(x, strata=g[:-1])


def test_holm_by_hand_in_every_shape():
    # sorted 0.01, 0.02, 0.04 -> x3, x2, x1 = 0.03, 0.04, 0.04 (kept non-decreasing)
    assert metrics.holm([0.04, 0.01, 0.02]) == pytest.approx([0.04, 0.03, 0.04])
    assert metrics.holm({"a": 0.5, "b": 0.001}) == pytest.approx({"a": 0.5, "b": 0.002})
    assert metrics.holm([0.6, 0.7]) == pytest.approx([1.0, 1.0])  # capped at 1
    s = metrics.holm(pd.Series([0.048, 0.425, 0.701], index=["x", "y", "z"], name="p"))
    assert list(s.index) == ["x", "y", "z"] and s["x"] == pytest.approx(0.144) and s["y"] == pytest.approx(0.85)
    # a test that could not run: NaN stays NaN and is not counted
    out = metrics.holm([0.01, float("nan"), 0.04])
    assert out[0] == pytest.approx(0.02) and out[1] != out[1] and out[2] == pytest.approx(0.04)
    assert metrics.holm([]) == []


def test_paired_test_with_strata_and_compare_paired_with_holm():
    import numpy as np

    rng = np.random.default_rng(2)
    ids = [f"q{i}" for i in range(60)]
    months = pd.Series([i // 20 for i in range(60)], index=ids)
    before = pd.Series(rng.uniform(0, 1, 60), index=ids)
    after = before + np.where(months == 2, 0.3, 0.0) + rng.normal(0, 0.02, 60)
    plain, strat = metrics.paired_test(before, after), metrics.paired_test(before, after, strata=months)
    # same difference and randomization test; the interval now resamples within months (narrower here:
    # the gain sits in month 2 only, a plain bootstrap also varies how many month-2 questions it draws)
    assert strat["delta"] == plain["delta"] and strat["p_value"] == plain["p_value"]
    assert strat["ci_high"] - strat["ci_low"] < plain["ci_high"] - plain["ci_low"]
    assert strat["ci_low"] < strat["delta"] < strat["ci_high"]
    # strata given as a Series follow the query ids
    assert metrics.paired_test(before, after, strata=months.sample(frac=1, random_state=0)) == strat
    per_query = {"old": pd.DataFrame({"nDCG@10": before}), "new": pd.DataFrame({"nDCG@10": after}),
                 "same": pd.DataFrame({"nDCG@10": before + rng.normal(0, 0.01, 60)})}
    table = metrics.compare_paired(per_query, baseline="old", holm_correction=True, strata=months)
    assert list(table.columns) == ["mean", "Δ (pts)", "95% CI (pts)", "p", "p (Holm)", "queries up / down", "vs old"]
    p = table.loc[["new", "same"], "p"].astype(float).tolist()
    assert table.loc[["new", "same"], "p (Holm)"].astype(float).tolist() == pytest.approx(
        [round(v, 4) for v in metrics.holm(p)], abs=2e-4)
    assert table.loc["new", "vs old"] == "higher"
    assert "p (Holm)" not in metrics.compare_paired(per_query, baseline="old").columns
