"""A real vector database under the fine-tuned embedder (notebook 08).

Two ways into one engine, Qdrant:

* ``qdrant-client`` — the client a project keeps from a laptop to a cluster. :func:`qdrant_client`
  opens local mode (in process, no server; exact search in NumPy) or, when ``QDRANT_URL`` is set, a
  Qdrant server or cluster. The notebook code that creates collections, upserts and queries is the same.
* Qdrant Edge (``qdrant-edge-py``) — Qdrant's storage and search engine (segments, HNSW graph, scalar
  quantization) running inside this process. The scale benchmark uses it, because local mode has no
  HNSW index to measure.

Plus the benchmark's other pieces: a corpus of real text that grows past 100k passages
(:func:`site_packages_passages`: the docstrings of the installed Python packages), exact search to
compare against (:func:`exact_top_k`), recall of an approximate result (:func:`recall_at_k`), and the
bytes per vector the engine stores, by component (:func:`storage_per_vector`).
"""
from __future__ import annotations

import ast
import hashlib
import os
import re
import sysconfig
import time
from pathlib import Path

import numpy as np

QDRANT_URL_VARIABLE = "QDRANT_URL"


# ---------------------------------------------------------------- qdrant-client: laptop → cluster


def qdrant_client(location: str = ":memory:", url: str | None = None):
    """A ``QdrantClient``: a server or cluster when ``url`` (or ``$QDRANT_URL``) is set — with
    ``$QDRANT_API_KEY`` if present — otherwise local mode at ``location`` (``":memory:"`` or a folder).

    Local mode runs in this process with the same API; it searches exactly (NumPy) and accepts,
    but does not build, HNSW and quantization settings: the server honours them.
    """
    from qdrant_client import QdrantClient

    url = url or os.environ.get(QDRANT_URL_VARIABLE) or None
    if url:
        return QdrantClient(url=url, api_key=os.environ.get("QDRANT_API_KEY") or None, timeout=60)
    return QdrantClient(location=location) if location == ":memory:" else QdrantClient(path=str(location))


def describe_client(client) -> str:
    """``"local mode (in process)"`` or ``"server at <host>"`` — without credentials or local paths."""
    remote = getattr(getattr(client, "_client", None), "rest_uri", None)
    if remote:
        return f"server at {re.sub(r'//[^@/]*@', '//', str(remote))}"
    return "local mode (in process, exact search)"


# ---------------------------------------------------------------- a corpus that grows past 100k


_SKIP_PARAGRAPH = re.compile(r"^(>>>|\.\. |:param|:return|:raises|[-=~^]{3,}$)")


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts and parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _docstrings(tree: ast.AST, module: str):
    """(qualified name, docstring) for the module and every class and function in it."""
    stack = [(tree, module)]
    while stack:
        node, name = stack.pop()
        doc = ast.get_docstring(node, clean=True) if isinstance(
            node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) else None
        if doc:
            yield name, doc
        children = [c for c in ast.iter_child_nodes(node)
                    if isinstance(c, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))]
        stack.extend((c, f"{name}.{c.name}") for c in reversed(children))


