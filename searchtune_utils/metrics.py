"""Ranking metrics for the notebooks, computed with ``pytrec_eval`` (the trec_eval C code).

Shapes (BEIR style)::

    qrels = {qid: {doc_id: grade}}      # grade >= 1 means relevant, 0 means judged not relevant
    run   = {qid: {doc_id: score}}      # higher score = better

Metric names are ``"<name>@<k>"`` for any positive integer ``k``:

* ``nDCG@k``   – trec_eval ``ndcg_cut.k``: gain = grade, discount = 1/log2(rank + 1),
  divided by the ideal DCG of the judged documents.
* ``recall@k`` – trec_eval ``recall.k``: relevant documents in the top k / all relevant documents.
* ``P@k``      – trec_eval ``P.k``: relevant documents in the top k / k (always divided by k).
* ``MRR@k``    – 1 / rank of the first relevant document if it is within the top k, else 0
  (trec_eval ``recip_rank`` on the run cut to its top k; ``recip_rank`` alone has no cutoff).

Ordering and ties: like trec_eval, a run is ordered by score (descending) and equal scores by
doc id in *descending* string order (``"b"`` before ``"a"``). :func:`ranked` applies the same
order, so MRR@k and :func:`rank_of_first_relevant` agree with pytrec_eval.
"""
from __future__ import annotations

import re
import statistics

import pandas as pd
import pytrec_eval

METRICS = ("nDCG@10", "recall@10", "recall@40", "MRR@10", "P@3")

# our name (lower case) -> pytrec_eval measure family
_FAMILIES = {"ndcg": "ndcg_cut", "recall": "recall", "p": "P", "mrr": "recip_rank"}
_NAME = re.compile(r"^\s*(ndcg|recall|p|mrr)\s*@\s*(\d+)\s*$", re.IGNORECASE)


def parse_metric(name: str) -> tuple[str, int]:
    """Split a metric name such as ``"nDCG@10"`` into ``("ndcg", 10)`` (family lower-cased).

    Raises ValueError for names other than nDCG@k, recall@k, P@k, MRR@k with k >= 1.
    """
    match = _NAME.match(name)
    if not match or int(match.group(2)) < 1:
        raise ValueError(f"Unknown metric {name!r}: use nDCG@k, recall@k, P@k or MRR@k "
                         f"with a positive integer k, e.g. {', '.join(METRICS)}")
    return match.group(1).lower(), int(match.group(2))


def ranked(doc_scores: dict[str, float]) -> list[str]:
    """Doc ids of one query's run, best first, in trec_eval order.

    In: ``{doc_id: score}``. Out: list of doc ids sorted by score descending, then doc id
    descending (trec_eval's tie-break).
    """
    return [d for d, _ in sorted(doc_scores.items(), key=lambda x: (float(x[1]), x[0]), reverse=True)]


def _clean_run(run: dict, qids, k: int | None = None) -> dict[str, dict[str, float]]:
    """The run for ``qids`` only, scores as Python floats, optionally cut to each query's top ``k``.

    Queries absent from ``run`` get an empty ranking (so they score 0).
    """
    out = {}
    for qid in qids:
        docs = run.get(qid) or {}
        keep = ranked(docs)[:k] if k is not None else docs
        out[qid] = {str(d): float(docs[d]) for d in keep}
    return out


