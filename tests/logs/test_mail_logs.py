"""Postfix, Exim and Sendmail log readers on lines as the MTAs write them."""
from queuetool.logs import read_logs
from queuetool.logs.exim_log import read_exim_log
from queuetool.logs.postfix_log import read_postfix_log
from queuetool.logs.sendmail_log import parse_relay, read_sendmail_log

POSTFIX = """\
Nov 27 05:30:01 mail postfix/smtpd[100]: connect from unknown[203.0.113.5]
Nov 27 05:30:02 mail postfix/smtpd[100]: warning: unknown[203.0.113.5]: SASL LOGIN authentication failed: (reason unavailable), sasl_username=admin
Nov 27 05:30:02 mail postfix/smtpd[100]: warning: unknown[203.0.113.5]: SASL PLAIN authentication failed: Connection lost to authentication server, sasl_username=(unavailable)
Nov 27 05:30:03 mail postfix/smtpd[100]: disconnect from unknown[203.0.113.5] ehlo=1 auth=0/2 quit=1 commands=2/4
Nov 27 05:31:01 mail postfix/smtpd[100]: connect from unknown[203.0.113.6]
Nov 27 05:31:02 mail postfix/smtpd[100]: 4ABC123: client=unknown[203.0.113.6], sasl_method=LOGIN, sasl_username=scanner
Nov 27 05:31:02 mail postfix/cleanup[102]: 4ABC123: message-id=<x1@forged.example>
Nov 27 05:31:02 mail postfix/qmgr[103]: 4ABC123: from=<boss@forged.example>, size=1234, nrcpt=2 (queue active)
this line is junk
Nov 27 05:31:03 mail postfix/smtp[104]: 4ABC123: to=<v1@a.example>, relay=none, delay=1, status=deferred (connect refused)
Nov 27 05:31:03 mail postfix/smtp[104]: 4ABC123: to=<v2@b.example>, relay=none, delay=1, status=deferred (connect refused)
Nov 27 05:32:00 mail postfix/pickup[105]: 5DEF456: uid=33 from=<www-data>
Nov 27 05:32:0"""


def test_postfix_sessions_logins_failures_and_messages(tmp_path):
    path = tmp_path / "mail.log"
    path.write_text(POSTFIX)
    logset = read_logs([path])
    brute, login, pickup = logset.sessions
    assert (brute.client_ip, brute.failed_logins, brute.messages) == ("203.0.113.5", ["admin", ""], [])
    assert login.auth_user == "scanner" and login.auth_method == "LOGIN" and login.client_ip == "203.0.113.6"
    [message] = login.messages
    assert (message.queue_id, message.message_id, message.sender, message.size) == (
        "4ABC123", "<x1@forged.example>", "boss@forged.example", 1234)
    assert message.recipients == ["v1@a.example", "v2@b.example"]
    assert pickup.details["local_uid"] == "33" and pickup.messages[0].queue_id == "5DEF456"
    assert logset.files[0].junk == 2  # the junk line and the truncated last line


def test_postfix_reads_rfc3339_timestamps(tmp_path):
    path = tmp_path / "postlog"
    path.write_text("2026-11-27T05:31:02.123456+01:00 mail postfix/smtpd[1]: AB12CD: client=x[10.0.0.21], "
                    "sasl_method=PLAIN, sasl_username=alice\n")
    [session] = read_postfix_log(path)
    assert session.auth_user == "alice" and session.start == "2026-11-27T04:31:02Z"


EXIM = """\
2026-11-27 05:30:02 plain_server authenticator failed for (evil) [203.0.113.5]:4444: 535 Incorrect authentication data (set_id=admin)
2026-11-27 05:31:02 1qDO9M-0003B3-2p <= boss@forged.example H=(odd.helo) [203.0.113.6]:5555 I=[127.0.0.1]:25 P=esmtpa A=plain_server:scanner S=1234 id=x1@forged.example T="Cheap meds" for v1@a.example v2@b.example
2026-11-27 05:31:02 1qDO9M-0003B3-2p == v3@c.example R=dnslookup T=remote_smtp defer (-1): x
2026-11-27 05:32:02 [777] 1qDO9N-000000005vi-0000 <= www-data@mail.example.com U=www-data P=local S=512
2026-11-27 05:33:02 1qDO9O-0003B3-2p <= a@partner.example H=mx.partner.example (mx.partner.example) [198.51.100.10]:1 P=esmtp S=10
"""


