"""Quarantine, purge, restore: bytes, modes, mtimes, manifest, refusals, CLI."""
from __future__ import annotations

import hashlib
import importlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from ops.spoolgen import byte_multiset, file_table, make_eml_spool, make_multifile_spool, stored_copies, write_file
from queuetool.cli import main
from queuetool.ops import (
    RefusedError, SelectionError, held_units, make_plan, make_selection, purge, quarantine, recover, restore,
)
from queuetool.ops.journal import AUDIT, MANIFEST, read_lines


def test_quarantine_moves_every_file_and_writes_the_manifest(tmp_path, multifile_reader) -> None:
    spool = make_multifile_spool(tmp_path / "spool", 12)
    before = file_table(spool.root)
    qdir = tmp_path / "q"
    report = quarantine(spool, qdir, make_selection(senders=["spam@*"]), apply=True)
    done = [o for o in report.result.outcomes if o.status == "quarantined"]
    assert len(done) == 6 and not report.refused
    after = file_table(spool.root)
    moved = set(before) - set(after)
    assert moved and all(rel.split("/")[-1].split("-")[0] in {o.id for o in done} for rel in moved)
    manifest = list(read_lines(qdir / MANIFEST))
    assert sorted(line["path"] for line in manifest) == sorted(moved)
    for line in manifest:
        data, mode, mtime_ns = before[line["path"]]
        assert line["sha256"] == hashlib.sha256(data).hexdigest()
        assert (line["size"], line["mode"], line["mtime_ns"]) == (len(data), mode, mtime_ns)
        assert line["mta"] == "multifile" and line["op"] == "quarantine" and line["operator"]
        assert line["selection"] == "--sender 'spam@*'" and line["reasons"] == ["sender spam@bad.example matches spam@*"]
        stored = qdir / line["stored"]
        assert stored.read_bytes() == data                      # copy keeps bytes, mode and mtime
        assert (stored.stat().st_mode & 0o7777, stored.stat().st_mtime_ns) == (mode, mtime_ns)
    events = [line["event"] for line in read_lines(qdir / AUDIT)]
    assert events[0] == "quarantine-start" and events[-1] == "quarantine-end" and events.count("quarantine") == 6
    assert byte_multiset(spool.root, qdir) == byte_multiset_of(before)


def byte_multiset_of(table):
    import collections

    return collections.Counter(data for data, _m, _t in table.values())


def test_restore_is_byte_identical_with_mode_and_mtime(tmp_path, multifile_reader) -> None:
    spool = make_multifile_spool(tmp_path / "spool", 10, seed=3)
    before = file_table(spool.root)
    qdir = tmp_path / "q"
    quarantine(spool, qdir, make_selection(where="true"), apply=True)
    assert file_table(spool.root) == {}
    dry = restore(qdir)
    assert dry.result is None and len(dry.restore_plan.units) == 10 and file_table(spool.root) == {}
    report = restore(qdir, apply=True)
    assert [o.status for o in report.result.outcomes] == ["restored"] * 10
    assert file_table(spool.root) == before
    assert stored_copies(qdir) == [] and held_units(qdir) == []
    assert not list((qdir / "units").iterdir())                  # empty directories pruned too


