"""Postfix reader: agreement with postqueue on the real corpus, the manifest, format
features (byte-exact files per the Postfix source), hostile input, detection, CLI."""
from __future__ import annotations

import datetime as dt
import json
import os
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import queuetool
from queuetool.cli import main
from queuetool.model import QueueUnit
from queuetool.spools import detect_mta, open_spool, postfix

from corpus import CORPORA, copy_corpus, corpus_dir, load_manifest

LISTED_QUEUES = ("maildrop", "incoming", "active", "deferred", "hold")


@pytest.fixture(scope="module")
def spool(tmp_path_factory) -> Path:
    """The committed corpus with the exact modes and mtimes Postfix left."""
    return copy_corpus("postfix", tmp_path_factory.mktemp("pf"))


@pytest.fixture(scope="module")
def records(spool) -> dict[str, queuetool.QueuedMessage]:
    opened = open_spool(spool)
    return {r.id: r for r in opened}


def listing() -> list[dict]:
    path = corpus_dir("postfix") / "listing.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def epoch(iso: str) -> int:
    return int(dt.datetime.strptime(iso, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.timezone.utc).timestamp())


# ---------------------------------------------------------------- (1) postqueue -j agreement
def test_every_listed_message_agrees_with_postqueue(records):
    rows = listing()
    assert len(rows) >= 50
    agreed = {"id": 0, "queue": 0, "arrival": 0, "size": 0, "sender": 0, "recipients": 0, "delay_reason": 0}
    for row in rows:
        rec = records[row["queue_id"]]
        agreed["id"] += 1
        assert rec.queue == row["queue_name"], row["queue_id"]
        agreed["queue"] += 1
        assert epoch(rec.arrival) == row["arrival_time"], row["queue_id"]
        agreed["arrival"] += 1
        assert rec.size == row["message_size"], row["queue_id"]
        agreed["size"] += 1
        sender = "" if row["sender"] == "MAILER-DAEMON" else row["sender"]
        assert rec.sender == sender, row["queue_id"]
        agreed["sender"] += 1
        assert sorted(rec.recipients) == sorted(r["address"] for r in row["recipients"]), row["queue_id"]
        agreed["recipients"] += 1
        statuses = rec.details.get("recipient_status", {})
        for rcpt in row["recipients"]:
            if "delay_reason" in rcpt:
                assert statuses[rcpt["address"]]["reason"] == rcpt["delay_reason"], row["queue_id"]
                assert rec.status is not None
        agreed["delay_reason"] += 1
        assert rec.error is None, (row["queue_id"], rec.error)
    print(f"postqueue -j agreement over {len(rows)} messages:", agreed)
    assert set(agreed.values()) == {len(rows)}


def test_no_ready_message_missing_from_the_listing(records):
    listed = {row["queue_id"] for row in listing()}
    ready = {r.id for r in records.values() if r.queue in LISTED_QUEUES and not r.details["incomplete"]}
    assert ready == listed
    # what postqueue cannot show: the in-flight (0600) file and the corrupt/ one
    unlisted = {r.id: r.queue for r in records.values() if r.id not in listed}
    assert sorted(unlisted.values()) == ["corrupt", "incoming"]


def test_listing_states_are_all_present(records):
    queues = {r.queue for r in records.values()}
    assert {"active", "incoming", "deferred", "hold", "maildrop", "corrupt"} <= queues


# ---------------------------------------------------------------- (2) manifest ground truth
def test_fields_match_the_manifest(records):
    checked = 0
    for entry in load_manifest("postfix"):
        if entry["queue"] is None and entry["id"] not in records:
            continue  # delivered or bounced during generation
        rec = records[entry["id"]]
        if entry["queue"] is not None:
            assert rec.queue == entry["queue"]
        assert rec.sender == entry["sender"], entry["id"]
        assert rec.auth_user == entry["account"], entry["id"]
        if entry["client_ip"]:
            assert rec.client_ip == entry["client_ip"], entry["id"]
            assert rec.helo == entry["helo"], entry["id"]
        else:
            assert rec.client_ip is None
        if entry["account"]:
            assert rec.auth_evidence == "spool:sasl_username"
        seen = set(rec.recipients) | set(rec.done_recipients) | set(rec.details.get("original_recipients", {}).values())
        seen |= set(rec.details.get("recipient_status", {}))
        assert set(entry["recipients"]) <= seen, entry["id"]
        checked += 1
    print(f"manifest agreement: {checked} messages")
    assert checked >= 55