def evaluate_run(qrels: dict, run: dict, metrics=METRICS, per_query: bool = False):
    """Score a run against qrels.

    In: ``qrels`` ``{qid: {doc_id: grade}}``, ``run`` ``{qid: {doc_id: score}}``, metric names
    (see module doc; any k), ``per_query``.
    Out: ``{metric: mean}`` (floats in 0..1, in the order of ``metrics``) or, with
    ``per_query=True``, a DataFrame indexed by query id (index name ``qid``), one column per
    metric.

    Only queries present in ``qrels`` count; run queries without qrels are ignored. A query in
    ``qrels`` with no run entry (or an empty one) scores 0 on every metric, and so does a query
    whose judgements are all grade 0 (it has nothing relevant to find). Ties are broken as in
    trec_eval: equal scores are ordered by doc id descending.
    """
    metrics = list(metrics)
    parsed = [parse_metric(m) for m in metrics]
    qids = [str(q) for q in qrels]
    clean_qrels = {str(q): {str(d): int(g) for d, g in qrels[q].items()} for q in qrels}
    table = {m: {} for m in metrics}

    # nDCG, recall, P: one pytrec_eval call on the full run.
    cut_measures = {}
    for fam, k in parsed:
        if fam != "mrr":
            cut_measures.setdefault(_FAMILIES[fam], set()).add(k)
    if cut_measures:
        measures = {f"{fam}.{','.join(map(str, sorted(ks)))}" for fam, ks in cut_measures.items()}
        scores = pytrec_eval.RelevanceEvaluator(clean_qrels, measures).evaluate(_clean_run(run, qids))
        for m, (fam, k) in zip(metrics, parsed):
            if fam != "mrr":
                key = f"{_FAMILIES[fam]}_{k}"
                table[m] = {q: float(scores.get(q, {}).get(key, 0.0)) for q in qids}

    # MRR@k: recip_rank on the run truncated to the top k (one evaluation per distinct k).
    for k in sorted({k for fam, k in parsed if fam == "mrr"}):
        scores = pytrec_eval.RelevanceEvaluator(clean_qrels, {"recip_rank"}).evaluate(
            _clean_run(run, qids, k))
        for m, (fam, kk) in zip(metrics, parsed):
            if fam == "mrr" and kk == k:
                table[m] = {q: float(scores.get(q, {}).get("recip_rank", 0.0)) for q in qids}

    df = pd.DataFrame({m: pd.Series(table[m], dtype=float) for m in metrics}).reindex(qids).fillna(0.0)
    df.index.name = "qid"
    if per_query:
        return df
    return {m: float(df[m].mean()) if len(df) else 0.0 for m in metrics}


def compare(results: dict[str, dict], baseline: str, digits: int = 4) -> pd.DataFrame:
    """Side-by-side table of systems for a notebook.

    In: ``results`` ``{system: {metric: score 0..1}}`` (e.g. from :func:`evaluate_run`), the name
    of the ``baseline`` system, ``digits`` for rounding the scores.
    Out: DataFrame, one row per system (in the given order), the metric columns, then for each
    metric ``"Δ <metric> (pts)"`` = (score - baseline) × 100 and ``"Δ <metric> (%)"`` =
    relative change in percent (NaN where the baseline score is 0). Deltas are rounded to 2 decimals.
    """
    if baseline not in results:
        raise KeyError(f"baseline {baseline!r} is not one of the systems: {', '.join(results)}")
    scores = pd.DataFrame.from_dict(results, orient="index").astype(float)
    scores.index.name = "system"
    base = scores.loc[baseline]
    out = scores.round(digits)
    for m in scores.columns:
        out[f"Δ {m} (pts)"] = ((scores[m] - base[m]) * 100).round(2)
        rel = (scores[m] - base[m]) / base[m] * 100 if base[m] != 0 else float("nan")
        out[f"Δ {m} (%)"] = pd.Series(rel, index=scores.index, dtype=float).round(2)
    return out


def rank_of_first_relevant(qrels: dict, run: dict) -> dict[str, int | None]:
    """1-based rank of the first relevant (grade >= 1) document per query.

    In: qrels and run as above. Out: ``{qid: rank}`` for every query in ``qrels``; ``None`` when
    no relevant document is in the query's run (or the query is missing from the run).
    Uses trec_eval ordering (:func:`ranked`).
    """
    out = {}
    for qid, judged in qrels.items():
        relevant = {str(d) for d, g in judged.items() if g >= 1}
        out[qid] = next((i for i, d in enumerate(ranked(run.get(qid) or {}), start=1)
                         if str(d) in relevant), None)
    return out


