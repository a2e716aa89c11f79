"""The quarantine directory's books: journal, manifest, audit log — and `recover`.

Every change to a spool or a quarantine directory (QDIR) is one transaction per
message unit, written ahead to `QDIR/journal.jsonl` (each line fsynced before the step
it announces runs). A crash at any point leaves a transaction without `commit`;
`recover(qdir)` finishes it (once every file of the unit has a verified copy) or rolls
it back (before that), so no byte is lost and none ends up both in the spool and in
QDIR. A torn last line (a crash mid-write) is ignored.

QDIR layout:
    .queuetool-quarantine   marker: this directory is a quarantine
    journal.jsonl           write-ahead transaction log (the source of truth for state)
    manifest.jsonl          one line per quarantined file: path, sha256, size, mode, mtime ...
    audit.jsonl             append-only: who did what, when, why
    units/<txn>/<path>      the quarantined copies, at their spool-relative paths
    .lock                   held while one process works on QDIR
"""
from __future__ import annotations

import datetime as _dt
import getpass
import json
import os
import secrets
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

from .. import fsutil

MARKER = ".queuetool-quarantine"
JOURNAL = "journal.jsonl"
MANIFEST = "manifest.jsonl"
AUDIT = "audit.jsonl"
UNITS = "units"
LOCK = ".lock"


class RefusedError(Exception):
    """An operation refused for safety (exit 4); the message says why and what to do."""


def utc_now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def operator_name() -> str:
    """Who runs this (the sudo caller when run through sudo), for manifest and audit."""
    sudo = os.environ.get("SUDO_USER")
    try:
        user = getpass.getuser()
    except Exception:  # noqa: BLE001 - no passwd entry in a container
        user = str(fsutil.current_uid())
    return f"{sudo} (as {user})" if sudo and sudo != user else user


def new_txn_id(unit_id: str) -> str:
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", unit_id)[:40].lstrip(".") or "unit"
    return f"{stamp}-{safe}-{secrets.token_hex(4)}"


def dumps(data: dict[str, Any]) -> str:
    """One JSON line, ASCII only: odd (non-UTF-8) file names survive as \\udcXX escapes."""
    return json.dumps(data, ensure_ascii=True, separators=(",", ":"), default=str)


def path_fields(rel: str, key: str = "path") -> dict[str, str]:
    """`{key: rel}`, plus `{key}_hex` (the raw bytes) when the name is not valid UTF-8."""
    out = {key: rel}
    raw = os.fsencode(rel)
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        out[f"{key}_hex"] = raw.hex()
    return out


def append_line(path: Path, data: dict[str, Any]) -> None:
    """Append one JSON line and fsync it (the journal's durability unit)."""
    append_lines(path, [data])


def append_lines(path: Path, items: Sequence[dict[str, Any]], sync: bool = True) -> None:
    """Append JSON lines with one write and (unless `sync=False`) one fsync."""
    line = "".join(dumps(data) + "\n" for data in items).encode("ascii")
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0)
                 | getattr(os, "O_BINARY", 0), 0o600)
    try:
        size = os.fstat(fd).st_size
        if size:
            os.lseek(fd, size - 1, os.SEEK_SET)
            if os.read(fd, 1) != b"\n":   # a crash tore the last line: start a fresh one
                line = b"\n" + line
        view = memoryview(line)
        while view:
            view = view[os.write(fd, view):]
        if sync:
            os.fsync(fd)
    finally:
        os.close(fd)


