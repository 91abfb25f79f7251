"""The optional approximate FAISS index (Settings.dense_index = "ivf"): used only above ivf_min_passages."""

import faiss
import numpy as np

from qa.settings import load_settings
from qa.stores.faiss_store import SearchIndex, load_index, make_dense_index, save_index
from qa.types import Chunk


def _vectors(n=3000, d=32, seed=0):
    rng = np.random.default_rng(seed)
    m = rng.normal(size=(n, d)).astype(np.float32)
    return m / np.linalg.norm(m, axis=1, keepdims=True)


def test_flat_is_the_default_and_small_corpora_stay_flat():
    m = _vectors()
    assert isinstance(make_dense_index(m, load_settings()), faiss.IndexFlatIP)
    small = load_settings(dense_index="ivf", ivf_min_passages=len(m) + 1)
    assert isinstance(make_dense_index(m, small), faiss.IndexFlatIP)


def test_ivf_above_the_threshold_matches_flat_when_every_list_is_searched(tmp_path):
    m = _vectors()
    settings = load_settings(dense_index="ivf", ivf_min_passages=1000, ivf_nprobe=55, index_dir=tmp_path)
    ivf = make_dense_index(m, settings)
    assert isinstance(ivf, faiss.IndexIVFFlat) and ivf.nlist == 55 and ivf.nprobe == 55
    flat = make_dense_index(m, load_settings())
    q = m[:20] + 0.01
    assert np.array_equal(ivf.search(q, 10)[1], flat.search(q, 10)[1])  # all lists searched: exact
    assert np.allclose(ivf.reconstruct_n(0, len(m)), m)  # direct map: vectors() keeps working
    # a saved IVF index is loaded with the configured nprobe (the file does not keep it)
    chunks = [Chunk(chunk_id=i, doc_id=f"d{i}", start=0, end=4, text=f"段落{i}") for i in range(len(m))]
    index = SearchIndex(manifest={"format": 1, "model": settings.embedding_model, "dim": 32, "chunking": {},
                                  "documents": {}}, chunks=chunks, dense=ivf)
    save_index(index, tmp_path)
    loaded = load_index(tmp_path, load_settings(ivf_nprobe=7))
    assert isinstance(loaded.dense, faiss.IndexIVF) and loaded.dense.nprobe == 7
    assert loaded.dense_search(m[5], 1)[0][0] == 5
    # removing a document keeps the approximate index (it used to fall back to flat)
    loaded.delete_documents(["d0", "d1"])
    assert isinstance(loaded.dense, faiss.IndexIVF) and loaded.dense.nprobe == 7 and loaded.dense.ntotal == len(m) - 2
    assert loaded.dense_search(m[5], 1)[0][0] == 3  # positions shift by the two removed passages
    assert np.allclose(loaded.vectors(), m[2:])


def test_unknown_dense_index_is_refused():
    import pytest

    with pytest.raises(ValueError):
        make_dense_index(_vectors(10), load_settings(dense_index="hnsw"))
