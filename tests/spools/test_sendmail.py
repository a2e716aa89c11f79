"""Sendmail reader: agreement with mailq on the real corpus, format features, bad input."""
from __future__ import annotations

import datetime as dt
import email
import json
import os
import re
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from corpus import CORPORA, copy_corpus, corpus_dir, load_manifest

from queuetool.cli import main as cli_main
from queuetool.model import QueueUnit
from queuetool.spools import open_spool, read_unit_safely, sendmail

CORPUS = corpus_dir("sendmail")
SPOOL = CORPUS / "spool"
LISTINGS = {"listing.txt": "queued", "listing-quarantined.txt": "quarantined", "listing-lost.txt": "lost"}

# printqueue() (queue.c): id + marker, size, ctime()[0:16], sender; then
# "QUARANTINE: reason", "(status)" and tab-indented recipients.
_ENTRY = re.compile(r"^(?P<id>[0-9A-Za-z]{8,})(?P<mark>[*X?\- ]?)\s+(?P<size>\d+) "
                    r"(?P<qtime>\w{3} \w{3} [ \d]\d \d\d:\d\d) (?P<sender>\S.*)$")
# "    %10.10s" body type (B line) and/or "   (%.60s)" status (M line)
_STATUS = re.compile(r"^\s+(?:(?P<body>[^\s(]+)\s*)?(?:\((?P<status>.*)\))?$")


def parse_mailq(text: str, queue: str) -> dict[str, dict]:
    entries: dict[str, dict] = {}
    current = None
    for line in text.splitlines():
        match = _ENTRY.match(line)
        if match:
            current = {**match.groupdict(), "queue": queue, "recipients": [], "status": None,
                       "quarantine": None, "body_type": None}
            entries[current["id"]] = current
        elif current is not None and line.startswith("\t\t\t\t\t "):
            current["recipients"].append(line.strip())
        elif current is not None and line.strip().startswith("QUARANTINE: "):
            current["quarantine"] = line.strip()[len("QUARANTINE: "):]
        elif current is not None and _STATUS.match(line):
            status = _STATUS.match(line)
            current["body_type"], current["status"] = status.group("body"), status.group("status")
        elif line.strip().startswith("Total requests") or "Queue status" in line or line.startswith(("-----", "\t\t/", "/")):
            current = None
        elif line.strip():
            raise AssertionError(f"unparsed mailq line: {line!r}")
    return entries


def mailq_entries() -> dict[str, dict]:
    out: dict[str, dict] = {}
    for name, queue in LISTINGS.items():
        out.update(parse_mailq((CORPUS / name).read_text(encoding="utf-8"), queue))
    return out


@pytest.fixture(scope="module")
def spool_copy(tmp_path_factory) -> Path:
    return copy_corpus("sendmail", tmp_path_factory.mktemp("sm"))


@pytest.fixture(scope="module")
def records(spool_copy) -> dict:
    spool = open_spool(spool_copy)
    return {record.id: record for record in spool}


def strip_angles(address: str) -> str:
    return address[1:-1] if address.startswith("<") and address.endswith(">") else address


# ---------------------------------------------------------------- (1) agreement with mailq

