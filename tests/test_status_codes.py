"""Status codes, their meanings and block-list recognition (queuetool.status_codes)."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from queuetool.status_codes import (
    BLOCKLISTS, DETAIL_MEANINGS, GENERIC_DELISTING, describe_code, find_blocklist,
    find_remote_host, is_auth_required, is_misleading_permission_text, is_relay_denied,
    parse_status,
)


@pytest.mark.parametrize("text, code, basic, host", [
    # Postfix defer/bounce log reason
    ("host mx.dest.example[192.0.2.7] said: 550 5.7.1 <u@dest.example>: Relay access denied "
     "(in reply to RCPT TO command)", "5.7.1", 550, "mx.dest.example[192.0.2.7]"),
    # Exim msglog defer
    ("R=dnslookup T=remote_smtp defer (-44) H=mx.example.org [192.0.2.1]: SMTP error from remote "
     "mail server after RCPT TO:<a@example.org>: 451 4.7.1 try later", "4.7.1", 451,
     "mx.example.org[192.0.2.1]"),
    # DSN Diagnostic-Code
    ("smtp; 554 5.7.1 Service unavailable; Client host [203.0.113.9] blocked using zen.spamhaus.org",
     "5.7.1", 554, None),
    # Exchange event 7004 quoting the remote reply
    ('The remote host "mx.x.example", responded to the SMTP command "rcpt" with "550 5.7.1 Unable to relay"',
     "5.7.1", 550, "mx.x.example"),
    # BadMail .BDR (research sample)
    ("Unable to deliver this message because the following error was encountered: This message is a "
     "delivery status notification that cannot be delivered. Specific error code was 0xC00402C7",
     "0xC00402C7", None, None),
    # a basic code alone
    ("421 Service not available, closing transmission channel", "421", 421, None),
    # leading zeros normalised
    ("Status: 5.01.001", "5.1.1", None, None),
])
def test_parse_status_finds_codes_and_remote_host(text, code, basic, host):
    info = parse_status(text)
    assert info is not None
    assert info.code == code
    assert info.basic == basic
    assert info.remote_host == host


@pytest.mark.parametrize("text", [
    "connected from 192.5.7.1 at 10:00",        # dotted number inside an IP address
    "version 2.4.5.6 of the agent",             # inside a longer dotted number
    "Connection refused",
    "",
])
def test_parse_status_ignores_text_without_codes(text):
    assert parse_status(text) is None


def test_parse_status_of_none_and_non_text():
    assert parse_status(None) is None
    assert parse_status(550).basic == 550


def test_describe_known_enhanced_codes_from_rfc3463():
    assert "Bad destination mailbox address" in describe_code("5.1.1")
    assert describe_code("5.1.1").startswith("Permanent failure")
    assert describe_code("4.4.7").startswith("Persistent transient failure")
    assert "Delivery time expired" in describe_code("4.4.7")
    assert "Delivery not authorized" in describe_code("5.7.1")
    assert "KB 262354" in describe_code("5.7.1")          # the Exchange note rides along
    assert "Authentication credentials invalid" in describe_code("5.7.8")


def test_describe_unknown_codes_generically_never_empty():
    text = describe_code("5.7.99")
    assert "Security or policy status" in text and "detail 99" in text
    assert "unknown subject 9" in describe_code("4.9.1")
    assert "not in RFC 5321" in describe_code("599")
    assert "not in queuetool's table" in describe_code("0xDEADBEEF")
    assert describe_code("0xc00402c7").startswith("This message is a delivery status notification")
    assert describe_code("banana").startswith("unrecognised")
    assert describe_code(None) == "no status code"


def test_every_detail_meaning_has_a_subject():
    for key in DETAIL_MEANINGS:
        subject, detail = key.split(".")
        assert subject in "01234567" and detail.isdigit()


def test_basic_reply_meanings():
    assert describe_code("550").startswith("Mailbox unavailable")
    assert "Authentication required" in describe_code("530")


@pytest.mark.parametrize("text, name", [
    ("554 5.7.1 Service unavailable; Client host [203.0.113.9] blocked using zen.spamhaus.org", "Spamhaus ZEN"),
    ("550 5.7.1 rejected: see https://www.spamhaus.org/sbl/query/SBL123456", "Spamhaus SBL"),
    ("554 blocked using xbl.spamhaus.org", "Spamhaus XBL"),
    ("550 5.7.1 listed at pbl.spamhaus.org", "Spamhaus PBL"),
    ("550 5.7.1 domain in URL listed at dbl.spamhaus.org", "Spamhaus DBL"),
    ("550 5.7.1 Blocked - see http://www.spamcop.net/bl.shtml?203.0.113.9", "SpamCop"),
    ("554 Service unavailable; Client host blocked using b.barracudacentral.org", "Barracuda BRBL"),
    ("550 5.7.1 Rejected - listed at dnsbl.sorbs.net", "SORBS"),
    ("550 Your IP is listed at UCEPROTECT Level 1 - see http://www.uceprotect.net", "UCEPROTECT"),
    ("550 5.7.1 Unfortunately, messages from [203.0.113.9] weren't sent. Please contact your Internet "
     "service provider since part of their network is on our block list (S3150).",
     "Microsoft (Outlook.com / Exchange Online)"),
    ("554 Blocked - see https://ipcheck.proofpoint.com/?ip=203.0.113.9", "Proofpoint"),
    ("550 Poor reputation sender - see csi.cloudmark.com", "Cloudmark CSI"),
])
def test_blocklists_are_named(text, name):
    hit = find_blocklist(text)
    assert hit is not None and hit.name == name
    assert hit.delisting[: len(GENERIC_DELISTING)] == list(GENERIC_DELISTING)
    assert len(hit.delisting) > len(GENERIC_DELISTING)     # listing-specific steps follow
    assert hit.lookup


def test_unnamed_blocklist_is_still_reported_and_plain_rejects_are_not():
    hit = find_blocklist("550 5.7.1 Your IP address is blacklisted")
    assert hit is not None and hit.name == "unnamed block list"
    assert find_blocklist("550 5.1.1 <u@x.example>: Recipient address rejected: User unknown") is None
    assert find_blocklist(None) is None


def test_blocklist_table_is_complete():
    names = {bl.name for bl in BLOCKLISTS}
    for wanted in ("Spamhaus SBL", "Spamhaus XBL", "Spamhaus PBL", "Spamhaus DBL", "Spamhaus ZEN",
                   "SpamCop", "Barracuda BRBL", "SORBS", "UCEPROTECT", "Proofpoint", "Cloudmark CSI"):
        assert wanted in names


def test_relay_auth_and_permission_wording():
    assert is_relay_denied("550 5.7.1 Unable to relay for bob@example.net")
    assert is_relay_denied("554 5.7.1 <x@y.example>: Relay access denied")
    assert is_relay_denied("550 relay not permitted")
    assert not is_relay_denied("550 5.1.1 User unknown")
    assert is_auth_required("530 5.7.1 Client was not authenticated")
    assert is_auth_required("530 5.7.0 Authentication required")
    assert not is_auth_required("250 OK")
    # Sendmail's trust_auth ruleset refuses an AUTH= parameter: not a demand to log in
    assert not is_auth_required("reject=550 5.7.1 <www-data@mail.example.com>... not authenticated")
    assert is_misleading_permission_text("#550 5.7.1 The sender does not have permission to send to this recipient")
    assert not is_misleading_permission_text(None)


def test_find_remote_host_shapes():
    assert find_remote_host("Deferred: Connection refused by mx.test.") == "mx.test"
    assert find_remote_host("connect to mx.example[127.0.0.1]:2525: Connection refused") == "mx.example[127.0.0.1]"
    assert find_remote_host("Remote-MTA: dns; mx.far.example") == "mx.far.example"
    assert find_remote_host("nothing here") is None


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=3000))
def test_random_text_never_raises(text):
    info = parse_status(text)
    if info is not None:
        assert info.code and info.meaning
        assert len(info.text) <= 500
        info.to_dict()
    find_blocklist(text)
    is_relay_denied(text)


@settings(max_examples=200, deadline=None)
@given(st.from_regex(r"[245]\.\d{1,3}\.\d{1,3}", fullmatch=True))
def test_any_enhanced_code_has_a_meaning(code):
    text = describe_code(code)
    assert text and text.split(":")[0] in ("Success", "Persistent transient failure (the sender keeps retrying)",
                                           "Permanent failure (the message is returned)")


def test_microsoft_enhanced_codes_beyond_the_rfc():
    assert "non-accepted domain" in describe_code("5.7.54")
    assert "anonymous mail" in describe_code("5.7.57")
    assert "banned sending IP" in describe_code("5.7.620")
    assert "not in RFC 3463" in describe_code("5.7.650")        # outside the documented range
    hit = find_blocklist("550 5.7.606 Access denied, banned sending IP [203.0.113.9]")
    assert hit is not None and hit.operator == "Microsoft"