def test_manifest_kinds_cover_the_story():
    kinds = {(e["kind"], e["scenario"]) for e in load_manifest("postfix")}
    assert {("spam", "compromised-account"), ("relay", "open-relay"), ("spam", "web-script"),
            ("backscatter", "bounce"), ("legit", "outbound"), ("legit", "inbound")} <= kinds
    assert any(k == "malformed" for k, _ in kinds)


# ---------------------------------------------------------------- (3) format features on the corpus
def by_manifest(records, note_part: str) -> queuetool.QueuedMessage:
    for entry in load_manifest("postfix"):
        if note_part in entry["notes"] and entry["id"] in records:
            return records[entry["id"]]
    raise AssertionError(f"no manifest entry with {note_part!r}")


def test_long_queue_id_time_matches_arrival(records):
    long_ids = [r for r in records.values() if r.details["id_kind"] == "long"]
    short_ids = [r for r in records.values() if r.details["id_kind"] == "short"]
    assert len(long_ids) >= 15 and len(short_ids) >= 15
    for rec in long_ids:
        assert abs(epoch(rec.details["id_time"]) - epoch(rec.arrival)) <= 1, rec.id


def test_decode_long_and_short_ids():
    # research/unix-spool-formats.md §1.2: t=1700000000, usec=123456, inode=1234567
    assert postfix.decode_queue_id("4SVLCh0sf8z9HdB") == {
        "id_kind": "long", "id_inode": 1234567, "id_usec": 123456, "id_time": "2023-11-14T22:13:20Z"}
    assert postfix.decode_queue_id("1E240EB0935") == {"id_kind": "short", "id_usec": 123456, "id_inode": 0xEB0935}
    assert postfix.decode_queue_id("not-an-id")["id_kind"] == "unknown"


def test_smtpd_attributes_and_sasl(records):
    rec = by_manifest(records, "MAIL FROM with AUTH=")
    assert rec.auth_user == "alice" and rec.details["sasl_method"] == "PLAIN"
    assert rec.details["sasl_sender"] == "<alice@example.com>"  # the MAIL AUTH= value as sent
    assert rec.client_name == "alice-pc.office.example.com"
    assert rec.details["reverse_client_name"] == "alice-pc.office.example.com"
    assert rec.details["log_client_address"] == "10.0.0.21"
    assert rec.details["attributes"]["log_message_origin"] == "alice-pc.office.example.com[10.0.0.21]"
    spam = [r for r in records.values() if r.auth_user == "scanner" and r.details["id_kind"] == "long"]
    assert spam and all(r.client_name == "unknown" and r.client_ip.startswith("203.0.113.") for r in spam)
    # smtpd_sasl_authenticated_header=yes during the long-id part
    assert all("(Authenticated sender: scanner)" in r.header("Received") for r in spam if r.queue != "incoming"
               or not r.details["incomplete"])


def test_local_pickup_mail_has_no_client(records):
    web = [r for r in records.values() if r.sender == "www-data@example.com"]
    assert len(web) >= 5
    for rec in web:
        assert rec.client_ip is None and rec.auth_user is None
        if rec.queue != "maildrop":
            assert rec.details["rewrite_context"] == "local"


def test_done_recipients_and_original_recipients(records):
    rec = by_manifest(records, "virtual alias sales@")
    assert rec.done_recipients == ["bob@example.com"]
    assert rec.recipients == ["sales.team@partner.example"]
    assert rec.details["original_recipients"] == {"bob@example.com": "sales@example.com",
                                                  "sales.team@partner.example": "sales@example.com"}
    backscatter = [r for r in records.values() if r.sender == "" and r.client_ip]
    assert len(backscatter) == 4
    assert all(r.details["original_recipients"] == {"helpdesk@outsourced.example": "info@example.com"}
               for r in backscatter)


