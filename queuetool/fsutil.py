"""File access the readers share: read-only, bounded, never following a symlink.

POSIX-only calls live here behind small functions so the rest of the package runs
on Windows and macOS unchanged.
"""
from __future__ import annotations

import datetime as _dt
import math as _math
import os
import stat
import sys
import time as _time
from pathlib import Path
from typing import Callable, Iterable, Iterator

_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_O_BINARY = getattr(os, "O_BINARY", 0)
_O_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
_READ_FLAGS = os.O_RDONLY | _O_NOFOLLOW | _O_BINARY | _O_NONBLOCK
_WINDOWS = os.sep == "\\"


class UnsafePathError(OSError):
    """A path that would leave the spool root or go through a symlink."""


# Directories already seen not to be symlinks, per process: a queue has few directories
# and many files, so each directory is lstat()ed once, not once per file.
_CHECKED_DIRS: set[str] = set()
_CHECKED_DIRS_MAX = 100_000


def resolve_inside(root: Path | str, rel: str, fresh: bool = False) -> str:
    """`root/rel` as a string, refusing absolute paths, `..` and symlinked directories.

    The last component is checked by the open itself (O_NOFOLLOW) or by lstat.
    `fresh=True` re-checks every directory (writers must not trust the read cache).
    Plain string work (no pathlib): readers call this once per file.
    """
    if not rel or rel[0] in "/\\" or (_WINDOWS and os.path.isabs(rel)):
        raise UnsafePathError(f"path {rel!r} leaves the spool root")
    path = root if type(root) is str else os.fspath(root)
    if _WINDOWS:
        return _resolve_inside_windows(path, rel, fresh)
    if "/" not in rel:  # a file directly in the root: no directory to check
        if rel == "..":
            raise UnsafePathError(f"path {rel!r} leaves the spool root")
        return f"{path}/{rel}" if path and path[-1] != "/" else path + rel
    parts = rel.split("/")
    if ".." in parts or "" in parts:
        raise UnsafePathError(f"path {rel!r} leaves the spool root")
    # same strings as os.path.join(root, *parts), built once per prefix
    if path and path[-1] != "/":
        path += "/"
    full = path + rel
    path += parts[0]
    for index in range(len(parts) - 1):
        if index:
            path = f"{path}/{parts[index]}"
        if path in _CHECKED_DIRS and not fresh:
            continue
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return full  # vanished; the caller's open reports it
        if stat.S_ISLNK(st.st_mode):
            raise UnsafePathError(f"{rel}: goes through a symlink, not followed")
        if len(_CHECKED_DIRS) < _CHECKED_DIRS_MAX:
            _CHECKED_DIRS.add(path)
    return full


def _resolve_inside_windows(path: str, rel: str, fresh: bool) -> str:
    """resolve_inside where a backslash is a separator too (os.path.join does the joining)."""
    parts = rel.replace("\\", "/").split("/")
    if ".." in parts or "" in parts:
        raise UnsafePathError(f"path {rel!r} leaves the spool root")
    full = os.path.join(path, *parts)
    for part in parts[:-1]:
        path = os.path.join(path, part)
        if path in _CHECKED_DIRS and not fresh:
            continue
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return full
        if stat.S_ISLNK(st.st_mode):
            raise UnsafePathError(f"{rel}: goes through a symlink, not followed")
        if len(_CHECKED_DIRS) < _CHECKED_DIRS_MAX:
            _CHECKED_DIRS.add(path)
    return full


def _refuse_symlink(path: str, rel: str) -> None:
    if not _O_NOFOLLOW and os.path.islink(path):
        raise UnsafePathError(f"{rel}: is a symlink, not followed")


def open_regular(root: Path | str, rel: str) -> tuple[int, os.stat_result]:
    """Open a regular file read-only without following symlinks; returns (fd, stat)."""
    path = resolve_inside(root, rel)
    if not _O_NOFOLLOW:
        _refuse_symlink(path, rel)
    try:
        fd = os.open(path, _READ_FLAGS)
    except OSError as exc:
        if _O_NOFOLLOW and os.path.islink(path):
            raise UnsafePathError(f"{rel}: is a symlink, not followed") from None
        raise exc
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            kind = "a directory" if stat.S_ISDIR(st.st_mode) else "not a regular file"
            raise IsADirectoryError(f"{rel}: is {kind}")
    except BaseException:
        os.close(fd)
        raise
    return fd, st