def latency_summary(seconds: list[float]) -> dict[str, float]:
    """Summarise per-query latencies.

    In: a list of durations in seconds. Out: ``{"median_ms", "p95_ms", "mean_ms", "n"}`` in
    milliseconds (p95 by linear interpolation between samples); NaNs for an empty list.
    """
    if not seconds:
        return {"median_ms": float("nan"), "p95_ms": float("nan"), "mean_ms": float("nan"), "n": 0}
    ms = sorted(float(s) * 1000 for s in seconds)
    pos = 0.95 * (len(ms) - 1)
    lo, hi = int(pos), min(int(pos) + 1, len(ms) - 1)
    p95 = ms[lo] + (ms[hi] - ms[lo]) * (pos - lo)
    return {"median_ms": statistics.median(ms), "p95_ms": p95, "mean_ms": statistics.fmean(ms), "n": len(ms)}


# ---------------------------------------------------------------------------------------------
# Uncertainty: is a before/after difference real, or noise from the particular test questions?

def paired_test(before, after, confidence: float = 0.95, n_resamples: int = 10_000, seed: int = 0,
                strata=None) -> dict:
    """Compare two systems on the same queries, the way IR papers do.

    In: per-query scores of the two systems (pandas Series indexed by query id, or equal-length
    sequences in the same query order), e.g. one column of ``evaluate_run(..., per_query=True)``.
    Out: ``{"n", "before", "after", "delta", "ci_low", "ci_high", "p_value", "up", "down"}``:
    the means, ``delta`` = mean(after - before), its ``confidence`` interval from a paired
    bootstrap over queries (``scipy.stats.bootstrap``, percentile method), the two-sided p-value
    of a paired randomization test (``scipy.stats.permutation_test`` with
    ``permutation_type="samples"``: each query's two scores are swapped at random), and how many
    queries went up / down. Deterministic for a given ``seed``.

    ``strata`` (optional): the group of each query (a Series indexed like ``before``, or a sequence
    in its order), e.g. the month a question was asked in. The interval then comes from a
    bootstrap that resamples queries within each group (:func:`mean_ci`); the randomization test
    is the same (it swaps the two scores of each query, which respects any grouping).
    """
    import numpy as np
    from scipy import stats

    if isinstance(before, pd.Series) and isinstance(after, pd.Series):
        missing = before.index.symmetric_difference(after.index)
        if len(missing):
            raise ValueError(f"the two systems were scored on different queries (e.g. {list(missing)[:3]}): "
                             "a paired test needs the same queries on both sides")
        after = after.reindex(before.index)
        if isinstance(strata, pd.Series):
            strata = strata.reindex(before.index)
    a, b = np.asarray(before, dtype=float), np.asarray(after, dtype=float)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"need two 1-D score lists of equal length, got {a.shape} and {b.shape}")
    if len(a) < 2:
        raise ValueError("need at least 2 queries for a confidence interval")
    diff = b - a
    out = {"n": int(len(a)), "before": float(a.mean()), "after": float(b.mean()), "delta": float(diff.mean()),
           "up": int((diff > 0).sum()), "down": int((diff < 0).sum())}
    if not diff.any():  # identical scores: nothing to resample
        return {**out, "ci_low": 0.0, "ci_high": 0.0, "p_value": 1.0}
    if strata is None:
        boot = stats.bootstrap((diff,), np.mean, confidence_level=confidence, n_resamples=n_resamples,
                               method="percentile", rng=np.random.default_rng(seed))
        low, high = boot.confidence_interval.low, boot.confidence_interval.high
    else:
        _, low, high = mean_ci(diff, confidence=confidence, n_resamples=n_resamples, seed=seed, strata=strata)
    perm = stats.permutation_test((a, b), lambda x, y, axis: np.mean(y - x, axis=axis), vectorized=True,
                                  permutation_type="samples", alternative="two-sided",
                                  n_resamples=n_resamples, rng=np.random.default_rng(seed))
    return {**out, "ci_low": float(low), "ci_high": float(high), "p_value": float(perm.pvalue)}