def test_active_message_joins_trace_and_bounce_logs(records):
    (rec,) = [r for r in records.values() if r.queue == "active"]
    kinds = sorted(path.split("/")[0] for path in rec.files)
    assert kinds[0] == "active" and "trace" in kinds and "bounce" in kinds
    assert rec.files[0].startswith("active/")
    status = rec.details["recipient_status"]
    assert status["bob@example.com"]["action"] == "delivered" and status["bob@example.com"]["log"] == "trace"
    assert status["nobody@reject.example"]["action"] == "failed"
    assert "User unknown" in status["nobody@reject.example"]["reason"]
    # qmgr marks delivered and bounced recipients alike as done (D)
    assert sorted(rec.done_recipients) == ["bob@example.com", "nobody@reject.example"]
    assert rec.recipients == ["deals@slow.example"]


def test_deferred_status_and_next_retry(records, spool):
    rec = records[listing()[-1]["queue_id"]]
    deferred = [r for r in records.values() if r.queue == "deferred"]
    assert all(r.status and "2525" in r.status for r in deferred)
    for r in deferred:
        assert any(p.startswith("defer/") for p in r.files)
        assert epoch(r.details["next_retry"]) > epoch(r.arrival)
    assert rec.queue in LISTED_QUEUES


def test_modes_incomplete_and_forced_expire(records):
    inflight = by_manifest(records, "DATA still in progress")
    assert inflight.details["incomplete"] is True and inflight.details["mode"] == "0600"
    assert inflight.error is None
    assert inflight.details.get("read_stopped")
    expired_id = (corpus_dir("postfix") / "logs" / "states.txt").read_text().split("expire flag set: ")[1].split()[0]
    assert records[expired_id].details["forced_expire"] is True
    assert records[expired_id].details["mode"] == "0710"
    assert sum(r.details["forced_expire"] for r in records.values()) == 1


def test_git_checkout_modes_are_not_taken_for_postfix_flags():
    spool = corpus_dir("postfix") / "spool"
    opened = open_spool(spool)
    for rec in opened:
        assert rec.details["forced_expire"] is False  # 0755 from git: other bits set
    inflight = [r for r in opened if r.details.get("mode") == "0644"]
    assert inflight and all(r.details["incomplete"] for r in inflight)


def test_corrupt_queue_is_an_error_record(records):
    (rec,) = [r for r in records.values() if r.queue == "corrupt"]
    assert rec.error and "corrupt queue file" in rec.error
    assert rec.sender  # what could be read before the cut is kept


def test_long_lines_are_joined_from_L_records(records, spool):
    rec = by_manifest(records, "2500-byte header")
    assert len(rec.header("X-Long")) == 2500
    assert rec.subject == "caf\\xe9 latin-1 raw bytes"
    raw = queuetool.open_spool(spool).get_bytes(rec.id)
    assert b"\n" + b"A" * 5000 + b"\nshort line\n" in raw
    assert raw.startswith(b"Received: from bob-laptop (bob-laptop.office.example.com [10.0.0.22])")


def test_raw_message_is_the_content(records, spool):
    opened = open_spool(spool)
    rec = by_manifest(records, "multipart/mixed with base64 attachment")
    raw = opened.get_bytes(rec.id)
    head, _, body = raw.partition(b"\n\n")
    assert b"Subject: Order list (CSV)" in head
    assert b'filename="orders.csv"' in body and body.rstrip().endswith(b"--=_qt_boundary_7f3a--")
    full = opened.get(rec.id, full=True)
    assert full.subject == rec.subject and full.recipients == rec.recipients


def test_maildrop_files_have_no_size_record(records):
    drops = [r for r in records.values() if r.queue == "maildrop"]
    assert len(drops) == 2
    for rec in drops:
        assert "size_record" not in rec.details and rec.subject == "Action required: verify your account"


# ---------------------------------------------------------------- byte-exact files per the source
def rec(rtype: bytes, payload: bytes = b"") -> bytes:
    """One record: type, base-128 little-endian length, payload [PF src/global/record.c]."""
    out = bytearray(rtype)
    n = len(payload)
    while True:
        byte = n & 0x7F
        n >>= 7
        out.append(byte | 0x80 if n else byte)
        if not n:
            break
    return bytes(out) + payload