def test_postfix_message_taken_from_active_is_restored_into_incoming(tmp_path) -> None:
    """A running qmgr never picks up a new file in active/ (it moves leftovers to incoming/
    only when it starts), so restore puts such a queue file into incoming/; logs go back as
    they were."""
    from corpus import copy_corpus
    from queuetool.scan import scan

    spool = Path(copy_corpus("postfix", tmp_path))
    active = next(p.name for p in (spool / "active").iterdir())
    before = file_table(spool)
    report = quarantine(spool, tmp_path / "q", make_selection(ids=[active]), apply=True)
    assert [o.status for o in report.result.outcomes] == ["quarantined"]
    taken = set(before) - set(file_table(spool))
    assert f"active/{active}" in taken and len(taken) > 1          # the queue file and its logs

    back = restore(tmp_path / "q", [active], apply=True)
    assert [o.status for o in back.result.outcomes] == ["restored"]
    assert f"active/{active} -> incoming/{active}" in back.result.outcomes[0].why
    after = file_table(spool)
    expected = {("incoming/" + rel[len("active/"):] if rel.startswith("active/") else rel): facts
                for rel, facts in before.items()}
    assert after == expected                                       # bytes, mode, mtime; only the queue moved
    assert [r.queue for r in scan(spool, mta="postfix") if r.id == active] == ["incoming"]
    assert held_units(tmp_path / "q") == []


def test_discard_deletes_one_units_copies_and_keeps_its_manifest(tmp_path, multifile_reader) -> None:
    from queuetool.ops import discard

    spool = make_multifile_spool(tmp_path / "spool", 4, seed=5)
    qdir = tmp_path / "q"
    quarantine(spool, qdir, make_selection(where="true"), apply=True)
    held = held_units(qdir)
    gone = held[1]
    discard(qdir, gone.txn)
    assert [u.txn for u in held_units(qdir)] == [u.txn for u in held if u is not gone]
    assert not (qdir / "units" / gone.txn).exists()
    assert len(stored_copies(qdir)) == sum(len(u.files) for u in held if u is not gone)
    assert {line["txn"] for line in read_lines(qdir / MANIFEST)} == {u.txn for u in held}   # the hashes stay
    with pytest.raises(RefusedError):
        discard(qdir, gone.txn)


def test_purge_never_rereads_its_books_per_unit(tmp_path, multifile_reader, monkeypatch) -> None:
    """Re-reading the manifest or replaying the journal for every unit made a 10^4-unit
    purge quadratic (785 s); the normal path only appends. Recovery may read them."""
    qmod = importlib.import_module("queuetool.ops.quarantine")
    jmod = importlib.import_module("queuetool.ops.journal")
    reads = []
    real_read_lines, real_replay = qmod.read_lines, jmod.replay
    monkeypatch.setattr(qmod, "read_lines", lambda path: reads.append(Path(path).name) or real_read_lines(path))
    monkeypatch.setattr(jmod, "replay", lambda qdir: reads.append("replay") or real_replay(qdir))
    spool = make_multifile_spool(tmp_path / "spool", 12)
    report = purge(spool, make_selection(where="true"), to=tmp_path / "q", apply=True, discard_copies=True)
    assert [o.status for o in report.result.outcomes] == ["discarded"] * 12
    assert reads == []
    assert len(list(read_lines(tmp_path / "q" / MANIFEST))) == sum(o.files for o in report.result.outcomes)


def test_operations_show_progress_on_request(tmp_path, multifile_reader, capsys) -> None:
    """A 10^5-unit purge runs for many minutes: the scan and the units each get a bar."""
    spool = make_multifile_spool(tmp_path / "spool", 7, seed=2)
    quarantine(spool, tmp_path / "q", make_selection(where="true"), apply=True, progress=True)
    restore(tmp_path / "q", apply=True, progress=True)
    err = capsys.readouterr().err
    assert "7msg" in err.replace(" ", "") and "quarantine:100%" in err.replace(" ", "")
    assert "7/7" in err and "restore:100%" in err.replace(" ", "")
    quarantine(spool, tmp_path / "q2", make_selection(where="true"), apply=True)
    assert capsys.readouterr().err == ""


