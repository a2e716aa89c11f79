"""trace: joining logs to queue records, per-account judgement, ranking, CLI."""
import json

from click.testing import CliRunner
from hypothesis import given, settings as hsettings, strategies as st

from queuetool.cli import main
from queuetool.config import Settings
from queuetool.logs import LogEvent, LogMessage, LogSet, Session, read_logs
from queuetool.model import QueuedMessage
from queuetool.trace import (
    LogIndex, account_verdicts, collect, enrich_records, join_event_1708, judge,
)

OURS = Settings(local_domains=frozenset({"example.com"}))

W3C = """\
#Software: Microsoft Internet Information Services 6.0
#Fields: date time c-ip cs-username s-sitename s-computername s-ip s-port cs-method cs-uri-stem cs-uri-query sc-status sc-win32-status sc-bytes cs-bytes time-taken cs-version cs-host cs(User-Agent) cs(Cookie) cs(Referer)
{rows}"""
ROW = "2026-11-27 {t} {ip} {helo} SMTPSVC1 MAIL 10.0.0.1 0 {verb} - {arg} {status} 0 0 0 0 SMTP - - - -\n"


def w3c_session(start_minute: int, ip: str, helo: str, msgid: str, rcpts: list[str], login: bool = True,
                sender: str = "boss@forged.example") -> str:
    t = lambda s: f"10:{start_minute:02d}:{s:02d}"  # noqa: E731
    rows = [ROW.format(t=t(0), ip=ip, helo=helo, verb="EHLO", arg="+" + helo, status=250)]
    if login:
        rows.append(ROW.format(t=t(1), ip=ip, helo=helo, verb="AUTH", arg="+LOGIN", status=235))
    rows.append(ROW.format(t=t(2), ip=ip, helo=helo, verb="MAIL", arg=f"+FROM:<{sender}>", status=250))
    rows += [ROW.format(t=t(3), ip=ip, helo=helo, verb="RCPT", arg=f"+TO:<{r}>", status=250) for r in rcpts]
    rows.append(ROW.format(t=t(4), ip=ip, helo=helo, verb="DATA", arg=f"+<{msgid}>", status=250))
    rows.append(ROW.format(t=t(5), ip=ip, helo=helo, verb="QUIT", arg=helo, status=240))
    return "".join(rows)


def event_1708(hour_minute: str, client: str, user: str) -> str:
    return (f"Event Type:\tInformation\nEvent Source:\tMSExchangeTransport\nEvent Category:\tSMTP Protocol\n"
            f"Event ID:\t1708\nDate:\t\t11/27/2026\nTime:\t\t{hour_minute}\nUser:\t\tN/A\nComputer:\tMAIL\n"
            f"Description:\nSMTP authentication was completed successfully with client {client}. The "
            f"authentication method was Login and the username was EXAMPLE\\{user}.\n\n")


def smtpsvc_record(rid: str, msgid: str, received: bool = False, sender: str = "boss@forged.example") -> QueuedMessage:
    record = QueuedMessage(mta="smtpsvc", id=rid, queue="queue", arrival="2026-11-27T10:00:30Z")
    record.headers = [("Message-ID", f"<{msgid}>"), ("From", sender)]
    if received:  # a queue file as IIS wrote it: client and HELO, never the login
        record.headers.insert(0, ("Received", "from x ([203.0.113.7]) by mail.example.com with Microsoft "
                                              "SMTPSVC(6.0.3790.3959); Fri, 27 Nov 2026 10:00:30 +0000"))
    record.message_id = f"<{msgid}>"
    record.header_from = sender
    return record


def exchange2003_logs(tmp_path, offset_hours: int = 1):
    sessions = "".join(w3c_session(m, f"203.0.113.{m}", f"host{m}", f"spam{m}@forged.example",
                                   [f"u{m}@d{m}.example", f"v{m}@e{m}.example"]) for m in range(1, 5))
    sessions += w3c_session(30, "10.0.0.21", "alice-pc.example.com", "a1@example.com", ["joe@partner.example"],
                            sender="alice@example.com")
    (tmp_path / "ex261127.log").write_text(W3C.format(rows=sessions))
    # Event Viewer exported in local time (UTC+1): every 1708 is an hour "late".
    hour = 10 + offset_hours
    events = "".join(event_1708(f"{hour}:{m:02d}:01 AM", f"203.0.113.{m}", "scanner") for m in range(1, 5))
    events += event_1708(f"{hour}:30:01 AM", "10.0.0.21", "alice")
    (tmp_path / "AppEvent.txt").write_text(events)
    return [tmp_path / "ex261127.log", tmp_path / "AppEvent.txt"]