def read_lines(path: Path) -> Iterator[dict[str, Any]]:
    """Parsed lines of a JSONL book; a torn or garbled line is skipped, not fatal."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return
    for raw in data.split(b"\n"):
        if not raw.strip():
            continue
        try:
            item = json.loads(raw)
        except ValueError:
            continue
        if isinstance(item, dict):
            yield item


# ------------------------------------------------------------------ QDIR

def _inside(child: Path, parent: Path) -> bool:
    return child == parent or parent in child.parents


def check_qdir_location(qdir: Path, spool_root: Path) -> None:
    """Refuse a QDIR inside the spool (the MTA would see the copies) or around it."""
    q = Path(os.path.realpath(qdir))
    s = Path(os.path.realpath(spool_root))
    if _inside(q, s):
        raise RefusedError(f"{qdir} is inside the spool {spool_root}; choose a quarantine directory outside it")
    if _inside(s, q):
        raise RefusedError(f"the spool {spool_root} is inside {qdir}; choose a quarantine directory outside it")


def open_qdir(qdir: Path, create: bool) -> Path:
    """Check (or make) a quarantine directory; refuses symlinks and foreign directories."""
    qdir = Path(qdir)
    if os.path.islink(qdir):
        raise RefusedError(f"{qdir} is a symlink; give the real quarantine directory")
    if qdir.exists():
        if not qdir.is_dir():
            raise RefusedError(f"{qdir} exists and is not a directory")
        if not (qdir / MARKER).exists():
            if any(qdir.iterdir()):
                raise RefusedError(f"{qdir} is not empty and not a queuetool quarantine; choose a new or empty directory")
            if not create:
                raise RefusedError(f"{qdir} is not a queuetool quarantine (no {MARKER})")
    elif not create:
        raise RefusedError(f"{qdir}: no such quarantine directory")
    qdir.mkdir(parents=True, exist_ok=True, mode=0o700)
    if not (qdir / MARKER).exists():
        append_line(qdir / MARKER, {"created": utc_now(), "by": operator_name(), "format": 1})
        (qdir / UNITS).mkdir(exist_ok=True, mode=0o700)
        fsutil.fsync_directory(qdir)
    for name in (JOURNAL, MANIFEST, AUDIT, UNITS):
        if os.path.islink(qdir / name):
            raise RefusedError(f"{qdir / name} is a symlink; refusing to write through it")
    return qdir


class QdirLock:
    """Exclusive lock on QDIR/.lock for the duration of one command."""

    def __init__(self, qdir: Path) -> None:
        self.path = Path(qdir) / LOCK
        self.fd: int | None = None

    def __enter__(self) -> "QdirLock":
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o600)
        if not fsutil.try_flock_exclusive(self.fd):
            os.close(self.fd)
            self.fd = None
            raise RefusedError(f"another queuetool process is working on {self.path.parent}; wait for it")
        return self

    def __exit__(self, *exc: object) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def audit(qdir: Path, event: str, *, sync: bool = True, **fields: Any) -> None:
    """One audit line (`sync=False`: a batch's filesystem barrier makes it durable)."""
    append_lines(Path(qdir) / AUDIT, [{"time": utc_now(), "operator": operator_name(), "event": event, **fields}],
                 sync=sync)


def journal(qdir: Path, entry: str, txn: str, *, sync: bool = True, **fields: Any) -> None:
    """One journal line, fsynced unless `sync=False`.

    Unsynced lines rely on something later making them durable before anything depends
    on them. Progress lines (copied, removed, placed, unstored) are always written so:
    the next synced line of the same file (manifested, commit) makes every earlier one
    durable first, and until then recovery re-derives the step (an unrecorded copy is
    rolled back while its original is still there; removals, placements and discards
    are re-checked). A batch writes begin/manifested/commit so too and runs a filesystem
    barrier (fsutil.filesystem_barrier) before the next kind of step.
    """
    append_lines(Path(qdir) / JOURNAL, [{"t": entry, "txn": txn, **fields}], sync=sync)


# ---------------------------------------------------------------- replay

@dataclass
class Txn:
    """One transaction as replayed from the journal."""

    txn: str
    begin: dict[str, Any]
    copied: dict[str, dict[str, Any]] = field(default_factory=dict)   # source path -> facts
    removed: set[str] = field(default_factory=set)
    placed: set[str] = field(default_factory=set)
    unstored: set[str] = field(default_factory=set)
    manifested: bool = False
    commit: dict[str, Any] | None = None

    @property
    def op(self) -> str:
        return self.begin.get("op", "")

    @property
    def files(self) -> list[dict[str, Any]]:
        return list(self.begin.get("files") or [])

    def all_copied(self) -> bool:
        return bool(self.files) and all(f["path"] in self.copied for f in self.files)


_HELD_BEGIN_KEYS = ("op", "kind", "unit", "mta", "queue", "spool", "removal", "files")


def replay(qdir: Path) -> dict[str, Txn]:
    """The transactions that still matter, in order of first appearance: every uncommitted
    one (for recover) and every committed quarantine whose copies are still held.

    Finished business is dropped as the journal is read (a restored or discarded unit,
    a rollback, a released hold), so memory follows what QDIR holds now, not its history.
    """
    txns: dict[str, Txn] = {}
    for line in read_lines(Path(qdir) / JOURNAL):
        kind, txn_id = line.get("t"), line.get("txn")
        if not isinstance(txn_id, str):
            continue
        if kind == "begin":
            if _valid_begin(line):
                txns[txn_id] = Txn(txn_id, line)
            continue
        txn = txns.get(txn_id)
        if txn is None:
            continue
        if kind == "copied" and isinstance(line.get("path"), str) and isinstance(line.get("sha256"), str):
            txn.copied[line["path"]] = line
        elif kind == "removed" and isinstance(line.get("path"), str):
            txn.removed.add(line["path"])
        elif kind == "placed" and isinstance(line.get("path"), str):
            txn.placed.add(line["path"])
        elif kind == "unstored" and isinstance(line.get("stored"), str):
            txn.unstored.add(line["stored"])
        elif kind == "manifested":
            txn.manifested = True
        elif kind == "commit":
            txn.commit = line
            if txn.op == "quarantine" and line.get("result") == "quarantined":
                txn.begin = {key: txn.begin[key] for key in _HELD_BEGIN_KEYS if key in txn.begin}
                continue
            del txns[txn_id]
            if txn.op in ("restore", "discard"):
                held = txns.get(txn.begin.get("of", ""))
                if held is not None and held.commit is not None:
                    del txns[held.txn]
    return txns


_BEGIN_FILE_KEYS = {"quarantine": ("path", "orig", "stored"), "restore": ("path", "stored", "sha256"),
                    "discard": ("stored",), "hold": ()}


def _valid_begin(line: dict[str, Any]) -> bool:
    """A begin entry this code could have written (a damaged one is left alone)."""
    keys = _BEGIN_FILE_KEYS.get(line.get("op"))  # type: ignore[arg-type]
    files = line.get("files", [])
    if keys is None or not isinstance(files, list):
        return False
    if line.get("op") in ("quarantine", "restore", "hold") and not isinstance(line.get("spool"), str):
        return False
    if line.get("op") in ("restore", "discard") and not isinstance(line.get("of"), str):
        return False
    if line.get("op") == "hold" and not (isinstance(line.get("ids"), list)
                                         and all(isinstance(i, str) for i in line["ids"])):
        return False
    return all(isinstance(f, dict) and all(isinstance(f.get(k), str) for k in keys) for f in files)


@dataclass
class HeldUnit:
    """A unit whose copies are in QDIR now (quarantined, not restored or discarded)."""

    txn: str
    unit: str
    mta: str
    queue: str | None
    spool: str
    files: list[dict[str, Any]]   # manifest facts per file: path, stored, sha256, size, mode, mtime ...
    removal: str

    @property
    def size(self) -> int:
        return sum(int(f.get("size") or 0) for f in self.files)


def held_units(qdir: Path, txns: dict[str, Txn] | None = None) -> list[HeldUnit]:
    """Units currently kept in QDIR, oldest first."""
    ours = txns is None          # a replay made here may be reused in place; a caller's may not
    txns = replay(qdir) if txns is None else txns
    gone: set[str] = set()
    for txn in txns.values():
        if txn.op in ("restore", "discard") and txn.commit is not None:
            gone.add(txn.begin.get("of", ""))
    out = []
    for txn in txns.values():
        if txn.op != "quarantine" or txn.commit is None or txn.commit.get("result") != "quarantined":
            continue
        if txn.txn in gone:
            continue
        try:
            files = []
            for planned in txn.files:
                facts = txn.copied.get(planned["path"], {})
                facts = facts if ours else dict(facts)
                for key in ("t", "txn"):
                    facts.pop(key, None)
                facts.update({"path": planned["orig"], "stored": planned["stored"], "source": planned["path"]})
                files.append(facts)
        except (KeyError, TypeError, ValueError):
            continue  # a malformed (hand-edited?) entry holds nothing we could restore safely
        out.append(HeldUnit(txn.txn, txn.begin.get("unit", ""), txn.begin.get("mta", ""),
                            txn.begin.get("queue"), txn.begin.get("spool", ""), files,
                            txn.begin.get("removal", "unlink")))
    return out


def held_txn_ids(qdir: Path) -> set[str]:
    """The txn ids of the units QDIR holds now (held_units without building them)."""
    return {t.txn for t in replay(qdir).values() if t.commit is not None and t.op == "quarantine"}


def pending(qdir: Path) -> list[Txn]:
    """Transactions a crash left without a commit."""
    return [txn for txn in replay(qdir).values() if txn.commit is None]


# --------------------------------------------------------------- recover

@dataclass
class RecoveryResult:
    completed: list[str] = field(default_factory=list)    # txn ids rolled forward
    rolled_back: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)     # one line each, for the operator


