"""Each scoring rule on small synthetic records: what it catches, what it leaves alone."""
from __future__ import annotations

import base64

import pytest

from queuetool.config import Settings
from queuetool.model import QueuedMessage
from queuetool.score import rules
from queuetool.score.content import body_facts
from queuetool.score.engine import SKIPPED_RULE, score_record, verdict_for
from queuetool.score.rules import RULES, RULES_BY_NAME, RuleInput, SpoolFacts

from score.synthetic import GOOD_HEADERS, OURS, make_record

def hit(rule_name: str, record: QueuedMessage, settings: Settings = OURS, **kw):
    rule = RULES_BY_NAME[rule_name]
    return rule.check(RuleInput(record=record, settings=settings, **kw))


def test_every_rule_has_name_points_category_and_why():
    assert len({r.name for r in RULES}) == len(RULES)
    for rule in RULES:
        assert rule.category in {"spam", "relay", "backscatter", "info"}
        assert rule.stage in {"record", "body", "spool"}
        assert rule.why and "\n" not in rule.why


def test_unauthenticated_relay_outside_to_outside():
    record = make_record(GOOD_HEADERS, sender="promo@bulk.test", recipients=["a@victim.example"],
                         client_ip="192.0.2.15")
    assert "not ours" in hit("unauthenticated_relay", record)
    record.auth_user = "alice"
    assert hit("unauthenticated_relay", record) is None


def test_unauthenticated_relay_ignores_inbound_and_alias_forwarding():
    inbound = make_record(GOOD_HEADERS, sender="news@partner.example", recipients=["bob@example.com"],
                          client_ip="198.51.100.10")
    assert hit("unauthenticated_relay", inbound) is None
    forwarded = make_record(
        "Received: from mx.partner.example by mail.example.com with ESMTP id X for <dave@example.com>; "
        "Fri, 27 Nov 2026 05:00:00 +0000\n" + GOOD_HEADERS,
        sender="news@partner.example", recipients=["dave@home.example"], client_ip="198.51.100.10")
    assert hit("unauthenticated_relay", forwarded) is None


def test_unauthenticated_relay_needs_known_domains():
    record = make_record(GOOD_HEADERS, sender="promo@bulk.test", recipients=["a@victim.example"])
    assert hit("unauthenticated_relay", record, settings=Settings()) is None


def test_login_from_received_header_counts_as_authenticated():
    record = make_record("Received: from x ([203.0.113.7]) (authenticated bits=0) by mail.example.com "
                         "with ESMTPA id 1; Fri, 27 Nov 2026 05:00:00 GMT\n" + GOOD_HEADERS,
                         sender="pharmacy@rx.test", recipients=["a@victim.example"])
    assert rules.login_of(record) == "(authenticated)"
    assert hit("unauthenticated_relay", record) is None
    finding = hit("sender_not_owned", record)
    assert finding[0] == 1.0 and "rx.test" in finding[1]


def test_sender_not_owned_foreign_domain_and_other_user():
    foreign = make_record(GOOD_HEADERS, sender="pharmacy@rx.test", auth_user="scanner")
    assert hit("sender_not_owned", foreign)[0] == 1.0
    other_user = make_record("From: Bob <bob@example.com>\n", sender="bob@example.com", auth_user="scanner")
    assert hit("sender_not_owned", other_user)[0] == 0.5
    own = make_record(GOOD_HEADERS, sender="alice@example.com", auth_user="alice")
    assert hit("sender_not_owned", own) is None
    own_full_login = make_record(GOOD_HEADERS, sender="alice@example.com", auth_user="alice@example.com")
    assert hit("sender_not_owned", own_full_login) is None


def test_recipient_fanout_scales():
    many = make_record(sender="x@example.com", recipients=[f"u{i}@d{i}.test" for i in range(6)])
    assert isinstance(hit("recipient_fanout", many), str)
    some = make_record(sender="x@example.com", recipients=[f"u{i}@d{i % 3}.test" for i in range(5)])
    assert hit("recipient_fanout", some)[0] == 0.5
    few = make_record(sender="x@example.com", recipients=["a@b.test", "c@b.test"])
    assert hit("recipient_fanout", few) is None