def test_exchange2003_login_comes_only_from_event_1708_joined_to_w3c(tmp_path):
    paths = exchange2003_logs(tmp_path)
    records = [smtpsvc_record(f"NTFS_{m}", f"spam{m}@forged.example", received=m == 4) for m in range(1, 5)]
    records.append(smtpsvc_record("NTFS_alice", "a1@example.com", sender="alice@example.com"))
    # without the logs nobody is named: the queue files carry no login
    assert [r.auth_user for r in enrich_records([smtpsvc_record("x", "spam1@forged.example")], None)] == [None]
    logset = read_logs(paths)
    enriched = list(enrich_records(records, logset))
    assert [r.auth_user for r in enriched] == ["scanner"] * 4 + ["alice"]
    assert {r.auth_evidence for r in enriched} == {"log:iis-w3c+event1708"}
    assert enriched[0].recipients == ["u1@d1.example", "v1@e1.example"]  # envelope from the RCPT lines
    assert enriched[0].details["recipients_from"] == "log:iis-w3c"
    assert enriched[0].helo == "host1" and enriched[0].client_ip == "203.0.113.1"
    assert enriched[3].helo == "x" and enriched[3].client_ip == "203.0.113.7"  # own hop beats the log
    assert logset._trace_index.joins["event1708"]["clock_offset_seconds"] == -3600
    entries, total, _ = collect(enriched, OURS, LogIndex.build(read_logs(paths)))
    for entry in entries.values():
        judge(entry)
    assert total == 5 and entries["scanner"].messages == 4 and len(entries["scanner"].client_ips) == 5
    assert entries["alice"].verdict == "normal"


def test_event_1708_without_a_matching_w3c_session_names_nobody(tmp_path):
    paths = exchange2003_logs(tmp_path)
    (tmp_path / "AppEvent.txt").write_text(event_1708("11:01:01 AM", "198.51.100.99", "scanner"))
    logset = read_logs(paths)
    report = join_event_1708(logset)
    assert report["joined"] == 0
    assert [r.auth_user for r in enrich_records([smtpsvc_record("x", "spam1@forged.example")], logset)] == [None]


def test_stronger_evidence_is_never_overwritten():
    record = QueuedMessage(mta="postfix", id="4ABC123", auth_user="alice", auth_evidence="spool:sasl_username")
    session = Session("postfix", session_id="s", auth_user="mallory", client_ip="203.0.113.9",
                      messages=[LogMessage(queue_id="4ABC123", recipients=["x@y.example"])])
    [out] = enrich_records([record], LogSet(sessions=[session]))
    assert (out.auth_user, out.auth_evidence) == ("alice", "spool:sasl_username")
    assert out.details["log_auth_user"] == "mallory (log:postfix)"
    assert out.client_ip == "203.0.113.9" and out.recipients == ["x@y.example"]


def test_own_hop_header_beats_logs_and_foreign_markers_are_flagged():
    record = QueuedMessage(mta="exim", id="1qDO9M-0003B3-2p")
    record.headers = [
        ("Received", "from [203.0.113.7] (helo=x) by mail.example.com with esmtp (Exim 4.96) id 1qDO9M-0003B3-2p; Fri"),
        ("Received", "from pc ([198.51.100.7]) (Authenticated sender: ceo) by smtp.other.example with ESMTPSA; Fri"),
    ]
    [out] = enrich_records([record], None)
    assert out.auth_user is None and out.details["spoofed_auth_markers"]
    record.headers[0] = ("Received", "from scan ([203.0.113.7]) (Authenticated sender: scanner) "
                                     "by mail.example.com (Postfix) with ESMTPA id 1; Fri")
    session = Session("exim", auth_user="other", messages=[LogMessage(queue_id="1qDO9M-0003B3-2p")])
    [out] = enrich_records([record], LogSet(sessions=[session]))
    assert (out.auth_user, out.auth_evidence) == ("scanner", "header:Received (Authenticated sender)")


def _messages(account: str, count: int, senders, rcpt_domains, ips, helos, hour="2026-11-27T05"):
    out = []
    for i in range(count):
        rec = QueuedMessage(mta="postfix", id=f"{account}{i}", auth_user=account, sender=senders[i % len(senders)],
                            recipients=[f"r{i}@{rcpt_domains[i % len(rcpt_domains)]}"],
                            client_ip=ips[i % len(ips)], helo=helos[i % len(helos)],
                            arrival=f"{hour}:{i % 60:02d}:00Z", verdict="spam" if account == "scanner" else "clean")
        rec.header_from = rec.sender
        out.append(rec)
    return out