def test_every_message_agrees_with_mailq(records):
    listed = mailq_entries()
    manifest = load_manifest("sendmail")
    in_flight = {qid for qid, record in records.items() if record.queue == "incomplete"}
    # mailq lists control files only; the session caught mid-DATA left just a df
    assert in_flight == {m["id"] for m in manifest if m["queue"] == "incomplete"} and len(in_flight) == 1
    assert set(listed) == set(records) - in_flight
    assert len(listed) == len(manifest) - 1 >= 80
    agree = {"id": 0, "size": 0, "sender": 0, "recipients": 0, "state": 0, "quarantine": 0, "status": 0, "qtime": 0}
    for qid, entry in listed.items():
        record = records[qid]
        agree["id"] += 1
        assert record.error is None, (qid, record.error)
        assert record.size == int(entry["size"]), qid
        agree["size"] += 1
        if entry["sender"] == "MAILER-DAEMON":  # sendmail's own DSN (F r): sent as MAIL FROM:<>
            assert (record.sender, record.details["sender_stored"]) == ("", "MAILER-DAEMON"), qid
        elif entry["sender"] == "<>":
            assert record.sender == "" and "sender_stored" not in record.details, qid
        else:
            assert record.sender == strip_angles(entry["sender"]), qid
        agree["sender"] += 1
        assert record.recipients == [strip_angles(r) for r in entry["recipients"]], qid
        agree["recipients"] += 1
        assert record.queue == entry["queue"], qid
        assert (entry["mark"] == "?") == (record.queue == "lost")
        agree["state"] += 1
        assert record.details.get("quarantine_reason") == entry["quarantine"], qid
        agree["quarantine"] += 1
        if entry["status"] is not None:
            assert record.status is not None and record.status.startswith(entry["status"]), qid
        else:
            assert record.status is None, qid
        agree["status"] += 1
        assert record.details.get("body_type") == entry["body_type"], qid
        arrival = dt.datetime.strptime(record.arrival, "%Y-%m-%dT%H:%M:%SZ")
        assert f"{arrival:%a %b} {arrival.day:2d} {arrival:%H:%M}" == entry["qtime"], qid  # ctime(), TZ=UTC
        agree["qtime"] += 1
    print(f"sendmail agreement with mailq: {agree} of {len(listed)}")
    assert set(agree.values()) == {len(listed)}
    states = sorted(record.queue for record in records.values())
    assert states.count("quarantined") == 3 and states.count("lost") == 1
    assert sum(entry["mark"] == "*" for entry in listed.values()) == 1  # delivery hanging on the tarpit


def test_session_caught_mid_data_is_an_incomplete_unit(records):
    [record] = [r for r in records.values() if r.queue == "incomplete"]
    assert record.files == [f"df{record.id}"] and "without a control file" in record.error
    assert record.size > 4096 and record.sender is None


def test_ids_come_from_file_names(records):
    names = {p.name for p in SPOOL.iterdir()}
    control = {n[2:] for n in names if n[:2] in ("qf", "hf", "Qf")}
    assert control | {n[2:] for n in names if n[:2] == "df"} == set(records)
    assert all(f"df{qid}" in names for qid in control)


# ---------------------------------------------------------------- (2) manifest ground truth

def test_manifest_fields(records):
    manifest = load_manifest("sendmail")
    assert len(manifest) == len(records)
    checked = {"client_ip": 0, "helo": 0, "account": 0, "sender": 0, "queue": 0}
    for line in manifest:
        record = records[line["id"]]
        assert record.queue == line["queue"]
        checked["queue"] += 1
        if line["queue"] == "incomplete":
            continue  # no control file: nothing but the body on disk
        if line["kind"] == "backscatter":
            assert record.sender == ""
        else:
            assert record.sender == line["sender"]
        checked["sender"] += 1
        if line["client_ip"]:
            assert record.client_ip == line["client_ip"], line["id"]
            assert record.helo == line["helo"], line["id"]
            checked["client_ip"] += 1
            checked["helo"] += 1
        if line["account"]:
            assert record.details["smtp_authenticated"] is True
            if line["phase"] != "phase-a":  # ${auth_authen} persisted from phase B on
                assert (record.auth_user, record.auth_evidence) == (line["account"], "spool:auth_authen")
                checked["account"] += 1
            else:
                assert record.auth_user is None
        else:
            assert record.auth_user is None
        if line["scenario"] == "web-script":
            assert record.client_ip == "127.0.0.1"
            assert any("(from www-data@localhost)" in v for v in record.header_values("Received"))
    print(f"manifest checks: {checked}")
    assert checked["account"] == 20  # 17 scanner + alice + bob in phase B, carol (late)
    assert checked["client_ip"] >= 50


