"""Quarantine, purge, restore: moving message units out of a spool and back, losslessly.

Per unit, one journaled transaction (see journal.py for the QDIR layout):
    begin -> each file: copy, fsync file and directory, re-read and verify sha256
          -> re-check each original (inode, size, mtime, sha256) -> manifest lines
          -> remove the originals (unlink, or the MTA's tool) -> commit
Copies are made by reading and writing bytes, never rename, so QDIR may be on
another filesystem. Nothing is removed before every file of the unit has a verified
copy; `recover` finishes or undoes whatever a crash interrupted.

Restore writes each file to a temporary name in the destination directory, fsyncs,
sets mode, owner and mtime, then hard-links it to its name (which fails rather than
overwrite) — the copy in QDIR is removed only after that.
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
import signal
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

from .. import fsutil
from ..model import QueueUnit
from ..scan import progress_bar
from .journal import (
    MANIFEST, UNITS, HeldUnit, QdirLock, RefusedError, Txn, append_lines, audit, check_qdir_location,
    held_txn_ids, held_units, journal, new_txn_id, open_qdir, operator_name, path_fields,
    read_lines, utc_now,
)
from .mta import BusyError, UnitLock, check_postfix_config, postfix_delete, postfix_hold, postfix_release
from .plan import Plan, PlannedUnit, check_unit_files

CHUNK = 1 << 20
# Postfix queues `postsuper -h` moves to hold; corrupt/saved/hold files are inert and taken as they are
POSTFIX_HOLDABLE = ("incoming", "active", "deferred")
HELD_SETTLE_SECONDS = 1.0     # for a delivery attempt under way at postsuper -h to finish
BATCH = 200                   # units per disk barrier (and per postsuper -d run on a live Postfix)
TMP_PREFIX = ".queuetool-"

# Test hooks for fault injection. CRASH_HOOK(step_name) is called at every step;
# raising from it simulates a crash there. QUEUETOOL_TEST_KILL_AT_STEP=N makes the
# process SIGKILL itself at the Nth step (subprocess crash tests).
CRASH_HOOK: Callable[[str], None] | None = None
_step_count = 0


def _step(name: str) -> None:
    global _step_count
    _step_count += 1
    if CRASH_HOOK is not None:
        CRASH_HOOK(name)
    kill_at = os.environ.get("QUEUETOOL_TEST_KILL_AT_STEP")
    if kill_at and kill_at.isdigit() and _step_count == int(kill_at) and hasattr(signal, "SIGKILL"):
        os.kill(os.getpid(), signal.SIGKILL)


class ChangedError(Exception):
    """A file changed between copy and removal (MTA activity or queue-id reuse)."""


# ------------------------------------------------------------- file steps

def _open_source(root: Path, rel: str) -> tuple[int, os.stat_result]:
    path = fsutil.resolve_inside(root, rel, fresh=True)
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
                 | getattr(os, "O_NONBLOCK", 0))
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise RefusedError(f"{rel}: not a regular file")
    return fd, st


def _chunks(fd: int) -> Iterable[bytes]:
    os.lseek(fd, 0, os.SEEK_SET)
    while True:
        chunk = os.read(fd, CHUNK)
        if not chunk:
            return
        yield chunk


def sha256_fd(fd: int) -> str:
    digest = hashlib.sha256()
    for chunk in _chunks(fd):
        digest.update(chunk)
    return digest.hexdigest()


def sha256_path(root: Path, rel: str) -> str:
    fd, _st = _open_source(root, rel)
    try:
        return sha256_fd(fd)
    finally:
        os.close(fd)


def _make_dirs(base: Path, rel_dir: str, mode: int = 0o700, sync: bool = True) -> None:
    """mkdir -p base/rel_dir, refusing symlinked components; fsyncs what it creates
    (unless `sync=False`: a filesystem barrier follows)."""
    path = Path(base)
    for part in [p for p in rel_dir.split("/") if p]:
        if part == "..":
            raise fsutil.UnsafePathError(f"{rel_dir!r} leaves {base}")
        parent, path = path, path / part
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            os.mkdir(path, mode)
            if sync:
                fsutil.fsync_directory(parent)
            continue
        if not stat.S_ISDIR(st.st_mode):
            raise fsutil.UnsafePathError(f"{path} is not a directory (symlink?); not followed")


def _write_new(path: str, chunks: Iterable[bytes], sync: bool = True) -> str:
    """Create `path` (must not exist), write, fsync (unless `sync=False`); returns the sha256 written."""
    digest = hashlib.sha256()
    out = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
                  | getattr(os, "O_BINARY", 0), 0o600)
    try:
        for chunk in chunks:
            digest.update(chunk)
            view = memoryview(chunk)
            while view:
                view = view[os.write(out, view):]
        if sync:
            os.fsync(out)
    finally:
        os.close(out)
    return digest.hexdigest()


def _set_meta(path: str, facts: dict[str, Any]) -> None:
    if fsutil.current_uid() == 0 and facts.get("uid") is not None and hasattr(os, "chown"):
        try:
            os.chown(path, int(facts["uid"]), int(facts["gid"]), follow_symlinks=False)
        except (OSError, NotImplementedError):
            pass
    os.chmod(path, int(facts["mode"]) & 0o7777)
    mtime_ns = int(facts["mtime_ns"])
    os.utime(path, ns=(mtime_ns, mtime_ns))


def copy_verified(root: Path, rel: str, dest: Path, fd: int | None = None, sync: bool = True) -> dict[str, Any]:
    """Copy root/rel to dest (new file) with mode and mtime; fsync; verify by re-reading.

    Returns the facts the manifest and the later re-check need. `fd` is an already
    open (locked) descriptor of the source to read through. `sync=False` leaves the
    fsyncs to a filesystem barrier the caller runs before anything depends on the copy.
    """
    own = fd is None
    if own:
        fd, st = _open_source(root, rel)
    else:
        st = os.fstat(fd)
    try:
        written = _write_new(os.fspath(dest), _chunks(fd), sync)
        after = os.fstat(fd)
    finally:
        if own:
            os.close(fd)
    if (after.st_size, after.st_mtime_ns) != (st.st_size, st.st_mtime_ns):
        raise ChangedError(f"{rel}: changed while being copied")
    facts = {
        "sha256": written, "size": st.st_size, "mode": stat.S_IMODE(st.st_mode),
        "mtime": st.st_mtime, "mtime_ns": st.st_mtime_ns, "mtime_utc": fsutil.iso_utc(st.st_mtime),
        "uid": getattr(st, "st_uid", None), "gid": getattr(st, "st_gid", None),
        "ino": st.st_ino, "dev": st.st_dev,
    }
    _set_meta(os.fspath(dest), {**facts, "uid": None})
    if sync:
        fsutil.fsync_directory(dest.parent)
    check_fd = os.open(dest, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0))
    try:
        if sha256_fd(check_fd) != written:
            raise ChangedError(f"{rel}: the copy in quarantine does not verify (disk error?)")
    finally:
        os.close(check_fd)
    return facts


def recheck_original(root: Path, rel: str, facts: dict[str, Any], fd: int | None = None) -> None:
    """Raise ChangedError unless root/rel is still the file that was copied.

    Guards against queue-id reuse and MTA writes between copy and removal.
    """
    path = fsutil.resolve_inside(root, rel, fresh=True)
    st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode) or (st.st_ino, st.st_size, st.st_mtime_ns) != (
            facts["ino"], facts["size"], facts["mtime_ns"]):
        raise ChangedError(f"{rel}: changed since it was copied (inode, size or mtime)")
    digest = sha256_fd(fd) if fd is not None else sha256_path(root, rel)
    if digest != facts["sha256"]:
        raise ChangedError(f"{rel}: content changed since it was copied")


def _unlink(root: Path, rel: str, sync: bool = True) -> str | None:
    """Unlink root/rel; returns its directory (fsynced unless `sync=False`), None if it was gone."""
    path = fsutil.resolve_inside(root, rel, fresh=True)
    try:
        os.unlink(path)
    except FileNotFoundError:
        return None
    if sync:
        fsutil.fsync_directory(os.path.dirname(path))
    return os.path.dirname(path)


def _stored_path(qdir: Path, stored: str) -> Path:
    if stored.startswith("/") or ".." in stored.split("/"):
        raise fsutil.UnsafePathError(f"stored path {stored!r} leaves the quarantine directory")
    return Path(fsutil.resolve_inside(qdir, stored, fresh=True))


# ------------------------------------------------------------- results

@dataclass
class UnitOutcome:
    id: str
    status: str          # quarantined | purged | discarded | restored | skipped | refused | busy | gone
    files: int = 0
    bytes: int = 0
    txn: str | None = None
    why: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "status": self.status, "files": self.files, "bytes": self.bytes,
                "txn": self.txn, "why": self.why}


@dataclass
class ApplyResult:
    qdir: Path
    outcomes: list[UnitOutcome] = field(default_factory=list)

    def count(self, *statuses: str) -> int:
        return sum(1 for o in self.outcomes if o.status in statuses)

    @property
    def refused(self) -> list[UnitOutcome]:
        """Units not done for safety: refused, busy (MTA lock) or skipped (changed meanwhile)."""
        return [o for o in self.outcomes if o.status in ("refused", "busy", "skipped")]


# ---------------------------------------------------------- quarantine

def apply_plan(
    plan: Plan,
    qdir: str | Path | None = None,
    *,
    discard_copies: bool = False,
    mta_config: str | None = None,
    progress: bool = False,
) -> ApplyResult:
    """Carry out a quarantine or purge plan; returns one outcome per planned unit.

    `discard_copies` (purge only) deletes the quarantined copies after the unit is
    out of the spool; the manifest with hashes stays. `progress`: a tqdm bar on stderr.
    """
    qdir = Path(qdir if qdir is not None else plan.qdir)
    if discard_copies and plan.op != "purge":
        raise ValueError("discarding copies is only for purge")
    check_qdir_location(qdir, plan.spool_root)
    if plan.live.how == "refuse" and plan.units:
        raise RefusedError(plan.live.why)
    qdir = open_qdir(qdir, create=True)
    result = ApplyResult(qdir)
    with QdirLock(qdir):
        audit(qdir, f"{plan.op}-start", spool=str(plan.spool_root), mta=plan.mta, selection=plan.selection,
              units=len(plan.actionable), live=plan.live.why)
        units = plan.actionable
        result.outcomes.extend(UnitOutcome(u.id, "refused", len(u.files), u.bytes, why=u.refused or "")
                               for u in plan.units if u.refused)
        config = hold_txn = None
        if plan.live.how == "postsuper":
            config = check_postfix_config(plan.spool_root, mta_config or plan.live.config)
            hold_txn = new_txn_id("postsuper-hold")
            units = _postfix_hold_and_relocate(qdir, hold_txn, plan, units, config, result)
        bar = progress_bar(progress, desc=plan.op, unit="unit", total=len(units))
        tick = bar.update if bar is not None else _no_tick
        try:
            result.outcomes.extend(_quarantine_batched(qdir, plan, units, config, discard_copies, tick))
        except (RefusedError, OSError) as exc:   # a tool or the disk failed with units under way
            raise RefusedError(f"{exc}; stopped with units under way: run `queuetool recover {qdir}` "
                               "to finish or roll them back") from exc
        finally:
            if bar is not None:
                bar.close()
        if hold_txn is not None:
            _retry_held_units_whose_logs_changed(qdir, plan, units, config, result, discard_copies)
            we_held = {u.id for u in units if u.held_from != "hold"}
            not_taken = [o.id for o in result.outcomes if o.status in ("skipped", "busy") and o.id in we_held]
            postfix_release(config, not_taken)   # back where the MTA can deliver them
            journal(qdir, "commit", hold_txn, result="done", released=not_taken)
        audit(qdir, f"{plan.op}-end", spool=str(plan.spool_root),
              done=result.count("quarantined", "purged", "discarded"),
              skipped=len(result.outcomes) - result.count("quarantined", "purged", "discarded"))
    return result


def _postfix_hold_and_relocate(qdir: Path, hold_txn: str, plan: Plan, units: list[PlannedUnit], config: str,
                               result: ApplyResult) -> list[PlannedUnit]:
    """Hold the selected messages with postsuper -h, then find their files in hold/.

    The hold is journaled first, so `recover` releases (postsuper -H) whatever a
    crash left on hold. Each unit remembers where its files were before the hold
    (`orig`), so a restore puts them back there.
    """
    ids = [u.id for u in units if u.queue in POSTFIX_HOLDABLE]
    journal(qdir, "begin", hold_txn, op="hold", spool=str(plan.spool_root), config=config, ids=ids,
            time=utc_now())
    postfix_hold(config, ids)
    _step("postfix-held")
    wanted = {u.id: u for u in units}
    fresh: dict[str, QueueUnit] = {}
    for found in postfix_units(plan.spool_root):
        unit = wanted.get(found.id)
        if unit is not None and found.queue == ("hold" if unit.queue in POSTFIX_HOLDABLE else unit.queue):
            fresh[found.id] = found
    out = []
    for unit in units:
        if unit.queue == "maildrop":
            result.outcomes.append(UnitOutcome(unit.id, "refused", why="in maildrop, which Postfix's pickup "
                                               "owns; retry in a moment, once it is in incoming"))
            continue
        found = fresh.get(unit.id)
        if found is None:
            result.outcomes.append(UnitOutcome(unit.id, "gone", why="no longer queued (delivered or removed)"))
            continue
        files, problem = check_unit_files(plan.spool_root, found.paths)
        if problem:
            postfix_release(config, [unit.id] if unit.queue != "hold" else [])
            result.outcomes.append(UnitOutcome(unit.id, "refused", why=problem))
            continue
        # where each file was before the hold: the queue file moved, the logs did not
        out.append(PlannedUnit(
            unit.id, found.queue, unit.mta, files, list(unit.reasons), unit.sender, unit.recipients, unit.error,
            held_from=unit.queue,
            paths_before_hold={files[0].path: unit.files[0].path} if unit.files and files else {},
        ))
    return out


def postfix_units(root: Path) -> Iterator[QueueUnit]:
    """The units of a Postfix queue by listing alone (id, queue, files): finding where
    postsuper moved a message needs no parsing of the 10^5 others."""
    from ..spools import postfix

    return postfix.iter_units(root)


def _retry_held_units_whose_logs_changed(qdir: Path, plan: Plan, units: list[PlannedUnit], config: str,
                                         result: ApplyResult, discard_copies: bool) -> None:
    """Take once more, after a pause, the held units skipped because a file changed.

    A message on hold does not change, but a delivery attempt that was running when
    postsuper -h moved it can still append to (or create) its defer/bounce log. The
    first try then rolls back; once the attempt has finished the unit is taken whole.
    """
    skipped = {o.id for o in result.outcomes if o.status == "skipped"}
    again = [u for u in units if u.id in skipped]
    if not again:
        return
    time.sleep(HELD_SETTLE_SECONDS)
    fresh = {u.id: u for u in postfix_units(plan.spool_root) if u.id in skipped and u.queue == "hold"}
    retried = []
    for unit in again:
        found = fresh.get(unit.id)
        if found is None:
            continue                      # keeps its first outcome
        files, problem = check_unit_files(plan.spool_root, found.paths)
        if problem:
            continue
        retried.append(dataclasses.replace(unit, files=files))
    for outcome in _quarantine_batched(qdir, plan, retried, config, discard_copies):
        result.outcomes = [o for o in result.outcomes if o.id != outcome.id] + [outcome]


@dataclass
class _CopiedUnit:
    """A unit whose files all have copies (verified, maybe not yet synced)."""

    unit: PlannedUnit
    txn: str
    rels: list[str]
    files: list[dict[str, Any]]
    copied: dict[str, dict[str, Any]]


def _copy_files(qdir: Path, plan: Plan, unit: PlannedUnit, config: str | None,
                fd_for: Callable[[str], int | None], sync: bool) -> _CopiedUnit | UnitOutcome:
    """begin, then a verified copy of every file; or a rolled-back outcome."""
    root = plan.spool_root
    rels = [f.path for f in unit.files]
    orig = unit.paths_before_hold
    txn = new_txn_id(unit.id)
    files = [{**path_fields(rel), "orig": orig.get(rel, rel), "stored": f"{UNITS}/{txn}/{rel}"} for rel in rels]
    journal(qdir, "begin", txn, sync=sync, op="quarantine", kind=plan.op, spool=str(root), mta=plan.mta,
            unit=unit.id, queue=unit.held_from or unit.queue, removal=plan.live.how, config=config,
            files=files, reasons=unit.reasons, selection=plan.selection, operator=operator_name(), time=utc_now())
    _step("begin")
    copied: dict[str, dict[str, Any]] = {}
    try:
        for entry in files:
            rel = entry["path"]
            dest = _stored_path(qdir, entry["stored"])
            _make_dirs(qdir, os.path.dirname(entry["stored"]), sync=sync)
            copied[rel] = copy_verified(root, rel, dest, fd_for(rel), sync=sync)
            journal(qdir, "copied", txn, sync=False, path=rel, **copied[rel])
            _step("copied")
    except (ChangedError, FileNotFoundError, RefusedError, fsutil.UnsafePathError) as exc:
        _roll_back(qdir, txn, files, root, reason=str(exc))
        return UnitOutcome(unit.id, "skipped", len(rels), unit.bytes, txn, f"rolled back: {exc}")
    return _CopiedUnit(unit, txn, rels, files, copied)


def _recheck_and_manifest(qdir: Path, plan: Plan, taken: _CopiedUnit, fd_for: Callable[[str], int | None],
                          sync: bool) -> UnitOutcome | None:
    """Re-check every original against its copy, then write the manifest lines; or roll back."""
    root = plan.spool_root
    try:
        for rel in taken.rels:
            recheck_original(root, rel, taken.copied[rel], fd_for(rel))
    except (ChangedError, FileNotFoundError, fsutil.UnsafePathError) as exc:
        _roll_back(qdir, taken.txn, taken.files, root, reason=str(exc))
        return UnitOutcome(taken.unit.id, "skipped", len(taken.rels), taken.unit.bytes, taken.txn,
                           f"rolled back: {exc}")
    # the manifest names only units that go on to removal: one rolled back above has no lines
    _write_manifest(qdir, taken.txn, plan.op, plan, taken.unit, taken.files, taken.copied, sync=sync)
    journal(qdir, "manifested", taken.txn, sync=sync)
    _step("manifested")
    return None


def _commit_unit(qdir: Path, plan: Plan, taken: _CopiedUnit, sync: bool = True) -> UnitOutcome:
    """The originals are gone: commit and audit (synced unless a batch syncs them together)."""
    unit, txn = taken.unit, taken.txn
    size = sum(c["size"] for c in taken.copied.values())
    journal(qdir, "commit", txn, sync=sync, result="quarantined")
    audit(qdir, plan.op, sync=sync, txn=txn, unit=unit.id, mta=plan.mta, spool=str(plan.spool_root),
          files=len(taken.rels), bytes=size, reasons=unit.reasons)
    return UnitOutcome(unit.id, "purged" if plan.op == "purge" else "quarantined", len(taken.rels), size, txn)


def _discard_if_asked(qdir: Path, taken: _CopiedUnit, outcome: UnitOutcome, discard_copies: bool) -> UnitOutcome:
    """purge --discard-copies: drop the copies of a unit whose commit is on disk."""
    if not discard_copies:
        return outcome
    _discard_copies(qdir, taken.txn, taken.unit.id, [entry["stored"] for entry in taken.files], outcome.bytes)
    return dataclasses.replace(outcome, status="discarded")


def _no_tick(_n: int) -> None:
    """Progress callback when no bar is shown."""


def _quarantine_batched(qdir: Path, plan: Plan, units: list[PlannedUnit], config: str | None,
                        discard_copies: bool, tick: Callable[[int], Any] = _no_tick) -> list[UnitOutcome]:
    """Take the units BATCH at a time.

    Each unit keeps its own journaled transaction and its order of steps (copies, re-check,
    manifest, removal, commit); what is shared is the waiting for the disk. With syncfs(2)
    (Linux) one call makes a whole batch's copies, directories and journal lines durable
    before any manifest is relied on, one more before any original is removed, and the
    commits are synced together: ~11 fsyncs per unit become a handful per batch. Without
    it every step syncs as it goes. Exim and Sendmail units are taken under their MTA
    lock, held from before the copy until after the removal. A live Postfix's held units
    are removed with one `postsuper -d` per batch: Postfix delivers nothing from hold/, so
    between a unit's re-check and its removal only a late log write can happen (postsuper
    -d removes the log too). A crash leaves uncommitted units that `recover` completes or
    rolls back.
    """
    root = plan.spool_root
    barrier = fsutil.filesystem_barrier(qdir)
    sync = barrier is None
    outcomes: list[UnitOutcome | None] = []
    for start in range(0, len(units), BATCH):
        with contextlib.ExitStack() as locks:
            copied: list[tuple[int, _CopiedUnit, Callable[[str], int | None]]] = []
            for unit in units[start:start + BATCH]:
                rels = [f.path for f in unit.files]
                try:
                    lock = locks.enter_context(UnitLock(root, plan.live.how, unit.id, rels))
                except BusyError as exc:
                    outcomes.append(UnitOutcome(unit.id, "busy", len(rels), unit.bytes, None, str(exc)))
                    tick(1)
                    continue
                except FileNotFoundError:
                    outcomes.append(UnitOutcome(unit.id, "gone", len(rels), unit.bytes, None,
                                                "no longer queued (delivered or removed)"))
                    tick(1)
                    continue
                taken = _copy_files(qdir, plan, unit, config, lock.fd_for, sync=sync)
                if isinstance(taken, UnitOutcome):
                    outcomes.append(taken)
                    tick(1)
                else:
                    copied.append((len(outcomes), taken, lock.fd_for))
                    outcomes.append(None)
            if barrier is not None and copied:
                barrier()               # copies, their directories, begin/copied lines
            ready: list[tuple[int, _CopiedUnit]] = []
            for index, taken, fd_for in copied:
                refused = _recheck_and_manifest(qdir, plan, taken, fd_for, sync=sync)
                if refused is None:
                    ready.append((index, taken))
                else:
                    outcomes[index] = refused
                    tick(1)
            if not ready:
                continue
            if barrier is not None:
                barrier()               # manifest lines and manifested marks, before any removal
            if plan.live.how == "postsuper":
                postfix_delete(config, [t.unit.id for _i, t in ready if t.rels[0].startswith("hold/") and
                                        os.path.lexists(fsutil.resolve_inside(root, t.rels[0], fresh=True))],
                               "hold")
            emptied: set[str] = set()
            for _index, taken in ready:     # postsuper -d removed the held ones and their logs; anything left
                emptied.update(_remove_originals(qdir, taken.txn, root, taken.rels))
            for directory in sorted(emptied):   # each emptied directory once, before the commits
                fsutil.fsync_directory(directory)
        done = []
        for index, taken in ready:
            done.append((index, taken, _commit_unit(qdir, plan, taken, sync=sync)))
            _step("commit")
        if barrier is not None:
            barrier()                   # the commits, before any copy is discarded
        for index, taken, outcome in done:
            outcomes[index] = _discard_if_asked(qdir, taken, outcome, discard_copies)
            tick(1)
    return [o for o in outcomes if o is not None]


def _write_manifest(qdir: Path, txn: str, op: str, plan_or_begin: Any, unit: Any,
                    files: list[dict[str, Any]], copied: dict[str, dict[str, Any]],
                    recovering: bool = False, sync: bool = True) -> None:
    """One manifest line per file, with one fsync (`sync=False`: a barrier follows).
    `recovering`: a crash may have left some of this txn's lines already; skip those
    (this reads the whole manifest, so only recovery does it)."""
    done = {(line.get("txn"), line.get("source")) for line in read_lines(qdir / MANIFEST)} if recovering else set()
    begin = plan_or_begin if isinstance(plan_or_begin, dict) else None
    lines = []
    for entry in files:
        rel = entry["path"]
        if (txn, rel) in done:
            continue
        facts = copied[rel]
        line = {
            **path_fields(entry["orig"]), "source": rel, "stored": entry["stored"],
            "sha256": facts["sha256"], "size": facts["size"], "mode": facts["mode"],
            "mtime": facts["mtime"], "mtime_ns": facts["mtime_ns"], "mtime_utc": facts["mtime_utc"],
            "uid": facts["uid"], "gid": facts["gid"],
        }
        if begin is not None:
            line.update(unit=begin.get("unit"), queue=begin.get("queue"), mta=begin.get("mta"),
                        spool=begin.get("spool"), op=begin.get("kind", "quarantine"),
                        selection=begin.get("selection"), reasons=begin.get("reasons"))
        else:
            line.update(unit=unit.id, queue=unit.held_from or unit.queue, mta=plan_or_begin.mta,
                        spool=str(plan_or_begin.spool_root), op=op, selection=plan_or_begin.selection,
                        reasons=unit.reasons)
        line.update(txn=txn, time=utc_now(), operator=operator_name())
        lines.append(line)
    if lines:
        append_lines(qdir / MANIFEST, lines, sync=sync)


def _remove_originals(qdir: Path, txn: str, root: Path, rels: Sequence[str]) -> set[str]:
    """Unlink the unit's files, dependent files first and the main file (the one the MTA
    scans for) last, journaling each; returns their directories, which the caller fsyncs
    (once each for a whole batch)."""
    return _unlink_journaled(qdir, txn, root, list(rels[1:]) + list(rels[:1]), sync=False)


def _unlink_journaled(qdir: Path, txn: str, root: Path, rels: Sequence[str], sync: bool = True) -> set[str]:
    emptied = set()
    for rel in rels:
        directory = _unlink(root, rel, sync)
        if directory is not None:
            emptied.add(directory)
        journal(qdir, "removed", txn, sync=False, path=rel)
        _step("removed")
    return emptied


def _roll_back(qdir: Path, txn: str, files: list[dict[str, Any]], root: Path, reason: str) -> None:
    """Undo a quarantine that did not finish copying: the originals stay, copies go."""
    for entry in files:
        try:
            original_there = os.path.lexists(fsutil.resolve_inside(root, entry["path"], fresh=True))
        except fsutil.UnsafePathError:
            original_there = True
        if not original_there:
            continue  # never delete the only copy
        try:
            os.unlink(_stored_path(qdir, entry["stored"]))
        except FileNotFoundError:
            pass
    journal(qdir, "commit", txn, result="rolled-back", reason=reason)
    audit(qdir, "rollback", txn=txn, reason=reason)
    _prune_empty(qdir, txn)


# ------------------------------------------------------------- discard

def discard(qdir: str | Path, txn_id: str, locked: bool = False) -> None:
    """Delete the quarantined copies of one unit (purge --discard-copies); manifest stays.

    `locked`: the caller already holds QDIR's lock."""
    qdir = Path(qdir)
    if not locked:
        with QdirLock(qdir):
            return discard(qdir, txn_id, locked=True)
    unit = next((u for u in held_units(qdir) if u.txn == txn_id), None)
    if unit is None:
        raise RefusedError(f"{txn_id}: not held in {qdir}")
    _discard_copies(qdir, txn_id, unit.unit, [f["stored"] for f in unit.files], unit.size)


