"""The scale benchmark's own helpers (eval/scale_common.py): recall, synthetic vectors, percentiles."""

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "eval"))

import scale_common  # noqa: E402


def test_recall_at_k_hand_made():
    exact = np.array([[0, 1, 2, 3], [4, 5, 6, 7]])
    approx = np.array([[0, 1, 9, 9], [7, 6, 5, 4]])  # 2 of 4, then 4 of 4 (order does not matter)
    assert scale_common.recall_at_k(approx, exact, k=4) == 0.75
    # only the first k columns count; -1 (no result) never matches
    assert scale_common.recall_at_k(np.array([[3, -1, 0]]), np.array([[0, 3, -1]]), k=2) == 0.5


def test_perturb_keeps_unit_norm_and_stays_close():
    rng = np.random.default_rng(0)
    base = rng.normal(size=(50, 384)).astype(np.float32)
    base /= np.linalg.norm(base, axis=1, keepdims=True)
    out = scale_common.perturb(base, 0.02, rng)
    assert out.dtype == np.float32
    assert np.allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    cos = (out * base).sum(1)
    assert (cos > 0.85).all() and (cos < 0.9999).all()


def test_corpus_vectors_real_first_then_synthetic():
    rng = np.random.default_rng(1)
    real = rng.normal(size=(10, 8)).astype(np.float32)
    real /= np.linalg.norm(real, axis=1, keepdims=True)
    vectors, source = scale_common.corpus_vectors(real, 25, sigma=0.01, seed=3)
    assert vectors.shape == (25, 8) and source.shape == (25,)
    assert np.array_equal(vectors[:10], real) and list(source[:10]) == list(range(10))
    assert ((source[10:] >= 0) & (source[10:] < 10)).all()
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    # each synthetic row is nearest to its own source
    assert (np.argmax(vectors[10:] @ real.T, axis=1) == source[10:]).all()
    again, _ = scale_common.corpus_vectors(real, 25, sigma=0.01, seed=3)
    assert np.array_equal(vectors, again)  # deterministic: build and query processes see the same corpus
    small, src = scale_common.corpus_vectors(real, 4)
    assert np.array_equal(small, real[:4]) and list(src) == [0, 1, 2, 3]


def test_percentiles():
    p = scale_common.percentiles([float(x) for x in range(1, 101)])
    assert p == {"p50_ms": 50.5, "p95_ms": 95.05}