def test_batches_wait_for_the_disk_before_each_kind_of_step(tmp_path, multifile_reader, monkeypatch) -> None:
    """Units without an MTA lock go BATCH at a time. Whatever the barrier, the order must be:
    every copy, a barrier, every re-check and manifest line, a barrier, removals, commits,
    a barrier, and only then discards. And the disk is waited for per batch, not per file."""
    qmod = importlib.import_module("queuetool.ops.quarantine")
    fsutil = importlib.import_module("queuetool.fsutil")
    events: list[str] = []

    def recording(name, real):
        def wrapper(*args, **kwargs):
            events.append(name)
            return real(*args, **kwargs)
        return wrapper

    real_barrier = fsutil.filesystem_barrier

    def barrier_factory(path):
        barrier = real_barrier(path) or (lambda: None)
        return recording("barrier", barrier)

    monkeypatch.setattr(qmod, "BATCH", 10)
    monkeypatch.setattr(qmod.fsutil, "filesystem_barrier", barrier_factory)
    for name in ("copy_verified", "_write_manifest", "_unlink", "_commit_unit", "_discard_copies"):
        monkeypatch.setattr(qmod, name, recording(name, getattr(qmod, name)))
    monkeypatch.setattr(os, "fsync", recording("fsync", os.fsync))
    spool = make_multifile_spool(tmp_path / "spool", 25, seed=9)
    before = byte_multiset(spool.root, tmp_path / "q")
    report = purge(spool, make_selection(where="true"), to=tmp_path / "q", apply=True, discard_copies=True)
    assert [o.status for o in report.result.outcomes] == ["discarded"] * 25
    steps = [e for e in events if e != "fsync"]
    collapsed = [e for i, e in enumerate(steps) if i == 0 or e != steps[i - 1]]
    batch = ["copy_verified", "barrier", "_write_manifest", "barrier", "_unlink", "_commit_unit", "barrier",
             "_discard_copies"]
    assert collapsed == batch * 3, collapsed
    assert byte_multiset(spool.root, tmp_path / "q") <= before    # discarded copies are the only bytes gone

    events.clear()
    quarantine(make_multifile_spool(tmp_path / "spool2", 25, seed=9), tmp_path / "q2", make_selection(where="true"),
               apply=True)
    if real_barrier(tmp_path) is not None:          # Linux: syncfs replaces the per-file fsyncs
        assert events.count("fsync") < 25 and events.count("barrier") == 9, events.count("fsync")


def test_a_disk_error_mid_batch_says_to_recover_and_recover_finishes(tmp_path, multifile_reader,
                                                                     monkeypatch) -> None:
    import errno

    qmod = importlib.import_module("queuetool.ops.quarantine")
    real_copy = qmod.copy_verified
    calls = []

    def failing_disk(*args, **kwargs):
        calls.append(1)
        if len(calls) == 9:
            raise OSError(errno.EIO, "Input/output error")
        return real_copy(*args, **kwargs)

    monkeypatch.setattr(qmod, "copy_verified", failing_disk)
    spool = make_multifile_spool(tmp_path / "spool", 8, seed=4)
    before = byte_multiset(spool.root, tmp_path / "q")
    with pytest.raises(RefusedError, match=r"Input/output error; stopped with units under way: run `queuetool recover"):
        quarantine(spool, tmp_path / "q", make_selection(where="true"), apply=True)
    monkeypatch.setattr(qmod, "copy_verified", real_copy)
    assert byte_multiset(spool.root, tmp_path / "q") >= before          # nothing lost (partial copies may exist)
    assert not recover(tmp_path / "q").problems
    assert byte_multiset(spool.root, tmp_path / "q") == before          # nothing lost, nothing doubled


def test_restore_refuses_to_overwrite_and_changes_nothing(tmp_path, multifile_reader) -> None:
    spool = make_multifile_spool(tmp_path / "spool", 4, seed=5)
    qdir = tmp_path / "q"
    quarantine(spool, qdir, make_selection(where="true"), apply=True)
    held = held_units(qdir)
    squatter = held[-1].files[0]["path"]
    write_file(spool.root, squatter, b"new mail with the same id")
    with pytest.raises(RefusedError, match="exists; refusing to overwrite"):
        restore(qdir, apply=True)
    assert file_table(spool.root) == {squatter: (b"new mail with the same id", 0o600, os.lstat(spool.root / squatter).st_mtime_ns)}
    assert len(held_units(qdir)) == 4
    result = CliRunner().invoke(main, ["restore", str(qdir), "--apply"])
    assert result.exit_code == 4 and "refusing to overwrite" in result.output