def _discard_copies(qdir: Path, txn_id: str, unit_id: str, stored: list[str], size: int) -> None:
    dtxn = new_txn_id(unit_id)
    journal(qdir, "begin", dtxn, op="discard", of=txn_id, unit=unit_id,
            files=[{"path": item, "stored": item} for item in stored], time=utc_now())
    _step("discard-begin")
    _finish_discard(qdir, dtxn, stored)
    _prune_empty(qdir, txn_id)
    audit(qdir, "discard", txn=txn_id, unit=unit_id, files=len(stored), bytes=size)


def _finish_discard(qdir: Path, dtxn: str, stored: list[str]) -> None:
    for item in stored:
        try:
            os.unlink(_stored_path(qdir, item))
        except FileNotFoundError:
            pass
        journal(qdir, "unstored", dtxn, sync=False, stored=item)
        _step("unstored")
    journal(qdir, "commit", dtxn, result="discarded")


# -------------------------------------------------------------- restore

@dataclass
class RestorePlan:
    qdir: Path
    units: list[HeldUnit]
    targets: dict[str, Path]            # txn -> spool root to restore into
    problems: list[str] = field(default_factory=list)


def restore_path(unit: HeldUnit, rel: str) -> str:
    """Where a held file goes back to: where it was taken from, except that a Postfix queue
    file taken from active/ goes to incoming/. A running qmgr never looks for new files in
    active/ (only at start does it move what it finds there to incoming/), so a file put back
    into active/ would sit undelivered until Postfix restarts."""
    if unit.mta == "postfix" and rel.startswith("active/"):
        return "incoming/" + rel[len("active/"):]
    return rel