def read_file_and_stat(root: Path | str, rel: str, limit: int | None = None) -> tuple[bytes, os.stat_result]:
    """Read a whole file (or its first `limit` bytes) safely, with its stat."""
    fd, st = open_regular(root, rel)
    try:
        return read_fd(fd, limit, st.st_size + 1), st
    finally:
        os.close(fd)


def read_fd(fd: int, limit: int | None, size_hint: int) -> bytes:
    """Read to EOF (or `limit` bytes), asking first for `size_hint` bytes.

    os.read(fd, n) allocates n bytes up front, so asking for 1 MiB to get a 17 KB
    queue file costs more than the read; the file's size (+1, to see EOF) is the
    right first request. Short reads keep reading, as a growing file or a network
    file system may give them.
    """
    chunks: list[bytes] = []
    total = 0
    want = size_hint if limit is None else min(size_hint, limit)
    while want > 0:
        chunk = os.read(fd, want)
        if not chunk:
            break
        chunks.append(chunk)
        total += len(chunk)
        want = (1 << 20) if limit is None else min(1 << 20, limit - total)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def read_tail(root: Path | str, rel: str, count: int) -> bytes:
    """The last `count` bytes of a file, safely, without reading the rest (logs grow)."""
    fd, st = open_regular(root, rel)
    try:
        if st.st_size > count:
            os.lseek(fd, st.st_size - count, os.SEEK_SET)
        return read_fd(fd, count, count)
    finally:
        os.close(fd)


def read_file(root: Path | str, rel: str, limit: int | None = None) -> bytes:
    """Read a whole file (or its first `limit` bytes) safely."""
    return read_file_and_stat(root, rel, limit)[0]


PREFETCH_BYTES = 64 * 1024   # what a header-only read needs of most files (HEAD_READ_LIMIT)
_WILLNEED = getattr(os, "POSIX_FADV_WILLNEED", None)


def prefetch(root: Path | str, rels: Iterable[str], length: int = PREFETCH_BYTES) -> int:
    """Ask the kernel to start reading the first `length` bytes of each file, and return.

    posix_fadvise(WILLNEED) queues the reads without waiting for them, so with a cold
    page cache the disk works on a whole batch at once while earlier batches are
    parsed, instead of one synchronous read per file. Files are opened by open_regular
    (regular files inside root, no symlinks); those it refuses are skipped (their read
    reports it). Returns how many files were advised; 0 where fadvise does not exist.
    """
    if _WILLNEED is None:
        return 0
    advised = 0
    for rel in rels:
        try:
            fd, _st = open_regular(root, rel)
        except OSError:  # UnsafePathError, IsADirectoryError too
            continue
        try:
            os.posix_fadvise(fd, 0, length, _WILLNEED)
            advised += 1
        except OSError:
            pass
        finally:
            os.close(fd)
    return advised


def file_stat(root: Path | str, rel: str) -> os.stat_result:
    """lstat of root/rel (a symlink is reported as one, never followed)."""
    return os.lstat(resolve_inside(root, rel))


def walk_files(root: Path | str, sub: str = "") -> Iterator[tuple[str, str]]:
    """Yield (relative path, file name) for every non-directory below root/sub.

    Directory symlinks are never entered; file symlinks are yielded so that the
    reader can report them as errors rather than silently skip evidence. Order:
    names sorted within a directory, its files before the directories below it.
    One directory is listed at a time (streaming), keeping only its names: a flat
    Exim input/ of 2x10^6 files costs its name strings, not 2x10^6 DirEntry objects.
    """
    base = os.fspath(Path(root) / sub if sub else Path(root))
    stack = [(base, sub)]
    while stack:
        directory, rel = stack.pop()
        names: list[str] = []
        subdirs: list[tuple[str, str]] = []
        try:
            with os.scandir(directory) as it:
                for entry in it:
                    try:
                        is_dir = entry.is_dir(follow_symlinks=False)
                    except OSError:
                        is_dir = False
                    if is_dir:
                        subdirs.append((entry.path, f"{rel}/{entry.name}" if rel else entry.name))
                    else:
                        names.append(entry.name)
        except OSError:
            continue
        stack.extend(subdirs)
        names.sort()
        prefix = f"{rel}/" if rel else ""
        for name in names:
            yield prefix + name, name
        # keep a stable, sorted order across the tree
        stack.sort(key=_second, reverse=True)


def _second(item: tuple[str, str]) -> str:
    return item[1]