def test_null_sender_dsn_including_sendmail_mailer_daemon():
    dsn_headers = ("From: Mail Delivery Subsystem <MAILER-DAEMON@mx.example.net>\n"
                   "Subject: Returned mail\nContent-Type: multipart/report; report-type=delivery-status\n")
    for sender in ("", "MAILER-DAEMON"):
        assert hit("null_sender_dsn", make_record(dsn_headers, sender=sender)) is not None
    assert hit("null_sender_dsn", make_record(dsn_headers, sender="bob@example.com")) is None
    # unknown envelope (Exchange queue files): needs both the report type and a bounce From
    assert hit("null_sender_dsn", make_record(dsn_headers, sender=None)) is not None
    assert hit("null_sender_dsn", make_record("Subject: Returned mail\n", sender=None)) is None


DSN_BODY = b"""From: MAILER-DAEMON@mx.example.net
Subject: Undelivered Mail Returned to Sender
Content-Type: multipart/report; report-type=delivery-status; boundary="b"

--b
Content-Type: text/plain

Your message could not be delivered.
--b
Content-Type: text/rfc822-headers

Received: from pc by %s with ESMTPA id 1; Fri, 27 Nov 2026 05:00:00 +0000
From: alice@example.com
Message-ID: <%s>

--b--
"""


def test_bounce_origin_forged_versus_ours():
    record = make_record("From: MAILER-DAEMON@mx.example.net\n"
                         "Content-Type: multipart/report; report-type=delivery-status\n", sender="")
    forged = body_facts(DSN_BODY % (b"mx.spammer.test", b"abc@spammer.test"))
    assert hit("bounce_origin", record, body=forged, full=True)[0] == 1.0
    ours = body_facts(DSN_BODY % (b"mail.example.com", b"abc@example.com"))
    assert hit("bounce_origin", record, body=ours, full=True)[0] == 0.0
    accepted = body_facts((DSN_BODY % (b"mail.example.com", b"abc@example.com")).replace(
        b"From: alice@example.com", b"From: someone@outside.test"))
    assert "outside sender" in hit("bounce_origin", record, body=accepted, full=True)[1]


def test_local_sender_from_outside_without_login():
    record = make_record(GOOD_HEADERS, sender="alice@example.com", client_ip="203.0.113.9")
    assert "alice@example.com" in hit("local_sender_from_outside", record)
    record.auth_user = "alice"
    assert hit("local_sender_from_outside", record) is None
    local = make_record(GOOD_HEADERS, sender="alice@example.com", client_ip="127.0.0.1")
    assert hit("local_sender_from_outside", local) is None


def test_local_injection_to_outside():
    web = make_record("From: Prize <prize@lottery.test>\n", sender="www-data@mail.example.com",
                      recipients=["x@victim.example"], client_ip="127.0.0.1")
    assert isinstance(hit("local_injection_to_outside", web), str)
    cron = make_record("From: root@example.com\n", sender="root@example.com",
                       recipients=["admin@elsewhere.example"], queue="maildrop")
    assert hit("local_injection_to_outside", cron)[0] == 0.6
    to_local = make_record("From: root@example.com\n", sender="root@example.com",
                           recipients=["admin@example.com"], queue="maildrop")
    assert hit("local_injection_to_outside", to_local) is None


def test_header_anomalies():
    bare = make_record("From: x@y.test\nSubject: hi\n")
    assert hit("missing_date", bare) and hit("missing_message_id", bare)
    assert hit("missing_date", make_record(GOOD_HEADERS)) is None
    assert "does not parse" in hit("date_far_from_arrival", make_record("Date: yesterday\n"))
    skewed = make_record("Date: Mon, 02 Nov 2026 05:00:00 +0000\n")
    assert "before arrival" in hit("date_far_from_arrival", skewed)
    assert hit("date_far_from_arrival", make_record(GOOD_HEADERS)) is None
    assert hit("malformed_address", make_record("From: not an address\n", sender="a@b.test")) is not None
    assert hit("malformed_address", make_record(GOOD_HEADERS, sender="alice@example.com",
                                                recipients=["b@example.net"])) is None


