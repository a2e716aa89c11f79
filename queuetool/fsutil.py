"""File access the readers share: read-only, bounded, never following a symlink.

POSIX-only calls live here behind small functions so the rest of the package runs
on Windows and macOS unchanged.
"""
from __future__ import annotations

import datetime as _dt
import os
import stat
from pathlib import Path
from typing import Iterator

_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_O_BINARY = getattr(os, "O_BINARY", 0)
_O_NONBLOCK = getattr(os, "O_NONBLOCK", 0)


class UnsafePathError(OSError):
    """A path that would leave the spool root or go through a symlink."""


def resolve_inside(root: Path, rel: str) -> Path:
    """`root/rel`, refusing absolute paths, `..` and symlinks in any component."""
    parts = Path(rel).parts
    if not parts or Path(rel).is_absolute() or ".." in parts:
        raise UnsafePathError(f"path {rel!r} leaves the spool root")
    path = Path(root)
    for part in parts:
        path = path / part
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return path  # vanished or not yet there; the caller's open reports it
        if stat.S_ISLNK(st.st_mode):
            raise UnsafePathError(f"{rel}: is a symlink, not followed")
    return path


def open_regular(root: Path, rel: str) -> int:
    """Open a regular file read-only without following symlinks; returns an fd."""
    path = resolve_inside(root, rel)
    flags = os.O_RDONLY | _O_NOFOLLOW | _O_BINARY | _O_NONBLOCK
    fd = os.open(path, flags)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            kind = "a directory" if stat.S_ISDIR(st.st_mode) else "not a regular file"
            raise IsADirectoryError(f"{rel}: is {kind}")
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_file(root: Path, rel: str, limit: int | None = None) -> bytes:
    """Read a whole file (or its first `limit` bytes) safely."""
    fd = open_regular(root, rel)
    try:
        if limit is None:
            chunks = []
            while True:
                chunk = os.read(fd, 1 << 20)
                if not chunk:
                    break
                chunks.append(chunk)
            return b"".join(chunks)
        return os.read(fd, limit)
    finally:
        os.close(fd)


def file_stat(root: Path, rel: str) -> os.stat_result:
    return os.lstat(resolve_inside(root, rel))


def walk_files(root: Path, sub: str = "") -> Iterator[tuple[str, os.DirEntry]]:
    """Yield (relative path, entry) for every non-directory below root/sub.

    Directory symlinks are never entered; file symlinks are yielded so that the
    reader can report them as errors rather than silently skip evidence.
    """
    base = Path(root) / sub if sub else Path(root)
    stack = [(base, sub)]
    while stack:
        directory, rel = stack.pop()
        try:
            with os.scandir(directory) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError:
            continue
        for entry in entries:
            child_rel = f"{rel}/{entry.name}" if rel else entry.name
            try:
                is_dir = entry.is_dir(follow_symlinks=False)
            except OSError:
                is_dir = False
            if is_dir:
                stack.append((Path(entry.path), child_rel))
            else:
                yield child_rel, entry
        # keep a stable, sorted order across the tree
        stack.sort(key=lambda item: item[1], reverse=True)


def iso_utc(epoch: float | int | None) -> str | None:
    """ISO-8601 UTC with a Z suffix, second precision; None for impossible times."""
    if epoch is None:
        return None
    try:
        when = _dt.datetime.fromtimestamp(float(epoch), tz=_dt.timezone.utc)
    except (OverflowError, OSError, ValueError):
        return None
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def is_posix() -> bool:
    return os.name == "posix"


def current_uid() -> int | None:
    return os.getuid() if hasattr(os, "getuid") else None