def test_campaign_and_relay_messages_are_where_the_story_puts_them(records):
    manifest = load_manifest("sendmail")
    scanner_ips = {records[m["id"]].client_ip for m in manifest
                   if m["account"] == "scanner" and m["queue"] != "incomplete"}
    assert scanner_ips == {"203.0.113.7", "203.0.113.23", "203.0.113.45", "203.0.113.88"}
    relay = [records[m["id"]] for m in manifest if m["scenario"] == "open-relay"]
    assert relay and all(r.client_ip.startswith("192.0.2.") and not r.details["smtp_authenticated"] for r in relay)


# ---------------------------------------------------------------- (3) format features

def write_unit(tmp: Path, qid: str, qf: bytes, df: bytes | None = b"body\n", prefix: str = "qf") -> QueueUnit:
    (tmp / f"{prefix}{qid}").write_bytes(qf)
    if df is not None:
        (tmp / f"df{qid}").write_bytes(df)
    units = [u for u in sendmail.iter_units(tmp) if u.id == qid]
    assert len(units) == 1
    return units[0]


BASE_QF = (b"V8\nT1795758110\nK1795758125\nN2\nP153035\nI254/0/15477071\n"
           b"MDeferred: Connection refused by [127.0.0.2]\nFbs\n"
           b"$_alice-laptop.office.example.com [10.0.0.21]\n$rESMTPA\n$salice-laptop.office.example.com\n"
           b"${daemon_flags}EE a\nS<alice@example.com>\nA<alice+2Bsales@example.com>\n"
           b"Qrfc822;support@shop.example\nrRFC822; support@shop.example\nRPFD:<support@shop.example>\n"
           b"H?P?Return-Path: <\x81g>\n"
           b"H??Received: from alice-laptop.office.example.com (alice-laptop.office.example.com [10.0.0.21])\n"
           b"\t(authenticated bits=0)\n\tby mail.example.com (8.17.1.9/8.17.1.9/Debian-2+deb12u2) with ESMTPA id 6AR5fnhT029473;\n"
           b"\tFri, 27 Nov 2026 05:41:50 GMT\n"
           b"H?D?Date: Fri, 27 Nov 2026 05:41:50 GMT\n"
           b"H??From: Alice Adams <alice@example.com>\nH??Subject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe?=\n.\n")


def test_control_file_features(tmp_path):
    unit = write_unit(tmp_path, "6AR5fnhT029473", BASE_QF)
    record = sendmail.read_unit(tmp_path, unit)
    assert record.error is None
    assert record.sender == "alice@example.com" and record.recipients == ["support@shop.example"]
    assert record.arrival == "2026-11-27T05:41:50Z"
    assert record.client_ip == "10.0.0.21" and record.client_name == "alice-laptop.office.example.com"
    assert record.helo == "alice-laptop.office.example.com"
    assert record.auth_user is None  # not persisted: sendmail keeps no login by default
    d = record.details
    assert d["smtp_authenticated"] is True and d["protocol"] == "ESMTPA"
    assert d["auth_param"] == "<alice+sales@example.com>"  # xtext +2B decoded
    assert d["attempts"] == 2 and d["last_attempt"] == "2026-11-27T05:42:05Z"
    assert record.status == "Deferred: Connection refused by [127.0.0.2]"
    assert d["flag_names"] == ["delete-bcc", "split"]
    assert d["recipient_info"] == [{"address": "support@shop.example", "flags": "PFD",
                                    "orcpt": "rfc822;support@shop.example", "final_rcpt": "RFC822; support@shop.example"}]
    assert d["header_flags"] == {"Return-Path": "P", "Date": "D"}
    assert d["pid"] == 29473 and d["id_time"] == "2026-11-27T05:41:49Z"  # f=41 min, n=49 s
    # continuation lines unfolded, meta byte 0x81 g shown as $g
    assert "(authenticated bits=0) by mail.example.com" in record.header("Received")
    assert record.header("Return-Path") == "<$g>"
    assert record.subject == "Grüße"


