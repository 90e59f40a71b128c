"""Notebook 07: a simulated year of traffic, label-free drift monitors, retraining policies.

What is simulated: the data never changes; we only decide *when* each passage and question
"arrives". Questions arrive in groups (a pydocs ``module``, a faqs ``source``) so later months ask
about things an early fine-tune never saw. In a dataset without such metadata every question is a
group of its own (arrival by a stable hash of its id: no topic drift, but the same month sizes).
Each month's labelled test questions are drawn so that no question is used in two months.
"""
from __future__ import annotations

import contextlib
import io
import re
import time

import numpy as np

from .data import seeded_order

GROUP_FIELDS = ("module", "source")


def group_field(query_meta: dict) -> str | None:
    """The query-metadata field that groups questions by topic (``module`` for pydocs, ``source``
    for faqs), or None when no query carries one (then arrival falls back to a hash)."""
    for field in GROUP_FIELDS:
        if query_meta and all(field in (m or {}) for m in query_meta.values()):
            return field
    return None


def _split_groups(sizes: dict[str, int], n_months: int, first_share: float, seed: int) -> dict[str, int]:
    """Assign groups (name -> size) to months: ``first_share`` of the items in month 0, the rest
    spread evenly; groups in a seeded stable-hash order. Every month gets at least one group."""
    if len(sizes) < n_months:
        raise ValueError(f"{len(sizes)} groups cannot fill {n_months} months")
    order = seeded_order(sizes, seed)
    total, n_groups = sum(sizes.values()), len(order)
    # cumulative size at which month m closes: first_share in month 0, the rest evenly
    bounds = [total] if n_months == 1 else [
        first_share * total + (1 - first_share) * total * m / (n_months - 1) for m in range(n_months)]
    out, cum, prev = {}, 0, 0
    for i, g in enumerate(order):
        raw = min(n_months - 1, sum(cum >= b for b in bounds))
        lowest = n_months - (n_groups - i)  # enough groups left for one per remaining month
        month = 0 if i == 0 else min(n_months - 1, max(prev, lowest, min(raw, prev + 1)))
        out[g], cum, prev = month, cum + sizes[g], month
    return out