def test_exim_mainlog_logins_failures_and_both_id_lengths(tmp_path):
    path = tmp_path / "mainlog"
    path.write_text(EXIM)
    fail, spam, local, inbound = read_exim_log(path)
    assert (fail.client_ip, fail.helo, fail.failed_logins) == ("203.0.113.5", "evil", ["admin"])
    assert (spam.auth_user, spam.helo, spam.client_ip) == ("scanner", "odd.helo", "203.0.113.6")
    assert spam.messages[0].recipients == ["v1@a.example", "v2@b.example", "v3@c.example"]
    assert spam.messages[0].queue_id == "1qDO9M-0003B3-2p" and spam.messages[0].size == 1234
    assert local.details["local_user"] == "www-data" and local.auth_user is None
    assert local.messages[0].queue_id == "1qDO9N-000000005vi-0000"
    assert (inbound.client_name, inbound.helo, inbound.auth_user) == ("mx.partner.example", "mx.partner.example", None)


SENDMAIL = """\
Nov 27 05:30:02 mail sm-mta[200]: 5AR5U2hx000200: AUTH failure (LOGIN): authentication failure (-13) SASL(-13): authentication failure: checkpass failed, user=admin, relay=[203.0.113.5]
Nov 27 05:31:01 mail sm-mta[201]: AUTH=server, relay=[203.0.113.6], authid=scanner, mech=LOGIN, bits=0
Nov 27 05:31:02 mail sm-mta[201]: 5AR5V2hx000201: from=<boss@forged.example>, size=1234, class=0, nrcpts=2, msgid=<x1@forged.example>, bodytype=8BITMIME, proto=ESMTPA, daemon=MTA-v4, relay=[203.0.113.6]
Nov 27 05:31:02 mail sm-mta[201]: 5AR5V2hx000201: to=<v1@a.example>,<v2@b.example>, delay=00:00:00, mailer=esmtp, pri=121234, stat=queued
Nov 27 05:45:00 mail sm-mta[201]: 5AR5j0hx000201: from=<x@partner.example>, size=1, class=0, nrcpts=1, msgid=<p@x>, proto=ESMTP, daemon=MTA-v4, relay=mx.partner.example [198.51.100.10] (may be forged)
Nov 27 05:32:02 mail sendmail[300]: 5AR5W2hx000300: from=www-data, size=100, class=0, nrcpts=1, msgid=<y@mail>, relay=www-data@localhost
"""


def test_sendmail_joins_the_auth_line_to_messages_by_process(tmp_path):
    path = tmp_path / "mail.log"
    path.write_text(SENDMAIL)
    fail, login, reused_pid, local = read_sendmail_log(path)
    assert (fail.client_ip, fail.failed_logins) == ("203.0.113.5", ["admin"])
    assert (login.auth_user, login.auth_method, login.client_ip) == ("scanner", "LOGIN", "203.0.113.6")
    assert login.messages[0].recipients == ["v1@a.example", "v2@b.example"]
    assert login.messages[0].message_id == "<x1@forged.example>"
    # the same pid 13 minutes later from another client is another connection, not scanner's
    assert reused_pid.auth_user is None and reused_pid.client_ip == "198.51.100.10"
    assert local.details["local_user"] == "www-data" and local.client_ip is None


def test_sendmail_relay_forms():
    assert parse_relay("relay=mx.partner.example [198.51.100.10] (may be forged)") == (
        "mx.partner.example", "198.51.100.10")
    assert parse_relay("relay=[IPv6:2001:db8::1]") == (None, "2001:db8::1")
    assert parse_relay("relay=www-data@localhost") == ("www-data@localhost", None)
    assert parse_relay("no relay here") == (None, None)


def test_yearless_stamps_take_the_file_year_and_roll_back_over_new_year(tmp_path):
    import os

    path = tmp_path / "mail.log.1"
    path.write_text("Dec 31 23:59:58 mail postfix/smtpd[1]: AB12CD: client=x[10.0.0.21], sasl_username=alice\n"
                    "Jan  1 00:00:02 mail postfix/smtpd[2]: AB12CE: client=x[10.0.0.22], sasl_username=bob\n")
    os.utime(path, (1798761700, 1798761700))  # written 2027-01-01
    alice, bob = read_postfix_log(path)
    assert (alice.start, bob.start) == ("2026-12-31T23:59:58Z", "2027-01-01T00:00:02Z")


def test_journal_style_offsets_without_colon(tmp_path):
    path = tmp_path / "mail.log"
    path.write_text("2026-11-27T06:34:49+0100 mail sm-mta[7]: AUTH=server, relay=[10.0.0.21], authid=alice, "
                    "mech=PLAIN, bits=0\n")
    [session] = read_sendmail_log(path)
    assert session.start == "2026-11-27T05:34:49Z" and session.auth_user == "alice"