def test_message_bytes_leave_out_return_path_and_append_df(tmp_path):
    unit = write_unit(tmp_path, "6AR5fnhT029473", BASE_QF, df=b"line one\nline two\n")
    raw = sendmail.read_message_bytes(tmp_path, unit)
    assert not raw.startswith(b"Return-Path") and b"\x81" not in raw
    msg = email.message_from_bytes(raw)
    assert msg["From"] == "Alice Adams <alice@example.com>" and msg.get_payload() == "line one\nline two\n"
    assert raw.endswith(b"\n\nline one\nline two\n")


def test_persisted_auth_macros_give_auth_user(tmp_path):
    qf = BASE_QF.replace(b"${daemon_flags}EE a\n", b"${daemon_flags}\n${auth_type}LOGIN\n${auth_authen}scanner\n")
    record = sendmail.read_unit(tmp_path, write_unit(tmp_path, "6AR5k3k5003830", qf))
    assert (record.auth_user, record.auth_evidence) == ("scanner", "spool:auth_authen")
    assert record.details["auth_type"] == "LOGIN"


def test_response_flag_means_null_sender(tmp_path):
    qf = BASE_QF.replace(b"Fbs\n", b"Frns\n").replace(b"S<alice@example.com>", b"SMAILER-DAEMON")
    record = sendmail.read_unit(tmp_path, write_unit(tmp_path, "6AR5mMRU007368", qf))
    assert record.sender == "" and record.details["sender_stored"] == "MAILER-DAEMON"
    assert "no-body-return" in record.details["flag_names"]


def test_meta_bytes_and_recipient_status_lines():
    value, macros = sendmail.expand_meta(b"X-Test: <\x81g> \x82{ and \x81\xa3 end")
    assert value == b"X-Test: <$g> ${ and ${#A3} end" and macros == ["g", "{", "{#A3}"]
    ctl = sendmail.parse_control(
        b"V8\nT1\nMenvelope text\nS<a@b.test>\nMfirst rcpt failed\nCbob:1001:1001:<bob@x.test>\n"
        b"R:<one@x.test>\nRPF:<two@x.test>\nC\nR:<three@x.test>\n.\n")
    assert ctl.envelope_status == "envelope text"
    assert ctl.recipients == [
        {"address": "one@x.test", "flags": "", "controlling_user": "bob:1001:1001:<bob@x.test>",
         "status": "first rcpt failed"},
        {"address": "two@x.test", "flags": "PF", "controlling_user": "bob:1001:1001:<bob@x.test>"},
        {"address": "three@x.test", "flags": ""},  # a bare C resets the controlling user
    ]


@pytest.mark.parametrize("value, expected", [
    ("[203.0.113.23]", (None, "203.0.113.23", None, False)),
    ("mx1.partner.example [198.51.100.10]", ("mx1.partner.example", "198.51.100.10", None, False)),
    ("joe@host.test [192.0.2.5] (may be forged)", ("host.test", "192.0.2.5", "joe", True)),
    ("localhost [IPv6:::1]", ("localhost", "::1", None, False)),
    ("www-data@localhost", ("localhost", None, "www-data", False)),
])
def test_client_macro(value, expected):
    info = sendmail.parse_client_macro(value)
    assert (info["name"], info["addr"], info["ident"], info["forged"]) == expected


def test_queue_id_time_resolves_year_mod_60_with_T():
    # real id from the research notes: w=58 -> 2018 (not 1958/2078), June 26 10:52:13 UTC = T1530010333
    when = sendmail.decode_queue_id_time("w5QAqD38270223", 1530010333)
    assert when == dt.datetime(2018, 6, 26, 10, 52, 13, tzinfo=dt.timezone.utc)
    assert sendmail.decode_queue_id_time("6AR5fnhS029473", 1795758109).year == 2026
    assert sendmail.decode_queue_id_time("6AR5fnhS029473", 0).year == 1966
    assert sendmail.decode_queue_id_time("zzzzzzzz000001", None) is None  # 'z' is not base 60
    assert sendmail.decode_queue_id_time("AA12345", None) is None  # pre-8.12 style id


