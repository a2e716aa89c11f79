"""queuetool.dsn: RFC 3464 delivery status notifications, structured and not."""
from __future__ import annotations

import base64

from hypothesis import given, settings
from hypothesis import strategies as st

from queuetool.dsn import parse_delivery_status, parse_dsn, split_multipart, status_code

REPORT = (
    b"From: MAILER-DAEMON@mx.example.org\r\n"
    b"To: alice@example.com\r\n"
    b"Subject: Undelivered Mail Returned to Sender\r\n"
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: multipart/report; report-type=delivery-status;\r\n"
    b"\tboundary=\"XYZ\"\r\n"
    b"\r\n"
    b"preamble\r\n"
    b"--XYZ\r\n"
    b"Content-Type: text/plain\r\n"
    b"\r\n"
    b"I'm sorry to have to inform you that your message could not be delivered.\r\n"
    b"--XYZ\r\n"
    b"Content-Type: message/delivery-status\r\n"
    b"\r\n"
    b"Reporting-MTA: dns; mx.example.org\r\n"
    b"Received-From-MTA: dns; mail.example.com\r\n"
    b"Arrival-Date: Thu, 26 Nov 2026 16:04:00 +0000\r\n"
    b"Original-Envelope-Id: ENV123\r\n"
    b"\r\n"
    b"Final-Recipient: rfc822; nobody@example.org\r\n"
    b"Original-Recipient: rfc822;Nobody@Example.org\r\n"
    b"Action: failed\r\n"
    b"Status: 5.1.1\r\n"
    b"Remote-MTA: dns; store.example.org\r\n"
    b"Diagnostic-Code: smtp; 550 5.1.1 <nobody@example.org>:\r\n"
    b"    Recipient address rejected\r\n"
    b"Last-Attempt-Date: Thu, 26 Nov 2026 16:04:58 +0000\r\n"
    b"\r\n"
    b"Final-Recipient: rfc822; later@example.org\r\n"
    b"Action: delayed\r\n"
    b"Status: 4.4.1\r\n"
    b"\r\n"
    b"--XYZ\r\n"
    b"Content-Type: message/rfc822\r\n"
    b"\r\n"
    b"From: alice@example.com\r\n"
    b"To: nobody@example.org\r\n"
    b"Subject: the original\r\n"
    b"Message-ID: <orig@example.com>\r\n"
    b"\r\n"
    b"original body\r\n"
    b"--XYZ--\r\n"
    b"epilogue\r\n"
)


def test_structured_report_per_message_and_per_recipient_fields():
    report = parse_dsn(REPORT)
    assert report is not None and report.structured
    assert report.reporting_mta == "mx.example.org"
    assert report.received_from_mta == "mail.example.com"
    assert report.arrival_date == "Thu, 26 Nov 2026 16:04:00 +0000"
    assert report.original_envelope_id == "ENV123"
    first, second = report.recipients
    assert first.final_recipient == "nobody@example.org"
    assert first.original_recipient == "Nobody@Example.org"
    assert first.action == "failed" and first.status == "5.1.1"
    assert first.remote_mta == "store.example.org"
    assert first.diagnostic_code == "550 5.1.1 <nobody@example.org>: Recipient address rejected"
    assert first.last_attempt_date == "Thu, 26 Nov 2026 16:04:58 +0000"
    assert (second.final_recipient, second.action, second.status) == ("later@example.org", "delayed", "4.4.1")
    assert report.statuses() == ["5.1.1", "4.4.1"]
    assert report.human_text.startswith("I'm sorry")


def test_original_message_is_exposed_with_its_headers():
    report = parse_dsn(REPORT)
    assert report.original.startswith(b"From: alice@example.com")
    assert b"original body" in report.original and b"epilogue" not in report.original
    assert not report.original_headers_only
    summary = report.summary()
    assert summary["original"]["subject"] == "the original"
    assert summary["original"]["message_id"] == "<orig@example.com>"


def test_rfc822_headers_part_and_base64_status_part():
    status = base64.b64encode(b"Reporting-MTA: dns; x\r\n\r\nFinal-Recipient: rfc822; a@b.example\r\n"
                              b"Action: failed\r\nStatus: 5.7.1\r\n")
    data = (b"Content-Type: multipart/report; boundary=B\r\n\r\n--B\r\n"
            b"Content-Type: message/delivery-status\r\nContent-Transfer-Encoding: base64\r\n\r\n" + status +
            b"\r\n--B\r\nContent-Type: text/rfc822-headers\r\n\r\nSubject: only headers\r\n\r\n--B--\r\n")
    report = parse_dsn(data)
    assert report.recipients[0].status == "5.7.1"
    assert report.original_headers_only
    assert report.summary()["original"]["subject"] == "only headers"


