"""The one error type of ingestion; its message is for the user (shown in the app and the CLI)."""

from ..loader import DocumentError

__all__ = ["DocumentError"]