def test_corpus_quarantined_and_lost(records):
    held = [r for r in records.values() if r.queue == "quarantined"]
    assert {r.details["quarantine_reason"] for r in held} == {
        "suspected spam campaign (scanner account)", "open relay abuse from 192.0.2.77",
        "contact form spam, held for review"}
    assert all(r.files[0].startswith("hf") for r in held)
    lost = [r for r in records.values() if r.queue == "lost"]
    assert len(lost) == 1 and lost[0].files[0].startswith("Qf")
    assert lost[0].details["mode"] == "0660" and lost[0].details["unsafe_mode"] is True


def test_corpus_alias_expansion_keeps_controlling_user(records):
    forwarded = [r for r in records.values() if "dave@home.example" in r.recipients]
    assert forwarded
    info = forwarded[0].details["recipient_info"][0]
    assert info["flags"] == "PFDA" and info["controlling_user"].startswith("dave:")


def test_transient_files_and_subdirectory_layout(tmp_path):
    for sub in ("qf", "df", "xf"):
        (tmp_path / sub).mkdir()
    qid = "6AR5fnhT029473"
    (tmp_path / "qf" / f"qf{qid}").write_bytes(BASE_QF)
    (tmp_path / "qf" / f"tf{qid}").write_bytes(BASE_QF[:40])
    (tmp_path / "df" / f"df{qid}").write_bytes(b"body\n")
    (tmp_path / "xf" / f"xf{qid}").write_bytes(b">>> DATA\n<<< 451 4.3.0 try later\n")
    assert sendmail.detect(tmp_path) > 0
    units = list(sendmail.iter_units(tmp_path))
    assert [u.paths for u in units] == [(f"qf/qf{qid}", f"df/df{qid}", f"qf/tf{qid}", f"xf/xf{qid}")]
    record = sendmail.read_unit(tmp_path, units[0])
    assert record.error is None and record.size == 5 and record.queue == "queued"
    assert record.details["transient_files"] == [f"qf/tf{qid}", f"xf/xf{qid}"]
    assert "451 4.3.0 try later" in record.details["transcript_tail"]


def test_lone_df_and_lone_tf_are_incomplete(tmp_path):
    (tmp_path / "df6AR5aaaa000001").write_bytes(b"x\n")
    (tmp_path / "tf6AR5aaab000002").write_bytes(BASE_QF[:60])
    (tmp_path / "df6AR5aaab000002").write_bytes(b"x\n")
    by_id = {u.id: u for u in sendmail.iter_units(tmp_path)}
    assert {u.queue for u in by_id.values()} == {"incomplete"}
    lone = sendmail.read_unit(tmp_path, by_id["6AR5aaaa000001"])
    assert "without a control file" in lone.error
    partial = sendmail.read_unit(tmp_path, by_id["6AR5aaab000002"])
    assert "only a tf" in partial.error


@pytest.mark.parametrize("mutate, reason", [
    (lambda qf: qf[: qf.rindex(b".\n")], "no '.' end line"),
    (lambda qf: qf + b"H??X-Evil: after end\n", "after the '.' end line"),
    (lambda qf: qf.replace(b"Fbs\n", b"~bogus\n"), "unknown type"),
    (lambda qf: qf.replace(b"V8\n", b""), "no V (version) line"),
    (lambda qf: qf.replace(b"S<alice@example.com>\n", b""), "no S (sender) line"),
])
def test_damaged_control_files_give_errors(tmp_path, mutate, reason):
    record = sendmail.read_unit(tmp_path, write_unit(tmp_path, "6AR5fnhT029473", mutate(BASE_QF)))
    assert record.error and reason in record.error