def test_content_rules_with_body():
    raw = (b"From: a@b.test\nSubject: x\nContent-Type: text/html\nContent-Transfer-Encoding: base64\n\n"
           + base64.b64encode(
               b"<p>Cheap viagra from our online pharmacy " + b" ".join(
                   b"<a href='http://h%d.test/x'>l</a>" % i for i in range(5)) + b" http://bit.ly/abc</p>"))
    body = body_facts(raw)
    record = make_record("Subject: x\n")
    assert "6 URLs" in hit("many_urls", record, body=body, full=True)
    assert "bit.ly" in hit("url_shortener", record, body=body, full=True)
    assert hit("html_only", record, body=body, full=True)
    assert hit("base64_text", record, body=body, full=True)
    assert "pharmacy" in hit("spam_vocabulary", record, body=body, full=True)[1]


def test_body_rules_are_reported_skipped_without_full():
    record = score_record(make_record(GOOD_HEADERS), OURS)
    names = [h.rule for h in record.rules]
    assert SKIPPED_RULE in names
    assert not any(RULES_BY_NAME[n].stage == "body" for n in names if n in RULES_BY_NAME)
    skipped = next(h for h in record.rules if h.rule == SKIPPED_RULE)
    assert skipped.points == 0 and "--full" in skipped.why and "url_shortener" in skipped.why


def test_spam_vocabulary_in_subject():
    assert hit("spam_vocabulary", make_record("Subject: Cheap meds from our pharmacy\n"))[0] == 1.0
    assert hit("spam_vocabulary", make_record("Subject: Lunch on Friday?\n")) is None


def test_exchange_rules():
    anon = make_record("X-MS-Exchange-Organization-AuthAs: Anonymous\nX-MS-Exchange-Organization-SCL: 9\n",
                       sender="a@bulk.test", recipients=["x@victim.example"])
    assert hit("exchange_anonymous_external", anon)
    assert hit("exchange_scl", anon)[0] == 1.0
    internal = make_record("X-MS-Exchange-Organization-AuthAs: Anonymous\nX-MS-Exchange-Organization-SCL: -1\n",
                           sender="a@bulk.test", recipients=["bob@example.com"])
    assert hit("exchange_anonymous_external", internal) is None
    assert hit("exchange_scl", internal) is None


def test_spool_rules():
    record = make_record(GOOD_HEADERS)
    facts = SpoolFacts(campaign="c1", campaign_size=10, campaign_flagged=6)
    assert "10 messages" in hit("campaign_size", record, spool=facts)
    assert hit("campaign_size", record, spool=SpoolFacts(campaign="c1", campaign_size=10, campaign_flagged=2)) is None
    no_trace = hit("account_trace_verdict", record, spool=SpoolFacts(account="scanner"))
    assert no_trace[0] == 0.0 and "no trace verdict" in no_trace[1]
    compromised = SpoolFacts(account="scanner", account_verdict="compromised", trace_available=True)
    assert hit("account_trace_verdict", record, spool=compromised)[0] == 1.0
    busy = SpoolFacts(account="scanner", account_messages=10, account_flagged=9)
    assert "scanner" in hit("account_mostly_flagged", record, spool=busy)


@pytest.mark.parametrize("points, category, verdict", [
    ({"null_sender_dsn": 5.0}, "backscatter", "backscatter"),
    ({"unauthenticated_relay": 6.0}, "relay", "relay"),
    ({"sender_not_owned": 4.0, "recipient_fanout": 1.0}, "spam", "spam"),
    ({"sender_not_owned": 4.0}, "spam", "clean"),
])
def test_verdict_thresholds(points, category, verdict):
    from queuetool.model import RuleHit

    hits = [RuleHit(name, value, "x") for name, value in points.items()]
    score, got = verdict_for(hits, OURS)
    assert got == verdict and score == sum(points.values())


def test_weights_and_thresholds_override():
    from queuetool.model import RuleHit

    settings = Settings(local_domains=frozenset({"example.com"}), weights={"sender_not_owned": 9.0},
                        thresholds={"spam": 10.0, "relay": 5.0, "backscatter": 5.0})
    record = score_record(make_record(GOOD_HEADERS, sender="x@rx.test", auth_user="scanner"), settings)
    assert next(h for h in record.rules if h.rule == "sender_not_owned").points == 9.0
    assert record.verdict == "clean"  # 9 < 10
    assert verdict_for([RuleHit("sender_not_owned", 10.0, "x")], settings)[1] == "spam"


def test_docs_list_every_rule_with_its_default_points():
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "docs" / "rules.md").read_text(encoding="utf-8")
    for rule in RULES:
        assert f"| `{rule.name}` | {rule.points:g} | {rule.category} | {rule.stage} |" in text, rule.name
