"""MTA awareness: live detection, the MTA's own locks, refusals that say what to do."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from ops.spoolgen import file_table, make_eml_spool, make_multifile_spool, write_file
from queuetool.cli import main
from queuetool.ops import RefusedError, apply_plan, held_units, make_plan, make_selection
from queuetool.ops.mta import BusyError, LiveState, UnitLock, detect_live, postfix_master_pid
from queuetool.ops.plan import Plan, PlannedFile, PlannedUnit

HOLDER = """
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDWR)
if sys.argv[2] == "fcntl":
    fcntl.lockf(fd, fcntl.LOCK_EX, int(sys.argv[3]), 0, 0)
else:
    fcntl.flock(fd, fcntl.LOCK_EX)
print("locked", flush=True)
sys.stdin.read()
"""


def hold_lock(path: Path, kind: str, length: int = 0) -> subprocess.Popen:
    """Another process takes the MTA's lock on `path` until its stdin closes."""
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(path), kind, str(length)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "locked"
    return proc


def release(proc: subprocess.Popen) -> None:
    proc.stdin.close()
    proc.wait(timeout=30)


def test_exim_unit_locked_by_the_mta_is_skipped_then_taken(tmp_path, multifile_reader) -> None:
    spool = make_multifile_spool(tmp_path / "spool", 3, seed=21)
    units = list(spool.units())
    busy = next(u for u in units if any(p.endswith("-D") for p in u.paths))
    data_file = spool.root / next(p for p in busy.paths if p.endswith("-D"))
    holder = hold_lock(data_file, "fcntl", len(busy.id) + 3)
    try:
        plan = make_plan(spool, make_selection(where="true"), qdir=tmp_path / "q")
        plan.live = LiveState("exim", True, "exim-lock", "test: Exim is running")
        result = apply_plan(plan)
        status = {o.id: o.status for o in result.outcomes}
        assert status[busy.id] == "busy"
        assert all(s == "quarantined" for uid, s in status.items() if uid != busy.id)
        assert all((spool.root / p).exists() for p in busy.paths)      # untouched while locked
    finally:
        release(holder)
    plan = make_plan(spool, make_selection(ids=[busy.id]), qdir=tmp_path / "q")
    plan.live = LiveState("exim", True, "exim-lock", "test: Exim is running")
    assert [o.status for o in apply_plan(plan).outcomes] == ["quarantined"]
    assert file_table(spool.root) == {}


def test_exim_message_delivered_after_the_plan_is_gone_not_an_error(tmp_path, multifile_reader) -> None:
    """Exim delivered (and removed) a message between the dry run and --apply: the unit is
    `gone`, the others are taken, and nothing stops the run."""
    spool = make_multifile_spool(tmp_path / "spool", 6, seed=21)
    plan = make_plan(spool, make_selection(where="true"), qdir=tmp_path / "q")
    plan.live = LiveState("exim", True, "exim-lock", "test: Exim is running")
    delivered = next(u for u in plan.units if any(f.path.endswith("-D") for f in u.files))
    for f in delivered.files:
        (spool.root / f.path).unlink()
    result = apply_plan(plan)
    status = {o.id: o.status for o in result.outcomes}
    assert status.pop(delivered.id) == "gone" and set(status.values()) == {"quarantined"}
    assert not result.refused and file_table(spool.root) == {}


def test_sendmail_qf_flock_is_respected(tmp_path) -> None:
    write_file(tmp_path, "qfABC123", b"V8\nHtest\n")
    write_file(tmp_path, "dfABC123", b"body\n")
    holder = hold_lock(tmp_path / "qfABC123", "flock")
    try:
        with pytest.raises(BusyError):
            with UnitLock(tmp_path, "sendmail-flock", "ABC123", ["qfABC123", "dfABC123"]):
                pass
    finally:
        release(holder)
    with UnitLock(tmp_path, "sendmail-flock", "ABC123", ["qfABC123", "dfABC123"]) as lock:
        assert lock.fd_for("qfABC123") is not None and lock.fd_for("dfABC123") is None