def test_restore_refuses_a_copy_that_fails_its_hash(tmp_path, multifile_reader) -> None:
    spool = make_multifile_spool(tmp_path / "spool", 2, seed=6)
    qdir = tmp_path / "q"
    quarantine(spool, qdir, make_selection(where="true"), apply=True)
    stored = qdir / held_units(qdir)[0].files[0]["stored"]
    stored.write_bytes(stored.read_bytes() + b"tampered")
    with pytest.raises(RefusedError, match="sha256"):
        restore(qdir, apply=True)
    assert file_table(spool.root) == {}


def test_restore_by_id_and_into_another_spool(tmp_path, multifile_reader) -> None:
    spool = make_multifile_spool(tmp_path / "spool", 5, seed=7)
    before = file_table(spool.root)
    qdir = tmp_path / "q"
    quarantine(spool, qdir, make_selection(where="true"), apply=True)
    one = held_units(qdir)[2]
    other = tmp_path / "copy"
    other.mkdir()
    restore(qdir, [one.unit], into=other, apply=True)
    assert file_table(other) == {f["path"]: before[f["path"]] for f in one.files}
    assert len(held_units(qdir)) == 4
    with pytest.raises(ValueError, match="not held"):
        restore(qdir, ["nope"])


def test_purge_keeps_copies_unless_told_and_always_keeps_the_manifest(tmp_path, multifile_reader) -> None:
    spool = make_multifile_spool(tmp_path / "spool", 6, seed=8)
    before = file_table(spool.root)
    qdir = tmp_path / "q"
    report = purge(spool, make_selection(senders=["spam@*"]), to=qdir, apply=True, discard_copies=True)
    assert {o.status for o in report.result.outcomes} == {"discarded"}
    assert stored_copies(qdir) == [] and held_units(qdir) == []
    manifest = list(read_lines(qdir / MANIFEST))
    assert manifest and all(line["op"] == "purge" for line in manifest)
    gone = set(before) - set(file_table(spool.root))
    assert {line["path"] for line in manifest} == gone
    assert all(line["sha256"] == hashlib.sha256(before[line["path"]][0]).hexdigest() for line in manifest)
    kept = purge(spool, make_selection(where="true"), to=tmp_path / "q2", apply=True)
    assert {o.status for o in kept.result.outcomes} == {"purged"} and len(held_units(tmp_path / "q2")) == 3


def test_dry_run_changes_nothing_and_explains(tmp_path, multifile_reader) -> None:
    spool = make_multifile_spool(tmp_path / "spool", 6, seed=9)
    before = file_table(spool.root)
    report = quarantine(spool, tmp_path / "q", make_selection(where='sender ~ "spam@*"'))
    assert report.result is None and file_table(spool.root) == before and not (tmp_path / "q").exists()
    assert len(report.plan.units) == 3
    unit = report.plan.units[0]
    assert unit.reasons == ["where sender ~ \"spam@*\""]
    assert unit.bytes == sum(len(before[f.path][0]) for f in unit.files)


def test_symlinks_are_refused_never_followed(tmp_path) -> None:
    spool = make_eml_spool(tmp_path / "spool", 3)
    outside = tmp_path / "outside.eml"
    outside.write_bytes(b"From: x@example.com\nSubject: secret\n\nkeep me\n")
    os.symlink(outside, spool / "link.eml")
    qdir = tmp_path / "q"
    report = quarantine(spool, qdir, make_selection(where="true"), apply=True)
    by_id = {o.id: o for o in report.result.outcomes}
    assert by_id["link"].status == "refused" and "symlink" in by_id["link"].why
    assert outside.read_bytes().endswith(b"keep me\n") and os.path.islink(spool / "link.eml")
    assert all(line["path"] != "link.eml" for line in read_lines(qdir / MANIFEST))
    result = CliRunner().invoke(main, ["quarantine", str(spool), "--mta", "eml", "--to", str(tmp_path / "q3"), "--where", "true",
                                       "--apply"])
    assert result.exit_code == 4 and "symlink" in result.output, result.output


