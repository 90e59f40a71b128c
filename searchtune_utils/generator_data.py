"""The data the generator learns from and is tested on (notebooks 03 and 04).

Three jobs, each one function a notebook calls on screen:

* **short sources** (:func:`source_text`): each passage as its object name and its first
  sentence — the sentences that matter for the answer-or-refuse decision — so two to three times
  more training rows fit the same CPU minutes than with whole passages;
* **test-like records** (:func:`eval_records`): answerable questions in the search stack's
  order, *near-misses as they happen* (the answering passage taken out of the index: what the
  stack shows then) and out-of-scope questions;
* **minimal pairs** (:func:`minimal_pairs`): the same question twice, once with the answering
  passage shown and once with it replaced by the next passage that cannot answer, the answering
  passage's slot balanced over ``[Source 1]``..``[Source k]`` — the only difference between the
  two halves is the decision the model has to learn.

What "answers" means is one rule, :func:`truly_answers`: the passage documents the same object as
the answering one, or contains the sentence the answer states. No word-overlap filter: a passage
that shares the question's words but documents another object is exactly the near-miss a
generator must learn to refuse.

Records follow ``data.GENERATION_FIELDS`` plus ``kind``, ``qid``, ``gold_name`` and
``gold_sentence`` (what a correct answer names or states: :func:`generation.score_answer`),
``slot`` (the answering passage's source number, 0 when not shown) and, for minimal pairs,
``pair`` (the id shared by both halves).
"""
from __future__ import annotations

import re

from .generation import (CITATION, REFUSAL, _EXACT, _norm, answer_name, oos_order, question_order,
                         reference_answer, truncate_words)

__all__ = ["source_text", "truly_answers", "answerable", "refusal", "shown_record", "eval_records", "minimal_pairs",
           "force_slot", "slot_counts", "slice_name", "SLICES", "HARD_OVERLAP"]


def _first_sentence(text: str) -> str:
    text = " ".join(text.split())
    return re.split(r"(?<=[.!?])\s", text)[0] if text else ""


def source_text(doc: dict, max_words: int = 40) -> str:
    """A passage as the generator sees it: ``"<title>\\n<first sentence>"``, at most ``max_words``
    words in all (the title is a documented object's signature in pydocs)."""
    title = (doc.get("title") or "").strip()
    return truncate_words(f"{title}\n{_first_sentence(doc.get('text') or '')}".strip(), max_words)


def truly_answers(doc: dict, gold: dict, sentence: str) -> bool:
    """Whether ``doc`` answers the question whose answering passage is ``gold`` and whose answer
    states ``sentence``: it documents the same object (same name once the signature is dropped,
    e.g. another part of the same page), or its text contains the sentence."""
    same_object = answer_name(doc.get("title") or "") == answer_name(gold.get("title") or "")
    return same_object or bool(sentence) and _norm(sentence) in _norm(f"{doc.get('title', '')} {doc.get('text', '')}")


def _sources(doc_ids, corpus, scores, max_words):
    out = []
    for d in doc_ids:
        p = {"doc_id": d, "text": source_text(corpus[d], max_words)}
        if scores and d in scores:
            p["score"] = round(float(scores[d]), 6)
        out.append(p)
    return out


def answerable(rid: str, question: str, shown: list[str], gold: str, corpus: dict, sentence: str,
               scores: dict | None = None, max_words: int = 40) -> dict | None:
    """A record whose reference answer cites ``gold`` at its place in ``shown``:
    ``"[Source n] <object name>: <sentence>."``. None when the answer would not be grounded (the
    sentence is not in the gold source as shown) or not unique (another shown source answers too)."""
    passages = _sources(shown, corpus, scores, max_words)
    slot = shown.index(gold) + 1
    name = answer_name(corpus[gold].get("title") or "")
    if not name or not sentence or _norm(sentence) not in _norm(passages[slot - 1]["text"]):
        return None
    if any(truly_answers(corpus[d], corpus[gold], sentence) for d in shown if d != gold):
        return None
    return {"id": rid, "question": question, "passages": passages, "answerable": True,
            "answer": reference_answer(corpus[gold].get("title") or "", sentence, slot, citation_first=True),
            "cited": [slot], "kind": "answerable", "slot": slot, "gold_name": name,
            "gold_sentence": sentence.strip().rstrip(".")}


