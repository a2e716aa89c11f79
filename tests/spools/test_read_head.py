"""read_message_head: header-only reads stop at the blank line, yet give the readers the
same header block (and, for DSNs, the same first 64 KiB) as reading 64 KiB did."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from queuetool import fsutil
from queuetool.headers import HEAD_READ_LIMIT
from queuetool.headers import find_body_start as reference_body_start
from queuetool.model import QueueUnit
from queuetool.spools import FIRST_READ, eml, exchange, find_body_start, may_be_report, read_message_head, smtpsvc

DSN_BODY = (
    b"--B\r\nContent-Type: text/plain\r\n\r\n" + b"padding line\r\n" * 1200
    + b"--B\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.net\r\n\r\n"
    b"Final-Recipient: rfc822; gone@example.org\r\nAction: failed\r\nStatus: 5.1.1\r\n"
    b"Diagnostic-Code: smtp; 550 5.1.1 no such user\r\n\r\n--B--\r\n"
)
DSN = (b"From: MAILER-DAEMON@example.net\r\nSubject: Undeliverable\r\n"
       b"Content-Type: multipart/report; report-type=delivery-status; boundary=\"B\"\r\n\r\n" + DSN_BODY)


@settings(max_examples=500, deadline=None)
@given(st.lists(st.sampled_from([b"\n", b"\r", b"\r\n", b"a", b":", b" ", b"\n\n", b"\n\r\n"]), max_size=12))
def test_find_body_start_is_the_headers_one(parts):
    data = b"".join(parts)
    assert find_body_start(data) == reference_body_start(data)


@pytest.mark.parametrize("header_size", [10, FIRST_READ - 3, FIRST_READ - 2, FIRST_READ - 1, FIRST_READ,
                                         FIRST_READ + 1, 20_000, HEAD_READ_LIMIT - 2, HEAD_READ_LIMIT - 1])
@pytest.mark.parametrize("newline", [b"\n", b"\r\n"])
def test_head_holds_the_whole_header_block_wherever_the_blank_line_falls(tmp_path, header_size, newline):
    header = b"X-Pad: " + b"p" * max(0, header_size - 7 - len(newline)) + newline
    data = header + newline + b"body\n" * 20_000
    (tmp_path / "m.eml").write_bytes(data)
    head, body_start, st = read_message_head(tmp_path, "m.eml")
    whole = data[:HEAD_READ_LIMIT]
    assert whole.startswith(head) and st.st_size == len(data)
    assert body_start == reference_body_start(whole)
    if body_start >= 0:
        assert head[:body_start] == whole[:body_start]


def test_a_dsn_gets_the_body_up_to_the_limit_and_others_do_not(tmp_path):
    (tmp_path / "dsn.eml").write_bytes(DSN)
    (tmp_path / "plain.eml").write_bytes(b"Subject: hi\r\n\r\n" + b"x" * 100_000)
    (tmp_path / "encoded.eml").write_bytes(b"Subject: =?utf-8?q?hi?=\r\n\r\n" + b"x" * 100_000)
    assert read_message_head(tmp_path, "dsn.eml", wants_body=lambda block: True)[0] == DSN
    assert len(read_message_head(tmp_path, "plain.eml", wants_body=lambda block: False)[0]) == FIRST_READ
    for name in ("dsn.eml", "encoded.eml"):  # an encoded word might spell multipart/report
        block_end = read_message_head(tmp_path, name)[1]
        assert may_be_report(fsutil.read_file(tmp_path, name)[:block_end])
    assert not may_be_report(b"Subject: hi\r\nContent-Type: text/plain\r\n\r\n")


def test_head_read_refuses_symlinks(tmp_path):
    (tmp_path / "real.eml").write_bytes(b"Subject: x\n\nbody")
    (tmp_path / "link.eml").symlink_to(tmp_path / "real.eml")
    with pytest.raises(fsutil.UnsafePathError):
        read_message_head(tmp_path, "link.eml")


def test_dsn_status_past_the_first_read_still_reaches_the_record(tmp_path):
    assert DSN.index(b"Status: 5.1.1") > FIRST_READ
    (tmp_path / "m.eml").write_bytes(DSN)
    record = exchange.read_unit(tmp_path, QueueUnit(id="m", queue="export", paths=("m.eml",)))
    assert "5.1.1" in (record.status or "")
    (tmp_path / "Queue").mkdir()
    (tmp_path / "Queue" / "m.eml").write_bytes(DSN)
    record = smtpsvc.read_unit(tmp_path, QueueUnit(id="m", queue="queue", paths=("Queue/m.eml",)))
    assert record.details["dsn"]["recipients"][0]["status"] == "5.1.1"


CUT = f"header block longer than {HEAD_READ_LIMIT} bytes; cut there"


def _read_all_three(tmp_path, data):
    (tmp_path / "Queue").mkdir(exist_ok=True)
    (tmp_path / "Queue" / "m.eml").write_bytes(data)
    (tmp_path / "m.eml").write_bytes(data)
    return [
        eml.read_unit(tmp_path, QueueUnit(id="m", queue="eml", paths=("m.eml",))),
        exchange.read_unit(tmp_path, QueueUnit(id="m", queue="export", paths=("m.eml",))),
        smtpsvc.read_unit(tmp_path, QueueUnit(id="m", queue="queue", paths=("Queue/m.eml",))),
    ]


def test_cut_means_no_blank_line_within_the_limit(tmp_path):
    no_blank = b"Subject: long\n" + b"X-Pad: " + b"p" * (HEAD_READ_LIMIT + 100) + b"\n"
    for record in _read_all_three(tmp_path, no_blank):
        assert CUT in (record.error or ""), record.mta
    # the blank line ends exactly at the limit: the block is whole, only the body is unread
    head = b"Subject: exact\n" + b"X-Pad: " + b"p" * (HEAD_READ_LIMIT - 15 - 7 - 2) + b"\n"
    exact = head + b"\n" + b"body\n" * 100
    assert reference_body_start(exact) == HEAD_READ_LIMIT
    for record in _read_all_three(tmp_path, exact):
        assert CUT not in (record.error or ""), record.mta
        assert record.subject == "exact"
    # short file without a blank line: all of it is the header block, nothing was cut
    for record in _read_all_three(tmp_path, b"Subject: short\n"):
        assert record.error is None or CUT not in record.error


# ---- detection helpers: one listing and one read per file for all readers, sample votes

def test_sample_vote_majority_stops_when_decided_and_counts_errors_as_no():
    from queuetool.spools import sample_vote
    asked = []

    def looks(name):
        asked.append(name)
        if name.startswith("err"):
            raise OSError("gone")
        return name.startswith("ok")

    assert not sample_vote([], looks)
    assert sample_vote(["ok1"], looks)
    assert not sample_vote(["err1"], looks)
    asked.clear()
    assert sample_vote(["ok1", "no1", "ok2", "no2"], looks) and asked == ["ok1", "no1", "ok2"]
    asked.clear()  # the first few agreeing do not decide: the majority of the sample does
    assert not sample_vote(["ok"] * 3 + ["no"] * 17, looks) and len(asked) == 14
    asked.clear()
    assert sample_vote(["no", "err", "no"] + ["ok"] * 17, looks) and len(asked) == 13
    asked.clear()
    assert sample_vote(["ok", "no", "no"] + ["ok"] * 9 + ["no"] * 8, looks) and len(asked) == 12


def test_detection_lists_each_directory_and_reads_each_file_once(tmp_path, monkeypatch):
    import queuetool.spools as spools
    for i in range(25):
        (tmp_path / f"{i:03d}.eml").write_bytes(b"From: a@example.com\nSubject: s\n\nbody\n")
    reads, listings = [], []
    real_read, real_scandir = fsutil.read_file, spools.os.scandir
    monkeypatch.setattr(fsutil, "read_file", lambda root, rel, limit=None: reads.append(rel) or real_read(root, rel, limit))
    monkeypatch.setattr(spools.os, "scandir", lambda path: listings.append(path) or real_scandir(path))
    assert spools.detect_mta(tmp_path) == "eml"
    assert len(reads) == len(set(reads)) and len(reads) <= 10
    assert listings.count(str(tmp_path)) == 1
    assert spools._DETECTING is None  # nothing is kept after detection
    (tmp_path / "000.eml").write_bytes(b"not a message")
    reads.clear()
    assert eml.detect(tmp_path) == 10 and reads.count("000.eml") == 1