def test_postfix_master_detected_by_its_pid_file_lock(tmp_path) -> None:
    write_file(tmp_path, "pid/master.pid", f"{999999:>10}\n".encode())
    assert postfix_master_pid(tmp_path) is None                    # stale pid, nobody holds the lock
    assert detect_live(tmp_path, "postfix").how == "unlink"
    holder = hold_lock(tmp_path / "pid" / "master.pid", "flock")
    try:
        write_file(tmp_path, "pid/master.pid", f"{holder.pid:>10}\n".encode())
        state = detect_live(tmp_path, "postfix")
        assert state.live and state.how == "postsuper" and str(holder.pid) in state.why
    finally:
        release(holder)


def test_live_postfix_with_the_wrong_config_is_refused(tmp_path) -> None:
    from ops.private_postfix import missing_requirements

    if missing_requirements() and "Postfix tools missing" in missing_requirements():
        pytest.fail(missing_requirements())
    config = tmp_path / "etc"
    write_file(config, "main.cf", b"queue_directory = /var/spool/elsewhere\n")
    plan = Plan("purge", tmp_path / "spool", "postfix", "--id X", LiveState("postfix", True, "postsuper", "test"),
                units=[PlannedUnit("X", "deferred", "postfix", [PlannedFile("deferred/X", 1)], ["id X"])])
    (tmp_path / "spool").mkdir()
    with pytest.raises(RefusedError, match="give --mta-config"):
        apply_plan(plan, tmp_path / "q", mta_config=str(config))
    assert held_units(tmp_path / "q") == []


def _postfix_moves_a_message_during_the_scan(monkeypatch, spool, moved_id: str) -> str:
    """While the plan's scan runs, Postfix moves `moved_id` from deferred/ to hold/ and the
    listing meets it twice: once at the old path (gone by the check), once at the new one."""
    import dataclasses

    from queuetool.ops import plan as plan_module

    real = plan_module.selected_records

    def racing(*args, **kwargs):
        for record, reasons in real(*args, **kwargs):
            if record.id != moved_id:
                yield record, reasons
                continue
            old = record.files[0]
            os.makedirs(spool / "hold", exist_ok=True)
            os.rename(spool / old, spool / "hold" / moved_id)
            yield record, reasons
            yield dataclasses.replace(record, queue="hold", files=[f"hold/{moved_id}", *record.files[1:]]), reasons

    monkeypatch.setattr(plan_module, "selected_records", racing)
    return moved_id


@pytest.mark.parametrize("how", ["postsuper", "unlink"])
def test_postfix_message_moved_while_planning(tmp_path, monkeypatch, how) -> None:
    """Live Postfix moves messages between queues all the time: the plan keeps one unit
    for the id (apply finds it again after postsuper -h). Offline, a vanished file is a
    refusal, since nothing but another hand should have moved it."""
    from corpus import copy_corpus
    from queuetool.ops import plan as plan_module

    spool = Path(copy_corpus("postfix", tmp_path))
    moved = sorted(p.name for p in (spool / "deferred").rglob("*") if p.is_file())[0]
    _postfix_moves_a_message_during_the_scan(monkeypatch, spool, moved)
    monkeypatch.setattr(plan_module, "detect_live",
                        lambda *a, **k: LiveState("postfix", how == "postsuper", how, "test"))
    plan = make_plan(spool, make_selection(ids=[moved]), op="purge")
    if how == "postsuper":
        assert len(plan.units) == 1 and plan.units[0].refused is None, plan.units
        assert plan.units[0].files[0] == PlannedFile(f"hold/{moved}", (spool / "hold" / moved).stat().st_size)
    else:
        assert [u.id for u in plan.units] == [moved, moved]
        assert "vanished" in plan.units[0].refused and plan.units[1].refused is None


def test_exchange_apply_is_refused_without_offline(tmp_path) -> None:
    unit = PlannedUnit("NTFS_1", "queue", "smtpsvc", [PlannedFile("Queue/NTFS_1.EML", 10)], ["id NTFS_1"])
    plan = Plan("quarantine", tmp_path, "smtpsvc", "--id NTFS_1", detect_live(tmp_path, "smtpsvc"), units=[unit])
    with pytest.raises(RefusedError, match="SMTP service stopped"):
        apply_plan(plan, tmp_path.parent / f"{tmp_path.name}-q")