def ptr(offset: int) -> bytes:
    return rec(b"p", b"%15d" % offset)


def build_queue_file(content: list[bytes], envelope: list[bytes] = (), extracted: list[bytes] = (),
                     heap: bytes = b"", sender: bytes = b"me@example.com") -> bytes:
    """C/T/A/S envelope, M, content records, X, extracted, E (+ heap), like cleanup writes."""
    body = b"".join(content)
    rest = rec(b"T", b"1700000000 5") + rec(b"A", b"create_time=1700000001") + rec(b"S", sender) + b"".join(envelope)
    c_len = len(rec(b"C", b"%15d %15d %15d %15d %15d %15d" % (0, 0, 0, 0, 0, 0)))
    data_offset = c_len + len(rest) + 2
    size = b"%15d %15d %15d %15d %15d %15d" % (len(body), data_offset, 1, 0, len(body), 0)
    head = rec(b"C", size) + rest + rec(b"M")
    assert len(head) == data_offset
    return head + body + rec(b"X") + b"".join(extracted) + rec(b"E") + heap


def write_unit(tmp_path: Path, data: bytes, queue: str = "deferred", name: str = "ABCDEF123") -> tuple[Path, QueueUnit]:
    root = tmp_path / "spool"
    (root / queue).mkdir(parents=True, exist_ok=True)
    path = root / queue / name
    path.write_bytes(data)
    os.chmod(path, 0o700)
    return root, QueueUnit(id=name, queue=queue, paths=(f"{queue}/{name}",))


def test_postcat_test_queue_file_layout(tmp_path):
    """The record sequence of PF src/postcat/test-queue-file (research §1.8)."""
    content = [rec(b"N", b"Received: by hades.porcupine.org (Postfix, from userid 1001)"),
               rec(b"N", b"\tid DE040290405; Sun, 21 Jan 2007 13:33:08 -0500 (EST)"),
               rec(b"N", b"Subject: test"), rec(b"w", b"0"), ptr(0), rec(b"N", b""), rec(b"N", b"text"), ptr(0)]
    data = build_queue_file(content, envelope=[rec(b"F", b"Wietse Venema")],
                            extracted=[rec(b"O", b"you@porcupine.org"), rec(b"R", b"you@porcupine.org"), ptr(0)])
    root, unit = write_unit(tmp_path, data)
    got = postfix.read_unit(root, unit)
    assert got.error is None
    assert got.sender == "me@example.com" and got.recipients == ["you@porcupine.org"]
    assert got.arrival == "2023-11-14T22:13:20Z" and got.details["sender_fullname"] == "Wietse Venema"
    assert got.header("Received").endswith("(EST)") and got.subject == "test"
    assert postfix.read_message_bytes(root, unit).endswith(b"Subject: test\n\ntext\n")


def test_header_only_read_seeks_past_the_body_with_the_C_record(tmp_path):
    # a body record of unknown type would stop a record-by-record walk; the C record's
    # content size lets the header-only read jump straight to X, as qmgr/showq do.
    content = [rec(b"N", b"Subject: seek"), rec(b"N", b""), rec(b"N", b"body"), rec(b"Z", b"junk")]
    data = build_queue_file(content, extracted=[rec(b"R", b"a@example.net")])
    root, unit = write_unit(tmp_path, data)
    quick = postfix.read_unit(root, unit)
    assert quick.error is None and quick.recipients == ["a@example.net"] and quick.subject == "seek"
    full = postfix.read_unit(root, unit, full=True)
    assert full.error and "unexpected record" in full.error