def test_report_nested_inside_multipart_mixed():
    inner = REPORT.replace(b"From: MAILER-DAEMON@mx.example.org\r\n", b"")
    data = (b"Content-Type: multipart/mixed; boundary=OUTER\r\n\r\n--OUTER\r\n" + inner + b"\r\n--OUTER--\r\n")
    report = parse_dsn(data)
    assert report is not None and report.structured
    assert [r.status for r in report.recipients] == ["5.1.1", "4.4.1"]


def test_plain_text_fields_fall_back_unstructured():
    data = (b"From: postmaster@example.com\r\nSubject: failure\r\n\r\nYour message failed.\r\n"
            b"Final-Recipient: rfc822;a@x.example\r\nAction: failed\r\nStatus: 5.0.0\r\n\r\n"
            b"Final-Recipient: rfc822;b@y.example\r\nAction: failed\r\nStatus: 5.7.3\r\n"
            b"Diagnostic-Code: smtp;530 5.7.3 Client was not authenticated\r\n")
    report = parse_dsn(data)
    assert report is not None and not report.structured
    assert [(r.final_recipient, r.status) for r in report.recipients] == [("a@x.example", "5.0.0"),
                                                                           ("b@y.example", "5.7.3")]
    assert report.recipients[1].diagnostic_code == "530 5.7.3 Client was not authenticated"
    assert report.problems


def test_ordinary_message_is_not_a_dsn():
    assert parse_dsn(b"From: a@b\r\nSubject: hello\r\n\r\nStatus: fine\r\n") is None


def test_status_part_without_recipients_is_reported_as_a_problem():
    report = parse_delivery_status(b"Reporting-MTA: dns; x\r\n")
    assert report.reporting_mta == "x" and report.recipients == []
    assert "no per-recipient" in report.problems[0]


def test_status_code_finds_enhanced_codes_only():
    assert status_code("550 5.7.1 Unable to relay") == "5.7.1"
    assert status_code("error 0xC00402C7 at 10.0.0.1") is None
    assert status_code(None) is None


def test_split_multipart_drops_preamble_and_epilogue():
    parts = split_multipart(b"pre\r\n--b\r\none\r\n--b\r\ntwo\r\n--b--\r\nepi", "b")
    assert parts == [b"one", b"two"]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=4000))
def test_random_bytes_never_raise(data):
    report = parse_dsn(data)
    if report is not None:
        report.summary()


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=3000), st.integers(min_value=0, max_value=len(REPORT)))
def test_mutated_report_never_raises(noise, cut):
    mutated = REPORT[:cut] + noise + REPORT[cut:]
    report = parse_dsn(mutated)
    if report is not None:
        assert isinstance(report.summary()["recipients"], list)


_ADDR = st.from_regex(r"[a-z]{1,10}@[a-z]{1,10}\.example", fullmatch=True)
_STATUS = st.from_regex(r"[245]\.[0-9]\.[0-9]{1,2}", fullmatch=True)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(_ADDR, st.sampled_from(["failed", "delayed", "delivered"]), _STATUS), min_size=1, max_size=8))
def test_generated_reports_round_trip(recipients):
    groups = b"".join(
        f"Final-Recipient: rfc822; {a}\r\nAction: {act}\r\nStatus: {s}\r\n\r\n".encode() for a, act, s in recipients
    )
    data = (b"Content-Type: multipart/report; boundary=\"=_b\"\r\n\r\n--=_b\r\n"
            b"Content-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; m.example\r\n\r\n" + groups +
            b"--=_b--\r\n")
    report = parse_dsn(data)
    assert [(r.final_recipient, r.action, r.status) for r in report.recipients] == recipients


def _split_multipart_by_regex(body: bytes, boundary: str) -> list[bytes]:
    """The former regex implementation, kept as the reference."""
    import re

    delimiter = b"--" + boundary.encode("latin-1", "replace")
    pieces = re.split(rb"(?:^|\r?\n)" + re.escape(delimiter) + rb"(--)?[ \t]*(?:\r?\n|$)", body)
    parts = []
    for index in range(2, len(pieces), 2):
        if pieces[index - 1] == b"--" or len(parts) >= 64:
            break
        parts.append(pieces[index])
    return parts


_MIME_PIECES = [b"--b", b"--b--", b"--bb", b"b", b"-", b"\r\n", b"\n", b"\r", b" ", b"\t", b"x", b"Content-Type: a/b",
                b"\r\n--b\r\n", b"\n--b--\n"]


@given(st.lists(st.sampled_from(_MIME_PIECES), max_size=30).map(b"".join))
@settings(max_examples=400, deadline=None)
def test_split_multipart_agrees_with_the_regex_reference(body):
    assert split_multipart(body, "b") == _split_multipart_by_regex(body, "b")


def test_split_multipart_stops_at_max_parts_like_the_reference():
    body = b"".join(b"--b\r\npart %d\r\n" % i for i in range(70)) + b"--b--\r\n"
    assert split_multipart(body, "b") == _split_multipart_by_regex(body, "b")
    assert len(split_multipart(body, "b")) == 64