def test_judge_calls_the_campaign_account_compromised_and_office_users_normal():
    records = _messages("scanner", 30, ["boss@forged.example", "info@pharma.example"],
                        [f"d{i}.example" for i in range(15)], [f"203.0.113.{i}" for i in range(5)],
                        ["ylmf-pc", "WIN-7QK2M", "printer.local"])
    records += _messages("alice", 4, ["alice@example.com"], ["partner.example", "example.com"], ["10.0.0.21"],
                         ["alice-pc.office.example.com"], hour="2026-11-27T09")
    session = Session("postfix", start="2026-11-27T04:00:00Z", failed_logins=["scanner"] * 4 + ["admin"] * 5)
    entries, _, _ = collect(records, OURS, LogIndex.build(LogSet(sessions=[session])))
    for entry in entries.values():
        judge(entry)
    scanner, alice, admin = entries["scanner"], entries["alice"], entries["admin"]
    assert scanner.verdict == "compromised" and scanner.from_mismatch == 30
    assert scanner.failed_logins == 4 and scanner.failed_before_success == 0  # no logged success time
    assert any("outside domains" in why for why in scanner.evidence)
    assert any("Reset the password of scanner" in step for step in scanner.remedy)
    assert any("reject_sender_login_mismatch" in step for step in scanner.remedy)
    assert alice.verdict == "normal" and alice.remedy == [] and alice.from_mismatch == 0
    assert admin.verdict == "suspicious" and admin.messages == 0 and admin.failed_logins == 5


def test_unauthenticated_relay_gets_an_entry_per_client_and_inbound_does_not():
    relay = QueuedMessage(mta="postfix", id="R1", sender="a@bulk.test", recipients=["x@a.example", "y@b.example"],
                          client_ip="192.0.2.15", helo="relay-test")
    inbound = QueuedMessage(mta="postfix", id="I1", sender="joe@partner.example",
                            recipients=["team@partner.example"], done_recipients=["bob@example.com"],
                            client_ip="198.51.100.10")
    web = QueuedMessage(mta="postfix", id="W1", sender="www-data@example.com", recipients=["x@freemail.test"])
    entries, total, unattributed = collect([relay, inbound, web], OURS, None)
    assert set(entries) == {"relay:192.0.2.15", "local:www-data"} and (total, unattributed) == (3, 1)
    for entry in entries.values():
        judge(entry)
    assert entries["relay:192.0.2.15"].verdict == "suspicious"
    assert any("mynetworks" in step for step in entries["relay:192.0.2.15"].remedy)


def test_account_verdicts_for_the_scorer():
    class Stats:  # the fields analysis.AccountStats has
        def __init__(self, **kw):
            self.__dict__.update(dict(messages=0, flagged=0, recipients=0, recipient_domains=set(),
                                      client_ips=set(), helos=set(), first_seen=None, last_seen=None,
                                      from_mismatch=0), **kw)

    accounts = {
        "scanner": Stats(messages=25, flagged=25, recipients=60, recipient_domains={f"d{i}.example" for i in range(12)},
                         client_ips={"203.0.113.1", "203.0.113.2", "203.0.113.3"}, helos={"a", "b", "c"},
                         from_mismatch=25),
        "EXAMPLE\\alice": Stats(messages=4, recipients=5, recipient_domains={"partner.example"},
                                client_ips={"10.0.0.21"}, helos={"alice-pc.example.com"}),
    }
    assert account_verdicts(accounts, LogSet()) == {"scanner": "compromised", "EXAMPLE\\alice": "normal"}


@hsettings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 2000), st.sampled_from(["203.0.113.7", "host", "", "::1"]),
                          st.text(max_size=20)), max_size=15),
       st.lists(st.tuples(st.sampled_from(["203.0.113.7", "10.0.0.1"]), st.integers(0, 2000),
                          st.lists(st.sampled_from(["235", "535", "334", "-"]), max_size=3)), max_size=15))
def test_joins_never_raise_on_odd_logs(events, sessions):
    logset = LogSet()
    for second, client, user in events:
        logset.events.append(LogEvent("windows-events", event_id=1708, time=f"2026-11-27T10:{second // 60 % 60:02d}:{second % 60:02d}Z",
                                      message=f"SMTP authentication was completed successfully with client {client}. "
                                              f"The authentication method was Login and the username was {user}."))
    for ip, second, statuses in sessions:
        logset.sessions.append(Session("iis-w3c", client_ip=ip, start=f"2026-11-27T10:{second // 60 % 60:02d}:{second % 60:02d}Z",
                                       details={"auth_status": statuses},
                                       messages=[LogMessage(message_id="<m@x>")]))
    record = QueuedMessage(mta="smtpsvc", id="x", message_id="<m@x>", arrival="2026-11-27T10:00:00Z")
    [out] = enrich_records([record], logset)
    assert out.error is None