def verdict(test: dict, alpha: float = 0.05) -> str:
    """``"higher"`` / ``"lower"`` when the paired test rejects "no difference" at ``alpha`` and the
    confidence interval excludes 0, otherwise ``"can't tell"``."""
    if test["p_value"] < alpha and (test["ci_low"] > 0 or test["ci_high"] < 0):
        return "higher" if test["delta"] > 0 else "lower"
    return "can't tell"


def mean_ci(values, confidence: float = 0.95, n_resamples: int = 2000, seed: int = 0,
            strata=None) -> tuple[float, float, float]:
    """The mean of per-query scores and its percentile-bootstrap interval: ``(mean, low, high)``.

    In: the scores (a sequence or Series), optionally ``strata``: the group of each score (a Series
    indexed like ``values``, or a sequence in the same order), e.g. the month a question was asked
    in. Without strata the bootstrap resamples all scores (``scipy.stats.bootstrap`` on one
    sample); with strata it resamples within each group, keeping every group's size (one sample
    per group, ``paired=False``): the right interval when each group is a fixed-size sample of its
    own, such as a month's test questions. A group of one score is kept as it is.
    NaN bounds with fewer than 2 scores; the mean itself when all scores are equal.
    """
    import numpy as np
    from scipy import stats

    if strata is not None and isinstance(values, pd.Series) and isinstance(strata, pd.Series):
        strata = strata.reindex(values.index)
    x = np.asarray(list(values), dtype=float)
    if len(x) == 0:
        return float("nan"), float("nan"), float("nan")
    mean = float(x.mean())
    if len(x) < 2:
        return mean, float("nan"), float("nan")
    if np.all(x == x[0]):
        return mean, mean, mean
    rng = np.random.default_rng(seed)
    if strata is None:
        boot = stats.bootstrap((x,), np.mean, confidence_level=confidence, n_resamples=n_resamples,
                               method="percentile", rng=rng)
        return mean, float(boot.confidence_interval.low), float(boot.confidence_interval.high)
    labels = np.asarray(list(strata), dtype=object)
    if len(labels) != len(x) or pd.isna(pd.Series(labels)).any():
        raise ValueError(f"strata: need one group per score ({len(x)}), got {len(labels)} (or missing ones)")
    groups = [x[labels == g] for g in pd.unique(pd.Series(labels))]
    fixed = sum(float(g.sum()) for g in groups if len(g) < 2)   # a group of one cannot be resampled
    samples = tuple(g for g in groups if len(g) >= 2)
    if not samples or all(np.all(g == g[0]) for g in samples):
        return mean, mean, mean

    def pooled_mean(*resampled, axis=-1):
        return (fixed + sum(np.sum(g, axis=axis) for g in resampled)) / len(x)

    boot = stats.bootstrap(samples, pooled_mean, paired=False, vectorized=True, confidence_level=confidence,
                           n_resamples=n_resamples, method="percentile", rng=rng)
    return mean, float(boot.confidence_interval.low), float(boot.confidence_interval.high)


def rate_ci(values, confidence: float = 0.95) -> tuple[float, float, float, int]:
    """``(mean, low, high, n)`` of per-question values (NaNs dropped). 0/1 values get the Wilson
    score interval (``scipy.stats.binomtest(...).proportion_ci``), which stays sensible at 0 and 1;
    other values (faithfulness) a percentile bootstrap over questions. NaN bounds when n < 2."""
    import numpy as np
    from scipy import stats

    x = np.asarray([v for v in values if v == v], dtype=float)
    n = len(x)
    if n == 0:
        return float("nan"), float("nan"), float("nan"), 0
    mean = float(x.mean())
    if n < 2:
        return mean, float("nan"), float("nan"), n
    if np.isin(x, (0.0, 1.0)).all():
        ci = stats.binomtest(int(x.sum()), n).proportion_ci(confidence_level=confidence, method="wilson")
        return mean, float(ci.low), float(ci.high), n
    if np.all(x == x[0]):
        return mean, mean, mean, n
    boot = stats.bootstrap((x,), np.mean, confidence_level=confidence, n_resamples=2000,
                           method="percentile", rng=np.random.default_rng(0))
    return mean, float(boot.confidence_interval.low), float(boot.confidence_interval.high), n


