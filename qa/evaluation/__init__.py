"""Offline evaluation of retrieval and answers: question sets and metrics."""