def site_packages_passages(root: str | Path | None = None, min_words: int = 8, max_words: int = 120,
                           limit: int | None = None, exclude_texts=(), packages_limit: int | None = None,
                           progress: bool = False) -> list[dict]:
    """Real English text at scale: one passage per docstring paragraph of the installed packages.

    Walks ``root`` (default: this environment's site-packages) package by package in name order,
    parses each ``.py`` file with :mod:`ast` (nothing is imported), splits every module, class and
    function docstring into paragraphs, and keeps paragraphs of at least ``min_words`` words
    (cut to ``max_words``), skipping doctest, reST-directive and field-list paragraphs, exact
    duplicates and any text in ``exclude_texts``. Stops after ``limit`` passages or
    ``packages_limit`` top-level packages.

    Out: corpus entries ``{"_id": "sp-000001", "title": "<module>.<object>", "text": ...,
    "metadata": {"source": "site-packages", "module": <top-level package>}}`` in walk order.
    The result depends on what is installed: the pinned requirements make it reproducible.
    """
    root = Path(root or sysconfig.get_paths()["purelib"])
    if not root.is_dir():
        raise FileNotFoundError(f"{root.name}: no such folder to read docstrings from; pass root= a site-packages folder")
    seen = {hashlib.sha1(" ".join(t.split()).encode()).digest() for t in exclude_texts}
    tops = sorted(p for p in root.iterdir()
                  if (p.is_dir() and not p.name.endswith((".dist-info", ".egg-info", "__pycache__"))
                      and not p.name.startswith(("_", "."))) or (p.suffix == ".py" and not p.name.startswith("_")))
    if packages_limit:
        tops = tops[:packages_limit]
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(tops), desc="packages", unit="pkg")
    out: list[dict] = []
    for top in tops:
        files = [top] if top.is_file() else sorted(top.rglob("*.py"))
        package = top.stem
        for path in files:
            try:
                tree = ast.parse(path.read_bytes())
            except (SyntaxError, ValueError, OSError, RecursionError):
                continue  # Python 2 files, templates, generated junk: not text we want anyway
            for qualname, doc in _docstrings(tree, _module_name(path, root)):
                for para in re.split(r"\n\s*\n", doc):
                    if _SKIP_PARAGRAPH.match(para.strip()):
                        continue
                    words = para.split()
                    if len(words) < min_words:
                        continue
                    text = " ".join(words[:max_words])
                    key = hashlib.sha1(text.encode()).digest()
                    if key in seen:
                        continue
                    seen.add(key)
                    out.append({"_id": f"sp-{len(out) + 1:06d}", "title": qualname, "text": text,
                                "metadata": {"source": "site-packages", "module": package}})
                    if limit and len(out) >= limit:
                        if bar is not None:
                            bar.close()
                        return out
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    return out


def nested_sizes(sizes, available: int) -> list[int]:
    """The corpus sizes to measure: the requested ``sizes`` that fit in ``available`` passages,
    plus ``available`` itself when it is larger than all of them (sorted, no duplicates)."""
    fit = sorted({int(s) for s in sizes if 0 < int(s) <= available})
    if not fit or fit[-1] < available:
        fit.append(int(available))
    return fit


# ---------------------------------------------------------------- exact search and recall


