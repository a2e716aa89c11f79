"""Fault injection: the apply process dies at every step; `recover` loses and duplicates nothing.

Two ways of dying: the CRASH_HOOK raises at the Nth step inside this process, and a
real `queuetool` subprocess SIGKILLs itself at the Nth step (or is killed from
outside after a random delay). After each, recover() must leave every original file
either in the spool or held in QDIR — exactly once — and a full restore must give
back the original tree, bytes, modes and mtimes.
"""
from __future__ import annotations

import collections
import importlib
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ops.spoolgen import file_table, make_eml_spool, make_multifile_spool, stored_copies
from queuetool.ops import held_units, make_selection, purge, quarantine, recover, restore
from queuetool.ops.journal import MANIFEST, pending, read_lines

qmod = importlib.import_module("queuetool.ops.quarantine")


class SimulatedCrash(BaseException):
    """Not an Exception: nothing in queuetool may catch it, like a real kill."""


def crash_at(monkeypatch, n: int) -> list[str]:
    seen: list[str] = []

    def hook(step: str) -> None:
        seen.append(step)
        if len(seen) == n:
            raise SimulatedCrash(step)

    monkeypatch.setattr(qmod, "CRASH_HOOK", hook)
    return seen


def count_steps(monkeypatch, action) -> int:
    seen: list[str] = []
    monkeypatch.setattr(qmod, "CRASH_HOOK", seen.append)
    action()
    monkeypatch.setattr(qmod, "CRASH_HOOK", None)
    return len(seen)


def assert_nothing_lost_or_doubled(spool_root: Path, qdir: Path, before: dict, discarded: set[str] = frozenset()) -> None:
    assert pending(qdir) == [], "recover left an unfinished transaction"
    now = file_table(spool_root)
    assert not [rel for rel in now if ".queuetool-" in rel], "temporary files left in the spool"
    for rel, facts in now.items():
        assert before[rel] == facts, f"{rel} changed in the spool"
    held = {f["path"]: f for unit in held_units(qdir) for f in unit.files}
    copies = collections.Counter(stored_copies(qdir))
    assert copies == collections.Counter(before[rel][0] for rel in held), "QDIR holds other bytes than it claims"
    assert not set(held) & set(now), "a file is both in the spool and in quarantine"
    missing = set(before) - set(now) - set(held) - set(discarded)
    assert not missing, f"lost: {sorted(missing)}"


@pytest.mark.parametrize("how", ["unlink", "exim-lock"])
@pytest.mark.parametrize("batch", [200, 3], ids=["one-batch", "batches-of-3"])
def test_quarantine_killed_at_every_step_then_recovered(tmp_path, monkeypatch, multifile_reader, batch,
                                                         how) -> None:
    """`exim-lock`: units taken under their -D lock, the locks of a batch held together."""
    from queuetool.ops import plan as plan_module
    from queuetool.ops.mta import LiveState

    monkeypatch.setattr(qmod, "BATCH", batch)       # crashes on both sides of a batch boundary
    monkeypatch.setattr(plan_module, "detect_live", lambda *a, **k: LiveState("multifile", False, how, "test"))
    probe = make_multifile_spool(tmp_path / "probe", 4, seed=1)
    total = count_steps(monkeypatch, lambda: quarantine(probe, tmp_path / "probe-q", make_selection(where="true"),
                                                        apply=True))
    assert total > 10
    for n in range(1, total + 1):
        spool = make_multifile_spool(tmp_path / f"s{n}", 4, seed=1)
        before = file_table(spool.root)
        qdir = tmp_path / f"q{n}"
        seen = crash_at(monkeypatch, n)
        with pytest.raises(SimulatedCrash):
            quarantine(spool, qdir, make_selection(where="true"), apply=True)
        monkeypatch.setattr(qmod, "CRASH_HOOK", None)
        result = recover(qdir)
        assert not result.problems, (seen[-1], result.problems)
        assert_nothing_lost_or_doubled(spool.root, qdir, before)
        assert recover(qdir).completed == []                       # idempotent
        restore(qdir, apply=True)
        assert file_table(spool.root) == before, f"not the original tree after a crash at {seen[-1]} (step {n})"


