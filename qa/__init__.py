"""Retrieval-augmented question answering over Chinese documents, with cited extractive answers."""

__version__ = "0.1.0"