def plan_restore(qdir: str | Path, ids: Sequence[str] = (), into: str | Path | None = None) -> RestorePlan:
    """Which held units a restore puts back, and anything that makes it unsafe.

    Every stored copy is hashed and every destination checked now; a restore with
    problems is refused as a whole (nothing half-done).
    """
    qdir = open_qdir(Path(qdir), create=False)
    held = held_units(qdir)
    if ids:
        wanted = set(ids)
        chosen = [u for u in held if u.unit in wanted or u.txn in wanted]
        missing = wanted - {u.unit for u in chosen} - {u.txn for u in chosen}
        if missing:
            raise ValueError(f"not held in {qdir}: {', '.join(sorted(missing))}")
    else:
        chosen = held
    plan = RestorePlan(qdir, chosen, {})
    claimed: set[tuple[str, str]] = set()
    for unit in chosen:
        target = Path(into) if into is not None else Path(unit.spool)
        plan.targets[unit.txn] = target
        if not target.is_dir():
            plan.problems.append(f"{unit.unit}: spool {target} is not a directory")
            continue
        try:
            check_qdir_location(qdir, target)
        except RefusedError as exc:
            plan.problems.append(str(exc))
            continue
        for entry in unit.files:
            rel = restore_path(unit, entry["path"])
            try:
                stored = _stored_path(qdir, entry["stored"])
                fd, _st = _open_source(qdir, entry["stored"])
                try:
                    digest = sha256_fd(fd)
                finally:
                    os.close(fd)
            except (OSError, RefusedError) as exc:
                plan.problems.append(f"{unit.unit}: {entry['stored']}: {exc}")
                continue
            if digest != entry.get("sha256"):
                plan.problems.append(f"{unit.unit}: {stored} fails its sha256 check (manifest {entry.get('sha256')})")
            try:
                dest = fsutil.resolve_inside(target, rel, fresh=True)
            except fsutil.UnsafePathError as exc:
                plan.problems.append(f"{unit.unit}: {exc}")
                continue
            if os.path.lexists(dest) or (str(target), rel) in claimed:
                plan.problems.append(f"{unit.unit}: {dest} exists; refusing to overwrite it")
            claimed.add((str(target), rel))
    return plan


