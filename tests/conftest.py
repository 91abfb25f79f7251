"""Shared fixtures. The embedder is loaded once per test session (loading costs seconds)."""

import pytest


@pytest.fixture(scope="session")
def embedder():
    """The configured embedder, from the real cache dir (first run materializes the bundled model)."""
    from qa.embedding import get_embedder
    from qa.settings import load_settings

    return get_embedder(load_settings())