def test_qdir_inside_the_spool_is_refused(tmp_path) -> None:
    spool = make_eml_spool(tmp_path / "spool", 2)
    for qdir in (spool / "q", spool, tmp_path):
        with pytest.raises(RefusedError, match="inside"):
            make_plan(spool, make_selection(where="true"), qdir=qdir)
    result = CliRunner().invoke(main, ["quarantine", str(spool), "--to", str(spool / "sub" / "q"), "--id", "m000"])
    assert result.exit_code == 4 and "inside the spool" in result.output


def test_qdir_must_be_a_quarantine_or_empty(tmp_path) -> None:
    spool = make_eml_spool(tmp_path / "spool", 2)
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "other.txt").write_text("not ours")
    with pytest.raises(RefusedError, match="not empty"):
        quarantine(spool, busy, make_selection(where="true"), apply=True)
    assert len(list(spool.iterdir())) == 2


def test_odd_and_non_utf8_file_names_round_trip(tmp_path) -> None:
    spool = make_eml_spool(tmp_path / "spool", 1)
    names = ["sp ace.eml", "ümlaut.eml", "back\\slash.eml", os.fsdecode(b"raw\xff\xfe.eml"), "-dash.eml"]
    for name in names:
        write_file(spool, name, f"From: a@example.com\nSubject: {name!r}\n\nx\n".encode(), 0o640, 1_600_000_123.5)
    before = file_table(spool)
    qdir = tmp_path / "q"
    report = quarantine(spool, qdir, make_selection(where="true"), apply=True)
    assert report.result.count("quarantined") == 6
    manifest = list(read_lines(qdir / MANIFEST))
    raw_line = next(line for line in manifest if "path_hex" in line)
    assert bytes.fromhex(raw_line["path_hex"]) == b"raw\xff\xfe.eml"
    (qdir / MANIFEST).read_bytes().decode("ascii")        # the books are plain ASCII JSON
    restore(qdir, apply=True)
    assert file_table(spool) == before


def test_cross_filesystem_quarantine(tmp_path, multifile_reader) -> None:
    other_fs = Path("/dev/shm")
    if not other_fs.is_dir() or os.stat(other_fs).st_dev == os.stat(tmp_path).st_dev:
        pytest.fail("this test needs /dev/shm on a filesystem other than tmp_path's")
    spool = make_multifile_spool(tmp_path / "spool", 4, seed=11)
    before = file_table(spool.root)
    qdir = other_fs / f"queuetool-test-{os.getpid()}"
    try:
        quarantine(spool, qdir, make_selection(where="true"), apply=True)
        assert file_table(spool.root) == {}
        assert sorted(stored_copies(qdir)) == sorted(d for d, _m, _t in before.values())
        restore(qdir, apply=True)
        assert file_table(spool.root) == before
    finally:
        shutil.rmtree(qdir, ignore_errors=True)