def auc_ci(labels, values, confidence: float | None = 0.95):
    """ROC AUC of ``values`` for the binary ``labels`` (1 = positive) from ranks (the Mann-Whitney U
    statistic over n_pos x n_neg, ties counted half; equal to ``sklearn.metrics.roc_auc_score``).
    With ``confidence``: ``(auc, low, high)``, a percentile bootstrap over items
    (``scipy.stats.bootstrap``, 2,000 resamples; a resample with one class only counts as the
    full-sample AUC). NaN when one class is missing."""
    import math

    import numpy as np
    from scipy import stats
    from scipy.stats import rankdata

    labels, values = np.asarray(labels), np.asarray(values, dtype=float)

    def auc(y, s):
        pos = y == 1
        n_pos, n_neg = int(pos.sum()), int((~pos).sum())
        if n_pos == 0 or n_neg == 0:
            return math.nan
        ranks = rankdata(s)
        return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))

    full = auc(labels, values)
    if confidence is None:
        return full
    if full != full:
        return math.nan, math.nan, math.nan

    def statistic(y, s):
        value = auc(y, s)
        return full if value != value else value

    boot = stats.bootstrap((labels, values), statistic, paired=True, vectorized=False, n_resamples=2000,
                           confidence_level=confidence, method="percentile", rng=np.random.default_rng(0))
    return full, float(boot.confidence_interval.low), float(boot.confidence_interval.high)


def auc_difference_ci(labels, after, before, confidence: float = 0.95) -> dict:
    """Paired difference of two ROC AUCs on the same items (``after`` − ``before``, e.g. a fine-tuned
    model's scores against its base model's): ``{"n", "before", "after", "delta", "ci_low", "ci_high"}``,
    the interval a percentile bootstrap over items (``scipy.stats.bootstrap`` with ``paired=True``,
    2,000 resamples): each resample draws the same items for both systems, so their correlation
    narrows the interval, as in a paired test. A resample with one class only counts as the
    full-sample difference."""
    import numpy as np
    from scipy import stats

    labels = np.asarray(labels)
    after, before = np.asarray(after, dtype=float), np.asarray(before, dtype=float)
    if not len(labels) == len(after) == len(before):
        raise ValueError(f"auc_difference_ci: {len(labels)} labels, {len(after)} and {len(before)} scores: one each per item")
    a, b = auc_ci(labels, after, None), auc_ci(labels, before, None)
    full = a - b

    def statistic(y, s_after, s_before):
        value = auc_ci(y, s_after, None) - auc_ci(y, s_before, None)
        return full if value != value else value

    out = {"n": int(len(labels)), "before": b, "after": a, "delta": full, "ci_low": float("nan"), "ci_high": float("nan")}
    if full == full:
        boot = stats.bootstrap((labels, after, before), statistic, paired=True, vectorized=False, n_resamples=2000,
                               confidence_level=confidence, method="percentile", rng=np.random.default_rng(0))
        out.update(ci_low=float(boot.confidence_interval.low), ci_high=float(boot.confidence_interval.high))
    return out