def apply_restore(plan: RestorePlan, progress: bool = False) -> ApplyResult:
    """Put the planned units back; refuses (RefusedError) if the plan has problems.

    Units go BATCH at a time, like a quarantine: every placement of the batch, one disk
    barrier on each filesystem involved (the spools and QDIR), then the copies leave QDIR
    and the commits are written, and a last barrier. Where the system has no barrier
    call every step syncs as it goes. `progress`: a tqdm bar on stderr."""
    if plan.problems:
        raise RefusedError(plan.problems[0] + (f" (and {len(plan.problems) - 1} more)" if len(plan.problems) > 1 else ""))
    result = ApplyResult(plan.qdir)
    bar = progress_bar(progress, desc="restore", unit="unit", total=len(plan.units))
    barriers = _barriers([plan.qdir, *{str(target) for target in plan.targets.values()}])
    sync = barriers is None
    try:
        with QdirLock(plan.qdir):
            current = held_txn_ids(plan.qdir)
            for start in range(0, len(plan.units), BATCH):
                batch = plan.units[start:start + BATCH]
                outcomes: list[UnitOutcome | _PlacedUnit] = []
                for unit in batch:
                    if unit.txn not in current:
                        outcomes.append(UnitOutcome(unit.unit, "gone", why="no longer held (restored meanwhile)"))
                    else:
                        outcomes.append(_place_unit(plan.qdir, unit, plan.targets[unit.txn], sync))
                for barrier in barriers or ():
                    barrier()           # the placed files (and begin lines) are on disk before copies go
                for index, unit in enumerate(batch):
                    placed = outcomes[index]
                    if isinstance(placed, _PlacedUnit):
                        outcomes[index] = _finish_restore(plan.qdir, unit, plan.targets[unit.txn], placed, sync)
                for barrier in barriers or ():
                    barrier()
                result.outcomes.extend(o for o in outcomes if isinstance(o, UnitOutcome))
                if bar is not None:
                    bar.update(len(batch))
    except (RefusedError, OSError) as exc:   # the disk failed with units under way
        raise RefusedError(f"{exc}; stopped with units under way: run `queuetool recover {plan.qdir}` "
                           "to finish them") from exc
    finally:
        if bar is not None:
            bar.close()
    return result