def test_cli_refuses_exchange_without_offline_exit_4(tmp_path) -> None:
    from corpus import copy_corpus
    from queuetool.scan import spools_of

    top = copy_corpus("exchange2003", tmp_path)
    spool = next(s for s in spools_of(top) if s.mta == "smtpsvc")
    before = file_table(spool.root)
    args = ["quarantine", str(spool.root), "--to", str(tmp_path / "q"), "--where", "true", "--apply"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 4 and "--offline" in result.output
    assert file_table(spool.root) == before
    assert CliRunner().invoke(main, args + ["--offline"]).exit_code in (0, 4)   # 4 only for refused units
    assert len(file_table(spool.root)) < len(before)


def test_journal_survives_a_torn_last_line(tmp_path) -> None:
    from queuetool.ops import quarantine, recover
    from queuetool.ops.journal import JOURNAL

    spool = make_eml_spool(tmp_path / "spool", 4)
    qdir = tmp_path / "q"
    quarantine(spool, qdir, make_selection(ids=["m000"]), apply=True)
    with open(qdir / JOURNAL, "ab") as handle:
        handle.write(b'{"t":"begin","txn":"torn-')                 # a crash mid-write
    assert recover(qdir).problems == []
    quarantine(spool, qdir, make_selection(ids=["m001"]), apply=True)
    assert {u.unit for u in held_units(qdir)} == {"m000", "m001"}


# ---- hostile or damaged books never crash recover / restore ----

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

JSON_VALUES = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=8),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
                           max_leaves=8)
HOSTILE_PATHS = st.sampled_from(["a/b", "../x", "/etc/passwd", "units/../../x", "", "q/U1", "x\x00y", "."])
VALID_LOOKING = st.fixed_dictionaries({
    "t": st.just("begin"), "txn": st.sampled_from(["a", "b"]),
    "op": st.sampled_from(["quarantine", "restore", "discard"]),
    "spool": st.sampled_from(["/nonexistent-queuetool-spool", "relative", "/proc/self"]),
    "of": st.sampled_from(["a", "b"]),
    "files": st.lists(st.fixed_dictionaries({"path": HOSTILE_PATHS, "orig": HOSTILE_PATHS, "stored": HOSTILE_PATHS,
                                             "sha256": st.sampled_from(["0" * 64, "x"])}), max_size=3),
}).map(lambda d: __import__("json").dumps(d).encode())
COPIED = st.fixed_dictionaries({"t": st.just("copied"), "txn": st.sampled_from(["a", "b"]), "path": HOSTILE_PATHS,
                                "sha256": st.just("0" * 64)}).map(lambda d: __import__("json").dumps(d).encode())
JOURNAL_LINES = st.one_of(
    VALID_LOOKING, COPIED,
    st.binary(max_size=60),
    st.fixed_dictionaries({"t": st.sampled_from(["begin", "copied", "removed", "placed", "unstored", "manifested",
                                                 "commit", "x"]),
                           "txn": st.sampled_from(["a", "b", 3]),
                           "op": st.sampled_from(["quarantine", "restore", "discard", "hold", "zzz"]),
                           "files": JSON_VALUES, "path": JSON_VALUES, "spool": JSON_VALUES,
                           "result": st.sampled_from(["quarantined", "restored", 1])}).map(
        lambda d: __import__("json").dumps(d).encode()),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=st.lists(JOURNAL_LINES, max_size=8))
def test_damaged_journal_never_crashes_recover(tmp_path, lines) -> None:
    import shutil as _shutil

    from queuetool.ops import plan_restore, recover
    from queuetool.ops.journal import JOURNAL, open_qdir

    qdir = tmp_path / "damaged"
    _shutil.rmtree(qdir, ignore_errors=True)
    open_qdir(qdir, create=True)
    (qdir / JOURNAL).write_bytes(b"\n".join(lines))
    result = recover(qdir)                      # problems are reported, never raised
    assert isinstance(result.problems, list)
    held_units(qdir)
    try:
        plan_restore(qdir)
    except (RefusedError, ValueError):
        pass
