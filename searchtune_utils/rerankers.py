"""Data building and small measurements for training and evaluating rerankers (notebook 02).

Nothing here trains or wraps a model: the notebook calls ``CrossEncoder``, ``ListNetLoss``,
``CrossEncoderTrainer`` and ``CrossEncoderRerankingEvaluator`` itself. These helpers turn
BEIR-shaped data (corpus ``{doc_id: {"title", "text"}}``, queries ``{qid: text}``, qrels
``{qid: {doc_id: grade}}``, runs ``{qid: {doc_id: score}}``) into the shapes those calls take,
and summarise what they produced.
"""
from __future__ import annotations


from .metrics import ranked
from .retrieval import passage_text


def reranking_samples(queries: dict[str, str], qrels: dict[str, dict[str, int]], run: dict,
                      corpus: dict[str, dict], k: int) -> list[dict]:
    """Samples for ``CrossEncoderRerankingEvaluator`` built from a first-stage run.

    In: queries, qrels, a run, the corpus and the depth ``k``. Out: one dict per query of
    ``qrels`` (in qrels order) with ``"query"`` (text), ``"positive"`` (texts of the passages
    graded >= 1) and ``"documents"`` (texts of the run's top ``k``, best first). With
    ``documents`` the evaluator reports the retriever's own ranking as the "base" score; with
    ``always_rerank_positives=False`` a positive the retriever missed stays missed (realistic).
    """
    samples = []
    for qid, judged in qrels.items():
        samples.append({
            "query": queries[qid],
            "positive": [passage_text(corpus[d]) for d, g in judged.items() if g >= 1],
            "documents": [passage_text(corpus[d]) for d in ranked(run.get(qid) or {})[:k]],
        })
    return samples


def labeled_list_to_pairs(dataset, query_column: str | None = None, docs_column: str | None = None,
                          labels_column: str | None = None):
    """Explode a listwise dataset into a pointwise one.

    In: a ``datasets.Dataset`` shaped like ``mine_hard_negatives(..., output_format="labeled-list")``
    — (query, [doc_1..doc_n], [label_1..label_n]); column names default to the dataset's first
    three columns. Out: a Dataset with columns ``query``, ``document``, ``label`` (float), one
    row per (query, document), in the same order — the input of ``BinaryCrossEntropyLoss``.
    Both losses then train on exactly the same judgements.
    """
    from datasets import Dataset

    cols = dataset.column_names
    query_column = query_column or cols[0]
    docs_column = docs_column or cols[1]
    labels_column = labels_column or cols[2]
    rows = {"query": [], "document": [], "label": []}
    for query, docs, labels in zip(dataset[query_column], dataset[docs_column], dataset[labels_column]):
        if len(docs) != len(labels):
            raise ValueError(f"row for query {query!r} has {len(docs)} documents but {len(labels)} labels")
        for doc, label in zip(docs, labels):
            rows["query"].append(query)
            rows["document"].append(doc)
            rows["label"].append(float(label))
    return Dataset.from_dict(rows)


def margin_guard(qrels: dict[str, dict[str, int]], run: dict, positive_scores: dict[str, float],
                 relative_margin: float | None, depth: int) -> list[dict]:
    """What a relative-margin false-negative guard does to each query's candidates.

    Same rule as ``mine_hard_negatives(relative_margin=m)``: a candidate is rejected when its
    retriever score exceeds ``positive_score - abs(positive_score) * m`` (it looks about as
    relevant as the known answer, so it may be an unlabelled answer). ``relative_margin=None`` means
    no guard, as in the miner: nothing is rejected (threshold = +inf).
    In: qrels, the retriever's run, ``{qid: score of its positive}``, the margin, and the
    candidate ``depth`` (the run's top ``depth``). Out: one dict per non-positive candidate
    ``{"qid", "doc_id", "rank", "score", "positive_score", "threshold", "rejected"}``.
    """
    rows = []
    for qid, judged in qrels.items():
        if qid not in positive_scores:
            continue
        pos = float(positive_scores[qid])
        threshold = float("inf") if relative_margin is None else pos - abs(pos) * relative_margin
        docs = run.get(qid) or {}
        for rank, did in enumerate(ranked(docs)[:depth], start=1):
            if judged.get(did, 0) >= 1:
                continue
            rows.append({"qid": qid, "doc_id": did, "rank": rank, "score": float(docs[did]),
                         "positive_score": pos, "threshold": threshold,
                         "rejected": float(docs[did]) > threshold})
    return rows