def holm(p_values):
    """Holm's step-down correction of several p-values (controls the chance of *any* false
    rejection among them): sort ascending, multiply the i-th smallest (0-based) by ``m - i``, make
    the sequence non-decreasing, cap at 1 (the rule of statsmodels'
    ``multipletests(p, method="holm")``, which is not part of this stack).

    In: a list, dict or pandas Series of p-values. Out: the adjusted p-values in the same shape
    and order. A NaN p-value (a test that could not be run) stays NaN and does not count in ``m``.
    """
    import math

    if isinstance(p_values, pd.Series):
        return pd.Series(holm(p_values.tolist()), index=p_values.index, name=p_values.name)
    if isinstance(p_values, dict):
        return dict(zip(p_values, holm(list(p_values.values()))))
    ps = [float(p) for p in p_values]
    finite = [i for i, p in enumerate(ps) if not math.isnan(p)]
    adjusted, running = [float("nan")] * len(ps), 0.0
    for rank, i in enumerate(sorted(finite, key=lambda i: ps[i])):
        running = max(running, min(1.0, (len(finite) - rank) * ps[i]))
        adjusted[i] = running
    return adjusted


def compare_paired(per_query: dict[str, pd.DataFrame], baseline: str, metric: str = "nDCG@10",
                   holm_correction: bool = False, **kwargs) -> pd.DataFrame:
    """One row per system: its mean ``metric`` (column ``mean``) and, against ``baseline``, the difference in points
    with a 95% CI, the paired randomization test's p-value, queries up/down and a verdict.

    In: ``{system: evaluate_run(qrels, run, per_query=True)}`` over the same queries; other keyword
    arguments go to :func:`paired_test` (e.g. ``strata``, ``seed``). The p-values are per
    comparison; with ``holm_correction=True`` a column ``p (Holm)`` corrects them for the number
    of comparisons in the table (:func:`holm`) and the verdict uses the corrected p-value.
    """
    if baseline not in per_query:
        raise KeyError(f"baseline {baseline!r} is not one of the systems: {', '.join(per_query)}")
    tests = {system: paired_test(per_query[baseline][metric], table[metric], **kwargs)
             for system, table in per_query.items() if system != baseline}
    adjusted = holm({s: t["p_value"] for s, t in tests.items()}) if holm_correction else {}
    rows = {}
    for system, table in per_query.items():
        row = {"mean": round(float(table[metric].mean()), 4)}
        if system != baseline:
            t = tests[system]
            row.update({"Δ (pts)": round(100 * t["delta"], 1),
                        "95% CI (pts)": f"[{100 * t['ci_low']:+.1f}, {100 * t['ci_high']:+.1f}]",
                        "p": round(t["p_value"], 4)})
            if holm_correction:
                row["p (Holm)"] = round(adjusted[system], 4)
            row.update({"queries up / down": f"{t['up']} / {t['down']}",
                        f"vs {baseline}": verdict({**t, "p_value": adjusted.get(system, t["p_value"])})})
        rows[system] = row
    out = pd.DataFrame.from_dict(rows, orient="index")
    out.index.name = f"{metric}, {len(per_query[baseline])} queries"
    return out.fillna("")


def evaluate_slices(qrels: dict, runs: dict[str, dict], query_meta: dict, field: str = "slice",
                    metrics=METRICS) -> pd.DataFrame | None:
    """Score each run on each value of a query metadata ``field`` (e.g. pydocs' ``slice``).

    In: qrels, ``{system: run}``, ``{qid: metadata dict}``. Out: a DataFrame indexed by
    (``"<value> (<n> q)"``, system), one column per metric — or ``None`` when some query lacks
    the field (a dataset without that annotation), so a notebook can say "skipped" instead of failing.
    """
    values = {q: (query_meta.get(q) or {}).get(field) for q in qrels}
    if not qrels or any(v is None for v in values.values()):
        return None
    rows = {}
    for value in sorted(set(values.values()), key=str):
        sub = {q: r for q, r in qrels.items() if values[q] == value}
        for system, run in runs.items():
            rows[(f"{value} ({len(sub)} q)", system)] = evaluate_run(sub, run, metrics=metrics)
    out = pd.DataFrame.from_dict(rows, orient="index")
    out.index.names = [field, "system"]
    return out
