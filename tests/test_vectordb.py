"""searchtune_utils.vectordb: the corpus that grows, exact search, recall, and the two Qdrant paths."""
import numpy as np
import pytest

from searchtune_utils import vectordb


def _unit(rows, dim=16, seed=0):
    x = np.random.default_rng(seed).normal(size=(rows, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


# ---------------------------------------------------------------- exact search and recall


def test_exact_top_k_matches_a_full_sort():
    docs, queries = _unit(200), _unit(7, seed=1)
    idx, val = vectordb.exact_top_k(docs, queries, k=10, batch_size=3)  # batches that do not divide 7
    full = np.argsort(-(queries @ docs.T), axis=1)[:, :10]
    assert (idx == full).all()
    assert np.allclose(val, np.take_along_axis(queries @ docs.T, full, axis=1))
    assert (np.diff(val, axis=1) <= 0).all()  # best first


def test_exact_top_k_single_query_and_small_corpus():
    idx, _ = vectordb.exact_top_k(_unit(4), _unit(1, seed=2)[0], k=10)
    assert idx.shape == (1, 4)  # k capped at the corpus size


def test_recall_at_k():
    r = vectordb.recall_at_k([[1, 2, 3], [9, 8, 7]], [[3, 2, 1], [1, 2, 7]], k=3)
    assert r.tolist() == pytest.approx([1.0, 1 / 3])
    with pytest.raises(ValueError, match="same queries"):
        vectordb.recall_at_k([[1]], [[1], [2]])
    with pytest.raises(ValueError, match="empty"):
        vectordb.recall_at_k([[1]], [[]])


def test_nested_sizes():
    assert vectordb.nested_sizes([5_000, 25_000, 100_000], 60_000) == [5_000, 25_000, 60_000]
    assert vectordb.nested_sizes([300, 500], 500) == [300, 500]
    assert vectordb.nested_sizes([1_000], 800) == [800]


# ---------------------------------------------------------------- the corpus of docstrings


def test_site_packages_passages_reads_docstrings_without_importing(tmp_path):
    pkg = tmp_path / "fakepkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text('"""Fake package with a docstring that is long enough to keep here."""\n'
                                     "raise RuntimeError('never imported')\n")
    (pkg / "mod.py").write_text(
        'class Thing:\n'
        '    """A thing that does one useful job for the caller, well.\n\n'
        '    >>> Thing().run()  # a doctest paragraph is dropped\n\n'
        '    Too short.\n\n'
        '    A second paragraph: each paragraph becomes its own passage in the corpus.\n    """\n'
        '    def run(self):\n'
        '        """A thing that does one useful job for the caller, well."""\n')
    (pkg / "broken.py").write_text("def (:\n")  # unparsable files are skipped
    (tmp_path / "pkg-1.0.dist-info").mkdir()
    out = vectordb.site_packages_passages(tmp_path, min_words=8)
    texts = [p["text"] for p in out]
    assert texts == ["Fake package with a docstring that is long enough to keep here.",
                     "A thing that does one useful job for the caller, well.",
                     "A second paragraph: each paragraph becomes its own passage in the corpus."]  # duplicate dropped
    assert [p["title"] for p in out] == ["fakepkg", "fakepkg.mod.Thing", "fakepkg.mod.Thing"]
    assert {p["metadata"]["module"] for p in out} == {"fakepkg"}
    assert len({p["_id"] for p in out}) == 3
    assert vectordb.site_packages_passages(tmp_path, limit=1)[0]["title"] == "fakepkg"
    excluded = vectordb.site_packages_passages(tmp_path, exclude_texts=[texts[0]])
    assert texts[0] not in [p["text"] for p in excluded]


def test_site_packages_passages_missing_root(tmp_path):
    with pytest.raises(FileNotFoundError, match="site-packages"):
        vectordb.site_packages_passages(tmp_path / "nope")


# ---------------------------------------------------------------- Qdrant Edge and qdrant-client


def test_edge_shard_finds_what_exact_search_finds(tmp_path):
    docs, queries = _unit(300, dim=32), _unit(20, dim=32, seed=3)
    payloads = [{"module": "even" if i % 2 == 0 else "odd"} for i in range(len(docs))]
    exact, _ = vectordb.exact_top_k(docs, queries, k=5)
    for int8 in (False, True):
        path = tmp_path / f"shard-{int8}"
        shard, build = vectordb.build_edge_shard(path, docs, payloads, vectordb.edge_config(32, int8=int8))
        assert build["points"] == 300
        ids, scores, seconds = vectordb.edge_search(shard, queries, k=5, exact=True)
        assert len(ids) == len(seconds) == 20 and all((np.diff(s) <= 1e-6).all() for s in scores)
        if not int8:  # exact search in the engine = NumPy's ranking
            assert vectordb.recall_at_k(ids, exact, k=5).mean() == 1.0
        approx, _, _ = vectordb.edge_search(shard, queries, k=5, hnsw_ef=256)
        assert vectordb.recall_at_k(approx, exact, k=5).mean() >= 0.9
        from qdrant_edge import FieldCondition, Filter, MatchValue

        even = Filter(must=[FieldCondition(key="module", match=MatchValue(value="even"))])
        filtered, _, _ = vectordb.edge_search(shard, queries[:3], k=5, hnsw_ef=64, query_filter=even)
        assert all(i % 2 == 0 for row in filtered for i in row)
        shard.close()
        store = vectordb.storage_per_vector(path, 300)
        assert store["float32 vectors"] == pytest.approx(4 * 32, abs=1)
        assert (store["int8 vectors"] > 0) == int8
        if int8:
            assert store["int8 vectors"] < store["float32 vectors"] / 2


def test_build_edge_shard_checks_payload_count(tmp_path):
    with pytest.raises(ValueError, match="one payload per vector"):
        vectordb.build_edge_shard(tmp_path / "s", _unit(3), [{}], vectordb.edge_config(16))


def test_storage_per_vector_counts_components(tmp_path):
    seg = tmp_path / "segments" / "abc"
    (seg / "vector_storage").mkdir(parents=True)
    (seg / "vector_index").mkdir()
    (seg / "vector_storage" / "matrix.dat").write_bytes(b"x" * 400)
    (seg / "vector_storage" / "quantized.data").write_bytes(b"x" * 100)
    (seg / "vector_index" / "links_compressed.bin").write_bytes(b"x" * 50)
    (tmp_path / "wal").mkdir()
    (tmp_path / "wal" / "open-1").write_bytes(b"x" * 1000)  # not counted
    assert vectordb.storage_per_vector(tmp_path, 10) == {"float32 vectors": 40, "int8 vectors": 10, "HNSW graph": 5}
    with pytest.raises(ValueError):
        vectordb.storage_per_vector(tmp_path, 0)


def test_qdrant_client_local_mode_and_url(monkeypatch):
    monkeypatch.delenv(vectordb.QDRANT_URL_VARIABLE, raising=False)
    client = vectordb.qdrant_client()
    assert vectordb.describe_client(client).startswith("local mode")
    from qdrant_client import models as qm

    client.create_collection("t", vectors_config=qm.VectorParams(size=16, distance=qm.Distance.COSINE))
    docs = _unit(30)
    client.upload_points("t", points=[qm.PointStruct(id=i, vector=v.tolist(), payload={"m": i % 3})
                                      for i, v in enumerate(docs)])
    hits = client.query_points("t", query=docs[4].tolist(), limit=3,
                               query_filter=qm.Filter(must=[qm.FieldCondition(key="m", match=qm.MatchValue(value=1))])).points
    assert hits[0].id == 4 and all(h.payload["m"] == 1 for h in hits)
    client.close()
    # QDRANT_URL switches the same call to a server (recorded here, not contacted)
    import qdrant_client

    made = {}
    monkeypatch.setattr(qdrant_client, "QdrantClient", lambda **kw: made.update(kw) or "client")
    monkeypatch.setenv(vectordb.QDRANT_URL_VARIABLE, "http://qdrant.example:6333")
    monkeypatch.setenv("QDRANT_API_KEY", "k")
    assert vectordb.qdrant_client() == "client"
    assert made["url"] == "http://qdrant.example:6333" and made["api_key"] == "k"


def test_describe_client_hides_credentials():
    class Remote:
        rest_uri = "http://user:secret@qdrant.example:6333"

    class Client:
        _client = Remote()

    described = vectordb.describe_client(Client())
    assert described == "server at http://qdrant.example:6333"
