"""Shared fixtures. The embedder is loaded once per test session (loading costs seconds)."""

import contextlib

import pytest


@pytest.fixture(scope="session")
def embedder():
    """The configured embedder, from the real cache dir (first run materializes the bundled model)."""
    from qa.embedding import get_embedder
    from qa.settings import load_settings

    return get_embedder(load_settings())


REPO = __import__("pathlib").Path(__file__).resolve().parent.parent


def make_service(tmp_dir, embedder, **overrides):
    """A QAService over a private copy of the built-in corpus, with its own index folder."""
    import shutil

    from qa.pipeline import QAService
    from qa.settings import load_settings

    corpus = tmp_dir / "corpus"
    shutil.copytree(REPO / "corpus", corpus)
    settings = load_settings(corpus_dir=corpus, index_dir=tmp_dir / "index", **overrides)
    service = QAService(settings, embedder=embedder)
    service.reindex()
    return service


@pytest.fixture(scope="session")
def built_service(tmp_path_factory, embedder):
    """A read-only service over the built-in corpus, indexed once per test session. Do not mutate it."""
    return make_service(tmp_path_factory.mktemp("built"), embedder)


def clone_service(service, tmp_dir, **overrides):
    """A private, mutable copy of a built service (corpus and index folders copied: no re-embedding)."""
    import shutil

    from qa.pipeline import QAService

    corpus, index = tmp_dir / "corpus", tmp_dir / "index"
    shutil.copytree(service.settings.corpus_dir, corpus)
    shutil.copytree(service.settings.index_dir, index)
    settings = service.settings.with_overrides(corpus_dir=corpus, index_dir=index, **overrides)
    clone = QAService(settings, embedder=service.embedder)
    from qa.store import load_index

    clone.index = load_index(index, settings)
    return clone


@contextlib.contextmanager
def serve(service):
    """The Gradio app for `service` on a free localhost port, for the `with` block: yields its url, then stops it."""
    import socket

    from qa.app import build_app

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    demo = build_app(service)
    demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=port, quiet=True)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        demo.close()


def milvus_missing() -> str | None:
    """Why the Milvus tests cannot run here (None when pymilvus and milvus-lite import)."""
    try:
        import milvus_lite  # noqa: F401
        import pymilvus  # noqa: F401
    except ImportError as exc:
        return f"Milvus Lite is not installed ({exc}); `pip install -e .[test]` installs it where wheels exist"
    return None


def milvus_service(service, tmp_dir, **overrides):
    """A Milvus (Lite file) copy of a built FAISS service: its vectors are migrated, nothing is re-embedded."""
    import shutil

    from qa.pipeline import QAService

    corpus = tmp_dir / "corpus"
    shutil.copytree(service.settings.corpus_dir, corpus)
    settings = service.settings.with_overrides(corpus_dir=corpus, index_dir=tmp_dir / "index", store="milvus", **overrides)
    clone = QAService(settings, index=service.index, embedder=service.embedder)
    report = clone.reindex()
    assert report.embedded_chunks == 0
    return clone


@pytest.fixture(scope="session", params=["faiss", "milvus"])
def engine_service(request, tmp_path_factory, built_service):
    """The built-in corpus indexed by each store (read-only; the Milvus one reuses the FAISS vectors)."""
    if request.param == "faiss":
        return built_service
    reason = milvus_missing()
    if reason:
        pytest.skip(reason)
    return milvus_service(built_service, tmp_path_factory.mktemp("milvus"))


@pytest.fixture(scope="session")
def torch_embedder():
    """The bundled model on the torch backend: the reference path (the one before qa/fast_embed.py's ONNX path)."""
    from qa.embedding import get_embedder
    from qa.settings import load_settings

    return get_embedder(load_settings(embedding_backend="torch", embedding_device="cpu"))


@pytest.fixture(scope="session")
def onnx_embedder():
    """The bundled model on ONNX Runtime, int8 (opt-in: QA_EMBEDDING_PRECISION=int8)."""
    from qa.embedding import get_embedder
    from qa.settings import load_settings

    return get_embedder(load_settings(embedding_backend="onnx", embedding_precision="int8"))


@pytest.fixture(scope="session")
def bf16_embedder():
    """The bundled model in bfloat16 on torch (opt-in: QA_EMBEDDING_PRECISION=bfloat16)."""
    from qa.embedding import get_embedder
    from qa.settings import load_settings

    return get_embedder(load_settings(embedding_backend="torch", embedding_precision="bfloat16", embedding_device="cpu"))


def kill_9_when(proc, log_path, ready, settle_s: float = 0.0, timeout_s: float = 240) -> None:
    """SIGKILL `proc` once `ready()` holds (then after `settle_s`), and check it died of that signal, not earlier."""
    import os
    import signal
    import time

    try:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and proc.poll() is None and not ready():
            time.sleep(0.02)
        assert proc.poll() is None, f"the process ended before it could be killed:\n{log_path.read_text(errors='replace')[-2000:]}"
        time.sleep(settle_s)
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