def refusal(rid: str, question: str, shown: list[str], corpus: dict, kind: str,
            scores: dict | None = None, max_words: int = 40) -> dict:
    """A record whose right answer is the refusal (``kind``: ``"unanswerable"`` or ``"out_of_scope"``)."""
    return {"id": rid, "question": question, "passages": _sources(shown, corpus, scores, max_words),
            "answerable": False, "answer": REFUSAL, "cited": [], "kind": kind, "slot": 0}


def shown_record(rid: str, question: str, shown: list[str], gold: str | None, corpus: dict, sentence: str,
                 scores: dict | None = None, max_words: int = 40) -> dict:
    """What one search stack shows for one question, whatever it shows (notebook 06: the same
    questions on every stack, so nothing is skipped). In: the stack's top-k ``shown`` in its order,
    the answering passage ``gold`` (None: an out-of-scope question) and the sentence the answer states.

    * ``gold`` None: :func:`refusal` of kind ``"out_of_scope"``;
    * a shown passage :func:`truly_answers` (the answering one, or another part of the same object,
      or one containing the sentence): kind ``"answerable"``, the reference cites the answering
      passage's slot (else the first passage that answers) and ``cited`` holds every passage that
      answers — citing any of them is right;
    * none does: the right answer is the refusal, kind ``"unanswerable"`` (the stack lost the answer).

    Out: a record like :func:`answerable`'s / :func:`refusal`'s (``slot`` 0 when the answering
    passage is not shown)."""
    if gold is None:
        return refusal(rid, question, shown, corpus, "out_of_scope", scores, max_words)
    holders = [i for i, d in enumerate(shown, 1) if truly_answers(corpus[d], corpus[gold], sentence)]
    if not holders:
        return refusal(rid, question, shown, corpus, "unanswerable", scores, max_words)
    slot = shown.index(gold) + 1 if gold in shown else 0
    cite = slot or holders[0]
    return {"id": rid, "question": question, "passages": _sources(shown, corpus, scores, max_words), "answerable": True,
            "answer": reference_answer(corpus[gold].get("title") or "", sentence, cite, citation_first=True),
            "cited": holders, "kind": "answerable", "slot": slot,
            "gold_name": answer_name(corpus[gold].get("title") or ""), "gold_sentence": sentence.strip().rstrip(".")}


def _gold(qrels_split: dict, qid: str) -> str:
    return next(d for d, s in qrels_split[qid].items() if s > 0)