def top_k_changes(before: dict, after: dict, k: int = 3) -> dict[str, tuple[list[str], list[str]]]:
    """Queries whose top ``k`` differs between two runs (as sets of doc ids or in order).

    In: two runs. Out: ``{qid: (top-k before, top-k after)}`` (doc ids, best first) for the
    queries of ``before`` that are in ``after`` and whose top-k lists differ.
    """
    out = {}
    for qid in before:
        if qid not in after:
            continue
        b, a = ranked(before[qid])[:k], ranked(after[qid])[:k]
        if b != a:
            out[qid] = (b, a)
    return out


def interpolate(first_stage: dict, reranker: dict, weight: float) -> dict[str, dict[str, float]]:
    """Blend a reranker's scores with the first-stage scores of the same candidates.

    In: two runs over the same queries (``reranker`` holds the candidates that were reranked),
    and ``weight`` in [0, 1]. Scores are min-max normalised per query (a constant list becomes
    all 0.5), then ``weight * reranker + (1 - weight) * first_stage``. A candidate missing from
    ``first_stage`` counts as its lowest score. Out: a run over the reranker's candidates;
    ``weight=1`` keeps the reranker's order, ``weight=0`` the first stage's.
    """
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"weight must be between 0 and 1, got {weight}")

    def minmax(scores: dict[str, float]) -> dict[str, float]:
        lo, hi = min(scores.values()), max(scores.values())
        return {d: (s - lo) / (hi - lo) if hi > lo else 0.5 for d, s in scores.items()}

    out = {}
    for qid, cands in reranker.items():
        if not cands:
            out[qid] = {}
            continue
        first = first_stage.get(qid) or {}
        floor = min(first.values()) if first else 0.0
        a = minmax({d: float(first.get(d, floor)) for d in cands})
        b = minmax({d: float(s) for d, s in cands.items()})
        out[qid] = {d: weight * b[d] + (1 - weight) * a[d] for d in cands}
    return out


def same_answer(corpus: dict[str, dict], doc_id: str) -> set[str]:
    """The passages known to carry the same answer as ``doc_id`` — the false-negative guard by
    what is known, not by a retriever score.

    In: the corpus and one judged answer. Out: ``doc_id`` itself, every passage with the same
    text, and, when the corpus says what each passage documents (``metadata["module"]`` and
    ``metadata["object"]``, as pydocs does: several chunks of one docstring), every passage about
    the same object. A corpus without that metadata (faqs: one passage per FAQ entry) gets the
    entry itself and its exact duplicates.
    """
    doc = corpus[doc_id]
    meta = doc.get("metadata") or {}
    key = (meta.get("module"), meta.get("object"))
    text = (doc.get("title", ""), doc.get("text", ""))
    out = {doc_id}
    for d, other in corpus.items():
        m = other.get("metadata") or {}
        if (other.get("title", ""), other.get("text", "")) == text:
            out.add(d)
        elif all(key) and (m.get("module"), m.get("object")) == key:
            out.add(d)
    return out