def month_schedule(corpus: dict, queries: dict, qrels_by_split: dict, query_meta: dict,
                   n_months: int, first_share: float = 0.3, seed: int = 42) -> tuple[dict, dict, str]:
    """When each passage and question arrives, over ``n_months`` months (0 = the first).

    Out: ``(doc_month, query_month, how)``. Questions arrive in groups: the values of a grouping
    field (:func:`group_field`), or, without one, every question a group of its own. Groups go to
    months in a seeded stable-hash order, about ``first_share`` of the questions in month 0 and
    the rest spread evenly, every month at least one group (:func:`_split_groups`), so month 0
    always has training questions when the train split is not tiny. A judged passage arrives with
    its earliest question (a question never arrives before its answer); other passages by a stable
    hash of their id, the hash order cut into ``n_months`` equal runs. Deterministic.
    Raises ValueError when there are fewer groups than months.
    """
    judged = {}
    for qr in qrels_by_split.values():
        for q, docs in qr.items():
            judged[q] = [d for d, s in docs.items() if s > 0 and d in corpus]
    field = group_field({q: query_meta.get(q, {}) for q in judged})
    groups = {q: str(query_meta[q][field]) if field else q for q in judged}
    sizes = {}
    for g in groups.values():
        sizes[g] = sizes.get(g, 0) + 1
    g_month = _split_groups(sizes, n_months, first_share, seed)
    doc_month, query_month = {}, {}
    for q, g in groups.items():
        query_month[q] = g_month[g]
        for d in judged[q]:
            doc_month[d] = min(doc_month.get(d, n_months), g_month[g])
    # passages nobody asks about: sorted by a stable hash of their id, cut into n_months equal runs
    by_hash = seeded_order(corpus, seed)
    for i, d in enumerate(by_hash):
        doc_month.setdefault(d, i * n_months // len(by_hash))
    how = (f"arrival by query metadata field '{field}' ({len(sizes)} groups)" if field else
           f"no module/source metadata: each of the {len(sizes)} questions is its own group, "
           "arriving at a month set by a stable hash of its id (no topic drift)")
    return doc_month, query_month, how


def monthly_test_sets(query_month: dict, qids, n_months: int, n: int, new_share: float = 0.5,
                      seed: int = 42) -> dict[int, list[str]]:
    """Each month's labelled test questions, no question in two months.

    In: ``{qid: arrival month}``, the labelled questions to draw from, the number of months, ``n``
    questions a month. Month by month: ``new_share`` of ``n`` (as far as there are) from the
    questions that arrived that month, the rest from earlier arrivals not yet used, topped up with
    more new ones when too few old ones are left; fewer than ``n`` when the arrivals run out. The
    months are thus independent samples of questions (months can be bootstrap strata).
    Out: ``{month: sorted qids}``; a deterministic, seeded sample.
    """
    used, out = set(), {}
    for month in range(n_months):
        new = seeded_order((q for q in qids if query_month.get(q) == month and q not in used), seed, salt=str(month))
        old = seeded_order((q for q in qids if query_month.get(q, month + 1) < month and q not in used), seed, salt=str(month))
        take_new = min(len(new), int(round(n * new_share)) if old else n)
        picked = new[:take_new] + old[: n - take_new]
        picked += new[take_new:][: n - len(picked)]
        out[month] = sorted(picked)
        used.update(picked)
    return out


# ------------------------------------------------------------------------------ label-free monitors
_TOKEN = re.compile(r"[a-z0-9_]+")


def terms(text: str) -> list[str]:
    """Lower-cased word tokens of a question (letters, digits, underscore)."""
    return _TOKEN.findall(text.lower())


def unseen_term_share(month_queries: list[str], train_queries: list[str]) -> float:
    """Share of the month's query tokens never seen in the training questions (0..1)."""
    seen = {t for q in train_queries for t in terms(q)}
    toks = [t for q in month_queries for t in terms(q)]
    return float(np.mean([t not in seen for t in toks])) if toks else 0.0


def centroid_distance(month_emb, train_emb) -> float:
    """Cosine distance (1 - cosine) between the mean embedding of the month's questions and the
    mean embedding of the training questions. In: two ``(n, dim)`` arrays or tensors."""
    a = np.asarray(month_emb, dtype=float).mean(axis=0)
    b = np.asarray(train_emb, dtype=float).mean(axis=0)
    return float(1.0 - a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def top1_score(run: dict) -> float:
    """Mean top-1 retrieval score over a run ``{qid: {doc_id: score}}``: a confident retriever
    scores high; new topics tend to pull it down."""
    tops = [max(docs.values()) for docs in run.values() if docs]
    return float(np.mean(tops)) if tops else 0.0


# ------------------------------------------------------------------------------ policies
def serving_model(retrain_months: list[int], month: int) -> int:
    """Which model serves ``month``: a retrain decided at the end of month ``r`` uses the data up
    to ``r`` and serves from ``r + 1``. Models are named by their data cut-off month; 0 is the
    first fine-tune (it serves month 0 too)."""
    return max([0] + [r for r in retrain_months if r < month])


def fixed_schedule(n_months: int, every: int) -> list[int]:
    """Retrain decisions of a calendar policy: at the end of months every-1, 2*every-1, ... (the
    last month excluded: nothing would be served by it). ``every=0``: never."""
    if every <= 0:
        return []
    return [m for m in range(every - 1, n_months - 1, every)]


def triggered_schedule(monitor, n_months: int, threshold: float) -> tuple[list[int], list[float]]:
    """Retrain when a label-free monitor crosses ``threshold``.

    ``monitor(month, model)`` returns the signal of ``month``'s traffic under the model that serves
    it (higher = more drift). Walks the year: at the end of each month, if the signal is above the
    threshold, retrain on the data up to that month (served from the next month).
    Out: ``(retrain months, the signal of each month as seen by the serving model)``.
    """
    retrains, seen = [], []
    for m in range(n_months):
        value = monitor(m, serving_model(retrains, m))
        seen.append(value)
        if value > threshold and m < n_months - 1:
            retrains.append(m)
    return retrains, seen


def calibrate_threshold(values: list[float], margin: float = 0.0) -> float:
    """Threshold from the first months (the model still fresh): the largest value seen plus ``margin``."""
    if not values:
        raise ValueError("need at least one calibration month")
    return float(max(values) + margin)


def gap_recovered(never: float, policy: float, monthly: float) -> float:
    """Share of the never→monthly year-mean gap that ``policy`` recovers: (policy - never) /
    (monthly - never). NaN when monthly is not better than never (no gap to recover)."""
    gap = monthly - never
    if gap <= 0:
        return float("nan")
    return float((policy - never) / gap)


# ------------------------------------------------------------------------------ the shared retrain
def finetune(base_path: str, train_dataset, settings: dict, output_dir: str, seed: int = 42,
             precision: str = "fp32", progress: bool = False):
    """Notebook 07's retrain: notebook 01's training step (``lessons.embedder_loss`` and
    ``lessons.embedder_trainer``, defined on screen there), from the base model each time.

    In: the base model folder, a ``datasets.Dataset`` with ``anchor``/``positive`` columns,
    ``settings`` (``max_seq_length``, ``batch_size``, ``epochs``, ``learning_rate``, ``warmup``,
    ``logging_steps``; no ``loss`` key: MultipleNegativesRankingLoss), a checkpoint folder (nothing
    is saved there); ``precision``: "bf16" (steps under autocast) or "fp32"; ``progress``: let the
    trainer's bars reach the screen.
    Out: ``(model, seconds)``.
    """
    import torch
    from sentence_transformers import SentenceTransformer

    from .lessons import embedder_loss, embedder_trainer

    torch.manual_seed(seed)
    model = SentenceTransformer(base_path)
    model.max_seq_length = settings["max_seq_length"]
    start = time.perf_counter()
    with contextlib.nullcontext() if progress else contextlib.redirect_stderr(io.StringIO()):
        trainer = embedder_trainer(model, train_dataset.select_columns(["anchor", "positive"]),
                                   embedder_loss(model, settings), output_dir, settings, seed=seed,
                                   precision=precision)
        trainer.train()
        trainer.accelerator.unwrap_model(model, keep_fp32_wrapper=False)  # after bf16: forward out of autocast again
    return model, time.perf_counter() - start
