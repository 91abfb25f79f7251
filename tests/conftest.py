"""Shared fixtures. The embedder is loaded once per test session (loading costs seconds)."""

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


def serve(service):
    """Start the Gradio app for `service` on a free localhost port; returns (url, demo)."""
    import socket

    from qa.app import build_app

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    demo = build_app(service)
    demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=port, quiet=True)
    return f"http://127.0.0.1:{port}", demo


@pytest.fixture(scope="session")
def torch_embedder():
    """The bundled model on the torch backend: the reference path (the one before qa/fast_embed.py's ONNX path)."""
    from qa.embedding import get_embedder
    from qa.settings import load_settings

    return get_embedder(load_settings(embedding_backend="torch", embedding_device="cpu"))


@pytest.fixture(scope="session")
def onnx_embedder():
    """The bundled model on ONNX Runtime, int8 (opt-in: QA_EMBEDDING_INT8=1; the CPU default is float32 ONNX)."""
    from qa.embedding import get_embedder
    from qa.settings import load_settings

    return get_embedder(load_settings(embedding_backend="onnx", embedding_int8=True))