def test_missing_df_is_an_error_unless_lost(tmp_path):
    record = sendmail.read_unit(tmp_path, write_unit(tmp_path, "6AR5fnhT029473", BASE_QF, df=None))
    assert "no df file" in record.error and record.size is None


# ---------------------------------------------------------------- (4) hypothesis

def _corpus_control_files() -> list[bytes]:
    return [p.read_bytes() for p in sorted(SPOOL.iterdir()) if p.name[:2] in ("qf", "hf", "Qf")][:30]


REAL = _corpus_control_files()


def _check_bounded(tmp: Path, data: bytes) -> None:
    for child in tmp.iterdir():
        child.unlink()
    unit = write_unit(tmp, "6AR5fnhT029473", data)
    record = sendmail.read_unit(tmp, unit)  # must not raise
    lines = data.count(b"\n") + 1
    assert len(record.recipients) <= lines and len(record.headers) <= lines
    assert record.error is None or len(record.error) <= 600
    json.dumps(record.to_dict(with_headers=True))
    sendmail.read_message_bytes(tmp, unit)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=4096))
def test_random_bytes_never_raise(tmp_path, data):
    _check_bounded(tmp_path, data)


@st.composite
def mutated_real(draw):
    data = bytearray(draw(st.sampled_from(REAL)))
    op = draw(st.sampled_from(["truncate", "flip", "huge", "dup", "splice"]))
    if op == "truncate":
        data = data[: draw(st.integers(0, len(data)))]
    elif op == "flip":
        for _ in range(draw(st.integers(1, 20))):
            i = draw(st.integers(0, len(data) - 1))
            data[i] ^= 1 << draw(st.integers(0, 7))
    elif op == "huge":
        pos = draw(st.integers(0, len(data)))
        data[pos:pos] = draw(st.sampled_from([b"\nN99999999999999999999\n", b"\nT-99999999999\n",
                                              b"\nK" + b"9" * 400 + b"\n", b"\n${" + b"x" * 5000 + b"\n",
                                              b"\nH" + b"?" * 3000 + b"\n", b"\n\x81\x82\x81"]))
    elif op == "dup":
        lines = bytes(data).split(b"\n")
        pick = draw(st.integers(0, len(lines) - 1))
        data = bytearray(b"\n".join(lines[:pick] + [lines[pick]] * 200 + lines[pick:]))
    else:
        pos = draw(st.integers(0, len(data)))
        data[pos:pos] = draw(st.binary(max_size=300))
    return bytes(data)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=mutated_real())
def test_mutated_corpus_files_never_raise(tmp_path, data):
    _check_bounded(tmp_path, data)


def test_huge_line_is_cut_not_read_whole(tmp_path, monkeypatch):
    monkeypatch.setattr(sendmail, "CONTROL_READ_LIMIT", 1000)
    record = sendmail.read_unit(tmp_path, write_unit(tmp_path, "6AR5fnhT029473", BASE_QF + b"H??X: " + b"a" * 5000))
    assert "longer than 1000 bytes" in record.error


# ---------------------------------------------------------------- (5) filesystem trouble

def test_symlinked_control_file_is_an_error(tmp_path):
    target = tmp_path / "outside"
    target.write_bytes(BASE_QF)
    spool = tmp_path / "spool"
    spool.mkdir()
    (spool / "qf6AR5fnhT029473").symlink_to(target)
    (spool / "df6AR5fnhT029473").write_bytes(b"x\n")
    [unit] = list(sendmail.iter_units(spool))
    record = sendmail.read_unit(spool, unit)
    assert "symlink" in record.error and record.sender is None
    with pytest.raises(OSError):
        sendmail.read_message_bytes(spool, unit)