def test_a_file_changed_after_copy_is_not_removed(tmp_path, multifile_reader, monkeypatch) -> None:
    """Queue-id reuse / MTA writes between copy and removal: the unit is rolled back."""
    qmod = importlib.import_module("queuetool.ops.quarantine")

    spool = make_multifile_spool(tmp_path / "spool", 1, seed=12)
    unit = next(iter(spool.units()))
    main_file = spool.root / unit.paths[0]
    copied = []

    def meddle(step: str) -> None:
        """Once every file has its copy, the MTA writes to the main file."""
        if step == "copied":
            copied.append(step)
            if len(copied) == len(unit.paths):
                with open(main_file, "ab") as handle:
                    handle.write(b"appended by the MTA")

    monkeypatch.setattr(qmod, "CRASH_HOOK", meddle)
    qdir = tmp_path / "q"
    report = quarantine(spool, qdir, make_selection(where="true"), apply=True)
    assert report.result.outcomes[0].status == "skipped" and "changed" in report.result.outcomes[0].why
    assert main_file.read_bytes().endswith(b"appended by the MTA")
    assert stored_copies(qdir) == [] and held_units(qdir) == []
    assert list(read_lines(qdir / MANIFEST)) == []             # nothing claims to be held


def test_exchange_spools_need_offline(tmp_path, monkeypatch) -> None:
    from queuetool.ops.mta import detect_live

    state = detect_live(tmp_path, "smtpsvc")
    assert state.how == "refuse" and "SMTP service stopped" in state.why
    assert detect_live(tmp_path, "exchange", offline=True).how == "unlink"


def test_cli_dry_run_apply_restore_recover(tmp_path) -> None:
    spool = make_eml_spool(tmp_path / "spool", 6)
    before = file_table(spool)
    qdir = tmp_path / "q"
    runner = CliRunner()
    dry = runner.invoke(main, ["quarantine", str(spool), "--to", str(qdir), "--where",
                               'header_from ~ "spam@*"'])
    assert dry.exit_code == 0, dry.output
    assert "dry run" in dry.output and "m000" in dry.output and file_table(spool) == before
    assert "- m000.eml" in dry.output                      # each file of the plan is listed
    bad = runner.invoke(main, ["quarantine", str(spool), "--to", str(qdir), "--where", "header_from ~"])
    assert bad.exit_code == 2 and "column 14" in bad.output
    none = runner.invoke(main, ["quarantine", str(spool), "--to", str(qdir)])
    assert none.exit_code == 2 and "no selection" in none.output
    applied = runner.invoke(main, ["quarantine", str(spool), "--to", str(qdir), "--where",
                                   'header_from ~ "spam@*"', "--apply", "--format", "jsonl"])
    assert applied.exit_code == 0, applied.output
    rows = [json.loads(line) for line in applied.output.splitlines()]
    assert [r["id"] for r in rows] == ["m000", "m003"] and {r["status"] for r in rows} == {"quarantined"}
    assert runner.invoke(main, ["recover", str(qdir)]).output.startswith("recover: 0 completed, 0 rolled back")
    back = runner.invoke(main, ["restore", str(qdir), "--id", "m003", "--apply"])
    assert back.exit_code == 0 and "restored" in back.output
    assert set(file_table(spool)) == set(before) - {"m000.eml"}
    purged = runner.invoke(main, ["purge", str(spool), "--to", str(tmp_path / "p"), "--id", "m001", "--apply",
                                  "--discard-copies"])
    assert purged.exit_code == 0 and "discarded" in purged.output and "m001.eml" not in file_table(spool)


def test_library_exports() -> None:
    import queuetool

    assert all(callable(getattr(queuetool, name)) for name in ("select", "quarantine", "purge", "restore", "recover"))
    with pytest.raises(SelectionError):
        make_plan(".", make_selection())


def test_verdict_selection_runs_the_analysis(tmp_path) -> None:
    from corpus import copy_corpus
    from queuetool.analysis import analyze
    from queuetool.config import load_settings

    spool = copy_corpus("postfix", tmp_path)
    spam = {r.id for r in analyze(spool, settings=load_settings()) if r.verdict == "spam"}
    assert spam
    report = quarantine(spool, tmp_path / "q", make_selection(verdicts=["spam"]))
    assert {u.id for u in report.plan.units} == spam
    assert all(u.reasons[0].startswith("verdict spam (score ") for u in report.plan.units)