def test_cli_trace_json_and_table(tmp_path, monkeypatch):
    import queuetool.trace as trace_module

    records = _messages("scanner", 12, ["boss@forged.example"], [f"d{i}.example" for i in range(12)],
                        ["203.0.113.1", "203.0.113.2", "203.0.113.3"], ["ylmf-pc"])
    records += _messages("bob", 2, ["bob@example.com"], ["partner.example"], ["10.0.0.22"], ["bob-pc.example.com"])

    def fake_trace(source, **kwargs):
        entries, total, unattributed = collect(records, OURS, None)
        for entry in entries.values():
            judge(entry)
        ranked = sorted(entries.values(), key=lambda e: (trace_module.VERDICT_RANK[e.verdict], -e.score))
        return trace_module.TraceResult(ranked, [], {}, total, unattributed)

    monkeypatch.setattr(trace_module, "trace", fake_trace)
    spool = tmp_path / "spool"
    spool.mkdir()
    result = CliRunner().invoke(main, ["trace", str(spool), "--format", "json", "--no-logs-below",
                                       "--local-domain", "example.com"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert [a["account"] for a in data["accounts"]] == ["scanner", "bob"]
    first = data["accounts"][0]
    for key in ("account", "messages", "flagged", "recipients", "recipient_domains", "client_ips", "helos",
                "first_seen", "last_seen", "from_mismatch", "failed_logins", "verdict", "evidence", "remedy"):
        assert key in first
    assert first["verdict"] == "compromised" and first["messages"] == 12
    table = CliRunner().invoke(main, ["trace", str(spool), "--no-logs-below", "--local-domain", "example.com"])
    assert table.exit_code == 0 and table.output.splitlines()[1].startswith("compromised scanner")
    assert "Reset the password of scanner" in table.output


def test_cli_scan_log_enriches_records(tmp_path):
    from corpus import copy_corpus

    spool = copy_corpus("exchange2003", tmp_path)
    logs = ["--log", str(spool / "EventLogs"), "--log", str(spool / "WINDOWS")]
    plain = CliRunner().invoke(main, ["scan", str(spool), "--format", "jsonl", "--no-logs-below"])
    found = CliRunner().invoke(main, ["scan", str(spool), "--format", "jsonl"])  # logs inside the tree
    enriched = CliRunner().invoke(main, ["scan", str(spool), "--format", "jsonl", *logs])
    assert plain.exit_code in (0, 3) and enriched.exit_code in (0, 3)
    rows = [json.loads(line) for line in enriched.output.splitlines() if line.startswith("{")]
    scanner = [r for r in rows if r["auth_user"] == "scanner"]
    assert scanner and {r["auth_evidence"] for r in scanner} == {"log:iis-w3c+event1708"}
    assert all(r["recipients"] for r in scanner) and "headers" not in scanner[0]
    assert '"auth_user":"scanner"' not in plain.output
    assert [json.loads(line)["id"] for line in found.stdout.splitlines() if '"auth_user":"scanner"' in line] == \
        [r["id"] for r in scanner]


def test_package_level_call_and_module_names():
    import queuetool
    import queuetool.trace as trace_module

    assert queuetool.trace is trace_module and callable(queuetool.trace)
    assert queuetool.trace.enrich_records is enrich_records
    result = queuetool.trace(_empty_eml_spool(), logs_below=False)
    assert isinstance(result, trace_module.TraceResult) and result.accounts == []


def _empty_eml_spool():
    import tempfile
    from pathlib import Path

    root = Path(tempfile.mkdtemp())
    (root / "a.eml").write_bytes(b"From: a@example.com\r\nTo: b@example.com\r\nSubject: hi\r\n\r\nbody\r\n")
    return root


def test_sendmail_unit_unknown_to_the_log_joins_its_connection_by_pid():
    """A unit caught mid-DATA (df only) has no `from=` line: the pid in its queue id joins it."""
    auth = Session("sendmail", start="2026-11-27T06:01:46Z", auth_user="scanner", client_ip="203.0.113.88",
                   details={"pid": 5454})
    older = Session("sendmail", start="2026-11-27T03:00:00Z", auth_user="alice", details={"pid": 5454})
    # 6AR61jHZ: 2026, month index 10 (Nov), day 27, 06:01:43 -- encoded in the queue id
    record = QueuedMessage(mta="sendmail", id="6AR61jHZ005454", queue="incomplete")
    [out] = enrich_records([record], LogSet(sessions=[older, auth]))
    assert (out.auth_user, out.auth_evidence, out.client_ip) == ("scanner", "log:sendmail", "203.0.113.88")
    other_pid = QueuedMessage(mta="sendmail", id="6AR61jHZ009999", queue="incomplete")
    assert list(enrich_records([other_pid], LogSet(sessions=[auth])))[0].auth_user is None