def test_permission_denied_is_an_error(tmp_path, monkeypatch):
    unit = write_unit(tmp_path, "6AR5fnhT029473", BASE_QF)
    real_read = sendmail.fsutil.read_file_and_stat

    def deny(root, rel, limit=None):
        if rel.startswith("qf"):
            raise PermissionError(13, "Permission denied")
        return real_read(root, rel, limit)

    monkeypatch.setattr(sendmail.fsutil, "read_file_and_stat", deny)
    record = sendmail.read_unit(tmp_path, unit)
    assert "Permission denied" in record.error


def test_vanished_files_are_errors(tmp_path):
    unit = write_unit(tmp_path, "6AR5fnhT029473", BASE_QF)
    (tmp_path / "qf6AR5fnhT029473").unlink()
    (tmp_path / "df6AR5fnhT029473").unlink()
    record = read_unit_safely(sendmail, tmp_path, unit)
    assert record.error and "No such file" in record.error


def test_directory_instead_of_file(tmp_path):
    (tmp_path / "qf6AR5fnhT029473").write_bytes(BASE_QF)
    (tmp_path / "df6AR5fnhT029473").mkdir()
    unit = QueueUnit(id="6AR5fnhT029473", queue="queued", paths=("qf6AR5fnhT029473", "df6AR5fnhT029473"))
    record = sendmail.read_unit(tmp_path, unit)
    assert "not a regular file" in record.error
    os.rename(tmp_path / "qf6AR5fnhT029473", tmp_path / "qf-moved")
    (tmp_path / "qf6AR5fnhT029473").mkdir()
    unit = QueueUnit(id="6AR5fnhT029473", queue="queued", paths=("qf6AR5fnhT029473",))
    assert "directory" in sendmail.read_unit(tmp_path, unit).error


# ---------------------------------------------------------------- (6) detection, CLI

def test_detection_picks_sendmail_only_for_sendmail():
    assert open_spool(SPOOL).mta == "sendmail"
    assert sendmail.detect(SPOOL) > 0
    others = [p for p in CORPORA.iterdir() if p.is_dir() and p.name not in ("sendmail", "tools")]
    checked = 0
    for other in others:
        for directory in [other, *[d for d in other.rglob("*") if d.is_dir()]]:
            assert sendmail.detect(directory) == 0, directory
            checked += 1
    assert checked >= 1 or not others


def test_detect_rejects_lookalike_names(tmp_path):
    (tmp_path / "qfREADME0000001").write_text("this is not a queue file\n")
    (tmp_path / "qfnotes").write_text("V8 is our version of the notes\nTODO\n")
    (tmp_path / "df6AR5fnhT029473").write_bytes(b"V8\nT1\nSx\n")  # a body is no signature
    assert sendmail.detect(tmp_path) == 0


def test_cli_scan_and_show(spool_copy, records):
    runner = CliRunner()
    result = runner.invoke(cli_main, ["scan", str(spool_copy), "--format", "jsonl", "-j", "1", "-q"])
    assert result.exit_code == 3  # the df-only unit caught mid-DATA is unreadable
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    assert len(lines) == len(records) and {line["mta"] for line in lines} == {"sendmail"}
    assert [line["queue"] for line in lines if line["error"]] == ["incomplete"]
    scanner = next(r for r in records.values() if r.auth_user == "scanner")
    shown = runner.invoke(cli_main, ["show", str(spool_copy), scanner.id])
    assert shown.exit_code == 0 and "auth_user:       scanner" in shown.output
    assert "spool:auth_authen" in shown.output
    raw = runner.invoke(cli_main, ["show", str(spool_copy), scanner.id, "--raw"])
    assert raw.exit_code == 0 and raw.stdout_bytes.startswith(b"Received: from [203.0.113.")


def test_copy_keeps_modes_for_the_lost_file(tmp_path):
    copied = copy_corpus("sendmail", tmp_path)
    lost = next(p for p in copied.iterdir() if p.name.startswith("Qf"))
    assert oct(lost.stat().st_mode & 0o777) == oct(0o660)
    shutil.rmtree(copied)