def test_pointer_to_heap_and_deleted_header_residue(tmp_path):
    """A milter-added header lives after E, reached by a pointer that jumps back; a
    deleted header keeps its bytes behind a 17-byte pointer [PF cleanup_milter.c]."""
    deleted = rec(b"N", b"X-Spam-Origin: web-form on shop.example, script /tmp/.x/mailer.php")
    first = [rec(b"N", b"Subject: pointers")]
    # layout: first, [deleted header overwritten: p -> after it, then the stale bytes], placeholder p -> heap
    placeholder_at = None

    def assemble(heap_offset: int, back: int) -> bytes:
        nonlocal placeholder_at
        pieces = list(first)
        start = sum(len(p) for p in pieces)
        overwritten = ptr(0)  # replaced below with the real jump target
        pieces.append(overwritten + deleted[len(overwritten):])
        placeholder_at = sum(len(p) for p in pieces)
        pieces += [ptr(heap_offset), rec(b"N", b""), rec(b"N", b"body line")]
        return b"".join(pieces), start

    # two passes: offsets depend on the lengths, which do not depend on the values
    content_bytes, del_start = assemble(0, 0)
    probe = build_queue_file([content_bytes], extracted=[rec(b"R", b"r@example.org")])
    data_offset = probe.index(content_bytes)
    after_deleted = data_offset + del_start + len(deleted)
    heap_offset = len(probe)
    back = data_offset + placeholder_at + len(ptr(0))
    content = list(first)
    content.append(ptr(after_deleted) + deleted[17:])
    content += [ptr(heap_offset), rec(b"N", b""), rec(b"N", b"body line")]
    heap = rec(b"N", b"X-Added-By-Milter: yes") + ptr(back)
    data = build_queue_file(content, extracted=[rec(b"R", b"r@example.org")], heap=heap)
    assert len(data) - len(heap) == heap_offset
    root, unit = write_unit(tmp_path, data)
    got = postfix.read_unit(root, unit, full=True)
    assert got.error is None, got.error
    assert [name for name, _ in got.headers] == ["Subject", "X-Added-By-Milter"]
    residue = got.details["residue"]
    assert any("script /tmp/.x/mailer.php" in item["text"] for item in residue)
    assert postfix.read_message_bytes(root, unit) == b"Subject: pointers\nX-Added-By-Milter: yes\n\nbody line\n"


def test_stale_records_after_end_are_residue(tmp_path):
    data = build_queue_file([rec(b"N", b"Subject: x"), rec(b"N", b""), rec(b"N", b"b")],
                            extracted=[rec(b"R", b"r@example.org")],
                            heap=rec(b"N", b"Subject: original subject before a milter edit"))
    root, unit = write_unit(tmp_path, data)
    got = postfix.read_unit(root, unit)
    assert got.details["residue"][0]["kind"] == "after-end"
    assert "original subject" in got.details["residue"][0]["text"]


def test_recipient_states_and_dsn_attributes(tmp_path):
    extracted = [rec(b"A", b"notify_flags=6"), rec(b"O", b"list@example.com"), rec(b"D", b"done@example.com"),
                 rec(b"O", b"list@example.com"), rec(b"R", b"pending@example.net"), rec(b"/", b"gone@example.org"),
                 rec(b">", b"elsewhere@example.net")]
    data = build_queue_file([rec(b"N", b"Subject: r"), rec(b"N", b"")], extracted=extracted)
    root, unit = write_unit(tmp_path, data)
    got = postfix.read_unit(root, unit)
    assert got.recipients == ["pending@example.net"] and got.done_recipients == ["done@example.com"]
    assert got.details["canceled_recipients"] == ["gone@example.org"]
    assert got.details["original_recipients"] == {"done@example.com": "list@example.com",
                                                  "pending@example.net": "list@example.com"}
    assert got.details["redirect_to"] == "elsewhere@example.net"


def test_defer_log_legacy_and_named_fields():
    data = (b"<a@example.net>: host said 451\nrecipient=a@example.net\noffset=812\nstatus=4.0.0\n"
            b"action=delayed\nreason=host said 451\n\nrecipient=b@example.net\nstatus=5.1.1\naction=failed\n"
            b"reason=User unknown\n")
    entries = postfix.parse_status_log(data)
    assert [e["recipient"] for e in entries] == ["a@example.net", "b@example.net"]
    assert entries[0]["offset"] == "812" and entries[0]["legacy"] == "host said 451"
    assert entries[1]["reason"] == "User unknown"


# ---------------------------------------------------------------- (4) hostile input
def corpus_files() -> list[bytes]:
    spool = corpus_dir("postfix") / "spool"
    return [p.read_bytes() for q in ("deferred", "active", "maildrop", "hold") for p in sorted((spool / q).rglob("*"))
            if p.is_file()][:12]