# The `YYYY-MM-DD` of recent days: a spool's files share a few days, so each day is
# formatted once. Bounded; cleared when full.
_DAY_PREFIX: dict[int, str] = {}
_TWO_DIGITS = [f"{n:02d}" for n in range(60)]
_FAST_EPOCH_MAX = 253402300800  # 10000-01-01: beyond it (and before 1970) datetime decides


def iso_utc(epoch: float | int | None) -> str | None:
    """ISO-8601 UTC with a Z suffix, second precision; None for impossible times.

    Same text as datetime.fromtimestamp(epoch, utc).strftime(...), which rounds to the
    microsecond (half-even) before the seconds are cut; computed with integer maths
    for 1970..9999 because readers call this for every file.
    """
    if epoch is None:
        return None
    kind = type(epoch)
    if kind is float and 0.0 <= epoch < _FAST_EPOCH_MAX:
        seconds = int(epoch)
        if epoch - seconds >= 0.999999:  # may round up to the next second
            seconds = _rounded_seconds(epoch)
    elif kind is int and 0 <= epoch < _FAST_EPOCH_MAX:
        seconds = epoch
    else:
        return _iso_utc_datetime(epoch)
    days, rest = divmod(seconds, 86400)
    day = _DAY_PREFIX.get(days)
    if day is None:
        if len(_DAY_PREFIX) > 4096:
            _DAY_PREFIX.clear()
        day = _DAY_PREFIX[days] = _time.strftime("%Y-%m-%d", _time.gmtime(days * 86400))
    return f"{day}T{_TWO_DIGITS[rest // 3600]}:{_TWO_DIGITS[rest // 60 % 60]}:{_TWO_DIGITS[rest % 60]}Z"


def _rounded_seconds(epoch: float) -> int:
    """Whole seconds as datetime.fromtimestamp sees them (microseconds rounded half-even)."""
    fraction, whole = _math.modf(epoch)
    return int(whole) + (1 if round(fraction * 1e6) >= 1_000_000 else 0)


def _iso_utc_datetime(epoch: float | int) -> str | None:
    try:
        when = _dt.datetime.fromtimestamp(float(epoch), tz=_dt.timezone.utc)
    except (OverflowError, OSError, ValueError):
        return None
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def current_uid() -> int | None:
    return os.getuid() if hasattr(os, "getuid") else None


# ---- POSIX-only locking and durability, behind small functions (ops/ uses these) ----

def try_flock_exclusive(fd: int) -> bool:
    """flock(LOCK_EX|LOCK_NB) as Postfix and Sendmail lock queue files; False if busy.

    Without flock (Windows) there is nothing to coordinate with: True.
    """
    try:
        import fcntl
    except ImportError:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError as exc:
        if exc.errno in (11, 13, 35):  # EAGAIN, EACCES, EWOULDBLOCK (BSD)
            return False
        raise
    return True


def try_fcntl_write_lock(fd: int, length: int) -> bool:
    """fcntl(F_SETLK, F_WRLCK) on bytes [0, length), the lock Exim takes on a -D file.

    A POSIX record lock is dropped when *any* descriptor of the file is closed, so the
    caller must read the file through `fd` while it holds the lock. False if busy.
    """
    try:
        import fcntl
    except ImportError:
        return True
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, length, 0, os.SEEK_SET)
    except OSError as exc:
        if exc.errno in (11, 13, 35):
            return False
        raise
    return True


def fsync_directory(path: Path | str) -> None:
    """Make a rename/create/unlink in `path` durable (no-op where directories can't be opened)."""
    if os.name != "posix":
        return
    fd = os.open(os.fspath(path), os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def filesystem_barrier(path: Path | str) -> Callable[[], None] | None:
    """A function that makes everything written so far on `path`'s filesystem durable
    (Linux syncfs(2): data, new directory entries, appended lines), or None where the
    system has no such call; callers then fsync each file and directory."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        syncfs = libc.syncfs
    except (OSError, AttributeError, ImportError):
        return None
    syncfs.argtypes = [ctypes.c_int]
    target = os.fspath(path)

    def barrier() -> None:
        fd = os.open(target, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        try:
            if syncfs(fd) != 0:
                err = ctypes.get_errno()
                raise OSError(err, f"syncfs({target}) failed: {os.strerror(err)}")
        finally:
            os.close(fd)

    return barrier


def process_alive(pid: int) -> bool:
    """Whether process `pid` exists (POSIX signal 0); False where that cannot be asked."""
    if pid <= 0 or not hasattr(os, "kill") or os.name != "posix":
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    return True