def _barriers(paths: Iterable[str | Path]) -> list[Callable[[], None]] | None:
    """One filesystem barrier per filesystem among `paths`, or None if any has none."""
    by_device: dict[int, Callable[[], None] | None] = {}
    for path in paths:
        device = os.stat(path).st_dev
        if device not in by_device:
            by_device[device] = fsutil.filesystem_barrier(path)
    if any(barrier is None for barrier in by_device.values()):
        return None
    return [barrier for barrier in by_device.values() if barrier is not None]


@dataclass
class _PlacedUnit:
    """A held unit whose files are all back in the spool (maybe not yet synced)."""

    rtxn: str
    files: list[dict[str, Any]]
    moved: list[str]            # "active/ID -> incoming/ID" for files put elsewhere than taken from


def _place_unit(qdir: Path, unit: HeldUnit, target: Path, sync: bool) -> UnitOutcome | _PlacedUnit:
    """begin and every file placed in `target`; or a refused outcome (what was placed stays)."""
    rtxn = new_txn_id(unit.unit)
    files = [dict(f) for f in unit.files]
    moved = []
    for entry in files:
        dest = restore_path(unit, entry["path"])
        if dest != entry["path"]:
            moved.append(f"{entry['path']} -> {dest}")
            entry.update(held_path=entry["path"], path=dest)
    journal(qdir, "begin", rtxn, sync=sync, op="restore", of=unit.txn, unit=unit.unit, spool=str(target),
            files=files, time=utc_now(), operator=operator_name())
    _step("restore-begin")
    problems = _place_all(qdir, rtxn, files, target, sync)
    if problems:
        # placed files stay (they verified); the rest stay in QDIR; recover can finish it
        return UnitOutcome(unit.unit, "refused", len(files), unit.size, rtxn, "; ".join(problems))
    return _PlacedUnit(rtxn, files, moved)