def recover(qdir: str | Path, mta_config: str | None = None) -> RecoveryResult:
    """Complete or roll back every transaction a crash interrupted in `qdir`.

    A quarantine whose files all have a verified copy is completed (originals
    removed after a hash re-check); one that had not got that far is rolled back
    (its partial copies deleted; the originals never left). Restores and discards
    are completed. Safe to run twice; a no-op on a clean QDIR.
    """
    from .quarantine import finish_interrupted  # step functions; imported here, layers stay one-way

    qdir = open_qdir(Path(qdir), create=False)
    result = RecoveryResult()
    with QdirLock(qdir):
        # a Postfix hold batch is released last, after its units are finished
        for txn in sorted(pending(qdir), key=lambda t: t.op == "hold"):
            try:
                outcome = finish_interrupted(qdir, txn, mta_config=mta_config)
            except RefusedError as exc:
                result.problems.append(f"{txn.txn}: {exc}")
                continue
            except OSError as exc:
                result.problems.append(f"{txn.txn}: {exc}")
                continue
            except (KeyError, TypeError, ValueError, AttributeError) as exc:
                result.problems.append(f"{txn.txn}: malformed journal entry ({type(exc).__name__}: {exc}); "
                                       "left as it is for a human to look at")
                continue
            (result.completed if outcome == "completed" else result.rolled_back).append(txn.txn)
        audit(qdir, "recover", completed=result.completed, rolled_back=result.rolled_back,
              problems=result.problems)
    return result
