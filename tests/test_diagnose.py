"""diagnose: KB 895853's walk over records, logs and events (queuetool.diagnose)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from queuetool.cli import main
from queuetool.diagnose import (
    EventEntry, Finding, diagnose, render_text, settings_for,
)
from queuetool.model import QueuedMessage

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "diagnose"
OURS = {"local_domains": ["example.com", "example.org"]}


def record(rid: str, **kw) -> QueuedMessage:
    kw.setdefault("queue", "deferred")
    kw.setdefault("sender", "alice@example.com")
    kw.setdefault("recipients", ["friend@elsewhere.example"])
    return QueuedMessage(mta="postfix", id=rid, **kw)


def run(records=(), logs=(), events=None, domains=OURS):
    return diagnose(records=list(records), logs=logs, events=events, settings=domains, use_trace=False)


def kb_ids(result) -> set[str]:
    return {i for i in result.ids() if i.startswith("kb895853-")}


def test_finding_shape_is_the_contract():
    result = run([record("A1", status="host mx.e.example[192.0.2.1] said: 550 5.1.1 no such user")])
    data = result.to_dict()
    assert set(data) == {"findings", "inputs"}
    for finding in data["findings"]:
        assert set(finding) == {"id", "severity", "title", "evidence", "cause", "confirm", "remedy", "references"}
        assert finding["severity"] in ("critical", "high", "medium", "low", "info")
        assert isinstance(finding["confirm"], list) and isinstance(finding["remedy"], list)
        assert finding["evidence"]["count"] >= 1
    json.dumps(data)  # JSON-safe


# ---------------------------------------------------------------- the six KB scenarios


@pytest.mark.parametrize("fixture, expected", [
    ("s1", "kb895853-s1-authenticated-relay-denied"),
    ("s2", "kb895853-s2-anonymous-access-disabled"),
    ("s3", "kb895853-s3-mx-wrong-virtual-server"),
    ("s4", "kb895853-s4-no-recipient-policy"),
    ("s5", "kb895853-s5-destination-requires-auth"),
    ("s6", "kb895853-s6-isa-publishing-rule"),
    # the same two cases as Exchange 2007+ SmtpReceive / SmtpSend protocol logs
    ("e2016-s1", "kb895853-s1-authenticated-relay-denied"),
    ("e2016-s5", "kb895853-s5-destination-requires-auth"),
])
def test_each_scenario_fixture_triggers_exactly_its_finding(fixture, expected):
    result = run(logs=[FIXTURES / fixture])
    assert kb_ids(result) == {expected}
    finding = result.by_id(expected)
    assert finding.evidence["count"] >= 1
    assert any(ref.startswith("KB 895853 scenario") for ref in finding.references)
    assert finding.confirm and finding.remedy
    assert "relay-attempts-refused" not in result.ids()


def test_scenario1_names_the_authenticated_client():
    finding = run(logs=[FIXTURES / "s1"]).by_id("kb895853-s1-authenticated-relay-denied")
    assert finding.evidence["support"]["clients"] == ["10.0.0.21"]


def test_scenario3_names_both_virtual_servers():
    support = run(logs=[FIXTURES / "s3"]).by_id("kb895853-s3-mx-wrong-virtual-server").evidence["support"]
    assert support["denying_virtual_servers"] == ["2"] and support["other_virtual_servers"] == ["1"]


def test_scenario6_names_the_proxy_address():
    support = run(logs=[FIXTURES / "s6"]).by_id("kb895853-s6-isa-publishing-rule").evidence["support"]
    assert support["proxy_addresses"] == ["192.168.50.1"]
    assert support["events"] == {1701: 1}


def test_scenario5_keeps_the_alternative_reading():
    finding = run(logs=[FIXTURES / "s5"]).by_id("kb895853-s5-destination-requires-auth")
    assert "could not find the recipient" in finding.evidence["support"]["alternative"]
    assert finding.evidence["support"]["remote_hosts"][0]["key"] == "mx.secure.example"


def test_local_domain_refusal_without_a_discriminator_names_all_three():
    result = run([record("L1", recipients=["alice@example.com"], sender="x@partner.example",
                         status="550 5.7.1 Unable to relay for alice@example.com")])
    assert kb_ids(result) == {"kb895853-local-domain-refused"}
    finding = result.by_id("kb895853-local-domain-refused")
    assert [c["scenario"] for c in finding.evidence["candidates"]] == [3, 4, 6]
    assert len(finding.confirm) == 3


def test_events_1709_alone_are_not_blamed_on_one_scenario():
    result = run(events=[EventEntry(1709, "event 1709", "app.csv:2")])
    assert kb_ids(result) == {"kb895853-local-domain-refused"}


def test_relay_refused_to_outside_clients_is_protection_not_a_scenario(tmp_path):
    lines = (FIXTURES / "s2" / "ex261120.log").read_text().replace(" 530 ", " 250 ")
    lines += ("2026-11-20 09:10:00 192.0.2.77 probe SMTPSVC1 MAIL 10.0.0.2 0 RCPT - +TO:+<v@far.example> "
              "550 0 60 30 0 SMTP - - - -\r\n")
    path = tmp_path / "ex.log"
    path.write_text(lines)
    result = run(logs=[path])
    assert kb_ids(result) == set()
    assert result.by_id("relay-attempts-refused").evidence["by_client"][0]["key"] == "192.0.2.77"


def test_misleading_permission_wording():
    result = run([record("M1", sender="", recipients=["bob@partner.example"],
                         status="#550 5.7.1 The sender does not have permission to send to this recipient")])
    finding = result.by_id("misleading-permission-ndr")
    assert finding is not None and "KB 262354" in finding.references
    assert finding.evidence["by_destination_domain"][0]["key"] == "partner.example"


# ---------------------------------------------------------------- open relay vs compromised account


def incident_records() -> list[QueuedMessage]:
    out = []
    for i in range(12):
        out.append(record(f"SP{i}", sender=f"pharma{i}@forged{i}.example",
                          recipients=[f"u{i}@dest{i}.example"], auth_user="scanner",
                          client_ip=f"203.0.113.{10 + i % 3}", verdict="spam",
                          arrival=f"2026-11-27T0{i % 6}:00:00Z"))
    for i in range(4):
        out.append(record(f"OR{i}", sender=f"x@relay{i}.example", recipients=[f"v{i}@far{i}.example"],
                          client_ip="192.0.2.9", verdict="relay"))
    out.append(record("LG1", auth_user="alice", client_ip="10.0.0.5", verdict="clean",
                      recipients=["bob@partner.example"]))
    out.append(record("IN1", sender="p@partner.example", recipients=["alice@example.com"],
                      client_ip="198.51.100.10", verdict="clean", queue="active"))
    return out


def test_open_relay_and_compromised_account_are_told_apart():
    result = run(incident_records())
    compromised = result.by_id("compromised-account")
    relay = result.by_id("open-relay")
    assert [a["account"] for a in compromised.evidence["accounts"]] == ["scanner"]
    assert compromised.evidence["accounts"][0]["messages"] == 12
    assert [c["client"] for c in relay.evidence["clients"]] == ["192.0.2.9"]
    assert relay.evidence["count"] == 4
    symptoms = result.by_id("relay-abuse-symptoms")
    assert set(symptoms.evidence["conclusions"]) == {"compromised-account", "open-relay"}
    assert symptoms.evidence["symptoms"]["spam_in_queues"]["messages"] == 16


def test_only_the_compromised_account_when_no_unauthenticated_relay():
    records = [r for r in incident_records() if not r.id.startswith("OR")]
    result = run(records)
    assert "compromised-account" in result.ids() and "open-relay" not in result.ids()
    # without trace the verdict stays "suspected": the evidence is spool data only
    assert result.by_id("compromised-account").severity == "high"
    assert "suspected" in result.by_id("compromised-account").title


def test_no_open_relay_claim_without_knowing_the_local_domains():
    result = run(incident_records(), domains=None)
    assert "open-relay" not in result.ids()
    assert any("no local domains" in note for note in result.inputs["notes"])


def test_symptoms_list_ndrs_and_events():
    records = incident_records()
    records[0].status = "host mx.d.example[192.0.2.5] said: 550 5.7.1 rejected"
    events = [EventEntry(4001, "x", "a:1"), EventEntry(7004, "y", "a:2"), EventEntry(7004, "z", "a:3")]
    symptoms = run(records, events=events).by_id("relay-abuse-symptoms").evidence["symptoms"]
    assert symptoms["ndr_5.0.0_5.7.1"] == {"5.0.0": 0, "5.7.1": 1}
    assert symptoms["events_7004_4001"] == {"7004": 2, "4001": 1}


def test_legitimate_queue_has_no_relay_findings():
    records = [record(f"OK{i}", auth_user="alice", client_ip="10.0.0.5", verdict="clean",
                      recipients=["bob@partner.example"]) for i in range(20)]
    ids = run(records).ids()
    assert not {"open-relay", "compromised-account", "relay-abuse-symptoms"} & set(ids)


# ---------------------------------------------------------------- any MTA: codes, block lists, stuck mail


def test_status_codes_grouped_by_domain_and_remote_host():
    records = [record(f"D{i}", recipients=[f"u{i}@big.example"],
                      status="host mx1.big.example[192.0.2.20] said: 450 4.2.1 mailbox busy")
               for i in range(3)]
    records.append(record("D9", recipients=["u@small.example"],
                          status="host mx.small.example[192.0.2.30] said: 450 4.2.1 try later"))
    finding = run(records).by_id("status-4.2.1")
    assert finding.evidence["count"] == 4
    assert finding.evidence["by_destination_domain"][0] == {"key": "big.example", "count": 3}
    assert finding.evidence["by_remote_host"][0] == {"key": "mx1.big.example[192.0.2.20]", "count": 3}
    assert finding.evidence["known_code"] is True


def test_unknown_codes_and_events_are_reported_generically():
    result = run([record("U1", status="550 5.9.42 something new")],
                 events=[EventEntry(4242, "an event nobody documented", "app.csv:7")])
    code = result.by_id("status-5.9.42")
    assert code is not None and code.evidence["known_code"] is False
    assert "detail 42" in code.evidence["meaning"]
    event = result.by_id("event-4242")
    assert event is not None and event.evidence["known_event"] is False
    assert event.evidence["examples"] == ["app.csv:7: an event nobody documented"]


def test_statuses_in_reader_details_are_read():
    rec = record("DT1", details={"recipients": [
        {"recipient": "gone@old.example", "status": "5.1.1",
         "diagnostic_code": "smtp; 550 5.1.1 <gone@old.example>: user unknown"}]})
    finding = run([rec]).by_id("status-5.1.1")
    assert finding is not None
    assert finding.evidence["by_destination_domain"][0]["key"] == "old.example"


def test_blocklist_rejections_are_named_with_a_delisting_checklist():
    records = [record(f"B{i}", recipients=[f"u@d{i}.example"],
                      status="host mx.d.example[192.0.2.1] said: 554 5.7.1 Service unavailable; "
                             "Client host [198.51.100.5] blocked using zen.spamhaus.org")
               for i in range(3)]
    records.append(record("B9", status="said: 550 5.7.1 see https://www.spamcop.net/bl.shtml?1.2.3.4"))
    result = run(records)
    zen = result.by_id("blocklist-spamhaus-zen")
    assert zen.severity == "critical" and zen.evidence["count"] == 3
    assert zen.evidence["listing"]["operator"] == "Spamhaus"
    assert any("Stop the source first" in step for step in zen.remedy)
    assert result.by_id("blocklist-spamcop").evidence["count"] == 1
    assert result.findings[0].severity == "critical"


def test_stuck_destinations_qshape_view():
    records = [record(f"S{i}", recipients=[f"u{i}@slow.example"], arrival=f"2026-11-2{i % 3}T00:00:00Z",
                      status="connect to mx.slow.example[192.0.2.40]:25: Connection refused")
               for i in range(7)]
    records += [record(f"F{i}", recipients=["x@few.example"]) for i in range(2)]
    finding = run(records).by_id("stuck-destinations")
    rows = {row["domain"]: row for row in finding.evidence["destinations"]}
    assert set(rows) == {"slow.example"}
    assert rows["slow.example"]["messages"] == 7
    assert rows["slow.example"]["oldest"] == "2026-11-20T00:00:00Z"
    assert "Connection refused" in rows["slow.example"]["top_status"]
    # qshape age buckets from the newest arrival (2026-11-22): 2 of 7 are 0-5 min, the rest 1280+
    ages = rows["slow.example"]["age_minutes"]
    assert ages["0-5"] == 2 and ages["1280+"] == 5 and sum(ages.values()) == 7


def test_event_1708_accounts_are_counted():
    text = ("SMTP authentication was completed successfully with client 203.0.113.7. "
            "The authentication method was Login and the username was EXAMPLE\\scanner.")
    finding = run(events=[EventEntry(1708, text, "app.csv:3")] * 3).by_id("event-1708")
    assert finding.evidence["accounts"][0]["key"].lower().endswith("scanner")
    assert finding.evidence["accounts"][0]["count"] == 3


def test_event_7004_reply_becomes_a_status():
    text = ('This is an SMTP protocol error log for virtual server ID 1, connection #5. The remote host '
            '"mx.far.example", responded to the SMTP command "rcpt" with "550 5.7.1 Unable to relay for '
            'a@far.example". The full command sent was "RCPT TO:<a@far.example>".')
    finding = run(events=[EventEntry(7004, text, "app.csv:9")]).by_id("status-5.7.1")
    assert finding.evidence["by_remote_host"][0]["key"] == "mx.far.example"


def test_findings_sorted_most_severe_first():
    result = run(incident_records(), events=[EventEntry(4242, "x", "a:1")])
    order = ["critical", "high", "medium", "low", "info"]
    ranks = [order.index(f.severity) for f in result.findings]
    assert ranks == sorted(ranks)


def test_render_text_mentions_every_finding():
    result = run(incident_records())
    text = render_text(result)
    for finding in result.findings:
        assert finding.id in text
    assert "no findings" not in text.lower()
    assert render_text(run()).startswith("No findings")


def test_settings_for_gives_domains():
    settings_obj = settings_for(["Example.COM"])
    result = run([record("X", sender="a@far.example", recipients=["b@far2.example"], client_ip="192.0.2.1")],
                 domains=settings_obj)
    assert "example.com" in result.inputs["local_domains"]


# ---------------------------------------------------------------- robustness


_text = st.text(max_size=300)
_records = st.lists(st.builds(
    QueuedMessage, mta=st.just("postfix"), id=st.text(min_size=1, max_size=12),
    queue=st.sampled_from([None, "deferred", "active", "hold", "badmail"]),
    sender=st.one_of(st.none(), st.just(""), st.emails()),
    recipients=st.lists(st.one_of(st.emails(), _text), max_size=4),
    client_ip=st.one_of(st.none(), st.ip_addresses().map(str), _text),
    auth_user=st.one_of(st.none(), _text), verdict=st.sampled_from([None, "spam", "relay", "clean"]),
    status=st.one_of(st.none(), _text, st.from_regex(r"[245]\d\d [245]\.\d{1,3}\.\d{1,3} .{0,40}")),
    arrival=st.one_of(st.none(), _text),
    details=st.recursive(st.dictionaries(st.sampled_from(["status", "reason", "recipient", "x"]), _text),
                         lambda inner: st.dictionaries(st.text(max_size=5), st.lists(inner, max_size=3)),
                         max_leaves=8),
), max_size=20)
_events = st.lists(st.builds(EventEntry, event_id=st.one_of(st.none(), st.integers(-5, 70000)),
                             message=_text, where=_text), max_size=10)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_records, _events)
def test_random_records_and_events_never_raise(records, events):
    result = diagnose(records=records, events=events, settings=OURS, use_trace=False)
    json.dumps(result.to_dict(), default=str)
    render_text(result)
    assert all(isinstance(f, Finding) for f in result.findings)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(st.lists(st.text(max_size=200), max_size=30), st.booleans())
def test_random_log_lines_never_raise(tmp_path, lines, with_w3c_header):
    head = (FIXTURES / "s1" / "ex261120.log").read_text().splitlines()[:4] if with_w3c_header else []
    path = tmp_path / "random.log"
    path.write_text("\n".join(head + lines), encoding="utf-8", errors="replace")
    result = diagnose(records=[], logs=[path], settings=OURS, use_trace=False)
    json.dumps(result.to_dict(), default=str)


# ---------------------------------------------------------------- CLI


def _eml_spool(tmp_path: Path) -> Path:
    spool = tmp_path / "eml"
    spool.mkdir()
    for i in range(3):
        (spool / f"m{i}.eml").write_bytes(
            b"From: a@example.com\r\nTo: b@partner.example\r\nSubject: hi\r\n"
            b"Message-ID: <m%d@example.com>\r\nDate: Fri, 27 Nov 2026 05:00:00 +0000\r\n\r\nbody\r\n" % i)
    return spool


def test_cli_json_and_table(tmp_path):
    spool = _eml_spool(tmp_path)
    runner = CliRunner()
    out = runner.invoke(main, ["diagnose", str(spool), "--log", str(FIXTURES / "s1"),
                               "--local-domain", "example.com", "--format", "json"])
    assert out.exit_code == 0, out.output
    data = json.loads(out.output)
    ids = [f["id"] for f in data["findings"]]
    assert "kb895853-s1-authenticated-relay-denied" in ids
    assert data["inputs"]["records"] == 3
    table = runner.invoke(main, ["diagnose", str(spool), "--log", str(FIXTURES / "s1"),
                                 "--local-domain", "example.com"])
    assert table.exit_code == 0
    assert "[MEDIUM] kb895853-s1-authenticated-relay-denied" in table.output
    lines = runner.invoke(main, ["diagnose", str(spool), "--log", str(FIXTURES / "s5"), "--format", "jsonl"])
    assert lines.exit_code == 0
    assert "kb895853-s5-destination-requires-auth" in {json.loads(l)["id"] for l in lines.stdout.splitlines()}
    csv_out = runner.invoke(main, ["diagnose", str(spool), "--log", str(FIXTURES / "s5"), "--format", "csv"])
    assert csv_out.exit_code == 0
    header, *rows = csv_out.stdout.splitlines()
    assert header.startswith("severity,id,title,count,cause")
    assert any(",kb895853-s5-destination-requires-auth," in row for row in rows)


def test_cli_bad_spool_is_one_line_error(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    out = CliRunner().invoke(main, ["diagnose", str(empty)])
    assert out.exit_code == 1
    assert out.output.count("\n") == 1 and "queuetool:" in out.output


def test_trace_verdicts_decide_between_the_two_cases():
    from queuetool.trace import AccountTrace, TraceResult

    scanner = AccountTrace("scanner", kind="account", messages=30, flagged=30, verdict="compromised",
                           outside_domains={f"d{i}.example" for i in range(12)},
                           client_ips={"203.0.113.7", "203.0.113.8"},
                           evidence=["12 failed logins before the first success"])
    alice = AccountTrace("alice", kind="account", messages=4, verdict="normal")
    relay = AccountTrace(None, client="192.0.2.9", kind="relay", messages=5, verdict="suspicious",
                         outside_domains={"far.example"})
    script = AccountTrace(None, client="www-data", kind="local", messages=3, verdict="suspicious",
                          outside_domains={"x.example"})
    result = diagnose(records=[], settings=OURS, trace_result=TraceResult([scanner, alice, relay, script]))
    compromised = result.by_id("compromised-account")
    assert compromised.severity == "critical"
    assert [a["account"] for a in compromised.evidence["accounts"]] == ["scanner"]
    assert compromised.evidence["accounts"][0]["recipient_domains"] == 12
    assert compromised.evidence["accounts"][0]["evidence"] == ["12 failed logins before the first success"]
    assert [c["client"] for c in result.by_id("open-relay").evidence["clients"]] == ["192.0.2.9"]
    assert result.by_id("local-submission").evidence["count"] == 3
    only_normal = diagnose(records=[], settings=OURS, trace_result=TraceResult([alice]))
    assert not {"compromised-account", "open-relay", "local-submission"} & set(only_normal.ids())


def test_statuses_are_counted_in_bounded_memory(monkeypatch):
    import queuetool.diagnose as diagnose_module

    monkeypatch.setattr(diagnose_module._Observations, "KEEP_LIMIT", 5)
    records = [record(f"K{i}", recipients=[f"u@d{i % 3}.example"],
                      status="host mx.d.example[192.0.2.1] said: 550 5.7.1 policy") for i in range(40)]
    result = run(records)
    assert result.by_id("status-5.7.1").evidence["count"] == 40          # every one counted
    assert len(result.by_id("status-5.7.1").evidence["examples"]) == 5   # examples capped
    assert any("35 policy/permanent statuses" in note for note in result.inputs["notes"])


# ---------------------------------------------------------------- committed corpora


def _manifest_by(name: str, **match) -> list[dict]:
    from corpus import load_manifest

    return [m for m in load_manifest(name) if all(m.get(k) == v for k, v in match.items())]


@pytest.fixture(scope="module")
def exchange2003():
    from corpus import corpus_dir

    return diagnose(corpus_dir("exchange2003") / "spool", settings={"local_domains": ["example.com"]})


def test_exchange2003_compromised_account_and_open_relay_match_the_manifest(exchange2003):
    scanner = _manifest_by("exchange2003", account="scanner")
    compromised = exchange2003.by_id("compromised-account")
    assert [a["account"] for a in compromised.evidence["accounts"]] == ["scanner"]
    assert compromised.evidence["accounts"][0]["messages"] == len(scanner)
    relay_ips = {m["client_ip"] for m in _manifest_by("exchange2003", scenario="open-relay")}
    named = {c["client"] for c in exchange2003.by_id("open-relay").evidence["clients"]}
    assert named and named <= relay_ips
    symptoms = exchange2003.by_id("relay-abuse-symptoms")
    assert {"compromised-account", "open-relay"} <= set(symptoms.evidence["conclusions"])
    assert symptoms.evidence["symptoms"]["events_7004_4001"] == {"7004": 1, "4001": 1}


def test_exchange2003_badmail_ndrs(exchange2003):
    badmail = _manifest_by("exchange2003", queue="badmail")
    assert exchange2003.by_id("status-0xC00402C7").evidence["count"] == len(badmail)
    # the .BDR 530 5.7.3 case: KB scenario 5, and nothing else claimed as a specific scenario
    s5 = exchange2003.by_id("kb895853-s5-destination-requires-auth")
    assert s5.evidence["support"]["destinations"][0]["key"] == "pharma-deals1.example"
    assert kb_ids(exchange2003) == {"kb895853-s5-destination-requires-auth", "kb895853-local-domain-refused"}
    assert exchange2003.by_id("kb895853-local-domain-refused").severity == "medium"   # events only
    # the 'Unable to relay' NDR is a remote refusal, not claimed as scenario 1
    refused = exchange2003.by_id("relay-refused-outside")
    assert "pharma-deals2.example" in {row["key"] for row in refused.evidence["by_destination_domain"]}


def test_exchange2003_events_counted_once_and_unknown_ids_kept(exchange2003):
    assert exchange2003.by_id("event-1708").evidence["accounts"][0]["key"].lower().endswith("scanner")
    for event_id in (1701, 1707, 1709, 1710, 4000, 4001, 7002, 7004):
        assert exchange2003.by_id(f"event-{event_id}").evidence["count"] == 1   # CSV + text export
    unknown = exchange2003.by_id("event-529")                                   # Security log noise
    assert unknown is not None and unknown.evidence["known_event"] is False
    assert any("counted once" in note for note in exchange2003.inputs["notes"])


@pytest.mark.parametrize("body", [
    b"--b\r\nContent-Type: message/delivery-status\r\n\r\nFinal-Recipient: rfc822;x@far.example\r\n"
    b"Action: failed\r\nStatus: 5.7.1\r\nDiagnostic-Code: smtp; 550 5.7.1 Unable to relay\r\n",  # no end
    b"--b\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n" * 200,                         # nesting
    bytes(range(256)) * 20,                                                                  # binary
    b"",
])
def test_hostile_dsns_in_a_queue_never_stop_diagnose(tmp_path, body):
    spool = tmp_path / "eml"
    spool.mkdir()
    head = (b"Return-Path: <>\r\nFrom: MAILER-DAEMON@mail.example.com\r\nTo: a@example.com\r\n"
            b"Subject: Undeliverable: hello\r\nMessage-ID: <n@x>\r\n"
            b"Content-Type: multipart/report; report-type=delivery-status; boundary=b\r\n\r\n")
    (spool / "ndr.eml").write_bytes(head + body)
    (spool / "ok.eml").write_bytes(b"From: a@example.com\r\nTo: b@partner.example\r\nSubject: x\r\n\r\nhi\r\n")
    result = diagnose(spool, settings=OURS, use_trace=False)
    assert result.inputs["records"] == 2
    json.dumps(result.to_dict(), default=str)


def test_dsn_in_a_queue_is_parsed_once(tmp_path):
    spool = tmp_path / "eml"
    spool.mkdir()
    (spool / "ndr.eml").write_bytes(
        b"From: MAILER-DAEMON@mail.example.com\r\nTo: alice@example.com\r\nSubject: Undeliverable\r\n"
        b"Content-Type: multipart/report; report-type=delivery-status; boundary=b\r\n\r\n"
        b"--b\r\nContent-Type: text/plain\r\n\r\nfailed\r\n"
        b"--b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mail.example.com\r\n\r\n"
        b"Final-Recipient: rfc822;x@far.example\r\nAction: failed\r\nStatus: 5.7.1\r\n"
        b"Remote-MTA: dns; mx.far.example\r\n"
        b"Diagnostic-Code: smtp; 554 5.7.1 Service unavailable; blocked using bl.spamcop.net\r\n\r\n--b--\r\n")
    result = diagnose(spool, settings=OURS, use_trace=False)
    assert result.inputs["dsn_parsed"] == 1
    finding = result.by_id("blocklist-spamcop")
    assert finding.evidence["count"] == 1
    assert finding.evidence["by_destination_domain"][0]["key"] == "far.example"
    assert result.by_id("status-5.7.1").evidence["by_remote_host"][0]["key"] == "mx.far.example"


def test_exchange_protocol_log_session_state():
    s1 = run(logs=[FIXTURES / "e2016-s1"]).by_id("kb895853-s1-authenticated-relay-denied")
    assert s1.evidence["support"]["clients"] == ["10.0.0.21"]
    status = run(logs=[FIXTURES / "e2016-s1"]).by_id("status-5.7.54")
    assert status.evidence["by_destination_domain"][0]["key"] == "customer.example"   # the RCPT before
    assert status.evidence["by_client"][0]["key"] == "10.0.0.21"
    s5 = run(logs=[FIXTURES / "e2016-s5"]).by_id("kb895853-s5-destination-requires-auth")
    assert s5.evidence["support"]["remote_hosts"][0]["key"] == "198.51.100.25"


def test_mail_log_retries_and_queued_messages_are_not_counted_twice(tmp_path):
    log = tmp_path / "mail.log"
    line = ("Nov 27 05:40:{s:02d} mail postfix/smtp[{p}]: {qid}: to=<u@slow.example>, relay=mx.slow.example"
            "[192.0.2.40]:25, delay=1, dsn=4.2.0, status=deferred (host mx.slow.example[192.0.2.40] said: "
            "450 4.2.0 try later)")
    log.write_text("\n".join([line.format(s=i, p=100 + i, qid="AAA111") for i in range(5)]
                             + [line.format(s=30, p=200, qid="QUEUED1")]) + "\n")
    queued = record("QUEUED1", recipients=["u@slow.example"],
                    details={"recipient_status": {"u@slow.example": {"status": "4.2.0", "reason": "450 4.2.0 try later"}}})
    finding = run([queued], logs=[log]).by_id("status-4.2.0")
    # one from the spool record, one for the message only the log knows (five retries)
    assert finding.evidence["count"] == 2


@pytest.mark.parametrize("name", ["postfix", "exim", "sendmail"])
def test_real_mta_corpora_tell_both_relay_cases_apart(name):
    from corpus import corpus_dir

    result = diagnose(corpus_dir(name) / "spool", logs=[corpus_dir(name) / "logs"],
                      settings={"local_domains": ["example.com"]})
    compromised = result.by_id("compromised-account")
    assert [a["account"] for a in compromised.evidence["accounts"]] == ["scanner"]
    assert compromised.severity == "critical"
    relay_ips = {m["client_ip"] for m in _manifest_by(name, scenario="open-relay")}
    assert {c["client"] for c in result.by_id("open-relay").evidence["clients"]} == relay_ips
    legit = {m["account"] for m in _manifest_by(name, kind="legit") if m.get("account")}
    named = {a["account"] for a in compromised.evidence["accounts"] + compromised.evidence["also_suspicious"]}
    assert not legit & named                     # no legitimate user called compromised or suspicious
    # every remote delivery was pointed at a closed port: the queue is stuck, 4.x statuses explain it
    stuck = result.by_id("stuck-destinations")
    assert stuck.evidence["count"] >= 20
    assert any(f.startswith("status-4.") for f in result.ids())
    assert not kb_ids(result)                    # no Exchange scenario claimed on a Unix MTA


def test_exchange2016_ndrs_and_protocol_log():
    from corpus import corpus_dir

    result = diagnose(corpus_dir("exchange2016") / "spool", settings={"local_domains": ["example.com"]})
    assert [a["account"] for a in result.by_id("compromised-account").evidence["accounts"]] == ["scanner"]
    relay_ips = {m["client_ip"] for m in _manifest_by("exchange2016", scenario="open-relay")}
    assert {c["client"] for c in result.by_id("open-relay").evidence["clients"]} == relay_ips
    for code in ("5.0.0", "5.7.1", "5.7.3"):            # the three NDR cases the corpus carries
        assert result.by_id(f"status-{code}").evidence["count"] >= 1
    assert "kb895853-s5-destination-requires-auth" in result.ids()
    failed = result.by_id("status-535")                 # SmtpReceive '535 5.7.3 Authentication unsuccessful'
    assert failed is not None and failed.evidence["by_client"][0]["key"].startswith("203.0.113.")


def test_package_level_call_keeps_the_module():
    import queuetool
    import queuetool.diagnose as diagnose_module

    assert queuetool.diagnose is diagnose_module and callable(queuetool.diagnose)
    result = queuetool.diagnose(records=[], settings=OURS, use_trace=False)
    assert isinstance(result, diagnose_module.DiagnoseResult) and result.findings == []
