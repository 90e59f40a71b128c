"""The whole stack, stage by stage: what notebook 06 needs that no earlier notebook had.

* the ablation grid: every {embedder} x {rewriter} x {reranker} combination, named the same way
  every time (:func:`ablation_grid`, :func:`stack_name`, :func:`run_tag`);
* reciprocal rank fusion of several runs (:func:`reciprocal_rank_fusion`), for the hybrid
  BM25 + dense reference;
* re-ranking with a cache of cross-encoder scores, so stacks that share (query, passage) pairs
  score each pair once (:func:`rerank_cached`), and the final order of a stack
  (:func:`final_run`: the reranker's order or notebook 02's blend);
* TREC run files (``qid Q0 docid rank score tag``) written and read back (:func:`write_trec_run`,
  :func:`read_trec_run`);
* end-to-end scoring of what one stack showed the generator (``generator_data.shown_record``
  builds those records): answer token-F1 (:func:`token_f1`), user-level success
  (:func:`e2e_success`) and which stage lost a failed answer (:func:`attribute_error`);
* Holm's correction of several p-values (:func:`holm`), a bootstrap interval of a mean
  (:func:`mean_ci`) and per-stage latency and CPU cost (:func:`timed`, :func:`cost_row`).
"""
from __future__ import annotations

import itertools
import re
import string
import time
from collections import Counter
from pathlib import Path

from .retrieval import passage_text

#: The stages that can be base or fine-tuned, in pipeline order, and their two settings.
STAGES = {"embedder": ("base", "fine-tuned"), "rewriter": ("none", "fine-tuned"), "reranker": ("none", "fine-tuned")}
_SHORT = {"embedder": "emb", "rewriter": "rw", "reranker": "rr"}


# ----------------------------------------------------------------------------- the grid
def stack_name(combo: dict) -> str:
    """Display name of one stack: ``{"embedder": "base", "rewriter": "none", "reranker":
    "fine-tuned"}`` -> ``"emb base · rw none · rr fine-tuned"`` (stages in pipeline order)."""
    return " · ".join(f"{_SHORT[s]} {combo[s]}" for s in STAGES)


def run_tag(name: str) -> str:
    """A name without spaces, for TREC run files and file names: ``"emb base · rw none"`` ->
    ``"emb-base_rw-none"``; other characters outside ``[A-Za-z0-9_+-]`` become ``-``."""
    parts = [re.sub(r"[^A-Za-z0-9_+-]+", "-", p.strip()) for p in name.split("·")]
    return "_".join(p.strip("-") for p in parts if p.strip("-")) or "run"


def ablation_grid(stages: dict[str, tuple] = STAGES) -> list[dict]:
    """Every combination of the stages' settings, base settings first (``itertools.product`` in
    the order of ``stages``: the first entry is the all-base stack, the last the all-fine-tuned).

    Out: ``[{"name", <stage>: <setting>, ...}]`` — 8 stacks for :data:`STAGES`, names from
    :func:`stack_name`, all different."""
    out = []
    for values in itertools.product(*stages.values()):
        combo = dict(zip(stages, values))
        out.append({"name": stack_name(combo) if set(stages) == set(STAGES) else " · ".join(f"{s} {v}" for s, v in combo.items()),
                    **combo})
    return out


def one_at_a_time(stages: dict[str, tuple] = STAGES) -> list[dict]:
    """The path from the all-base to the all-fine-tuned stack switching one stage at a time, in
    pipeline order: 4 stacks for :data:`STAGES` (a subset of :func:`ablation_grid`)."""
    combo = {s: v[0] for s, v in stages.items()}
    out = [{"name": stack_name(combo), **combo}]
    for s, v in stages.items():
        combo = {**combo, s: v[-1]}
        out.append({"name": stack_name(combo), **combo})
    return out


# ----------------------------------------------------------------------------- fusion and re-ranking
def _order(doc_scores: dict[str, float]) -> list[str]:
    from .metrics import ranked

    return ranked(doc_scores)


def reciprocal_rank_fusion(runs: list[dict], k: int = 60, depth: int | None = None) -> dict[str, dict[str, float]]:
    """Reciprocal rank fusion (Cormack et al., 2009): ``score(d) = sum over runs of 1 / (k + rank(d))``
    with 1-based ranks in each run's trec_eval order; a document missing from a run adds nothing.

    In: runs ``{qid: {doc_id: score}}`` (their scores only decide the order), ``k`` (60 in the
    paper), ``depth`` = how many top documents of each run take part (None: all).
    Out: the fused run over the union of the queries, ``{qid: {doc_id: rrf score}}``."""
    fused: dict[str, dict[str, float]] = {}
    for run in runs:
        for qid, docs in run.items():
            acc = fused.setdefault(qid, {})
            for rank, d in enumerate(_order(docs)[:depth] if depth else _order(docs), start=1):
                acc[d] = acc.get(d, 0.0) + 1.0 / (k + rank)
    return fused


