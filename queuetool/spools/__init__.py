"""Spool readers: one module per on-disk format, and the Spool that wraps one.

Every reader module exposes the same four plain functions (no base class):

    MTA: str                                   # record `mta` value
    detect(root: Path) -> int                  # 0 = not mine; higher = surer (signatures)
    iter_units(root: Path) -> Iterator[QueueUnit]
    read_unit(root: Path, unit: QueueUnit, full: bool = False) -> QueuedMessage
    read_message_bytes(root: Path, unit: QueueUnit) -> bytes   # RFC 5322 message

`read_unit` may raise on hostile input; `read_unit_safely` turns any exception into
a record with `error` set, so the scan always goes on.
"""
from __future__ import annotations

import importlib
import os
import re
from pathlib import Path
from types import ModuleType
from typing import Callable, Iterator

from .. import fsutil
from ..headers import HEAD_READ_LIMIT
from ..model import QueuedMessage, QueueUnit

# Detection order matters only for ties; each module's detect() looks at signatures.
READER_MODULES: dict[str, str] = {
    "postfix": "queuetool.spools.postfix",
    "exim": "queuetool.spools.exim",
    "sendmail": "queuetool.spools.sendmail",
    "smtpsvc": "queuetool.spools.smtpsvc",
    "exchange": "queuetool.spools.exchange",
    "eml": "queuetool.spools.eml",
}

# How deep below a given directory to look for spools (a copied server drive).
FIND_MAX_DEPTH = 8


class SpoolError(Exception):
    """The path is not a spool queuetool can read (one-line reason)."""


def reader_for(mta: str) -> ModuleType:
    try:
        return importlib.import_module(READER_MODULES[mta])
    except KeyError:
        raise SpoolError(f"unknown MTA {mta!r}; choose one of {', '.join(READER_MODULES)}") from None


def available_readers() -> dict[str, ModuleType]:
    """Reader modules that exist in this installation, by MTA name."""
    out = {}
    for mta, module in READER_MODULES.items():
        try:
            out[mta] = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise
    return out


def read_unit_safely(reader: ModuleType, root: Path, unit: QueueUnit, full: bool = False) -> QueuedMessage:
    """read_unit, but a failure becomes a record with `error` instead of an exception."""
    try:
        record = reader.read_unit(root, unit, full=full)
    except RecursionError:
        record = None
        reason = "unreadable: nesting too deep"
    except MemoryError:
        record = None
        reason = "unreadable: too large to hold in memory"
    except Exception as exc:  # noqa: BLE001 - any reader bug must not stop a scan
        record = None
        reason = f"unreadable: {type(exc).__name__}: {exc}"
    if record is None:
        record = QueuedMessage(mta=reader.MTA, id=unit.id, queue=unit.queue, files=list(unit.paths))
        record.add_error(reason)
    return record


def read_into_record(mta: str, root: Path, unit: QueueUnit, full: bool,
                     read_into: "Callable[[Path, QueueUnit, QueuedMessage, bool], None]") -> QueuedMessage:
    """A record for `unit` filled by `read_into`; a file that cannot be read (vanished,
    unreadable, a symlink, a directory) becomes the record's error, not an exception."""
    record = QueuedMessage(mta=mta, id=unit.id, queue=unit.queue, files=list(unit.paths))
    try:
        read_into(root, unit, record, full)
    except OSError as exc:
        record.add_error(f"cannot read {unit.paths[0]}: {exc.strerror or exc}")
    return record


# First read of a message file: header blocks are usually well under 4 KiB.
FIRST_READ = 8192
_BLANK_LINE = re.compile(rb"\n\r?\n")


def find_body_start(data: bytes) -> int:
    """headers.find_body_start (offset just after the first blank line, -1 if none) in
    one regex pass: the earliest `\n\n` or `\n\r\n` to start is also the earliest to end.
    Two bytes.find calls over the whole head cost several times more per message."""
    if data[:1] == b"\n":
        return 1
    if data[:2] == b"\r\n":
        return 2
    match = _BLANK_LINE.search(data)
    return -1 if match is None else match.end()