SAMPLES = corpus_files()


def check_bounded(tmp_path: Path, data: bytes, full: bool) -> None:
    root, unit = write_unit(tmp_path, data, name="F00D")
    got = postfix.read_unit(root, unit, full=full)  # must not raise
    assert got.id == "F00D"
    assert got.details.get("records", 0) <= len(data) // 2 + 1
    if full:
        try:
            postfix.read_message_bytes(root, unit)
        except postfix.CorruptQueueFile:
            pass


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=600), full=st.booleans())
def test_random_bytes_never_raise(tmp_path, data, full):
    check_bounded(tmp_path, data, full)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(index=st.integers(0, len(SAMPLES) - 1), cut=st.integers(0, 10_000), flips=st.lists(
    st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=6), full=st.booleans())
def test_mutated_corpus_files_never_raise(tmp_path, index, cut, flips, full):
    data = bytearray(SAMPLES[index])
    for pos, value in flips:
        data[pos % len(data)] = value
    check_bounded(tmp_path, bytes(data[: max(1, len(data) - cut % len(data))]), full)


def test_huge_length_and_pointer_loop(tmp_path):
    huge = b"C" + b"\xff\xff\xff\xff\x0f" + b"x" * 10
    root, unit = write_unit(tmp_path, huge, name="HUGE1")
    assert "claims" in postfix.read_unit(root, unit).error
    toolong = b"S" + b"\xff" * 12
    root, unit = write_unit(tmp_path, toolong, name="LONG1")
    assert "length field" in postfix.read_unit(root, unit).error
    # a pointer in the content that points at itself
    probe = build_queue_file([rec(b"N", b"Subject: loop"), ptr(0)])
    at = probe.index(ptr(0))
    looped = probe.replace(ptr(0), ptr(at), 1)
    root, unit = write_unit(tmp_path, looped, name="LOOP1")
    got = postfix.read_unit(root, unit, full=True)
    assert "pointer loop" in got.error and got.sender == "me@example.com"


# ---------------------------------------------------------------- (5) filesystem trouble
def test_symlink_directory_missing_and_unreadable(tmp_path, monkeypatch):
    root = tmp_path / "spool"
    for q in ("deferred", "active", "defer"):
        (root / q).mkdir(parents=True)
    good = build_queue_file([rec(b"N", b"Subject: ok"), rec(b"N", b"")], extracted=[rec(b"R", b"r@example.org")])
    (tmp_path / "outside").write_bytes(good)
    os.symlink(tmp_path / "outside", root / "deferred" / "LINK1")
    (root / "deferred" / "DIR1").mkdir()
    (root / "active" / "OK1").write_bytes(good)
    os.chmod(root / "active" / "OK1", 0o700)
    units = {u.id: u for u in postfix.iter_units(root)}
    assert "LINK1" in units and "OK1" in units
    assert "symlink" in postfix.read_unit(root, units["LINK1"]).error
    dir_unit = QueueUnit(id="DIR1", queue="deferred", paths=("deferred/DIR1",))
    assert "directory" in postfix.read_unit(root, dir_unit).error
    gone = QueueUnit(id="GONE1", queue="deferred", paths=("deferred/GONE1",))
    assert "No such file" in postfix.read_unit(root, gone).error
    real_open = os.open

    def denied(path, *args, **kwargs):
        if str(path).endswith("OK1"):
            raise PermissionError(13, "Permission denied")
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", denied)
    assert "Permission denied" in postfix.read_unit(root, units["OK1"]).error


def test_vanished_defer_log_is_an_error_but_keeps_the_envelope(tmp_path):
    root, unit = write_unit(tmp_path, build_queue_file([rec(b"N", b"Subject: v")], extracted=[rec(b"R", b"x@y.example")]))
    unit = QueueUnit(id=unit.id, queue=unit.queue, paths=unit.paths + ("defer/A/ABCDEF123",))
    got = postfix.read_unit(root, unit)
    assert got.recipients == ["x@y.example"] and "defer/A/ABCDEF123" in got.error


