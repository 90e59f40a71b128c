"""Answer-or-refuse systems without training, and the gated system (notebooks 03, 04 and 06).

* no-model baselines: :func:`overlap_answer` (answer from the source that shares most of the
  question's content words, refuse below a threshold), always answer from Source 1
  (``generation.rule_answer`` with no threshold), always refuse;
* :func:`decide` — the fine-tuned generator with its answer-or-refuse threshold moved: refuse
  when its first-token lean (``generator_training.decision_scores``) is at or above a threshold
  chosen on dev (:func:`choose_decision_threshold`), else its answer;
* :func:`gated_answers` — CRAG-style: the search stack's confidence in Source 1 decides where it
  is sure (refuse below ``low``, answer at or above ``high``), the fine-tuned generator decides in
  between, and the generator writes every answer (where the stack says "answer" and the model
  refused, its answer forced to start with a citation: :func:`generation.generate`'s ``prefix``).
  :func:`choose_band` picks ``low`` and ``high`` on dev.
"""
from __future__ import annotations

from .generation import REFUSAL, content_words, extractive_answer, score_answer, summarize, task_success

__all__ = ["overlap_answer", "choose_overlap_threshold", "top_score", "decide", "choose_decision_threshold",
           "forced_answers", "gated_answers", "answers_when_told", "choose_band"]


def _overlaps(record: dict) -> list[float]:
    q = set(content_words(record["question"]))
    return [len(q & set(content_words(p["text"]))) / len(q) if q else 0.0 for p in record["passages"]]


def overlap_answer(record: dict, threshold: float) -> str:
    """The overlap rule: the share of the question's content words found in each source; refuse
    when the best share is below ``threshold``, else copy that source's object name and first
    sentence and cite it (ties: the lower source number)."""
    shares = _overlaps(record)
    best = max(range(len(shares)), key=lambda i: (shares[i], -i))
    return REFUSAL if shares[best] < threshold else extractive_answer(record["passages"][best]["text"], best + 1, True)


def choose_overlap_threshold(records: list[dict]) -> float:
    """The :func:`overlap_answer` threshold with the highest task success on ``records`` (dev),
    among every best-source share seen (ties: the lowest)."""
    candidates = sorted({max(_overlaps(r)) for r in records} | {1.01})
    success = {t: summarize([score_answer(overlap_answer(r, t), r) for r in records])["task success"] for t in candidates}
    best = max(success.values())
    return min(t for t, v in success.items() if v == best)


def top_score(record: dict) -> float:
    """The stack's confidence in Source 1 (the number ``generation.rule_answer`` thresholds)."""
    return float(record["passages"][0]["score"])


def decide(records: list[dict], scores: list[float], free: list[str], forced: list[str | None], threshold: float) -> list[str]:
    """The generator's answers with its decision threshold moved: the refusal where its lean to
    refuse (``scores``) is at or above ``threshold``; otherwise an answer — its own (``free``) if it
    answered, else ``forced`` (its answer made to start with a citation)."""
    out = []
    for r, s, a, f in zip(records, scores, free, forced):
        if s >= threshold:
            out.append(REFUSAL)
        elif score_answer(a, r)["refusal"]:
            if f is None:
                raise ValueError(f"record {r['id']!r}: the threshold says answer and the model refused, but no forced answer was given")
            out.append(f)
        else:
            out.append(a)
    return out


def choose_decision_threshold(records: list[dict], scores: list[float], free: list[str], forced: list[str | None]) -> float:
    """The :func:`decide` threshold with the highest task success on ``records`` (dev), among the
    midpoints between neighbouring scores (plus one below and one above all); ties: the one
    closest to 0, where greedy decoding puts it."""
    values = sorted(set(scores))
    candidates = [values[0] - 1.0] + [(a + b) / 2 for a, b in zip(values, values[1:])] + [values[-1] + 1.0]
    success = {t: summarize([score_answer(a, r) for a, r in zip(decide(records, scores, free, forced, t), records)])["task success"]
               for t in candidates}
    best = max(success.values())
    return min((t for t, v in success.items() if v == best), key=abs)


def forced_answers(model, tokenizer, records: list[dict], free: list[str], max_new_tokens: int = 64,
                   batch_size: int = 8, precision: str = "fp32") -> list[str | None]:
    """For :func:`decide` and :func:`gated_answers`: where the model refused (``free`` = its greedy
    answers to ``records``, instruction-only prompt), its answer made to start with a citation
    (``generation.generate(..., prefix="[Source")``); None where it answered."""
    from .generation import build_messages, generate, parse_answer

    refused = [i for i, (a, r) in enumerate(zip(free, records)) if parse_answer(a, len(r["passages"]))["refusal"]]
    prompts = [build_messages(records[i]["question"], [p["text"] for p in records[i]["passages"]], few_shot=False)
               for i in refused]
    made = generate(model, tokenizer, prompts, max_new_tokens=max_new_tokens, batch_size=batch_size, prefix="[Source",
                    precision=precision)[0] if refused else []
    out: list[str | None] = [None] * len(records)
    for i, a in zip(refused, made):
        out[i] = a
    return out


def gated_answers(records: list[dict], decided: list[str], answers: list[str], low: float, high: float) -> list[str]:
    """The gated system's answers. In: records; ``decided`` = the generator's own choice for each
    (greedy, or :func:`decide`'s: an answer or the refusal); ``answers`` = its answer for each, the
    one it writes when told to answer (never the refusal: where it refused, the answer made to start
    with a citation). Stack confidence below ``low``: the refusal; at or above ``high``: ``answers``;
    in between: ``decided``."""
    out = []
    for r, d, a in zip(records, decided, answers):
        s = top_score(r)
        out.append(REFUSAL if s < low else a if s >= high else d)
    return out


def answers_when_told(free: list[str], forced: list[str | None]) -> list[str]:
    """For :func:`gated_answers`: the model's own answer where it answered (``forced`` is None
    there), else its forced answer."""
    return [a if f is None else f for a, f in zip(free, forced)]


def choose_band(records: list[dict], decided: list[str], answers: list[str], grid: int = 21):
    """``(low, high)`` for :func:`gated_answers` with the highest task success on ``records`` (dev):
    every pair ``low <= high`` among ``grid`` quantiles of the Source-1 scores (plus one below all
    and one above all). Ties: the widest band (the generator decides as much as dev allows).
    Out: ``(low, high, table)``, the table with one row per pair tried."""
    import numpy as np
    import pandas as pd

    scores = np.array([top_score(r) for r in records])
    edges = sorted(set(np.quantile(scores, np.linspace(0, 1, grid)).round(6)) | {scores.min() - 1, scores.max() + 1})
    rows = []
    for i, low in enumerate(edges):
        for high in edges[i:]:
            out = gated_answers(records, decided, answers, low, high)
            ok = [task_success(score_answer(a, r)) for a, r in zip(out, records)]
            band = float(((scores >= low) & (scores < high)).mean())
            rows.append({"low": float(low), "high": float(high), "share decided by the model": band,
                         "task success": float(np.mean(ok))})
    table = pd.DataFrame(rows)
    best = table[table["task success"] == table["task success"].max()].sort_values("share decided by the model", ascending=False)
    return float(best.iloc[0]["low"]), float(best.iloc[0]["high"]), table