def exact_top_k(doc_vectors: np.ndarray, query_vectors: np.ndarray, k: int = 10,
                batch_size: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Exact inner-product top-``k`` (cosine for L2-normalised vectors), the reference for recall.

    Out: ``(indices, scores)``, both ``(n_queries, k)``, best first. NumPy only.
    """
    doc_vectors = np.asarray(doc_vectors, dtype=np.float32)
    query_vectors = np.atleast_2d(np.asarray(query_vectors, dtype=np.float32))
    k = min(k, len(doc_vectors))
    idx = np.empty((len(query_vectors), k), dtype=np.int64)
    val = np.empty((len(query_vectors), k), dtype=np.float32)
    for start in range(0, len(query_vectors), batch_size):
        scores = query_vectors[start:start + batch_size] @ doc_vectors.T
        part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        part_scores = np.take_along_axis(scores, part, axis=1)
        order = np.argsort(-part_scores, axis=1, kind="stable")
        idx[start:start + batch_size] = np.take_along_axis(part, order, axis=1)
        val[start:start + batch_size] = np.take_along_axis(part_scores, order, axis=1)
    return idx, val


def recall_at_k(approx, exact, k: int = 10) -> np.ndarray:
    """Per query: the share of the exact top-``k`` that the approximate top-``k`` found.

    In: two sequences of id lists (one per query, best first). Out: a float array in [0, 1].
    """
    if len(approx) != len(exact):
        raise ValueError(f"{len(approx)} approximate results for {len(exact)} exact ones: pass the same queries")
    out = []
    for a, e in zip(approx, exact):
        truth = list(e)[:k]
        if not truth:
            raise ValueError("an exact result is empty: the corpus has no vectors")
        out.append(len(set(list(a)[:k]) & set(truth)) / len(truth))
    return np.asarray(out, dtype=float)


# ---------------------------------------------------------------- Qdrant Edge: the engine in process


def edge_config(dim: int, m: int = 16, ef_construct: int = 100, int8: bool = False, quantile: float = 0.99):
    """A Qdrant Edge shard configuration: cosine vectors of size ``dim``, an HNSW graph built for
    every segment (``m`` links per node, ``ef_construct`` candidates while building) and, with
    ``int8``, scalar quantization: int8 copies kept in RAM, the float32 originals moved to disk
    (memory-mapped, read to rescore the best candidates)."""
    from qdrant_edge import (Distance, EdgeConfig, EdgeOptimizersConfig, EdgeVectorParams, HnswIndexConfig,
                             ScalarQuantizationConfig, ScalarType)

    quantization = ScalarQuantizationConfig(type=ScalarType.Int8, quantile=quantile, always_ram=True) if int8 else None
    return EdgeConfig(
        vectors=EdgeVectorParams(size=dim, distance=Distance.Cosine, on_disk=True if int8 else None),
        hnsw_config=HnswIndexConfig(m=m, ef_construct=ef_construct, full_scan_threshold=10),
        quantization_config=quantization,
        optimizers=EdgeOptimizersConfig(indexing_threshold=1, default_segment_number=1),
    )


def build_edge_shard(path: str | Path, vectors: np.ndarray, payloads: list[dict], config,
                     batch_size: int = 2_000) -> tuple[object, dict]:
    """Create a Qdrant Edge shard at ``path`` (must not hold one), upsert ``vectors`` with point ids
    0..n-1 and ``payloads``, then build the index (``optimize``). Out: ``(shard, {"upsert_s",
    "index_s", "points", "indexed"})``. A failed build removes nothing the caller did not create."""
    from qdrant_edge import EdgeShard, Point, UpdateOperation

    if len(vectors) != len(payloads):
        raise ValueError(f"{len(vectors)} vectors but {len(payloads)} payloads: one payload per vector")
    shard = EdgeShard.create(str(path), config)
    start = time.perf_counter()
    for i in range(0, len(vectors), batch_size):
        shard.update(UpdateOperation.upsert_points(
            [Point(id=j, vector=vectors[j].tolist(), payload=payloads[j]) for j in range(i, min(len(vectors), i + batch_size))]))
    upsert_s = time.perf_counter() - start
    start = time.perf_counter()
    shard.optimize()
    info = shard.info()
    return shard, {"upsert_s": upsert_s, "index_s": time.perf_counter() - start,
                   "points": info.points_count, "indexed": info.indexed_vectors_count}


def edge_search(shard, query_vectors: np.ndarray, k: int = 10, hnsw_ef: int | None = None,
                exact: bool = False, quantization=None,
                query_filter=None) -> tuple[list[list[int]], list[list[float]], list[float]]:
    """One query at a time, as a service would answer them. ``quantization``: the search's
    ``qdrant_edge.QuantizationSearchParams`` (``rescore``, ``oversampling``), or None for whatever
    Qdrant does by default — pass it explicitly when the comparison depends on it.

    Out: ``(ids per query, scores per query, seconds per query)``, best first."""
    from qdrant_edge import Query, QueryRequest, SearchParams

    params = SearchParams(hnsw_ef=hnsw_ef, exact=exact, quantization=quantization)
    ids, scores, seconds = [], [], []
    for q in np.atleast_2d(query_vectors):
        request = QueryRequest(limit=k, query=Query.Nearest(q.tolist()), params=params, filter=query_filter)
        start = time.perf_counter()
        hits = shard.query(request)
        seconds.append(time.perf_counter() - start)
        ids.append([int(h.id) for h in hits])
        scores.append([float(h.score) for h in hits])
    return ids, scores, seconds


STORAGE_PARTS = {  # file name patterns in a Qdrant segment folder -> what they hold
    "float32 vectors": re.compile(r"vector_storage.*/matrix\.dat$"),
    "int8 vectors": re.compile(r"vector_storage.*/quantized[^/]*$"),
    "HNSW graph": re.compile(r"vector_index/(graph\.bin|links[^/]*)$"),
}


def storage_per_vector(path: str | Path, n_vectors: int) -> dict[str, float]:
    """Bytes per vector that a Qdrant shard stores, by component (:data:`STORAGE_PARTS`), from the
    segment files on disk — the write-ahead log, payloads and preallocated pages are left out."""
    if n_vectors <= 0:
        raise ValueError("n_vectors must be positive")
    totals = dict.fromkeys(STORAGE_PARTS, 0)
    for file in Path(path).rglob("*"):
        if not file.is_file():
            continue
        rel = file.relative_to(path).as_posix()
        for part, pattern in STORAGE_PARTS.items():
            if pattern.search(rel):
                totals[part] += file.stat().st_size
    return {part: size / n_vectors for part, size in totals.items()}