def eval_records(split: str, want: dict, corpus: dict, queries: dict, qrels: dict, query_meta: dict,
                 out_of_scope: list[dict], ranked: dict, scores: dict | None = None, k: int = 3,
                 max_words: int = 40, seed: int = 42, skip=()) -> list[dict]:
    """Records that look like use, for dev and test (``want`` = ``{"answerable": n,
    "unanswerable": n, "out_of_scope": n}``), questions taken in :func:`generation.question_order`.

    * answerable: the stack's top ``k`` in its order, for questions whose answering passage is in
      it (its slot is wherever the stack put it);
    * near-miss (``"unanswerable"``): other questions with the answering passage taken out of the
      index — the stack's candidates without every passage that :func:`truly_answers`, top ``k``
      of what is left, in the stack's order (the question is skipped when fewer than ``k`` remain);
    * out-of-scope: a question about another tool and the stack's top ``k`` for it.
    """
    scores, skip = scores or {}, set(skip)
    order = [q for q in question_order(qrels, split, seed) if q in ranked and q not in skip]
    recs, used = [], set()
    for qid in order:
        if sum(r["kind"] == "answerable" for r in recs) >= want.get("answerable", 0):
            break
        gold, sentence = _gold(qrels[split], qid), query_meta.get(qid, {}).get("summary", "")
        if gold in ranked[qid][:k]:
            rec = answerable(f"{split}-ans-{qid}", queries[qid], ranked[qid][:k], gold, corpus, sentence,
                             scores.get(qid), max_words)
            if rec:
                recs.append({**rec, "qid": qid})
                used.add(qid)
    n_near = 0
    for qid in order:
        if n_near >= want.get("unanswerable", 0):
            break
        if qid in used:
            continue
        gold, sentence = _gold(qrels[split], qid), query_meta.get(qid, {}).get("summary", "")
        shown = [d for d in ranked[qid] if not truly_answers(corpus[d], corpus[gold], sentence)][:k]
        if len(shown) == k:
            recs.append({**refusal(f"{split}-near-{qid}", queries[qid], shown, corpus, "unanswerable",
                                   scores.get(qid), max_words), "qid": qid})
            n_near += 1
    oos = [r for r in oos_order(out_of_scope, split, seed) if r["id"] in ranked and r["id"] not in skip]
    for r in oos[: want.get("out_of_scope", 0)]:
        recs.append({**refusal(f"{split}-oos-{r['id']}", r["question"], ranked[r["id"]][:k], corpus,
                               "out_of_scope", scores.get(r["id"]), max_words), "qid": r["id"]})
    return recs


def minimal_pairs(split: str, n_pairs: int, corpus: dict, queries: dict, qrels: dict, query_meta: dict,
                  ranked: dict, scores: dict | None = None, k: int = 3, max_words: int = 40,
                  seed: int = 42, skip=()) -> list[dict]:
    """``n_pairs`` minimal pairs, both halves next to each other (answerable, then near-miss).

    For each question (in :func:`generation.question_order`): the first ``k - 1`` stack candidates
    that do not answer (:func:`truly_answers`) are shown in both halves; the answering passage is
    put at slot ``i % k + 1`` for the ``i``-th pair (every slot equally often), and in the other
    half that slot holds the next candidate that does not answer. Questions without ``k`` such
    candidates, or whose answer would not be grounded, are skipped.
    """
    scores, skip = scores or {}, set(skip)
    order = [q for q in question_order(qrels, split, seed) if q in ranked and q not in skip]
    out = []
    for qid in order:
        if len(out) >= 2 * n_pairs:
            break
        gold, sentence = _gold(qrels[split], qid), query_meta.get(qid, {}).get("summary", "")
        others = [d for d in ranked[qid] if not truly_answers(corpus[d], corpus[gold], sentence)]
        if len(others) < k:
            continue
        slot = len(out) // 2 % k + 1
        shown = others[: k - 1]
        with_gold, without = shown[: slot - 1] + [gold] + shown[slot - 1:], shown[: slot - 1] + [others[k - 1]] + shown[slot - 1:]
        rec = answerable(f"{split}-pair-{qid}-a", queries[qid], with_gold, gold, corpus, sentence, scores.get(qid), max_words)
        if rec is None:
            continue
        near = refusal(f"{split}-pair-{qid}-n", queries[qid], without, corpus, "unanswerable", scores.get(qid), max_words)
        out += [{**rec, "qid": qid, "pair": qid}, {**near, "qid": qid, "pair": qid}]
    return out


def force_slot(record: dict, slot: int) -> dict:
    """An answerable record with its answering passage moved to ``[Source slot]`` (the other
    passages keep their order), reference answer and ``cited`` updated; refusals are returned as is."""
    if not record["answerable"]:
        return record
    passages = list(record["passages"])
    gold = passages.pop(record["slot"] - 1)
    passages.insert(slot - 1, gold)
    return {**record, "id": f"{record['id']}@{slot}", "passages": passages, "cited": [slot], "slot": slot,
            "answer": _EXACT.sub(CITATION.format(n=slot), record["answer"], count=1)}