@pytest.mark.parametrize("batch", [200, 2], ids=["one-batch", "batches-of-2"])
def test_restore_killed_at_every_step_then_recovered(tmp_path, monkeypatch, multifile_reader, batch) -> None:
    monkeypatch.setattr(qmod, "BATCH", batch)
    def setup(name: str):
        spool = make_multifile_spool(tmp_path / name, 3, seed=2)
        before = file_table(spool.root)
        qdir = tmp_path / f"{name}-q"
        quarantine(spool, qdir, make_selection(where="true"), apply=True)
        return spool, before, qdir

    spool, _before, qdir = setup("probe")
    total = count_steps(monkeypatch, lambda: restore(qdir, apply=True))
    assert total >= 6
    for n in range(1, total + 1):
        spool, before, qdir = setup(f"r{n}")
        crash_at(monkeypatch, n)
        with pytest.raises(SimulatedCrash):
            restore(qdir, apply=True)
        monkeypatch.setattr(qmod, "CRASH_HOOK", None)
        assert not recover(qdir).problems
        assert_nothing_lost_or_doubled(spool.root, qdir, before)
        restore(qdir, apply=True)
        assert file_table(spool.root) == before


@pytest.mark.parametrize("batch", [200, 2], ids=["one-batch", "batches-of-2"])
def test_purge_with_discard_killed_at_every_step(tmp_path, monkeypatch, multifile_reader, batch) -> None:
    monkeypatch.setattr(qmod, "BATCH", batch)
    probe = make_multifile_spool(tmp_path / "probe", 3, seed=4)
    total = count_steps(monkeypatch, lambda: purge(probe, make_selection(where="true"), to=tmp_path / "pq",
                                                   apply=True, discard_copies=True))
    for n in range(1, total + 1):
        spool = make_multifile_spool(tmp_path / f"p{n}", 3, seed=4)
        before = file_table(spool.root)
        qdir = tmp_path / f"p{n}-q"
        crash_at(monkeypatch, n)
        with pytest.raises(SimulatedCrash):
            purge(spool, make_selection(where="true"), to=qdir, apply=True, discard_copies=True)
        monkeypatch.setattr(qmod, "CRASH_HOOK", None)
        assert not recover(qdir).problems
        manifest_paths = {line["path"] for line in read_lines(qdir / MANIFEST)}
        held = {f["path"] for unit in held_units(qdir) for f in unit.files}
        discarded = manifest_paths - held
        assert_nothing_lost_or_doubled(spool.root, qdir, before, discarded)
        # whatever was discarded is still accounted for by hash in the manifest
        assert discarded <= manifest_paths


# ---- a real process, SIGKILLed ----

def run_cli(args: list[str], env_extra: dict[str, str] | None = None) -> subprocess.Popen:
    env = {**os.environ, **(env_extra or {})}
    return subprocess.Popen([sys.executable, "-m", "queuetool", *args], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def test_subprocess_killed_at_each_step_then_recovered(tmp_path) -> None:
    kills = 0
    for n in range(1, 30, 2):
        spool = make_eml_spool(tmp_path / f"s{n}", 5, seed=n)
        before = file_table(spool)
        qdir = tmp_path / f"q{n}"
        proc = run_cli(["quarantine", str(spool), "--to", str(qdir), "--where", "true", "--apply"],
                       {"QUEUETOOL_TEST_KILL_AT_STEP": str(n)})
        proc.wait(timeout=120)
        kills += proc.returncode == -signal.SIGKILL
        assert proc.returncode in (0, -signal.SIGKILL), proc.stderr.read()
        result = recover(qdir)
        assert not result.problems
        assert_nothing_lost_or_doubled(spool, qdir, before)
        restore(qdir, apply=True)
        assert file_table(spool) == before
    assert kills >= 10      # the hook really fired mid-way for most n


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_subprocess_killed_at_a_random_moment(tmp_path, seed) -> None:
    rng = random.Random(seed)
    spool = make_eml_spool(tmp_path / "spool", 150, seed=seed)
    before = file_table(spool)
    qdir = tmp_path / "q"
    proc = run_cli(["quarantine", str(spool), "--to", str(qdir), "--where", "true", "--apply"])
    deadline = time.monotonic() + 60
    wait_for = rng.uniform(0.0, 1.0)
    while time.monotonic() < deadline:            # wait until it is really moving files
        if (qdir / "journal.jsonl").exists() or proc.poll() is not None:
            break
        time.sleep(0.01)
    time.sleep(wait_for * 0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    result = recover(qdir)
    assert not result.problems
    assert_nothing_lost_or_doubled(spool, qdir, before)
    restore(qdir, apply=True)
    assert file_table(spool) == before