# ---------------------------------------------------------------- (6) detection
def test_detection_picks_postfix_for_its_corpus_only(spool, tmp_path):
    assert postfix.detect(spool) >= 50
    assert detect_mta(spool) == "postfix"
    assert isinstance(open_spool(spool), queuetool.Spool) and open_spool(spool).mta == "postfix"
    assert postfix.detect(tmp_path) == 0
    others = [p / "spool" for p in CORPORA.iterdir() if p.name != "postfix" and (p / "spool").is_dir()]
    for other in others:
        assert postfix.detect(other) == 0, other
        assert detect_mta(other) != "postfix"
    # names alone (no queue file, no marker dirs) are not enough
    for q in ("deferred", "active"):
        (tmp_path / "fake" / q).mkdir(parents=True)
    (tmp_path / "fake" / "deferred" / "X").write_bytes(b"From: a@b\n\nhi\n")
    assert postfix.detect(tmp_path / "fake") == 0


# ---------------------------------------------------------------- CLI
def test_cli_scan_and_show(spool):
    runner = CliRunner()
    result = runner.invoke(main, ["scan", str(spool), "--format", "jsonl", "-j", "1", "-q"])
    assert result.exit_code == 3  # the corrupt/ file
    lines = [json.loads(line) for line in result.output.splitlines() if line.startswith("{")]
    assert len(lines) == len(list(postfix.iter_units(spool)))
    assert sum(1 for line in lines if line["error"]) == 1
    target = next(line for line in lines if line["auth_user"] == "alice")
    shown = runner.invoke(main, ["show", str(spool), target["id"]])
    assert shown.exit_code == 0, shown.output
    assert "auth_evidence:   spool:sasl_username" in shown.output and "sasl_method" in shown.output
    raw = runner.invoke(main, ["show", str(spool), target["id"], "--raw"])
    assert raw.exit_code == 0 and raw.stdout_bytes.startswith(b"Received: from ")


def test_message_bytes_equal_postcat_output():
    """Postfix's own `postcat -bh` on each file (saved at generation) is the oracle."""
    oracle = json.loads((corpus_dir("postfix") / "postcat-bh.json").read_text())
    root = corpus_dir("postfix") / "spool"
    import hashlib

    same = 0
    for rel, info in oracle.items():
        if info["exit"] != 0 or info["length"] == 0:
            continue  # postcat refused it (in-flight) or printed nothing (corrupt)
        unit = QueueUnit(id=rel.rsplit("/", 1)[-1], queue=rel.split("/")[0], paths=(rel,))
        assert hashlib.sha256(postfix.read_message_bytes(root, unit)).hexdigest() == info["sha256"], rel
        same += 1
    print(f"postcat -bh byte-identical: {same} messages")
    assert same == len(listing())


def test_huge_header_line_is_cut_in_header_only_reads(tmp_path):
    big = b"X-Big: " + b"y" * (8 << 20)
    data = build_queue_file([rec(b"N", b"Subject: big"), rec(b"N", big), rec(b"N", b""), rec(b"N", b"body")],
                            extracted=[rec(b"R", b"r@example.org")])
    root, unit = write_unit(tmp_path, data)
    quick = postfix.read_unit(root, unit)
    assert quick.recipients == ["r@example.org"] and quick.subject == "big"
    assert "header block longer than" in quick.error
    assert len(quick.header("X-Big") or "") <= 64 * 1024
    full = postfix.read_unit(root, unit, full=True)
    assert full.error is None and len(full.header("X-Big")) == len(big) - len(b"X-Big: ")


def test_a_copy_of_only_the_deferred_queue_is_still_postfix(spool, tmp_path):
    partial = tmp_path / "only-deferred"
    shutil.copytree(spool / "deferred", partial / "deferred")
    assert detect_mta(partial) == "postfix"
    ids = {r.id for r in queuetool.scan(partial)}
    assert ids == {r.id for r in queuetool.scan(spool) if r.queue == "deferred"}
    text_only = tmp_path / "not-postfix"
    (text_only / "deferred").mkdir(parents=True)
    (text_only / "deferred" / "notes.txt").write_text("C is for cookie\n")
    assert detect_mta(text_only) != "postfix"