def slot_counts(records: list[dict]) -> dict[str, int]:
    """How many records show the answering passage at each source number, and how many show none."""
    out: dict[str, int] = {}
    for r in records:
        key = f"Source {r['slot']}" if r.get("slot") else ("out-of-scope question" if r["kind"] == "out_of_scope"
                                                          else "not shown (near-miss)")
        out[key] = out.get(key, 0) + 1
    return dict(sorted(out.items()))


#: A near-miss is "hard" when one of its shown passages holds at least this share of the question's
#: content words (``generation.overlap``): it looks like an answer. Fixed in advance, not chosen on data,
#: and independent of every system's score, so no system wins or loses a slice by its definition.
HARD_OVERLAP = 0.5

#: The test slices, in table order (:func:`slice_name`).
SLICES = ("answerable, answer at Source 1", "answerable, answer at Source 2-3",
          "near-miss, hard (a source holds >= half the question's words)",
          "near-miss, easy (no source holds half the question's words)", "out-of-scope, rule-made", "out-of-scope, real (faqs)")


def slice_name(record: dict) -> str:
    """Which test slice a record belongs to (:data:`SLICES`): answerable by the answering passage's
    slot; near-misses by how much they look answered — whether a shown passage holds at least
    :data:`HARD_OVERLAP` of the question's content words (a property of the prompt alone, not of
    any system's score); out-of-scope by origin (a real ``faqs`` question has a ``q-`` id, a
    rule-made one ``oos-``)."""
    from .generation import overlap

    if record["kind"] == "answerable":
        return SLICES[0] if record["slot"] == 1 else SLICES[1]
    if record["kind"] == "unanswerable":
        best = max((overlap(record["question"], p["text"]) for p in record["passages"]), default=0.0)
        return SLICES[2] if best >= HARD_OVERLAP else SLICES[3]
    return SLICES[5] if str(record.get("qid", "")).startswith("q-") else SLICES[4]


def answer_from(record: dict, slot: int) -> str:
    """A confident answer copied from ``[Source slot]`` of ``record`` (object name + first sentence,
    citation first) — the wrong answer to a near-miss, for preference pairs."""
    from .generation import extractive_answer

    return extractive_answer(record["passages"][slot - 1]["text"], slot, citation_first=True)


def preference_pairs(records: list[dict], answers: list[str], scores: list[float], margin: float,
                     errors: list[str | None]) -> list[dict]:
    """DPO pairs where the model is wrong or unsure, from its own answers on minimal pairs.

    In: minimal-pair ``records`` (:func:`minimal_pairs`: each near-miss right after its answerable
    twin), the model's greedy ``answers``, its lean to refuse ``scores``
    (``generator_training.decision_scores``), ``margin``, and ``errors`` (``generation.error_kind``
    of each answer, None when right).

    * **own mistakes** — chosen: the reference; rejected: what the model wrote;
    * **close calls** — right, but with ``|score| < margin``: chosen: the reference; rejected: the
      other decision — the refusal for an answerable prompt, and for a near-miss a confident answer
      copied from the source that replaced the answer (:func:`answer_from`, at the twin's slot).

    Out: ``[{"record", "chosen", "rejected", "kind", "margin"}]`` in the records' order.
    """
    twin_slot = {}
    for r in records:
        if r.get("pair") and r["answerable"]:
            twin_slot[r["pair"]] = r["slot"]
    out = []
    for rec, answer, score, error in zip(records, answers, scores, errors):
        if error is not None and answer.strip() != rec["answer"]:
            out.append({"record": rec, "chosen": rec["answer"], "rejected": answer, "kind": f"own: {error}", "margin": score})
        elif error is None and abs(score) < margin:
            if rec["answerable"]:
                rejected, kind = REFUSAL, "close call: answerable"
            elif rec.get("pair") in twin_slot:
                rejected, kind = answer_from(rec, twin_slot[rec["pair"]]), "close call: near-miss"
            else:
                continue
            out.append({"record": rec, "chosen": rec["answer"], "rejected": rejected, "kind": kind, "margin": score})
    return out