def _finish_restore(qdir: Path, unit: HeldUnit, target: Path, placed: _PlacedUnit, sync: bool) -> UnitOutcome:
    """The unit is back in the spool: its copies leave QDIR, commit, audit."""
    rtxn, files, moved = placed.rtxn, placed.files, placed.moved
    _unstore_all(qdir, rtxn, files, sync)
    journal(qdir, "commit", rtxn, sync=sync, result="restored")
    _prune_empty(qdir, unit.txn)
    audit(qdir, "restore", sync=sync, txn=unit.txn, restore_txn=rtxn, unit=unit.unit, spool=str(target),
          files=len(files), bytes=unit.size)
    _step("restore-commit")
    why = f"put back as {', '.join(moved)} (where the running MTA takes new mail)" if moved else ""
    return UnitOutcome(unit.unit, "restored", len(files), unit.size, rtxn, why)


def _tmp_name(rtxn: str, index: int) -> str:
    return f"{TMP_PREFIX}{rtxn}-{index}.tmp"


def _place_all(qdir: Path, rtxn: str, files: list[dict[str, Any]], target: Path, sync: bool = True) -> list[str]:
    """Place every file (main file last, so the MTA never sees a half unit); `sync=False`
    leaves the fsyncs to a filesystem barrier the caller runs before the copies go."""
    problems = []
    order = list(range(1, len(files))) + [0] if files else []
    for index in order:
        entry = files[index]
        rel = entry["path"]
        dest = fsutil.resolve_inside(target, rel, fresh=True)
        if os.path.lexists(dest):
            if _same_file(dest, entry):
                journal(qdir, "placed", rtxn, sync=False, path=rel)
                continue
            problems.append(f"{dest} exists; not overwritten")
            continue
        fd, _st = _open_source(qdir, entry["stored"])
        try:
            if sha256_fd(fd) != entry["sha256"]:   # check the copy before touching the target
                problems.append(f"{entry['stored']}: fails its sha256 check; not restored")
                continue
            _make_dirs(target, os.path.dirname(rel), sync=sync)
            dest = fsutil.resolve_inside(target, rel, fresh=True)
            tmp = os.path.join(os.path.dirname(dest), _tmp_name(rtxn, index))
            if os.path.lexists(tmp):
                os.unlink(tmp)
            digest = _write_new(tmp, _chunks(fd), sync)
        finally:
            os.close(fd)
        if digest != entry["sha256"]:
            os.unlink(tmp)
            problems.append(f"{entry['stored']}: fails its sha256 check; not restored")
            continue
        _set_meta(tmp, entry)
        _step("restore-written")
        try:
            os.link(tmp, dest)   # fails instead of overwriting
        except FileExistsError:
            os.unlink(tmp)
            problems.append(f"{dest} appeared meanwhile; not overwritten")
            continue
        os.unlink(tmp)
        if sync:
            fsutil.fsync_directory(os.path.dirname(dest))
        journal(qdir, "placed", rtxn, sync=False, path=rel)
        _step("placed")
    return problems


