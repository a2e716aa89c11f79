"""Live: purge a spam campaign from a running Postfix while more mail keeps arriving.

A private Postfix from the Debian package (scripts/install-test-packages.sh) runs with
its own config and queue directories under a temporary directory, SMTP on 127.0.0.1 in
its own network namespace, every transport deferred. The test injects a campaign and
legitimate mail over SMTP, runs `queuetool purge --apply` while a second client keeps
sending, then checks: every selected message is gone and held in the quarantine with
its hashes, every other message is still queued, and Postfix's own `postqueue -j`
agrees with `queuetool scan`. Without Postfix or root it FAILS saying what is missing.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from ops.private_postfix import PrivatePostfix, missing_requirements
from queuetool.ops.journal import MANIFEST, read_lines

pytestmark = pytest.mark.live

CAMPAIGN_FROM = "deals@rx-pharma.example"
SELECT_CAMPAIGN = 'header_from ~ "*@rx-pharma.example>"'


def spam(i: int) -> dict:
    rcpts = [f"buyer{i}-{k}@domain{(i + k) % 7}.example" for k in range(3)]
    data = (f"From: Pharmacy <{CAMPAIGN_FROM}>\r\nTo: {rcpts[0]}\r\nSubject: Cheap pills, offer {i}\r\n"
            f"Message-ID: <spam{i}@rx-pharma.example>\r\n\r\nBuy now, lot {i}.\r\n")
    return {"sender": f"forged{i}@example.com", "recipients": rcpts, "data": data}


def legit(i: int) -> dict:
    rcpt = f"partner{i}@example.net"
    data = (f"From: Alice <alice@example.com>\r\nTo: {rcpt}\r\nSubject: Minutes {i}\r\n"
            f"Message-ID: <legit{i}@example.com>\r\n\r\nSee you on Tuesday ({i}).\r\n")
    return {"sender": "alice@example.com", "recipients": [rcpt], "data": data}


@pytest.fixture
def postfix():
    why = missing_requirements()
    if why:
        pytest.fail(why)
    base = Path(tempfile.mkdtemp(prefix="queuetool-live-"))   # 0755 below so Postfix daemons can enter
    os.chmod(base, 0o755)
    instance = PrivatePostfix(base / "pf")
    try:
        instance.start()
        yield instance
    finally:
        instance.stop()
        shutil.rmtree(base, ignore_errors=True)


def wait_until_deferred(pf: PrivatePostfix, ids: set[str], timeout: float = 90) -> list[dict]:
    """postqueue -j once every id is queued and nothing is in flight (incoming/active)."""
    deadline = time.monotonic() + timeout
    while True:
        listing = pf.postqueue_json()
        queued = {m["queue_id"] for m in listing}
        if ids <= queued and all(m["queue_name"] in ("deferred", "hold") for m in listing):
            return listing
        if time.monotonic() > deadline:
            raise AssertionError(f"Postfix did not settle: missing {sorted(ids - queued)}, "
                                 f"states {sorted({m['queue_name'] for m in listing})}")
        time.sleep(0.3)


def queuetool(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "queuetool", *args], capture_output=True, text=True, timeout=600)


def test_purge_a_campaign_while_mail_keeps_arriving(postfix: PrivatePostfix, tmp_path: Path) -> None:
    first = [spam(i) if i % 5 in (0, 2, 4) else legit(i) for i in range(25)]
    first_ids = PrivatePostfix.queue_ids(postfix.inject(first))
    assert all(not i.startswith("ERROR") for i in first_ids), first_ids
    spam_ids = {qid for qid, m in zip(first_ids, first) if m["sender"].startswith("forged")}
    legit_ids = set(first_ids) - spam_ids
    wait_until_deferred(postfix, set(first_ids))
    queue = str(postfix.queue)
    # the admin already put one spam and one legitimate message on hold
    held_spam, held_legit = sorted(spam_ids)[1], sorted(legit_ids)[0]
    subprocess.run(["postsuper", "-c", str(postfix.config), "-h", "-"], input=f"{held_spam}\n{held_legit}\n",
                   text=True, check=True, capture_output=True)
    assert {m["queue_id"]: m["queue_name"] for m in postfix.postqueue_json()}[held_legit] == "hold"

    dry = queuetool("purge", queue, "--mta-config", str(postfix.config), "--to", str(tmp_path / "q"),
                    "--where", SELECT_CAMPAIGN, "--format", "jsonl")
    assert dry.returncode == 0, dry.stderr
    assert {json.loads(line)["id"] for line in dry.stdout.splitlines()} == spam_ids
    assert {m["queue_id"] for m in postfix.postqueue_json()} == set(first_ids)      # dry run changed nothing

    more = [spam(100 + i) if i % 2 else legit(100 + i) for i in range(30)]
    arriving = postfix.inject(more, pause=0.05)                                     # keeps sending meanwhile
    assert arriving.poll() is None, "the second client finished before the purge began; nothing overlapped"
    purge = queuetool("purge", queue, "--mta-config", str(postfix.config), "--to", str(tmp_path / "q"),
                      "--where", SELECT_CAMPAIGN, "--apply", "--format", "jsonl")
    later_ids = PrivatePostfix.queue_ids(arriving)
    assert purge.returncode == 0, purge.stderr + purge.stdout
    outcomes = [json.loads(line) for line in purge.stdout.splitlines()]
    purged = {o["id"] for o in outcomes if o["status"] == "purged"}
    later_spam = {qid for qid, m in zip(later_ids, more) if m["sender"].startswith("forged")}
    assert spam_ids <= purged, outcomes                       # the whole campaign queued at plan time
    assert purged <= spam_ids | later_spam                    # and never anything else
    assert not legit_ids & purged

    listing = wait_until_deferred(postfix, (set(first_ids) | set(later_ids)) - purged)
    queued = {m["queue_id"] for m in listing}
    assert queued == (set(first_ids) | set(later_ids)) - purged, "an unselected message is missing"
    states = {m["queue_id"]: m["queue_name"] for m in listing}
    assert states.pop(held_legit) == "hold", "queuetool released a hold it did not take"
    assert set(states.values()) == {"deferred"}, "queuetool left something on hold"

    # Postfix's own listing and queuetool's scan agree on every message
    scan = queuetool("scan", queue, "--format", "jsonl", "-j", "1")
    assert scan.returncode == 0, scan.stderr
    ours = {(r["id"], r["queue"], r["sender"], tuple(sorted(r["recipients"])))
            for r in map(json.loads, scan.stdout.splitlines())}
    theirs = {(m["queue_id"], m["queue_name"], m["sender"], tuple(sorted(r["address"] for r in m["recipients"])))
              for m in postfix.postqueue_json()}
    assert ours == theirs

    # every purged message is in the quarantine: queue file at its pre-hold path, logs, hashes
    manifest = list(read_lines(tmp_path / "q" / MANIFEST))
    by_unit: dict[str, list[dict]] = {}
    for line in manifest:
        by_unit.setdefault(line["unit"], []).append(line)
    assert set(by_unit) == purged
    for unit_id, lines in by_unit.items():
        paths = [line["path"] for line in lines]
        if unit_id in spam_ids:                                      # settled before the purge
            where = ("hold/",) if unit_id == held_spam else ("deferred/",)
            assert any(p.startswith("defer/") for p in paths), paths
        else:                                                        # still arriving: wherever the scan met it
            where = ("incoming/", "active/", "deferred/")
        assert any(p.startswith(where) and p.endswith(unit_id) for p in paths), paths
        for line in lines:
            stored = (tmp_path / "q" / line["stored"]).read_bytes()
            assert hashlib.sha256(stored).hexdigest() == line["sha256"] and line["mta"] == "postfix"

    # and one can go back into the live queue, where Postfix lists it again
    back = sorted(spam_ids)[0]
    restored = queuetool("restore", str(tmp_path / "q"), "--id", back, "--apply")
    assert restored.returncode == 0, restored.stderr + restored.stdout
    relisted = {m["queue_id"]: m for m in postfix.postqueue_json()}
    assert back in relisted and relisted[back]["sender"].startswith("forged")


def test_a_held_message_whose_defer_log_grows_is_taken_on_the_second_try(postfix: PrivatePostfix,
                                                                          tmp_path: Path, monkeypatch) -> None:
    """A delivery attempt running when postsuper -h moves a message can still append to its
    defer log after queuetool copied it. The first try rolls back (the log changed); the
    retry after a pause takes the unit with the grown log, and Postfix forgets the message."""
    import importlib

    from queuetool.ops import make_selection, purge

    quarantine_module = importlib.import_module("queuetool.ops.quarantine")   # the package exports a function by that name

    ids = PrivatePostfix.queue_ids(postfix.inject([spam(i) for i in range(3)]))
    wait_until_deferred(postfix, set(ids))
    victim = sorted(ids)[0]
    late_line = b"recipient=late@example.net\nstatus=4.4.1\naction=delayed\nreason=late attempt\n\n"
    appended: list[bytes] = []
    copies = []

    def late_delivery_attempt(step: str) -> None:
        """After the first try copied both files (queue file, defer log), the log grows."""
        if step != "copied":
            return
        copies.append(step)
        if len(copies) == 2:
            log = next(p for p in (postfix.queue / "defer").rglob(victim))
            with open(log, "ab") as handle:
                handle.write(late_line)
            appended.append(log.read_bytes())

    monkeypatch.setattr(quarantine_module, "CRASH_HOOK", late_delivery_attempt)
    report = purge(str(postfix.queue), make_selection(ids=[victim]), to=tmp_path / "q", apply=True,
                   mta_config=str(postfix.config))
    assert appended, "the hook never ran: nothing was copied"
    assert [(o.id, o.status) for o in report.result.outcomes] == [(victim, "purged")], report.result.outcomes
    assert len(copies) == 4, copies                                     # two files, two tries
    manifest = list(read_lines(tmp_path / "q" / MANIFEST))
    assert {line["txn"] for line in manifest} == {report.result.outcomes[0].txn}   # no lines of the rolled-back try
    logs = [line for line in manifest if line["path"].startswith("defer/")]
    assert [line["sha256"] for line in logs] == [hashlib.sha256(appended[0]).hexdigest()]   # the grown log
    assert late_line in (tmp_path / "q" / logs[0]["stored"]).read_bytes()
    queued = {m["queue_id"] for m in postfix.postqueue_json()}
    assert victim not in queued and set(ids) - {victim} <= queued


def test_a_purge_killed_mid_batch_is_finished_by_recover(postfix: PrivatePostfix, tmp_path: Path,
                                                          monkeypatch) -> None:
    """Held units are copied a batch at a time, then removed with one postsuper -d. A crash
    while the third unit is being copied: recover completes the two units that have every
    copy, rolls back the third, and releases the hold on it and the fourth. Nothing is
    lost, nothing stays on hold, and Postfix agrees."""
    import importlib

    from queuetool.ops import held_units, make_selection, purge, recover

    quarantine_module = importlib.import_module("queuetool.ops.quarantine")
    ids = PrivatePostfix.queue_ids(postfix.inject([spam(i) for i in range(4)]))
    wait_until_deferred(postfix, set(ids))

    class Crash(Exception):
        pass

    copies = []

    def crash_on_the_fifth_copy(step: str) -> None:
        """Each unit has two files (queue file, defer log): the fifth copy is the third unit's first."""
        if step == "copied":
            copies.append(step)
            if len(copies) == 5:
                raise Crash()

    monkeypatch.setattr(quarantine_module, "CRASH_HOOK", crash_on_the_fifth_copy)
    with pytest.raises(Crash):
        purge(str(postfix.queue), make_selection(ids=ids), to=tmp_path / "q", apply=True,
              mta_config=str(postfix.config))
    monkeypatch.setattr(quarantine_module, "CRASH_HOOK", None)
    assert {m["queue_name"] for m in postfix.postqueue_json()} == {"hold"}      # all four held, none removed yet

    done = recover(tmp_path / "q", mta_config=str(postfix.config))
    assert not done.problems and len(done.completed) == 2 and len(done.rolled_back) == 2, done  # + the hold
    held = {u.unit: u for u in held_units(tmp_path / "q")}
    listing = {m["queue_id"]: m["queue_name"] for m in postfix.postqueue_json()}
    assert len(held) == 2 and set(held) | set(listing) == set(ids) and not set(held) & set(listing)
    assert set(listing.values()) == {"deferred"}                                 # the other two are released
    for unit in held.values():
        for entry in unit.files:
            stored = (tmp_path / "q" / entry["stored"]).read_bytes()
            assert hashlib.sha256(stored).hexdigest() == entry["sha256"]
