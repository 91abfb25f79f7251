"""Zip containers (.docx, .epub): refuse damaged archives and zip bombs before anything is unpacked."""

from __future__ import annotations

import io
import zipfile

from ..settings import Settings
from .errors import DocumentError


def open_zip(name: str, data: bytes, settings: Settings, what: str) -> zipfile.ZipFile:
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        infos = archive.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError) as exc:
        raise DocumentError(f"{name}: not {what} (it is not a valid zip archive: {exc})") from exc
    total = sum(i.file_size for i in infos)
    if total > settings.max_decompressed_bytes:
        raise DocumentError(f"{name}: refused as a possible zip bomb: it would unpack to {total:,} bytes "
                            f"(the limit is {settings.max_decompressed_bytes:,})")
    for info in infos:
        if info.file_size > 1_000_000 and info.file_size > settings.max_compression_ratio * max(1, info.compress_size):
            raise DocumentError(f"{name}: refused as a possible zip bomb: {info.filename} inflates "
                                f"{info.file_size // max(1, info.compress_size):,} times (the limit is {settings.max_compression_ratio})")
    return archive


def read_member(archive: zipfile.ZipFile, member: str, settings: Settings, name: str) -> bytes:
    """Read one part, never more than its declared size (a lying header cannot inflate past the limit)."""
    info = archive.getinfo(member)
    with archive.open(info) as f:
        data = f.read(settings.max_decompressed_bytes + 1)
    if len(data) > settings.max_decompressed_bytes or len(data) > info.file_size:
        raise DocumentError(f"{name}: refused as a possible zip bomb ({member} inflates past its declared size)")
    return data