def rerank_cached(cross_encoder, corpus: dict, queries: dict[str, str], run: dict, k: int = 40,
                  cache: dict | None = None, batch_size: int = 32) -> dict[str, dict[str, float]]:
    """Cross-encoder scores of each query's top-``k`` candidates in ``run``, scoring only the
    (query text, passage) pairs that ``cache`` does not hold yet (stacks that share candidates,
    e.g. base and fine-tuned embedders on the same query, share most pairs).

    In: a ``sentence_transformers.CrossEncoder`` (single score), corpus, ``{qid: query text}``, a
    first-stage run, ``cache`` = ``{(query text, doc_id): score}`` (updated in place).
    Out: ``{qid: {doc_id: cross-encoder score}}`` over the top-``k`` candidates (as
    ``retrieval.rerank``, without its per-query latencies: see :func:`timed` for those)."""
    cache = {} if cache is None else cache
    cands = {q: _order(run[q])[:k] for q in queries if q in run}
    todo = list(dict.fromkeys((queries[q], d) for q, ds in cands.items() for d in ds if (queries[q], d) not in cache))
    if todo:
        scores = cross_encoder.predict([(t, passage_text(corpus[d])) for t, d in todo], batch_size=batch_size,
                                       show_progress_bar=False, convert_to_numpy=True).reshape(-1)
        if len(scores) != len(todo):
            raise ValueError("re-ranking needs a single-score cross-encoder (CrossEncoder(..., num_labels=1))")
        cache.update({pair: float(s) for pair, s in zip(todo, scores)})
    return {q: {d: cache[(queries[q], d)] for d in ds} for q, ds in cands.items()}


def final_run(first_stage: dict, reranked: dict | None, weight: float | None, k: int = 40) -> dict[str, dict[str, float]]:
    """The order a stack shows, over the first stage's top-``k`` candidates: the first stage's
    own order when ``reranked`` is None; the reranker's order when ``weight`` is None or >= 1;
    otherwise notebook 02's blend ``rerankers.interpolate(first stage, reranked, weight)``
    (scores min-max scaled per query). Out: ``{qid: {doc_id: score}}``, ``k`` docs per query."""
    from .rerankers import interpolate

    top = {q: {d: docs[d] for d in _order(docs)[:k]} for q, docs in first_stage.items()}
    if reranked is None:
        return top
    if weight is None or weight >= 1:
        return {q: dict(reranked[q]) for q in top if q in reranked}
    return interpolate(top, reranked, weight)


# ----------------------------------------------------------------------------- TREC run files
def write_trec_run(path: str | Path, run: dict[str, dict[str, float]], tag: str, depth: int | None = None) -> Path:
    """Write ``run`` as a TREC run file, one line per (query, document): ``qid Q0 docid rank score
    tag`` (rank 1-based in trec_eval order, score with 6 decimals), queries in sorted order; the
    format ``trec_eval``, ``pytrec_eval`` and ``ranx`` read. ``tag`` must have no whitespace
    (:func:`run_tag`). Written atomically; returns the path."""
    from .config import atomic_write_text

    if not tag or re.search(r"\s", tag):
        raise ValueError(f"a TREC run tag cannot be empty or contain whitespace: {tag!r} (use stack.run_tag)")
    lines = []
    for qid in sorted(run):
        for rank, d in enumerate(_order(run[qid])[:depth] if depth else _order(run[qid]), start=1):
            if re.search(r"\s", str(qid) + str(d)):
                raise ValueError(f"query or document id with whitespace cannot go into a TREC run: {qid!r} {d!r}")
            lines.append(f"{qid} Q0 {d} {rank} {run[qid][d]:.6f} {tag}\n")
    atomic_write_text(path, "".join(lines))
    return Path(path)


def read_trec_run(path: str | Path) -> dict[str, dict[str, float]]:
    """Read a TREC run file back into ``{qid: {doc_id: score}}`` (the ranks are implied by the
    scores). Raises ValueError naming the line when a line does not have six fields."""
    run: dict[str, dict[str, float]] = {}
    for n, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 6:
            raise ValueError(f"{path}, line {n}: expected 'qid Q0 docid rank score tag', got {line!r}")
        run.setdefault(parts[0], {})[parts[2]] = float(parts[4])
    return run


