"""The plan: which units an operation would touch, their files and bytes, and why.

A dry run prints exactly this and changes nothing; `--apply` carries out the same
plan (re-checking every file as it goes). Units that cannot be handled safely (a
symlink among their files, a file that is not regular, a path leaving the spool) stay
in the plan with `refused` set, so the operator sees them.
"""
from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

from .. import fsutil
from ..model import QueuedMessage
from ..spools import MultiSpool, Spool, SpoolError, open_spool
from .journal import RefusedError, check_qdir_location
from .mta import LiveState, detect_live
from .select import Selection, SelectionError


@dataclass
class PlannedFile:
    path: str            # relative to the spool root
    size: int | None


@dataclass
class PlannedUnit:
    id: str
    queue: str | None
    mta: str
    files: list[PlannedFile]
    reasons: list[str]
    sender: str | None = None
    recipients: int = 0
    error: str | None = None
    refused: str | None = None     # why this unit will not be touched
    members: list[str] = field(default_factory=list)   # other ids moving with it (one mbox file)
    # live Postfix: the unit was put on hold first; where its files were before that
    held_from: str | None = None
    paths_before_hold: dict[str, str] = field(default_factory=dict)

    @property
    def bytes(self) -> int:
        return sum(f.size or 0 for f in self.files)


@dataclass
class Plan:
    op: str                        # quarantine | purge
    spool_root: Path
    mta: str
    selection: str
    live: LiveState
    qdir: Path | None = None
    units: list[PlannedUnit] = field(default_factory=list)

    @property
    def total_bytes(self) -> int:
        return sum(u.bytes for u in self.units if not u.refused)

    @property
    def actionable(self) -> list[PlannedUnit]:
        return [u for u in self.units if not u.refused]


PLAN_COLUMNS = (
    ("id", "ID", 16),
    ("queue", "QUEUE", 8),
    ("files", "FILES", 5),
    ("bytes", "BYTES", 8),
    ("why", "WHY", 0),
)


def plan_rows(plan: Plan) -> Iterable[dict[str, Any]]:
    """One output row per planned unit (table/json/jsonl/csv via output.write_rows)."""
    for unit in plan.units:
        yield {
            "id": unit.id, "queue": unit.queue, "mta": unit.mta,
            "files": len(unit.files), "bytes": unit.bytes,
            "paths": [f.path for f in unit.files],
            "why": ("REFUSED: " + unit.refused) if unit.refused else "; ".join(unit.reasons),
            "reasons": unit.reasons, "refused": unit.refused,
            "sender": unit.sender, "recipients": unit.recipients, "error": unit.error,
        }


def plan_table_rows(plan: Plan) -> Iterable[dict[str, Any]]:
    """Rows for the human table: each unit, then one indented row per file with its size."""
    for row, unit in zip(plan_rows(plan), plan.units):
        yield row
        for planned in unit.files:
            yield {"id": "", "queue": "", "files": "", "bytes": planned.size, "why": f"- {planned.path}"}


def single_spool(source: str | Path | Spool | MultiSpool, mta: str | None = None) -> Spool:
    """Operations act on one spool at a time (paths in the manifest are relative to it)."""
    opened = source if isinstance(source, (Spool, MultiSpool)) else open_spool(source, mta=mta)
    if isinstance(opened, MultiSpool):
        roots = ", ".join(str(s.root) for s in opened.spools)
        raise SpoolError(f"several spools below {source}: {roots}; run the operation on one of them")
    return opened


def check_unit_files(root: Path, files: Sequence[str], *, may_move: bool = False
                     ) -> tuple[list[PlannedFile], str | None]:
    """Sizes of a unit's files, and why the unit must be refused (symlink, odd file, escape).

    `may_move`: the MTA moves its files between queues and the apply step finds the
    unit again by id (live Postfix), so a file gone since the scan is not a problem.
    """
    planned = []
    problem = None
    if not files:
        return planned, "the reader listed no files for this unit"
    for rel in files:
        try:
            st = os.lstat(fsutil.resolve_inside(root, rel, fresh=True))
        except fsutil.UnsafePathError as exc:
            planned.append(PlannedFile(rel, None))
            problem = problem or str(exc)
            continue
        except FileNotFoundError:
            planned.append(PlannedFile(rel, None))
            if not may_move:
                problem = problem or f"{rel}: vanished (delivered or moved since the scan)"
            continue
        if stat.S_ISLNK(st.st_mode):
            problem = problem or f"{rel}: is a symlink, not followed"
        elif not stat.S_ISREG(st.st_mode):
            problem = problem or f"{rel}: not a regular file"
        planned.append(PlannedFile(rel, st.st_size))
    return planned, problem


