"""Every committed corpus: quarantine all of it, restore all of it, get the same tree back.

Real MTA spools have multi-file units (Postfix queue file + defer/bounce logs, Exim -H,
-D, -J and msglog, Sendmail qf/df/hf, a BadMail trio); this is where listing them
all in `files` and moving them as one unit is checked against the real thing.
A corpus no reader claims yet is that reader's tests' business, not this test's.
"""
from __future__ import annotations

import os

import pytest

from corpus import CORPORA, copy_corpus
from ops.spoolgen import file_table
from queuetool.ops import make_selection, quarantine, restore
from queuetool.scan import scan, spools_of
from queuetool.spools import SpoolError


def _claimed(name: str) -> bool:
    try:
        return bool(spools_of(CORPORA / name / "spool"))
    except SpoolError:
        return False


CORPUS_NAMES = sorted(p.name for p in CORPORA.iterdir() if (p / "spool").is_dir() and _claimed(p.name))


def test_the_corpora_are_here() -> None:
    assert {"postfix", "sendmail", "exchange2003"} <= set(CORPUS_NAMES)


@pytest.mark.parametrize("name", CORPUS_NAMES)
def test_quarantine_everything_and_restore_it(tmp_path, name: str) -> None:
    top = copy_corpus(name, tmp_path)
    before = file_table(top)
    expected = dict(before)
    for index, spool in enumerate(spools_of(top)):
        prefix = os.path.relpath(spool.root, top)
        records = list(scan(spool))
        assert records, f"{name}: {spool.root} has no units"
        qdir = tmp_path / f"q{index}"
        report = quarantine(spool, qdir, make_selection(where="true"), apply=True, offline=True)
        by_id = {o.id: o for o in report.result.outcomes}
        for planned in report.plan.units:          # messages sharing one file (mbox) move as one unit
            by_id.update({member: by_id[planned.id] for member in planned.members})
        refused = [o for o in report.result.outcomes if o.status != "quarantined"]
        assert all(o.status == "refused" for o in refused), refused
        assert set(by_id) == {r.id for r in records}
        moved = {os.path.normpath(os.path.join(prefix, rel)) for record in records
                 if by_id[record.id].status == "quarantined" for rel in record.files}
        after = file_table(top)
        assert moved and not moved & set(after)          # every file of every moved unit left the spool
        assert set(after) == set(before) - moved
        restore(qdir, apply=True)
        if name == "postfix":   # a queue file taken from active/ goes back where a running qmgr looks
            taken_from = os.path.normpath(os.path.join(prefix, "active")) + os.sep
            expected = {os.path.normpath(os.path.join(prefix, "incoming", rel[len(taken_from):]))
                        if rel.startswith(taken_from)
                        else rel: facts for rel, facts in expected.items()}
        assert file_table(top) == expected               # bytes, modes and mtimes


def test_selection_by_account_uses_the_mail_log(tmp_path) -> None:
    """Sendmail keeps no login by default: only its mail.log names the account, so
    `quarantine --auth-user scanner --log mail.log` must plan every scanner message."""
    from click.testing import CliRunner

    from corpus import load_manifest
    from queuetool.cli import main

    spool = copy_corpus("sendmail", tmp_path)
    log = CORPORA / "sendmail" / "logs" / "mail.log"
    expected = {m["id"] for m in load_manifest("sendmail") if m.get("account") == "scanner"}
    without = quarantine(spool, tmp_path / "q1", make_selection(auth_users=["scanner"]))
    with_log = quarantine(spool, tmp_path / "q2", make_selection(auth_users=["scanner"]), logs=[log])
    planned = {u.id for u in with_log.plan.units if not u.refused}
    assert planned == expected
    assert len({u.id for u in without.plan.units}) < len(expected)
    result = CliRunner().invoke(main, ["quarantine", str(spool), "--to", str(tmp_path / "q3"),
                                       "--auth-user", "scanner", "--log", str(log), "--format", "json"])
    assert result.exit_code == 0, result.output
    assert all(unit_id in result.stdout for unit_id in expected)


def test_a_dry_run_that_would_be_refused_exits_4(tmp_path) -> None:
    from click.testing import CliRunner

    from queuetool.cli import main

    vsi = CORPORA / "exchange2003" / "spool" / "Program Files" / "Exchsrvr" / "Mailroot" / "vsi 1"
    args = ["quarantine", str(vsi), "--to", str(tmp_path / "q"), "--where", "true", "--local-domain", "example.com"]
    refused = CliRunner().invoke(main, args)
    assert refused.exit_code == 4 and "would be refused" in refused.stderr
    assert not (tmp_path / "q").exists() or not any((tmp_path / "q").iterdir())
    offline = CliRunner().invoke(main, args + ["--offline"])
    assert offline.exit_code == 0, offline.output