def _same_file(path: str, entry: dict[str, Any]) -> bool:
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0))
    except OSError:
        return False
    try:
        return sha256_fd(fd) == entry.get("sha256")
    finally:
        os.close(fd)


def _unstore_all(qdir: Path, rtxn: str, files: list[dict[str, Any]], sync: bool = True) -> None:
    for entry in files:
        try:
            os.unlink(_stored_path(qdir, entry["stored"]))
        except FileNotFoundError:
            pass
        journal(qdir, "unstored", rtxn, sync=False, stored=entry["stored"])
        _step("unstored")
    if sync:
        fsutil.fsync_directory(qdir / UNITS)


# --------------------------------------------------- crash recovery steps

def finish_interrupted(qdir: Path, txn: Txn, mta_config: str | None = None) -> str:
    """Complete ('completed') or roll back ('rolled-back') one uncommitted transaction."""
    begin = txn.begin
    if txn.op == "quarantine":
        root = Path(begin["spool"])
        files = txn.files
        if not txn.all_copied() or not all(_copy_verifies(qdir, f, txn.copied[f["path"]]) for f in files):
            _roll_back(qdir, txn.txn, files, root, reason="interrupted before every file had a verified copy")
            _prune_empty(qdir, txn.txn)
            return "rolled-back"
        _write_manifest(qdir, txn.txn, begin.get("kind", "quarantine"), begin, None, files, txn.copied,
                        recovering=True)
        journal(qdir, "manifested", txn.txn)
        how = begin.get("removal", "unlink")
        config = begin.get("config") or mta_config
        kept = []
        present = []
        for entry in files:
            rel = entry["path"]
            if not os.path.lexists(fsutil.resolve_inside(root, rel, fresh=True)):
                continue
            try:
                recheck_original(root, rel, txn.copied[rel])
                present.append(rel)
            except (ChangedError, OSError):
                kept.append(rel)
        if how == "postsuper" and present:
            from .mta import postfix_master_pid

            if postfix_master_pid(root) is None:
                how = "unlink"
        _remove_present(qdir, txn.txn, root, how, config, begin.get("unit", ""),
                        [f["path"] for f in files], present)
        journal(qdir, "commit", txn.txn, result="quarantined", recovered=True, kept=kept)
        audit(qdir, "recover-complete", txn=txn.txn, unit=begin.get("unit"),
              kept_changed_originals=kept)
        return "completed"
    if txn.op == "restore":
        target = Path(begin["spool"])
        files = txn.files
        for index, entry in enumerate(files):
            dest = fsutil.resolve_inside(target, entry["path"], fresh=True)
            tmp = os.path.join(os.path.dirname(dest), _tmp_name(txn.txn, index))
            if os.path.lexists(tmp):
                os.unlink(tmp)
        problems = _place_all(qdir, txn.txn, files, target)
        if problems:
            raise RefusedError("; ".join(problems))
        _unstore_all(qdir, txn.txn, files)
        journal(qdir, "commit", txn.txn, result="restored", recovered=True)
        _prune_empty(qdir, begin.get("of", ""))
        audit(qdir, "recover-complete", txn=txn.txn, unit=begin.get("unit"), op="restore")
        return "completed"
    if txn.op == "hold":
        config = begin.get("config") or mta_config
        ids = set(begin.get("ids") or [])
        still_held = [u.id for u in postfix_units(Path(begin["spool"])) if u.id in ids and u.queue == "hold"]
        if still_held and config:
            postfix_release(config, still_held)
        journal(qdir, "commit", txn.txn, result="released", released=still_held)
        audit(qdir, "recover-release-hold", txn=txn.txn, released=still_held)
        return "rolled-back"
    if txn.op == "discard":
        _finish_discard(qdir, txn.txn, [f["stored"] for f in txn.files])
        _prune_empty(qdir, begin.get("of", ""))
        audit(qdir, "recover-complete", txn=txn.txn, unit=begin.get("unit"), op="discard")
        return "completed"
    journal(qdir, "commit", txn.txn, result="unknown-op")
    return "rolled-back"


