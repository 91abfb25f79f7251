"""Compatibility: the FAISS store moved to qa/stores/faiss_store.py (the store interface is qa/stores/base.py)."""

from .stores.base import *  # noqa: F401,F403
from .stores.base import IndexError_, IndexCorruptError, IndexMissingError, ModelMismatchError, chunking_signature  # noqa: F401
from .stores.faiss_store import *  # noqa: F401,F403
from .stores.faiss_store import (CHUNKS_FILE, CURRENT_FILE, DENSE_FILE, DOCUMENTS_FILE, MANIFEST_FILE,  # noqa: F401
                                 SearchIndex, build_index, load_index, save_index)
