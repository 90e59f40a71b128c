"""Data building and small measurements for training and evaluating rerankers (notebook 02).

Nothing here trains or wraps a model: the notebook calls ``mine_hard_negatives``,
``CrossEncoderTrainer`` and ``CrossEncoderRerankingEvaluator`` itself. These helpers turn
BEIR-shaped data (corpus ``{doc_id: {"title", "text"}}``, queries ``{qid: text}``, qrels
``{qid: {doc_id: grade}}``, runs ``{qid: {doc_id: score}}``) into the shapes those calls take,
and summarise what they produced.
"""
from __future__ import annotations

from pathlib import Path

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


def cached_corpus_embeddings(cache_folder: str | Path, texts: list[str]):
    """Load the corpus embeddings that ``mine_hard_negatives(corpus=texts, cache_folder=...)`` saved,
    one row per entry of ``texts``.

    ``mine_hard_negatives`` encodes the de-duplicated corpus (first occurrence of each text, in
    order) and writes ``corpus_embeddings_<hash>.npy`` into ``cache_folder``; use a fresh folder
    per run so it holds exactly one such file. Duplicate texts get the same row.
    In: the folder and the ``corpus`` list given to the miner. Out: float32 numpy array
    ``(len(texts), dim)``. Raises FileNotFoundError when there is no file, ValueError when there
    are several or when the row count does not match the distinct texts.
    """
    import numpy as np

    files = sorted(Path(cache_folder).glob("corpus_embeddings_*.npy"))
    if not files:
        raise FileNotFoundError(f"no corpus_embeddings_*.npy in {cache_folder}: call mine_hard_negatives "
                                "with cache_folder=<this folder> first")
    if len(files) > 1:
        raise ValueError(f"{len(files)} corpus embedding files in {cache_folder}: use a fresh, empty "
                         "cache folder per run so the file is unambiguous")
    emb = np.load(files[0]).astype("float32")
    row = {text: i for i, text in enumerate(dict.fromkeys(texts))}
    if len(row) != len(emb):
        raise ValueError(f"the cached file has {len(emb)} rows but there are {len(row)} distinct texts: "
                         "it was made from another corpus")
    return emb[[row[t] for t in texts]]


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
