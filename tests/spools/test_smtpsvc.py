"""Exchange 2000/2003 and IIS SMTP reader (smtpsvc): Queue, PickUp, Drop, BadMail trios."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import queuetool
from corpus import CORPORA, copy_corpus, load_manifest
from queuetool.model import QueueUnit
from queuetool.spools import detect_mta, find_spools, read_unit_safely, smtpsvc
from queuetool.spools.smtpsvc import (
    decode_windows_text, filetime_to_iso, parse_bdr, parse_original_arrival_time, scan_bdp_addresses,
    sniff_version, split_text_envelope,
)

VSI1 = "Program Files/Exchsrvr/Mailroot/vsi 1"


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    return copy_corpus("exchange2003", tmp_path_factory.mktemp("ex2003"))


@pytest.fixture(scope="module")
def records(tree):
    found = {}
    for spool in find_spools(tree):
        assert spool.mta == "smtpsvc"
        for record in spool:
            assert record.id not in found
            found[record.id] = record
    return found


def test_every_manifest_message_is_read_without_error(records):
    manifest = load_manifest("exchange2003")
    assert {m["id"] for m in manifest} == set(records)
    assert all(r.error is None for r in records.values()), [r.error for r in records.values() if r.error]
    for truth in manifest:
        assert records[truth["id"]].queue == truth["queue"], truth["id"]


def test_queue_eml_has_no_envelope_and_says_where_it_can_come_from(records):
    for truth in load_manifest("exchange2003"):
        record = records[truth["id"]]
        if truth["queue"] != "queue":
            continue
        assert record.sender is None and record.recipients == []
        assert "W3C" in record.details["envelope"] and "1708" in record.details["envelope"]
        assert record.auth_user is None  # only logs can name the account
        if truth["client_ip"]:
            assert record.client_ip == truth["client_ip"], truth["id"]


def test_pickup_and_drop_envelope_lines_give_sender_and_recipients(records):
    checked = 0
    for truth in load_manifest("exchange2003"):
        if truth["queue"] in ("pickup", "drop"):
            record = records[truth["id"]]
            assert record.sender == truth["sender"]
            assert record.recipients == truth["recipients"]
            checked += 1
    assert checked == 4


def test_badmail_trio_is_one_unit_with_reason_dsn_and_heuristic_addresses(records):
    statuses = set()
    for truth in load_manifest("exchange2003"):
        if truth["queue"] != "badmail":
            continue
        record = records[truth["id"]]
        assert len(record.files) == 3 and record.files[0].endswith(".BAD")
        assert [Path(f).suffix for f in record.files] == [".BAD", ".BDR", ".BDP"]
        assert record.details["bdr"]["error_code"] == "0xC00402C7"
        assert "delivery status notification that cannot be delivered" in record.status
        assert truth["recipients"][0] in record.details["bdp_addresses"]["addresses"]
        assert record.details["bdp_addresses"]["heuristic"] is True
        dsn = record.details["dsn"]
        assert dsn["structured"] and dsn["recipients"][0]["final_recipient"] == truth["recipients"][0]
        assert dsn["original"]["subject"] == "Cheap meds"
        statuses.add(record.details["dsn_status"])
    assert statuses == {"5.7.1", "5.0.0", "5.7.3"}


def test_version_and_original_arrival_time_are_decoded(records):
    legit = next(r for r in records.values() if r.header_from and "carol@" in r.header_from)
    assert legit.details["server_version"]["build"] == "6.0.3790.4675"
    assert legit.details["server_version"]["family"] == "smtpsvc"
    assert legit.details["original_arrival_time"].startswith("2026-11-26T08:")
    assert legit.helo == "CAROL-PC"


def test_arrival_and_size_come_from_the_files(tree, records):
    meta = json.loads((CORPORA / "exchange2003" / "files.json").read_text())
    for record in records.values():
        spool_rel = next(rel for rel in meta if rel.endswith(record.files[0]))
        assert record.arrival == queuetool.fsutil.iso_utc(meta[spool_rel]["mtime"])
        assert record.size == (tree / spool_rel).stat().st_size


def test_get_bytes_strips_pickup_envelope_and_returns_bad_file(tree):
    spool = queuetool.open_spool(tree / VSI1)
    pickup = next(k for k in spool.keys() if spool.get(k).queue == "pickup")
    raw = spool.get_bytes(pickup)
    assert not raw.lower().startswith(b"x-") and raw.startswith(b"thread-index:")
    bad = next(k for k in spool.keys() if spool.get(k).queue == "badmail")
    assert spool.get_bytes(bad) == next((tree / VSI1 / "BadMail").glob(f"{bad}.BAD")).read_bytes()


def test_detect_claims_the_virtual_server_folder_not_its_parents(tree):
    assert detect_mta(tree / VSI1) == "smtpsvc"
    assert detect_mta(tree / "Inetpub/mailroot") == "smtpsvc"
    assert detect_mta(tree / "Program Files/Exchsrvr/Mailroot") is None
    assert detect_mta(tree) is None


# ---------------------------------------------------------------- helpers

def test_filetime_of_a_real_header_decodes_to_milliseconds():
    value = "02 Oct 2008 14:18:52.0941 (UTC) FILETIME=[CC16C3D0:01C92499]"
    assert parse_original_arrival_time(value) == "2008-10-02T14:18:52.941Z"
    assert parse_original_arrival_time("02 Oct 2008 (UTC) FILETIME=[zz:01]") is None
    assert parse_original_arrival_time(None) is None
    assert filetime_to_iso(0) is None


@given(st.integers(min_value=0, max_value=(1 << 64) - 1))
def test_filetime_decoding_never_raises(value):
    result = filetime_to_iso(value)
    assert result is None or result.endswith("Z")


@given(st.datetimes(min_value=__import__("datetime").datetime(1980, 1, 1),
                    max_value=__import__("datetime").datetime(2100, 1, 1)))
def test_filetime_round_trip(when):
    when = when.replace(microsecond=when.microsecond // 1000 * 1000)
    epoch = when.replace(tzinfo=__import__("datetime").timezone.utc).timestamp()
    ticks = round(epoch * 10_000_000) + 116_444_736_000_000_000
    text = f"x (UTC) FILETIME=[{ticks & 0xFFFFFFFF:08X}:{ticks >> 32:08X}]"
    assert parse_original_arrival_time(text) == when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


@given(st.text(max_size=300))
def test_original_arrival_time_text_never_raises(text):
    parse_original_arrival_time(text)


def test_text_envelope_any_case_repeated_receivers_and_null_sender():
    data = b"X-SENDER: <>\r\nx-receiver: a@x.example\r\nX-Receiver: <b@y.example>\r\nFrom: z\r\n\r\nbody"
    sender, receivers, offset = split_text_envelope(data)
    assert sender == "" and receivers == ["a@x.example", "b@y.example"]
    assert data[offset:].startswith(b"From: z")
    assert split_text_envelope(b"From: a\r\n\r\n") == (None, [], 0)


def test_bdr_reason_code_and_status():
    text = ("Unable to deliver this message because the following error was encountered: "
            "\"550 5.7.1 Unable to relay\".\r\n\r\nThe specific error code was 0xc00402c7.\r\n")
    reason = parse_bdr(text)
    assert reason["error_code"] == "0xC00402C7" and reason["status"] == "5.7.1" and reason["smtp_reply"] == "550"
    assert "\n" not in reason["reason"]
    assert parse_bdr("") == {"reason": None, "error_code": None, "status": None, "smtp_reply": None}


@given(st.text(max_size=2000))
def test_bdr_any_text_never_raises(text):
    assert isinstance(parse_bdr(text), dict)


def test_windows_text_utf16_bom_utf16_without_bom_and_cp1252():
    assert decode_windows_text("Grüße".encode("utf-16")) == "Grüße"
    assert decode_windows_text("Unable to deliver".encode("utf-16-le")) == "Unable to deliver"
    assert decode_windows_text("Grüße €".encode("cp1252")) == "Grüße €"


def test_bdp_scan_finds_ascii_and_utf16_addresses_once():
    blob = (b"\x00\x01junk" + "Sender@Example.COM".encode("utf-16-le") + b"\x00\x00\xfe"
            + b"rcpt@victim.test\x00" + "postmaster@example.com".encode("utf-16-le") + b"rcpt@victim.test")
    assert scan_bdp_addresses(blob) == ["sender@example.com", "rcpt@victim.test", "postmaster@example.com"]


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=2000), st.binary(max_size=2000),
       st.from_regex(r"[a-z]{1,12}@[a-z]{1,12}\.(test|example)", fullmatch=True), st.booleans())
def test_bdp_scan_recovers_an_embedded_address(before, after, address, utf16):
    encoded = address.encode("utf-16-le") if utf16 else address.encode()
    found = scan_bdp_addresses(b"\x00\x00" + before + b"\x00\x01\x00\x00" + encoded + b"\x00\x00\x01\x00" + after)
    assert any(address in item for item in found)


def test_version_sniffing_tells_2003_from_2007_and_later():
    assert sniff_version([("Received", "from a ([1.2.3.4]) by b with Microsoft SMTPSVC(5.0.2195.6713);")])["product"] \
        .startswith("Windows 2000")
    e16 = sniff_version([("Received", "from a (1.2.3.4) by b (5.6.7.8) with Microsoft SMTP Server "
                                      "(version=TLS1_2, cipher=X) id 15.1.2507.17; Sun")])
    assert e16["family"] == "exchange" and e16["product"] == "Exchange 2016"
    assert sniff_version([("X-MS-Exchange-Organization-AuthAs", "Internal")])["family"] == "exchange"
    assert sniff_version([("X-OriginalArrivalTime", "x")])["family"] == "smtpsvc"
    assert sniff_version([("Received", "from a by b (Postfix)")]) is None


# ---------------------------------------------------------------- hostile input

def make_vsi(root: Path, names=("Queue", "PickUp", "BadMail")) -> Path:
    for name in names:
        (root / name).mkdir(parents=True, exist_ok=True)
    return root


def records_of(root: Path) -> dict:
    return {r.id: r for r in queuetool.open_spool(root, mta="smtpsvc")}


def test_badmail_without_bad_file_and_truncated_files_become_error_records(tmp_path):
    root = make_vsi(tmp_path / "vsi 1")
    (root / "BadMail" / "ORPHAN.BDR").write_bytes("Unable to deliver".encode("utf-16"))
    (root / "BadMail" / "CUT.BAD").write_bytes(b"From: a\r\nContent-Type: multipart/report; boundary=x\r\n\r\n--x\r\n")
    (root / "Queue" / "GARBAGE.EML").write_bytes(b"\x00\xff\xfe" * 50)
    (root / "PickUp" / "onlyrcpt.eml").write_bytes(b"x-receiver: a@b.example\r\n\r\n")
    found = records_of(root)
    assert "without its .BAD" in found["ORPHAN"].error and found["ORPHAN"].status == "Unable to deliver"
    assert found["CUT"].error is None and found["CUT"].header_from == "a"
    assert "no RFC 5322 header" in found["GARBAGE"].error
    assert "x-sender" in found["onlyrcpt"].error
    with pytest.raises(FileNotFoundError):
        queuetool.open_spool(root, mta="smtpsvc").get_bytes("ORPHAN")


def test_symlinked_queue_file_is_an_error_not_followed(tmp_path):
    root = make_vsi(tmp_path / "vsi 1")
    secret = tmp_path / "secret.txt"
    secret.write_text("From: secret\n\n")
    os.symlink(secret, root / "Queue" / "LINK.EML")
    record = records_of(root)["LINK"]
    assert record.error and "symlink" in record.error
    assert record.header_from is None


def test_case_insensitive_folders_and_crlf_lowercase_names(tmp_path):
    root = make_vsi(tmp_path / "VSI 3", names=("QUEUE", "pickup", "badmail"))
    (root / "QUEUE" / "a.eml").write_bytes(b"Received: from h ([1.2.3.4]) by s with Microsoft SMTPSVC(6.0.3790.1830);\r\n"
                                           b"\t Tue, 6 Jun 2006 21:11:55 -0700\r\nSubject: s\r\n\r\nb")
    (root / "badmail" / "x.bad").write_bytes(b"Subject: bad\r\n\r\n")
    (root / "badmail" / "x.bdr").write_bytes(b"reason")
    assert detect_mta(root) == "smtpsvc"
    found = records_of(root)
    assert found["a"].client_ip == "1.2.3.4" and found["a"].queue == "queue"
    assert found["x"].files == ["badmail/x.bad", "badmail/x.bdr"] and found["x"].status == "reason"


def test_badmail_with_thousands_of_files_lists_each_trio_once(tmp_path):
    root = make_vsi(tmp_path / "vsi 1", names=("BadMail", "Queue"))
    for i in range(2000):
        for suffix in (".BAD", ".BDR", ".BDP"):
            (root / "BadMail" / f"NTFS_{i:08X}{suffix}").write_bytes(b"Subject: x\r\n\r\n" if suffix == ".BAD" else b"r")
    units = list(smtpsvc.iter_units(root))
    assert len(units) == 2000 and all(len(u.paths) == 3 for u in units)
    assert detect_mta(root) == "smtpsvc"


_QUEUES = st.sampled_from(["queue", "pickup", "drop", "badmail"])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(queue=_QUEUES, bad=st.binary(max_size=3000), bdr=st.binary(max_size=500), bdp=st.binary(max_size=500))
def test_random_files_never_raise_from_read_unit(tmp_path, queue, bad, bdr, bdp):
    root = tmp_path / "h"
    folder = {"queue": "Queue", "pickup": "PickUp", "drop": "Drop", "badmail": "BadMail"}[queue]
    (root / folder).mkdir(parents=True, exist_ok=True)
    if queue == "badmail":
        paths = []
        for suffix, data in ((".BAD", bad), (".BDR", bdr), (".BDP", bdp)):
            (root / folder / f"U{suffix}").write_bytes(data)
            paths.append(f"{folder}/U{suffix}")
    else:
        (root / folder / "U.EML").write_bytes(bad)
        paths = [f"{folder}/U.EML"]
    unit = QueueUnit(id="U", queue=queue, paths=tuple(paths))
    record = smtpsvc.read_unit(root, unit)  # a reader bug would raise here
    assert record.id == "U"
    json.dumps(record.to_dict())
    assert read_unit_safely(smtpsvc, root, unit).id == "U"