# ----------------------------------------------------------------------------- end-to-end records
def e2e_success(score: dict, answer_in_index: bool = True) -> bool:
    """User-level success of one scored answer (``generation.score_answer`` on a
    ``generator_data.shown_record``): an in-domain question whose answer is in the index is a
    success only when the answer is compliant and cites a passage holding the answer; an
    out-of-scope question, or an in-domain one whose answer is not in the index
    (``answer_in_index=False``: no stack could show it), when it refuses. Unlike
    ``generation.task_success``, a refusal of an in-domain question whose answering passage is in
    the index but was not shown (kind ``"unanswerable"``) is a failure: the stack lost the answer."""
    from .generation import task_success

    if not answer_in_index:
        return task_success(score)
    return score["kind"] != "unanswerable" and task_success(score)


_ARTICLES = re.compile(r"\b(a|an|the)\b")
_CITE = re.compile(r"\[Source \d+\]")


def answer_tokens(text: str) -> list[str]:
    """SQuAD-style normalised tokens of an answer: ``[Source N]`` citations removed, lower-cased,
    punctuation and the articles a/an/the dropped, split on whitespace."""
    text = _CITE.sub(" ", text or "").lower()
    text = "".join(" " if ch in string.punctuation else ch for ch in text)
    return _ARTICLES.sub(" ", text).split()


def token_f1(prediction: str, reference: str) -> float:
    """Token-level F1 between an answer and the reference answer (SQuAD's definition, on
    :func:`answer_tokens`): the harmonic mean of the shared-token precision and recall (tokens
    counted with multiplicity). 1.0 when both are empty, 0.0 when only one is."""
    p, r = answer_tokens(prediction), answer_tokens(reference)
    if not p or not r:
        return float(p == r)
    common = sum((Counter(p) & Counter(r)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(p), common / len(r)
    return 2 * precision * recall / (precision + recall)


#: The stages :func:`attribute_error` can blame, in pipeline order.
ERROR_STAGES = ("not in candidates (retriever)", "in candidates, below top-k (reranker did not lift it)",
                "pushed out of top-k (reranker)", "shown, generator erred",
                "nothing to answer from (out of scope, or not in the index), generator answered")


def attribute_error(gold: str | None, candidates: list[str], shown: list[str], success: bool,
                    first_stage_top: list[str] | None = None) -> str | None:
    """Which stage lost one failed answer (None when ``success``).

    In: the answering passage (None for an out-of-scope question, or one whose answer is not in the index), the first stage's candidates
    (what the retriever — after the rewriter, if any — passed on), the ``shown`` top-k, whether
    the answer succeeded (:func:`e2e_success`), and the first stage's own top-k
    (``first_stage_top``; None when the stack has no reranker).
    Out: one of :data:`ERROR_STAGES` — the answering passage never reached the candidates; it did,
    but is not in the shown top-k (the reranker pushed it out when the first stage alone would have
    shown it, else it did not lift it); it was shown and the generator still erred; or a question
    with nothing to answer from (out of scope, or its answer not in the index) was answered."""
    if success:
        return None
    if gold is None:
        return ERROR_STAGES[4]
    if gold not in candidates:
        return ERROR_STAGES[0]
    if gold not in shown:
        if first_stage_top is not None and gold in first_stage_top:
            return ERROR_STAGES[2]
        return ERROR_STAGES[1]
    return ERROR_STAGES[3]


# ----------------------------------------------------------------------------- statistics
# One definition of each lives in ``metrics``; re-exported here for notebook 06's calls.
from .metrics import holm, mean_ci  # noqa: E402,F401


# ----------------------------------------------------------------------------- latency and cost
def timed(fn, items: list, *args, **kwargs) -> tuple[list, list[float], float]:
    """Call ``fn(item, *args, **kwargs)`` once per item, one at a time.
    Out: ``(results, wall seconds per item, CPU seconds of the whole loop)`` — CPU time is
    ``time.process_time`` of this process (every thread), so on 2 cores it can exceed wall time."""
    results, seconds = [], []
    cpu0 = time.process_time()
    for item in items:
        t0 = time.perf_counter()
        results.append(fn(item, *args, **kwargs))
        seconds.append(time.perf_counter() - t0)
    return results, seconds, time.process_time() - cpu0


def cost_row(seconds: list[float], cpu_seconds: float, note: str = "") -> dict:
    """One row of the latency table from per-query wall seconds and the CPU seconds they took:
    ``{"queries", "p50 ms", "p95 ms", "queries/s", "CPU s per 1,000 queries", "how measured"}``
    (p50/p95 from ``metrics.latency_summary``; queries/s = queries / total wall time)."""
    from .metrics import latency_summary

    s = latency_summary(seconds)
    n, total = len(seconds), sum(seconds)
    return {"queries": n, "p50 ms": s["median_ms"], "p95 ms": s["p95_ms"],
            "queries/s": n / total if total > 0 else float("nan"),
            "CPU s per 1,000 queries": 1000 * cpu_seconds / n if n else float("nan"), "how measured": note}