def _copy_verifies(qdir: Path, entry: dict[str, Any], facts: dict[str, Any]) -> bool:
    try:
        fd, _st = _open_source(qdir, entry["stored"])
    except (OSError, RefusedError):
        return False
    try:
        return sha256_fd(fd) == facts.get("sha256")
    finally:
        os.close(fd)


def _prune_empty(qdir: Path, txn_id: str) -> None:
    """Drop the empty directories left under units/<txn> once its copies are gone."""
    if not txn_id:
        return
    base = qdir / UNITS / txn_id
    if not base.is_dir() or base.is_symlink():
        return
    for dirpath, dirnames, filenames in os.walk(base, topdown=False):
        if not filenames:
            try:
                os.rmdir(dirpath)
            except OSError:
                pass


def _remove_present(qdir: Path, txn: str, root: Path, how: str, config: str | None, unit_id: str,
                    rels: list[str], present: list[str]) -> None:
    if how == "postsuper" and config and rels and rels[0] in present and rels[0].startswith("hold/"):
        postfix_delete(config, [unit_id], "hold")
    lock_how = how if how in ("exim-lock", "sendmail-flock") else "unlink"
    with UnitLock(root, lock_how, unit_id, present):
        _unlink_journaled(qdir, txn, root, [r for r in rels[1:] + rels[:1] if r in present])


# ------------------------------------------------------- the verbs (library API)

@dataclass
class OperationReport:
    """What a verb did: the plan, and the outcomes when it was applied."""

    plan: Plan | None = None
    restore_plan: RestorePlan | None = None
    result: ApplyResult | None = None
    qdir: Path | None = None

    @property
    def refused(self) -> list[UnitOutcome]:
        return self.result.refused if self.result else []


def default_purge_qdir() -> Path:
    from datetime import datetime, timezone

    return Path.cwd() / f"queuetool-purge-{datetime.now(timezone.utc).strftime('%Y%m%dT%H%M%SZ')}"


def quarantine(spool: Any, to: str | Path, selection: Any, *, apply: bool = False, op: str = "quarantine",
               discard_copies: bool = False, mta: str | None = None, mta_config: str | None = None,
               offline: bool = False, jobs: int = 1, settings: Any = None,
               logs: Sequence[str | Path] = (), now: float | None = None, progress: bool = False
               ) -> OperationReport:
    """Plan (and with apply=True, carry out) moving the selected units of `spool` into `to`.

    `progress`: tqdm bars on stderr for the scan and for the units."""
    from .plan import make_plan

    plan = make_plan(spool, selection, op=op, qdir=to, mta=mta, mta_config=mta_config, offline=offline,
                     jobs=jobs, settings=settings, logs=logs, now=now, progress=progress)
    report = OperationReport(plan=plan, qdir=Path(to))
    if apply:
        report.result = apply_plan(plan, to, discard_copies=discard_copies, mta_config=mta_config,
                                   progress=progress)
    return report


def purge(spool: Any, selection: Any, *, to: str | Path | None = None, apply: bool = False,
          discard_copies: bool = False, **options: Any) -> OperationReport:
    """Quarantine, then remove from the MTA; `discard_copies` also deletes the copies."""
    return quarantine(spool, to if to is not None else default_purge_qdir(), selection, apply=apply,
                      op="purge", discard_copies=discard_copies, **options)


def restore(qdir: str | Path, ids: Sequence[str] = (), *, into: str | Path | None = None,
            apply: bool = False, progress: bool = False) -> OperationReport:
    """Plan (and with apply=True, do) putting held units back; refuses to overwrite."""
    plan = plan_restore(qdir, ids, into)
    report = OperationReport(restore_plan=plan, qdir=Path(qdir))
    if apply:
        report.result = apply_restore(plan, progress=progress)
    return report