def read_message_head(root: Path | str, rel: str, limit: int = HEAD_READ_LIMIT,
                      wants_body: "Callable[[bytes], bool] | None" = None) -> tuple[bytes, int, os.stat_result]:
    """(data, body start or -1, stat) of a message file, reading only what the header needs.

    Reads FIRST_READ bytes, more (up to `limit`) only while no blank line is seen, so
    `data` is a prefix of the file's first `limit` bytes holding the whole header block
    when it fits in `limit`. `body start` is headers.find_body_start(data): -1 means no
    blank line within `data`; then the header block was cut if the file is longer.
    `wants_body(header block)` True reads on to `limit` (a DSN reader parses the body).
    Same safety as fsutil.read_file: no symlinks, regular files only, inside `root`.
    """
    fd, st = fsutil.open_regular(root, rel)
    try:
        data = os.read(fd, min(FIRST_READ, limit))
        body_start = find_body_start(data)
        while body_start < 0 and len(data) < limit:
            chunk = os.read(fd, limit - len(data))
            if not chunk:
                break
            data += chunk
            body_start = find_body_start(data)
        if body_start >= 0 and wants_body is not None and len(data) < limit and wants_body(data[:body_start]):
            while len(data) < limit:
                chunk = os.read(fd, limit - len(data))
                if not chunk:
                    break
                data += chunk
    finally:
        os.close(fd)
    return data, body_start, st


def may_be_report(block: bytes) -> bool:
    """Whether a raw header block could hold `Content-Type: multipart/report` once
    decoded (the literal text, or an RFC 2047 word that might spell it)."""
    return b"=?" in block or b"multipart/report" in block.lower()


class Spool:
    """One MTA queue directory, with mailbox-like keyed access.

    Iterating yields QueuedMessage records (headers only); `get_bytes` reads the
    whole message. Read-only: nothing here writes or locks.
    """

    def __init__(self, root: str | Path, mta: str, label: str | None = None) -> None:
        self.root = Path(root)
        self.mta = mta
        self.reader = reader_for(mta)
        self.label = label if label is not None else str(self.root)
        self._index: dict[str, QueueUnit] | None = None

    def __repr__(self) -> str:
        return f"Spool({str(self.root)!r}, mta={self.mta!r})"

    def units(self) -> Iterator[QueueUnit]:
        return self.reader.iter_units(self.root)

    def keys(self) -> list[str]:
        return [unit.id for unit in self.units()]

    def __iter__(self) -> Iterator[QueuedMessage]:
        for unit in self.units():
            yield self.read(unit)

    def __len__(self) -> int:
        return sum(1 for _ in self.units())

    def __contains__(self, key: str) -> bool:
        return self.find_unit(key) is not None

    def read(self, unit: QueueUnit, full: bool = False) -> QueuedMessage:
        record = read_unit_safely(self.reader, self.root, unit, full=full)
        record.spool = self.label
        return record

    def find_unit(self, key: str) -> QueueUnit | None:
        """The unit with id `key`; the first lookup lists the spool once and keeps an index.

        Call `refresh()` after the spool changed (a live MTA moves files).
        """
        if self._index is None:
            index: dict[str, QueueUnit] = {}
            for unit in self.units():
                index.setdefault(unit.id, unit)
            self._index = index
        return self._index.get(key)

    def refresh(self) -> None:
        """Forget the key index built by keyed access."""
        self._index = None

    def _unit(self, key: str) -> QueueUnit:
        unit = self.find_unit(key)
        if unit is None:
            raise KeyError(key)
        return unit

    def get(self, key: str, full: bool = False) -> QueuedMessage:
        return self.read(self._unit(key), full=full)

    __getitem__ = get

    def get_bytes(self, key: str) -> bytes:
        return self.reader.read_message_bytes(self.root, self._unit(key))

    def files(self, key: str) -> list[str]:
        return list(self._unit(key).paths)


class MultiSpool:
    """Several spools found below one directory, read as one (same interface as Spool)."""

    def __init__(self, spools: list[Spool]) -> None:
        self.spools = spools
        self.mta = "+".join(sorted({s.mta for s in spools}))

    def __repr__(self) -> str:
        return f"MultiSpool({self.spools!r})"

    def keys(self) -> list[str]:
        return [key for spool in self.spools for key in spool.keys()]

    def __iter__(self) -> Iterator[QueuedMessage]:
        for spool in self.spools:
            yield from spool

    def __len__(self) -> int:
        return sum(len(spool) for spool in self.spools)

    def __contains__(self, key: str) -> bool:
        return any(key in spool for spool in self.spools)

    def _owner(self, key: str) -> Spool:
        for spool in self.spools:
            if key in spool:
                return spool
        raise KeyError(key)

    def get(self, key: str, full: bool = False) -> QueuedMessage:
        return self._owner(key).get(key, full=full)

    __getitem__ = get

    def get_bytes(self, key: str) -> bytes:
        return self._owner(key).get_bytes(key)

    def files(self, key: str) -> list[str]:
        return self._owner(key).files(key)


