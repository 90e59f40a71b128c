"""Retrieval baselines shared by the notebooks: BM25 (bm25s), exact dense search, re-ranking.

Every function takes BEIR-shaped data — corpus ``{doc_id: {"title", "text", ...}}``, queries
``{qid: text}`` — and returns a run ``{qid: {doc_id: score}}`` (higher = better) that
:func:`searchtune_utils.metrics.evaluate_run` scores. A passage is always ``passage_text(doc)``.
"""
from __future__ import annotations

import time

import torch

try:  # PyStemmer is optional: bm25s only stems when it is installed.
    import Stemmer

    _STEMMER = Stemmer.Stemmer("english")
except ImportError:
    _STEMMER = None


def passage_text(doc: dict | str) -> str:
    """The text a model sees for one corpus entry.

    In: a corpus value ``{"title", "text", ...}`` (or a plain string). Out: ``title + "\\n" +
    text``, or just the text when the title is empty.
    """
    if isinstance(doc, str):
        return doc
    title, text = (doc.get("title") or "").strip(), (doc.get("text") or "").strip()
    return f"{title}\n{text}" if title else text


# ---------------------------------------------------------------- BM25


def _bm25_tokenize(texts: list[str], return_ids: bool):
    """bm25s tokenization with English stopwords (and the English stemmer if PyStemmer exists)."""
    import bm25s

    return bm25s.tokenize(texts, lower=True, stopwords="en", stemmer=_STEMMER,
                          return_ids=return_ids, show_progress=False)


def build_bm25(corpus: dict[str, dict]):
    """Index a corpus for BM25 once.

    In: corpus ``{doc_id: {"title", "text"}}``. Out: ``(retriever, doc_ids)`` — a ``bm25s.BM25``
    (Lucene variant, k1=1.5, b=0.75) and the doc ids in index order. Pass the pair to
    :func:`bm25_search`.
    """
    import bm25s

    doc_ids = list(corpus)
    retriever = bm25s.BM25()
    retriever.index(_bm25_tokenize([passage_text(corpus[d]) for d in doc_ids], return_ids=True),
                    show_progress=False)
    return retriever, doc_ids


def bm25_search(index, queries: dict[str, str], k: int = 100) -> dict[str, dict[str, float]]:
    """BM25 top-k per query.

    In: ``index`` = ``(retriever, doc_ids)`` from :func:`build_bm25` (or a corpus dict, which is
    indexed on the fly), queries ``{qid: text}``, ``k`` (capped at the corpus size).
    Out: run ``{qid: {doc_id: score}}`` with at most ``k`` docs per query. Documents scoring 0
    (no query term in common) are left out, so a query made only of stopwords or unknown words
    gets an empty ranking.
    """
    retriever, doc_ids = build_bm25(index) if isinstance(index, dict) else index
    qids = list(queries)
    run: dict[str, dict[str, float]] = {q: {} for q in qids}
    k = min(k, len(doc_ids))
    if not qids or k < 1:
        return run
    # Tokens as strings: bm25s maps them through the index vocabulary (unknown words dropped).
    tokens = _bm25_tokenize([queries[q] for q in qids], return_ids=False)
    docs, scores = retriever.retrieve(tokens, k=k, show_progress=False, n_threads=0)
    for qid, row_docs, row_scores in zip(qids, docs, scores):
        run[qid] = {doc_ids[int(i)]: float(s) for i, s in zip(row_docs, row_scores) if s > 0}
    return run


# ---------------------------------------------------------------- dense


def _encode(model, texts: list[str], kind: str, batch_size: int, show_progress_bar: bool) -> torch.Tensor:
    """Encode with ``model.encode_query``/``encode_document`` (ST >= 5, applies the model's
    prompts) or ``model.encode`` on older versions. Out: L2-normalised float tensor."""
    fn = getattr(model, f"encode_{kind}", None) or model.encode
    emb = fn(texts, batch_size=batch_size, show_progress_bar=show_progress_bar,
             convert_to_tensor=True, normalize_embeddings=True)
    return emb.float()


CACHE_MIN_PASSAGES = 1000  # smaller corpora (smoke slices, 07's monthly chunks) take seconds: not cached


def encoding_key(model, doc_ids: list[str], texts: list[str], batch_size: int) -> str:
    """What an encoding depends on, hashed: every weight of ``model`` (so a model trained in this
    process and the same model saved and loaded again match, and any further training does not),
    its ``max_seq_length`` and prompts, the batch size, whether autocast is on (and to which dtype),
    the torch version, and the passages with their ids, in order."""
    import hashlib

    h = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    device = getattr(model, "device", torch.device("cpu"))
    device_type = getattr(device, "type", "cpu")
    autocast = (torch.is_autocast_enabled(device_type), str(torch.get_autocast_dtype(device_type)))
    h.update(repr((getattr(model, "max_seq_length", None), getattr(model, "prompts", None), batch_size, autocast,
                   str(device), torch.__version__)).encode())
    for doc_id, text in zip(doc_ids, texts):
        h.update(doc_id.encode() + b"\0" + text.encode() + b"\0")
    return h.hexdigest()[:32]


