"""trace on the real-MTA corpora: the compromised account comes first with the exact count.

Ground truth is each corpus' manifest.jsonl (account `scanner` is the compromised one,
see CONTRIBUTING.md); the expected count is its messages that are in the queue.
"""
import json

import pytest

from corpus import CORPORA, copy_corpus, load_manifest
from queuetool.config import Settings
from queuetool.spools import open_spool
from queuetool.trace import trace

SETTINGS = Settings(local_domains=frozenset({"example.com"}))
LEGITIMATE = {"alice", "bob", "carol"}

# corpus -> logs (relative to the corpus) that name the logins
CORPUS_LOGS = {
    "sendmail": ["logs/mail.log"],
    "exchange2003": [],          # its W3C and event exports lie inside the server tree
    "exchange2016": [],          # protocol and tracking logs inside the server tree
    "postfix": ["logs/mail.log"],
    "exim": ["logs/mainlog"],
}


def corrupt_copies(name: str) -> list[str]:
    """Postfix corpus: ids whose queue file was also copied into corrupt/ (logs/states.txt)."""
    states = CORPORA / name / "logs" / "states.txt"
    if not states.exists():
        return []
    return [line.rsplit("/", 1)[-1].strip() for line in states.read_text().splitlines()
            if line.startswith("corrupt source:")]


def expected_scanner_messages(name: str, spool) -> int:
    queued = set(open_spool(spool).keys())
    rows = load_manifest(name)
    scanner_ids = {row["id"] for row in rows if row["account"] == "scanner"}
    count = sum(1 for row in rows if row["account"] == "scanner" and row["id"] in queued)
    # a corrupt/ copy of one of scanner's queue files is one more unit of scanner's in the queue
    count += sum(1 for source in corrupt_copies(name) if source in scanner_ids)
    assert count > 0, f"corpora/{name}: manifest names no queued message of scanner"
    return count


def run(name: str, tmp_path, logs=(), logs_below=True):
    assert (CORPORA / name / "spool").is_dir(), f"corpora/{name}/spool is missing: run its generate script"
    spool = copy_corpus(name, tmp_path)
    return spool, trace(spool, logs=[CORPORA / name / p for p in logs], settings=SETTINGS, logs_below=logs_below)


@pytest.mark.parametrize("name", sorted(CORPUS_LOGS))
def test_compromised_account_first_with_exact_count(name, tmp_path):
    spool, result = run(name, tmp_path, CORPUS_LOGS[name])
    first = result.accounts[0]
    assert (first.account, first.verdict) == ("scanner", "compromised"), [e.to_dict() for e in result.accounts[:3]]
    assert first.messages == expected_scanner_messages(name, spool)
    # every message with a readable sender is forged (an incomplete unit may have none)
    assert first.from_mismatch >= 0.9 * first.messages and first.failed_logins > 0
    assert len(first.client_ips) >= 3 and first.remedy
    for entry in result.accounts:
        if entry.account in LEGITIMATE:
            assert entry.verdict == "normal", entry.to_dict()
    json.dumps(result.to_dict())  # the --format json payload is JSON-safe


def test_sendmail_names_every_login_only_through_mail_log(tmp_path):
    spool, without = run("sendmail", tmp_path / "a", logs_below=False)
    expected = expected_scanner_messages("sendmail", spool)
    by_account = {e.account: e for e in without.accounts}
    # by default sendmail keeps no login in the queue; only the persisted ${auth_authen} phase does
    assert by_account["scanner"].messages < expected
    assert by_account["(authenticated)"].verdict != "compromised"
    _, with_log = run("sendmail", tmp_path / "b", ["logs/mail.log"], logs_below=False)
    assert with_log.accounts[0].account == "scanner" and with_log.accounts[0].messages == expected
    assert "(authenticated)" not in {e.account for e in with_log.accounts}
    assert with_log.accounts[0].to_dict()["auth_evidence"].get("log:sendmail", 0) > 0


def test_exchange2003_names_the_account_only_through_event_1708_and_w3c(tmp_path):
    spool, without = run("exchange2003", tmp_path / "a", logs_below=False)
    assert "scanner" not in {e.account for e in without.accounts}
    w3c = [p.relative_to(CORPORA / "exchange2003") for p in (CORPORA / "exchange2003" / "spool").rglob("*.log")]
    assert w3c, "exchange2003: no W3C log in the corpus"
    _, w3c_only = run("exchange2003", tmp_path / "b", w3c, logs_below=False)
    assert "scanner" not in {e.account for e in w3c_only.accounts}
    _, both = run("exchange2003", tmp_path / "c")
    first = both.accounts[0]
    assert first.account == "scanner" and first.messages == expected_scanner_messages("exchange2003", spool)
    assert first.to_dict()["auth_evidence"] == {"log:iis-w3c+event1708": first.messages}
    assert both.joins["event1708"]["joined"] > 0


def test_exchange2016_protocol_log_alone_names_the_account(tmp_path):
    """The queue's X-Sender auth= aside, the SmtpReceive log's `authenticated` rows name it too."""
    from queuetool.logs import read_logs
    from queuetool.spools import find_logs
    from queuetool.trace import LogIndex

    spool = copy_corpus("exchange2016", tmp_path)
    protocol = [p for p in find_logs(spool) if "SmtpReceive" in str(p)]
    assert protocol, "exchange2016: no SmtpReceive protocol log"
    index = LogIndex.build(read_logs(protocol))
    logged = [m for s in index.logset.sessions if s.auth_user == "EXAMPLE\\scanner" for m in s.messages]
    expected = expected_scanner_messages("exchange2016", spool)
    assert len(logged) == expected and all(m.message_id for m in logged)
    records = [r for r in open_spool(spool) if r.message_id]
    joined = [index.find(r) for r in records]
    assert sum(1 for hit in joined if hit and hit[0].auth_user == "EXAMPLE\\scanner") == expected