# ---- what detection looks at, shared by the readers during one detect_mta call ----
#
# Every reader's detect() lists the directory and reads the first files of it; in a tree
# of many directories that was most of the discovery time. While detect_mta runs, each
# listing and each file head is fetched once (and forgotten when it returns).

DETECT_HEAD = 16384  # the most any reader's detect() reads of one file


class _DetectionCache:
    def __init__(self) -> None:
        self.listings: dict[str, list[tuple[str, bool]]] = {}
        self.heads: dict[tuple[str, str], bytes | OSError] = {}


_DETECTING: _DetectionCache | None = None


def dir_listing(directory: Path | str) -> list[tuple[str, bool]]:
    """(name, is a real directory) of every entry of `directory`, sorted by name;
    [] if it cannot be listed. Symlinks count as non-directories (never followed)."""
    key = os.fspath(directory)
    cache = _DETECTING
    if cache is not None:
        listing = cache.listings.get(key)
        if listing is not None:
            return listing
    try:
        with os.scandir(key) as it:
            listing = sorted((entry.name, _is_real_dir(entry)) for entry in it)
    except OSError:
        listing = []
    if cache is not None:
        cache.listings[key] = listing
    return listing


def _is_real_dir(entry: os.DirEntry) -> bool:
    try:
        return entry.is_dir(follow_symlinks=False)
    except OSError:
        return False


def file_head(root: Path | str, rel: str, size: int) -> bytes:
    """fsutil.read_file(root, rel, size); during detect_mta each file is read once for
    all readers (its first DETECT_HEAD bytes; a failure is re-raised to each)."""
    cache = _DETECTING
    if cache is None or size > DETECT_HEAD:
        return fsutil.read_file(root, rel, size)
    key = (os.fspath(root), rel)
    head = cache.heads.get(key)
    if head is None:
        try:
            head = fsutil.read_file(root, rel, DETECT_HEAD)
        except OSError as exc:
            head = exc
        cache.heads[key] = head
    if isinstance(head, OSError):
        raise head
    return head[:size]


def sample_vote(names: list[str], looks_right: "Callable[[str], bool]") -> bool:
    """Whether most of `names` (a detection sample) look right (an OSError counts as no).

    Stops as soon as the rest of the sample cannot change the majority (exact: a
    forensic tool should not guess a format from its first few files).
    """
    total = len(names)
    hits = 0
    for checked, name in enumerate(names, 1):
        try:
            if looks_right(name):
                hits += 1
        except OSError:
            pass
        if hits * 2 >= total:
            return True
        if (hits + total - checked) * 2 < total:
            return False
    return False


def child_dirs(root: Path, *names: str) -> dict[str, Path]:
    """Subdirectories of `root` whose names match `names` case-insensitively (Windows
    copies keep whatever case the server used: `PickUp`, `Pickup`, `BADMAIL`).

    Returns {lower-case wanted name: actual path}; symlinked directories are left out.
    """
    wanted = {name.lower() for name in names}
    found: dict[str, Path] = {}
    for name, is_dir in dir_listing(root):
        if is_dir:
            low = name.lower()
            if low in wanted and low not in found:
                found[low] = Path(root, name)
    return found


# Directory names (lower case) that hold logs on the servers we read: IIS/Exchange
# `LogFiles\SMTPSVC1`, Exchange 2007+ `TransportRoles\Logs`, Unix `/var/log`, and
# folders responders save Event Viewer exports into.
LOG_DIR_NAMES = frozenset({"logfiles", "logs", "log", "eventlogs", "eventlog", "event logs", "event viewer"})
EVENT_EXPORT_SUFFIXES = (".evtx", ".evt")
EVENT_NEIGHBOUR_SUFFIXES = (".csv", ".txt")
MAX_LOG_FILES = 100_000