def encode_corpus(model, corpus: dict[str, dict], batch_size: int = 64,
                  show_progress_bar: bool = False, cache: bool | None = None) -> tuple[list[str], torch.Tensor]:
    """Embed every passage once.

    In: a SentenceTransformer, corpus ``{doc_id: {"title", "text"}}``.
    Out: ``(doc_ids, embeddings)`` — a list and a ``(len(corpus), dim)`` L2-normalised tensor in
    the same order. Pass the pair to :func:`dense_search` to avoid re-encoding.

    ``cache`` (default: on for corpora of ``CACHE_MIN_PASSAGES`` passages or more, unless
    ``$SEARCHTUNE_ENCODE_CACHE=0``): the embeddings are kept under ``artifacts/cache/embeddings/``,
    keyed by :func:`encoding_key`, so the next notebook that encodes the same corpus with the same
    model (notebooks 02, 03, 05 and 06 all encode the corpus with the base model or notebook 01's)
    reads them instead of encoding again: the same tensor, about a minute saved each time on 2 cores.
    """
    import os

    from .config import ARTIFACTS_DIR, atomic_write_bytes

    doc_ids = list(corpus)
    texts = [passage_text(corpus[d]) for d in doc_ids]
    if cache is None:
        cache = len(doc_ids) >= CACHE_MIN_PASSAGES and os.environ.get("SEARCHTUNE_ENCODE_CACHE", "1") != "0"
    path = ARTIFACTS_DIR / "cache" / "embeddings" / f"{encoding_key(model, doc_ids, texts, batch_size)}.pt" if cache else None
    if path is not None and path.exists():
        return doc_ids, torch.load(path, weights_only=True)
    emb = _encode(model, texts, "document", batch_size, show_progress_bar)
    if path is not None:
        import io

        buffer = io.BytesIO()
        torch.save(emb.cpu(), buffer)
        atomic_write_bytes(path, buffer.getvalue())
    return doc_ids, emb


def dense_search(model, corpus_or_encoded, queries: dict[str, str], k: int = 100,
                 batch_size: int = 64) -> dict[str, dict[str, float]]:
    """Exact cosine-similarity top-k search.

    In: a SentenceTransformer, either a corpus dict or the ``(doc_ids, embeddings)`` pair from
    :func:`encode_corpus`, queries ``{qid: text}``, ``k`` (capped at the corpus size).
    Out: run ``{qid: {doc_id: cosine}}`` with ``min(k, len(corpus))`` docs per query.
    """
    if isinstance(corpus_or_encoded, dict):
        doc_ids, doc_emb = encode_corpus(model, corpus_or_encoded, batch_size=batch_size)
    else:
        doc_ids, doc_emb = corpus_or_encoded
    qids = list(queries)
    if not qids or not doc_ids:
        return {q: {} for q in qids}
    q_emb = _encode(model, [queries[q] for q in qids], "query", batch_size, False)
    scores = q_emb.to(doc_emb.device) @ doc_emb.T  # both normalised: dot product = cosine
    top = torch.topk(scores, k=min(k, len(doc_ids)), dim=1)
    return {qid: {doc_ids[int(i)]: float(s) for i, s in zip(idx.tolist(), val.tolist())}
            for qid, idx, val in zip(qids, top.indices, top.values)}


def rrf(runs: list[dict], k: int = 60, depth: int | None = None) -> dict[str, dict[str, float]]:
    """Reciprocal rank fusion (Cormack, Clarke & Buettcher, SIGIR 2009): the hybrid of several
    first stages that needs no training and no weight.

    In: runs ``{qid: {doc_id: score}}`` over the same queries, the constant ``k`` (60 in the paper),
    and optionally ``depth``: only each run's top ``depth`` count. Out: a run whose score for a
    passage is the sum over the runs of ``1 / (k + rank)`` (rank from 1; a run that does not hold
    the passage adds nothing), over every query of any run.
    """
    from .metrics import ranked

    if k <= 0:
        raise ValueError(f"rrf: k must be positive, got {k}")
    fused: dict[str, dict[str, float]] = {}
    for run in runs:
        for qid, scores in run.items():
            out = fused.setdefault(qid, {})
            for rank, doc_id in enumerate(ranked(scores)[:depth], start=1):
                out[doc_id] = out.get(doc_id, 0.0) + 1.0 / (k + rank)
    return fused


# ---------------------------------------------------------------- re-ranking


def rerank(cross_encoder, corpus: dict[str, dict], queries: dict[str, str], run: dict,
           k: int = 40, batch_size: int = 32) -> tuple[dict[str, dict[str, float]], list[float]]:
    """Re-score the top-k of a first-stage run with a cross-encoder.

    In: a ``sentence_transformers.CrossEncoder``, corpus, queries, a first-stage run
    ``{qid: {doc_id: score}}``, ``k`` candidates per query.
    Out: ``(new_run, latencies)`` — ``new_run`` holds, for each query of ``queries`` that is in
    ``run``, its top-``k`` candidates (trec_eval order) with cross-encoder scores (documents
    below rank k are dropped); ``latencies`` is the wall time in seconds of each query's
    ``predict`` call, in the order of ``new_run``.
    """
    from .metrics import ranked

    new_run: dict[str, dict[str, float]] = {}
    latencies: list[float] = []
    for qid, text in queries.items():
        if qid not in run:
            continue
        cands = ranked(run[qid])[:k]
        start = time.perf_counter()
        if cands:
            # First argument is named `inputs` in ST 6 (`sentences` before): pass it positionally.
            scores = cross_encoder.predict([(text, passage_text(corpus[d])) for d in cands],
                                           batch_size=batch_size, show_progress_bar=False,
                                           convert_to_numpy=True)
            scores = scores.reshape(-1)
            if len(scores) != len(cands):
                raise ValueError(f"the cross-encoder returned {len(scores) // len(cands)} scores per pair; "
                                 "re-ranking needs a single-score model (CrossEncoder(..., num_labels=1))")
            new_run[qid] = {d: float(s) for d, s in zip(cands, scores)}
        else:
            new_run[qid] = {}
        latencies.append(time.perf_counter() - start)
    return new_run, latencies