def hard_negatives(qrels: dict[str, dict[str, int]], runs: list[dict], corpus: dict[str, dict],
                   depth: int, num_negatives: int) -> list[dict]:
    """Training candidates from the first stages being reranked, guarded by what is known to answer.

    For each question of ``qrels``: walk the ``runs`` (e.g. BM25 and the base embedder) rank by
    rank, alternating between them, down to ``depth``; skip every passage that
    :func:`same_answer` links to a judged answer; keep the first ``num_negatives``. A candidate
    ranked above the answer by the run that proposed it — the first stage's own mistake, the case a
    reranker exists for — is kept and counted.
    Out: one dict per question ``{"qid", "positive", "negatives", "above_answer", "guarded"}``
    (``above_answer``: how many kept negatives outranked the answer in the run that proposed them;
    ``guarded``: how many candidates the guard skipped). Questions with no judged answer are left out.
    """
    from .metrics import ranked

    known_cache: dict[str, set[str]] = {}
    rows = []
    for qid, judged in qrels.items():
        answers = [d for d, g in judged.items() if g >= 1 and d in corpus]
        if not answers:
            continue
        known = set()
        for d in answers:
            if d not in known_cache:
                known_cache[d] = same_answer(corpus, d)
            known |= known_cache[d]
        lists = [ranked(run.get(qid) or {})[:depth] for run in runs]
        answer_rank = [min((i for i, d in enumerate(lst) if d in answers), default=depth) for lst in lists]
        negatives, above, guarded, seen = [], 0, 0, set()
        for rank in range(depth):
            for lst, a_rank in zip(lists, answer_rank):
                if rank >= len(lst) or lst[rank] in seen:
                    continue
                d = lst[rank]
                seen.add(d)
                if d in known:
                    guarded += d not in answers
                    continue
                if len(negatives) < num_negatives:
                    negatives.append(d)
                    above += rank < a_rank
        rows.append({"qid": qid, "positive": answers[0], "negatives": negatives,
                     "above_answer": above, "guarded": guarded})
    return rows


def rerank_runs(cross_encoder, corpus: dict[str, dict], queries: dict[str, str], runs: dict[str, dict],
                k: int | dict[str, int], batch_size: int = 64, show_progress_bar: bool = False):
    """Rerank the top ``k`` of several first stages, scoring each (question, passage) pair once.

    In: a CrossEncoder, corpus, ``{qid: text}``, ``{first stage name: run}`` and the depth ``k``
    (one for all, or ``{first stage name: depth}``).
    A passage several first stages propose is scored once and shared. Out: ``(reranked, pairs,
    seconds)`` — ``{name: run over that stage's top k with cross-encoder scores}``, the number of
    distinct pairs scored and the wall time of the scoring.
    """
    import time

    from .metrics import ranked
    from .retrieval import passage_text

    depth = k if isinstance(k, dict) else {name: k for name in runs}
    tops = {name: {q: ranked(run.get(q) or {})[:depth[name]] for q in queries} for name, run in runs.items()}
    pairs = list(dict.fromkeys((q, d) for top in tops.values() for q in queries for d in top[q]))
    start = time.perf_counter()
    scores = cross_encoder.predict([(queries[q], passage_text(corpus[d])) for q, d in pairs],
                                   batch_size=batch_size, show_progress_bar=show_progress_bar,
                                   convert_to_numpy=True).reshape(-1)
    seconds = time.perf_counter() - start
    score = dict(zip(pairs, (float(s) for s in scores)))
    reranked = {name: {q: {d: score[(q, d)] for d in top[q]} for q in queries} for name, top in tops.items()}
    return reranked, len(pairs), seconds


def add_random_negatives(rows: list[dict], corpus: dict[str, dict], n: int, seed: int = 42) -> list[dict]:
    """Add ``n`` easy negatives to each row of :func:`hard_negatives`: passages drawn at random from
    the whole corpus (seeded), never a known answer nor one of the row's passages.

    Easy negatives give a fresh scoring head something it can get right from the first steps (a
    passage about another topic), while the hard ones teach the fine distinctions. Out: new rows
    with ``negatives`` = the hard ones followed by the random ones, and ``random`` = how many were added.
    """
    import random

    rng = random.Random(seed)
    ids = list(corpus)
    out = []
    for row in rows:
        taken = {row["positive"], *row["negatives"]} | same_answer(corpus, row["positive"])
        extra, want = [], min(n, len(set(ids) - taken))  # as many as exist when the corpus is tiny
        while len(extra) < want:
            d = ids[rng.randrange(len(ids))]
            if d not in taken:
                taken.add(d)
                extra.append(d)
        out.append({**row, "negatives": [*row["negatives"], *extra], "random": len(extra)})
    return out