def find_logs(top: str | Path, max_depth: int = FIND_MAX_DEPTH + 4) -> list[Path]:
    """Log files below `top` (a copied server tree) for the log readers, sorted.

    A file counts when a directory above it (below `top`) is named like a log folder
    (`LogFiles`, `Logs`, `log`, `EventLogs`), or it is an event log (`*.evtx`,
    `*.evt`), or a `*.csv`/`*.txt` next to one (Event Viewer exports). Spool readers
    never read these. Symlinks are not followed; names match case-insensitively.
    """
    top = Path(top)
    found: list[Path] = []
    stack: list[tuple[Path, int, bool]] = [(top, 0, False)]
    while stack and len(found) < MAX_LOG_FILES:
        directory, depth, in_log_dir = stack.pop()
        try:
            with os.scandir(directory) as it:
                entries = list(it)
        except OSError:
            continue
        files = [e for e in entries if e.is_file(follow_symlinks=False)]
        has_events = any(e.name.lower().endswith(EVENT_EXPORT_SUFFIXES) for e in files)
        for entry in files:
            low = entry.name.lower()
            if (in_log_dir or low.endswith(EVENT_EXPORT_SUFFIXES)
                    or (has_events and low.endswith(EVENT_NEIGHBOUR_SUFFIXES))):
                found.append(Path(entry.path))
        if depth >= max_depth:
            continue
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                stack.append((Path(entry.path), depth + 1, in_log_dir or entry.name.lower() in LOG_DIR_NAMES))
    return sorted(found)


def detect_mta(root: Path) -> str | None:
    """The reader that claims `root` with the strongest signature, or None."""
    global _DETECTING
    outermost = _DETECTING is None
    if outermost:
        _DETECTING = _DetectionCache()
    try:
        best, best_score = None, 0
        for mta, reader in available_readers().items():
            try:
                score = int(reader.detect(root))
            except OSError:
                score = 0
            if score > best_score:
                best, best_score = mta, score
        return best
    finally:
        if outermost:
            _DETECTING = None


def find_spools(top: str | Path, max_depth: int = FIND_MAX_DEPTH) -> list[Spool]:
    """Every spool at or below `top` (a copied server tree), outermost claim wins.

    Directory symlinks are not followed; log folders (LOG_DIR_NAMES, see `find_logs`)
    are not entered. Labels are paths relative to `top`.
    """
    return _find_spools(Path(top), max_depth, top_detected=False)


def _find_spools(top: Path, max_depth: int, top_detected: bool) -> list[Spool]:
    """find_spools; `top_detected`: the caller already saw no reader claim `top` itself."""
    found: list[Spool] = []
    stack = [(top, 0)]
    while stack:
        directory, depth = stack.pop()
        mta = None if top_detected and directory is top else detect_mta(directory)
        if mta is not None:
            rel = directory.relative_to(top).as_posix()
            found.append(Spool(directory, mta, label=rel if rel != "." else str(top)))
            continue
        if depth >= max_depth:
            continue
        try:
            with os.scandir(directory) as it:
                subdirs = sorted(
                    (Path(e.path) for e in it
                     if e.is_dir(follow_symlinks=False) and e.name.lower() not in LOG_DIR_NAMES),
                    reverse=True,
                )
        except OSError:
            continue
        stack.extend((d, depth + 1) for d in subdirs)
    return found


def open_spool(path: str | Path, mta: str | None = None) -> Spool | MultiSpool:
    """Open the spool at `path`; with several spools below it, a MultiSpool of all.

    `mta` forces a reader instead of detecting one.
    """
    root = Path(path)
    if not root.exists():
        raise SpoolError(f"{root}: no such file or directory")
    if not root.is_dir():
        raise SpoolError(f"{root}: not a directory; give the spool directory")
    if mta is not None:
        return Spool(root, mta)
    detected = detect_mta(root)
    if detected is not None:
        return Spool(root, detected)
    spools = _find_spools(root, FIND_MAX_DEPTH, top_detected=True)
    if not spools:
        raise SpoolError(
            f"{root}: no Postfix, Exim, Sendmail, Exchange or .eml spool found here or below;"
            " give --mta to force a reader"
        )
    if len(spools) == 1:
        return spools[0]
    return MultiSpool(spools)
