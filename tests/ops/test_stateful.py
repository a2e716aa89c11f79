"""Hypothesis stateful test: any sequence of quarantine / restore / purge keeps every byte.

The model tracks where each original file should be — in the spool (with its bytes,
mode and mtime), held in QDIR, or discarded by `purge --discard-copies` — and after
every step the real spool and QDIR must match it exactly.
"""
from __future__ import annotations

import collections
import shutil
import sys
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from ops.spoolgen import build_multifile_reader, file_table, make_multifile_spool, stored_copies
from queuetool.ops import held_units, make_selection, purge, quarantine, recover, restore
from queuetool.spools import READER_MODULES


class QueueOperations(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        module = build_multifile_reader()
        sys.modules[module.__name__] = module
        READER_MODULES["multifile"] = module.__name__
        self.tmp = Path(tempfile.mkdtemp(prefix="queuetool-stateful-"))
        self.spool = make_multifile_spool(self.tmp / "spool", 8, seed=42)
        self.original = file_table(self.spool.root)
        self.unit_files = {u.id: list(u.paths) for u in self.spool.units()}
        self.in_spool = set(self.unit_files)
        self.held: set[str] = set()
        self.discarded: set[str] = set()
        self.qdir = self.tmp / "q"
        self.purges = 0

    def teardown(self) -> None:
        READER_MODULES.pop("multifile", None)
        shutil.rmtree(self.tmp, ignore_errors=True)

    @rule(data=st.data())
    def quarantine_some(self, data) -> None:
        ids = data.draw(st.lists(st.sampled_from(sorted(self.unit_files)), max_size=4, unique=True))
        if not ids:
            return
        report = quarantine(self.spool, self.qdir, make_selection(ids=ids), apply=True)
        moved = {o.id for o in report.result.outcomes if o.status == "quarantined"}
        assert moved == set(ids) & self.in_spool
        self.in_spool -= moved
        self.held |= moved

    @precondition(lambda self: self.held)
    @rule(data=st.data())
    def restore_some(self, data) -> None:
        ids = data.draw(st.lists(st.sampled_from(sorted(self.held)), min_size=1, max_size=4, unique=True))
        report = restore(self.qdir, ids, apply=True)
        assert {o.id for o in report.result.outcomes if o.status == "restored"} == set(ids)
        self.held -= set(ids)
        self.in_spool |= set(ids)

    @rule(data=st.data(), discard=st.booleans())
    def purge_some(self, data, discard: bool) -> None:
        ids = data.draw(st.lists(st.sampled_from(sorted(self.unit_files)), max_size=3, unique=True))
        if not ids:
            return
        self.purges += 1
        qdir = self.qdir if not discard else self.tmp / f"purged-{self.purges}"
        report = purge(self.spool, make_selection(ids=ids), to=qdir, apply=True, discard_copies=discard)
        done = {o.id for o in report.result.outcomes if o.status in ("purged", "discarded")}
        assert done == set(ids) & self.in_spool
        self.in_spool -= done
        (self.discarded if discard else self.held).update(done)

    @rule()
    def recover_is_a_no_op(self) -> None:
        if self.qdir.exists():
            result = recover(self.qdir)
            assert result.completed == [] and result.rolled_back == [] and result.problems == []

    @invariant()
    def every_byte_is_where_the_model_says(self) -> None:
        expected_spool = {rel: self.original[rel] for uid in self.in_spool for rel in self.unit_files[uid]}
        assert file_table(self.spool.root) == expected_spool
        expected_held = collections.Counter(self.original[rel][0] for uid in self.held for rel in self.unit_files[uid])
        actual = collections.Counter(stored_copies(self.qdir)) if self.qdir.exists() else collections.Counter()
        assert actual == expected_held
        if self.qdir.exists():
            assert {u.unit for u in held_units(self.qdir)} == self.held
        # the multiset of all bytes is preserved (discarded units aside)
        kept = collections.Counter(d for d, _m, _t in file_table(self.spool.root).values()) + actual
        assert kept == collections.Counter(self.original[rel][0] for uid in self.unit_files
                                           if uid not in self.discarded for rel in self.unit_files[uid])


QueueOperations.TestCase.settings = settings(
    max_examples=40, stateful_step_count=12, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
TestQueueOperations = QueueOperations.TestCase
