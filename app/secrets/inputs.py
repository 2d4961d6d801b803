"""What gets scanned: files and directories, read in chunks, decompressed with caps.

Nothing here trusts the input: sizes are checked before reading, decompression stops at a size
and ratio cap (a gzip bomb is skipped with a reason), binary files are skipped, and a file that
disappears or cannot be read is reported, never a crash.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from app.errors import DecodeError, SkipFile
from app.net.body import Decoder
from app.net.text import human_size
from app.settings import get_settings

SCAN_EXTENSIONS = frozenset({".js", ".mjs", ".cjs", ".jsx", ".ts", ".tsx", ".html", ".htm", ".json", ".map"})
COMPRESSED_EXTENSIONS = {".gz": "gzip", ".br": "brotli"}  # file ending -> app.net.body.Decoder kind
SKIP_DIRS = frozenset({".git", ".hg", ".svn", "__pycache__"})
BINARY_SNIFF = 8192


@dataclass(frozen=True)
class Limits:
    max_file_bytes: int = 256 << 20
    max_decompression_ratio: int = 100
    chunk_size: int = 8 << 20

    @classmethod
    def from_settings(cls) -> Limits:
        s = get_settings()
        return cls(s.secrets_max_file_bytes, s.secrets_max_decompression_ratio, s.secrets_chunk_bytes)


def compression_of(path: str | Path) -> str | None:
    return COMPRESSED_EXTENSIONS.get(os.path.splitext(path)[1].lower())


def wanted(path: Path) -> bool:
    """Whether a file found while walking a directory is one we scan."""
    return _wanted_name(path.name)


def _wanted_name(name: str) -> bool:
    stem, dot, suffix = name.lower().rpartition(".")
    if dot and "." + suffix in COMPRESSED_EXTENSIONS:
        stem, dot, suffix = stem.rpartition(".")
    return bool(dot and stem) and "." + suffix in SCAN_EXTENSIONS


def expand(paths: list[Path]) -> Iterator[tuple[str | Path, str | None]]:
    """Files to scan, in a stable order; (path, reason) for a path that cannot be scanned at all."""
    for root in paths:
        if root.is_file():
            yield root, None
        elif root.is_dir():
            yield from ((path, None) for path in _walk(str(root)))
        elif root.exists():
            yield root, "not a regular file"
        else:
            yield root, "no such file or directory"


def _walk(directory: str) -> Iterator[str]:
    """Regular files we scan under a directory; symlinks are not followed (no loops, no escaping the tree)."""
    try:
        with os.scandir(directory) as it:
            entries = sorted(it, key=lambda e: e.name)
    except OSError:
        return
    for entry in entries:
        # DirEntry caches the file type from readdir: no extra system call per file.
        if entry.is_dir(follow_symlinks=False):
            if entry.name not in SKIP_DIRS:
                yield from _walk(entry.path)
        elif entry.is_file(follow_symlinks=False) and _wanted_name(entry.name):
            yield entry.path  # a str: building 10,000s of Path objects is measurable here


def read_chunks(path: str | Path, limits: Limits) -> Iterator[bytes]:
    """The file's (decompressed) bytes in chunks; raises SkipFile with a reason."""
    try:
        # Non-blocking open: a FIFO put in the file's place answers "not a regular file", not a hang.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise SkipFile(f"cannot read: {exc.strerror or exc}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise SkipFile("not a regular file")
        size = info.st_size
        if size > limits.max_file_bytes:
            raise SkipFile(f"larger than the {human_size(limits.max_file_bytes)} cap ({human_size(size)})")
        raw = _raw_chunks(fd, size, limits.chunk_size)
        kind = compression_of(path)
        chunks = _decompressed(raw, kind, limits) if kind else raw
        first = True
        for chunk in chunks:
            if first and chunk.find(b"\0", 0, BINARY_SNIFF) >= 0:
                raise SkipFile("binary file (contains NUL bytes)")
            first = False
            yield chunk
    except OSError as exc:
        raise SkipFile(f"read error: {exc.strerror or exc}") from None
    finally:
        os.close(fd)


def _raw_chunks(fd: int, size: int, chunk_size: int) -> Iterator[bytes]:
    # Plain os.read calls: most scanned files are small, and a buffered file object costs more than
    # reading them. Each read asks for what is left (+1 to see the end), so no chunk-sized buffer is
    # allocated for a small file; a file that grows while read is still read in chunks to its end.
    done = 0
    while chunk := os.read(fd, min(chunk_size, max(size - done, 0) + 1)):
        done += len(chunk)
        yield chunk


def _decompressed(raw: Iterator[bytes], kind: str, limits: Limits) -> Iterator[bytes]:
    decoder = Decoder(
        kind, max_bytes=limits.max_file_bytes, max_ratio=limits.max_decompression_ratio, step=limits.chunk_size
    )
    try:
        for chunk in raw:
            yield from decoder.feed(chunk)
        yield from decoder.finish()
    except DecodeError as exc:
        raise SkipFile(str(exc)) from None