def selected_records(spool: Spool, selection: Selection, *, jobs: int = 1, settings: Any = None,
                     logs: Sequence[str | Path] = (), now: float | None = None, progress: bool = False
                     ) -> Iterable[tuple[QueuedMessage, list[str] | None]]:
    """(record, reasons) for every record; reasons is None when the selection skips it.

    Verdict, score and campaign exist only after analysis, so a selection on them
    runs queuetool.analysis.analyze; others need only the scan.
    """
    if selection.needs_scoring() or logs:
        from ..analysis import analyze
        from ..config import load_settings

        records = analyze(spool, settings=settings or load_settings(), logs=logs, jobs=jobs, progress=progress)
    else:
        from ..scan import scan

        records = scan(spool, jobs=jobs, progress=progress)
    for record in records:
        yield record, selection.reasons(record, now)


def make_plan(
    source: str | Path | Spool | MultiSpool,
    selection: Selection,
    *,
    op: str = "quarantine",
    qdir: str | Path | None = None,
    mta: str | None = None,
    mta_config: str | None = None,
    offline: bool = False,
    jobs: int = 1,
    settings: Any = None,
    logs: Sequence[str | Path] = (),
    now: float | None = None,
    progress: bool = False,
) -> Plan:
    """What `op` would do to `source` for `selection` (nothing is changed).

    `progress` shows a tqdm bar on stderr for the scan."""
    if selection.is_empty():
        raise SelectionError("no selection given; choose messages with --id, --where, --sender ... "
                             "(every message: --where true)")
    spool = single_spool(source, mta)
    root = Path(spool.root)
    if qdir is not None:
        check_qdir_location(Path(qdir), root)
        if not isinstance(source, (Spool, MultiSpool)):
            check_qdir_location(Path(qdir), Path(source))
    live = detect_live(root, spool.mta, mta_config=mta_config, offline=offline)
    plan = Plan(op=op, spool_root=root, mta=spool.mta, selection=selection.describe(), live=live,
                qdir=Path(qdir) if qdir is not None else None)
    owners: dict[str, list[str]] = {}          # file -> ids of every unit listing it (mbox, shared logs)
    by_id: dict[str, int] = {}                 # live Postfix: id -> index in plan.units
    may_move = live.how == "postsuper"
    for record, reasons in selected_records(spool, selection, jobs=jobs, settings=settings, logs=logs, now=now,
                                             progress=progress):
        for rel in record.files:
            owners.setdefault(rel, []).append(record.id)
        if reasons is None:
            continue
        files, problem = check_unit_files(root, record.files, may_move=may_move)
        if live.how == "refuse":
            problem = problem or live.why
        unit = PlannedUnit(
            id=record.id, queue=record.queue, mta=record.mta, files=files, reasons=reasons,
            sender=record.sender, recipients=len(record.recipients), error=record.error, refused=problem,
        )
        if may_move and record.id in by_id:
            # the listing met a message twice while Postfix moved it (active -> deferred):
            # one unit, described by the copy whose files are still there
            index = by_id[record.id]
            if _files_present(unit) >= _files_present(plan.units[index]):
                plan.units[index] = unit
            continue
        by_id[record.id] = len(plan.units)
        plan.units.append(unit)
    plan.units = merge_shared_files(plan.units, owners)
    return plan


def _files_present(unit: PlannedUnit) -> int:
    return sum(1 for f in unit.files if f.size is not None)


def merge_shared_files(units: list[PlannedUnit], owners: dict[str, list[str]]) -> list[PlannedUnit]:
    """Units sharing a file (messages of one mbox) move together or not at all.

    If every unit of a shared file is selected, they become one unit (the first id,
    the others in `members`); if some are not, the selected ones are refused, since
    moving the file would take unselected mail with it.
    """
    selected = {u.id for u in units}
    by_id = {u.id: u for u in units}
    out: list[PlannedUnit] = []
    absorbed: set[int] = set()
    for unit in units:
        if id(unit) in absorbed:
            continue
        sharers = sorted({other for f in unit.files for other in owners.get(f.path, []) if other != unit.id})
        if not sharers:
            out.append(unit)
            continue
        unselected = [other for other in sharers if other not in selected]
        if unselected:
            unit.refused = unit.refused or (
                f"its file also holds unselected message(s) {', '.join(unselected[:3])}"
                + (" ..." if len(unselected) > 3 else "") + "; select them too to move the file")
            out.append(unit)
            continue
        seen = {f.path for f in unit.files}
        for other in sharers:
            member = by_id[other]
            if id(member) in absorbed:
                continue
            absorbed.add(id(member))
            unit.members.append(member.id)
            unit.refused = unit.refused or member.refused
            unit.files.extend(f for f in member.files if f.path not in seen)
            seen.update(f.path for f in member.files)
        unit.reasons = unit.reasons + [f"shares its file with {', '.join(unit.members)}"]
        out.append(unit)
    return out


def refuse_if_live_without_tools(plan: Plan) -> None:
    """Exchange spools need --offline; raise RefusedError with what to do."""
    if plan.live.how == "refuse" and plan.units:
        raise RefusedError(plan.live.why)
