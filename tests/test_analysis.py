"""analysis.analyze: the pipeline every verb uses — scoring, campaigns, spool context, hooks."""
from __future__ import annotations

import os
import random
from pathlib import Path

from hypothesis import HealthCheck, given, settings as hsettings, strategies as st

from queuetool import analysis
from queuetool.analysis import AccountStats, analyze, analyze_records
from queuetool.config import Settings, load_settings
from queuetool.headers import parse_header_block
from queuetool.model import QueuedMessage
from queuetool.score import engine
from queuetool.score.rules import Rule

from score.synthetic import OURS, make_record

SPAM = ("Received: from x ([203.0.113.7]) by mail.example.com with ESMTP id {i}; Fri, 27 Nov 2026 05:00:00 +0000\n"
        "From: Canadian Pharmacy <pharmacy{n}@example.com>\nTo: victim{i}@victim{i}.example\n"
        "Subject: Cheap pharmacy meds {i}% off for victim{i}\nMessage-ID: <{i}@rx.test>\n"
        "Date: Fri, 27 Nov 2026 05:00:00 +0000\n\nBuy now http://bit.ly/{i}\n")
LEGIT = ("Received: from alice-pc by mail.example.com with ESMTPA id L{i}; Fri, 27 Nov 2026 05:00:00 +0000\n"
         "From: Alice Adams <alice@example.com>\nTo: joe@partner.example\nSubject: Minutes of meeting {i}\n"
         "Message-ID: <L{i}@example.com>\nDate: Fri, 27 Nov 2026 05:00:00 +0000\n\nSee you.\n")


def write_spool(root: Path, spam: int = 6, legit: int = 2) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for i in range(spam):
        (root / f"s{i:03d}.eml").write_text(SPAM.format(i=i, n=i % 2))
    for i in range(legit):
        (root / f"l{i:03d}.eml").write_text(LEGIT.format(i=i))
    for path in root.iterdir():
        os.utime(path, (1795755600, 1795755600))  # 2026-11-27T05:00:00Z
    return root


def by_id(records):
    return {r.id: (r.score, r.verdict, [h.to_dict() for h in r.rules], r.campaign) for r in records}


def test_analyze_scores_clusters_and_explains(tmp_path):
    spool = write_spool(tmp_path / "q")
    records = list(analyze(spool, settings=OURS))
    assert len(records) == 8
    spam = [r for r in records if r.id.startswith("s")]
    legit = [r for r in records if r.id.startswith("l")]
    assert {r.verdict for r in spam} == {"spam"}
    assert {r.verdict for r in legit} == {"clean"}
    campaigns = {r.campaign for r in spam}
    assert len(campaigns) == 1 and None not in campaigns
    assert all(r.campaign != spam[0].campaign for r in legit)
    for record in spam:
        assert record.score == sum(h.points for h in record.rules)
        assert any(h.rule == "campaign_size" and h.points > 0 for h in record.rules)
        assert all(h.why for h in record.rules)
        assert record.headers == []  # dropped unless asked for


def test_parallel_unordered_and_repeated_runs_agree(tmp_path):
    spool = write_spool(tmp_path / "q", spam=40, legit=10)
    first = by_id(analyze(spool, settings=OURS))
    assert by_id(analyze(spool, settings=OURS, jobs=2, ordered=False)) == first
    assert by_id(analyze(spool, settings=OURS)) == first


def test_campaign_ids_depend_on_content_not_paths_or_order(tmp_path):
    one = write_spool(tmp_path / "one")
    two = tmp_path / "two"
    two.mkdir()
    for path in sorted(one.iterdir(), reverse=True):  # other names, other order
        (two / f"z-{path.stem}.eml").write_bytes(path.read_bytes())
        os.utime(two / f"z-{path.stem}.eml", (1795755600, 1795755600))
    a = {r.id: r.campaign for r in analyze(one, settings=OURS)}
    b = {r.id[2:]: r.campaign for r in analyze(two, settings=OURS)}
    assert a == b and any(a.values())


def test_inferred_domains_are_marked(tmp_path):
    spool = write_spool(tmp_path / "q")
    records = list(analyze(spool, settings=Settings()))
    marks = [h for r in records for h in r.rules if h.rule == "inferred_domains"]
    assert len(marks) == len(records)
    assert "example.com" in marks[0].why


def test_full_runs_body_rules(tmp_path):
    spool = write_spool(tmp_path / "q")
    records = {r.id: r for r in analyze(spool, settings=OURS, full=True)}
    rules = {h.rule for h in records["s000"].rules}
    assert "url_shortener" in rules and "body_rules_skipped" not in rules
    header_only = {r.id: r for r in analyze(spool, settings=OURS)}
    assert "body_rules_skipped" in {h.rule for h in header_only["s000"].rules}


def test_account_stats_are_collected(tmp_path):
    spool = write_spool(tmp_path / "q")
    stats: dict[str, AccountStats] = {}
    list(analyze(spool, settings=OURS, account_stats=stats))
    assert "(authenticated)" in stats  # the ESMTPA Received hop without a name
    assert stats["(authenticated)"].messages == 2
    assert stats["(authenticated)"].flagged == 0 and stats["(authenticated)"].from_mismatch == 0
    assert stats["(authenticated)"].first_seen == "2026-11-27T05:00:00Z"


def test_failing_rule_is_reported_on_its_record_and_scan_goes_on(tmp_path, monkeypatch):
    def explodes_on_spam(inp):
        if "pharmacy" in (inp.record.header_from or "").lower():
            raise ZeroDivisionError("strange message")
        return None

    broken = Rule("explodes", 1.0, "spam", "record", "test rule", explodes_on_spam)
    monkeypatch.setattr(engine, "RULES", engine.RULES + (broken,))
    spool = write_spool(tmp_path / "q")
    records = list(analyze(spool, settings=OURS))
    assert len(records) == 8
    failed = [r for r in records if r.details.get("rule_errors") == ["explodes"]]
    assert len(failed) == 6
    for record in failed:
        note = next(h for h in record.rules if h.rule == "explodes")
        assert note.points == 0 and "ZeroDivisionError" in note.why
        assert record.verdict == "spam"  # the other rules still decided
        assert record.error is None


def test_log_attribution_runs_before_scoring_and_feeds_account_verdicts(tmp_path, monkeypatch):
    from queuetool import trace

    seen_accounts, seen_indexes = {}, []

    def enrich_record(record, index, server_names=()):
        seen_indexes.append(index)
        record.auth_user = "scanner"  # what the logs would say

    def verdicts(accounts, logset):
        seen_accounts.update(accounts)
        return {"scanner": "compromised"}

    monkeypatch.setattr(trace, "enrich_record", enrich_record)
    monkeypatch.setattr(trace, "account_verdicts", verdicts)
    log = tmp_path / "mail.log"
    log.write_text("")
    spool = write_spool(tmp_path / "q")
    records = list(analyze(spool, settings=OURS, logs=[log]))
    assert set(seen_accounts) == {"scanner"}
    assert len(seen_indexes) == 8 and all(isinstance(i, trace.LogIndex) for i in seen_indexes)
    for record in records:
        rules = {h.rule: h for h in record.rules}
        assert rules["account_trace_verdict"].points == 3.0
    spam = next(r for r in records if r.id == "s000")
    assert "sender_not_owned" in {h.rule for h in spam.rules}  # scored after enrichment


HEADER_NAMES = st.sampled_from(["From", "To", "Subject", "Date", "Message-ID", "Received", "Content-Type",
                                "X-MS-Exchange-Organization-SCL", "X-MS-Exchange-Organization-AuthAs"])
ADDRESSES = st.one_of(st.none(), st.just(""), st.just("MAILER-DAEMON"), st.emails(),
                      st.text(max_size=30), st.sampled_from(["a@example.com", "x@rx.test", "<>", "@", "a@"]))


@st.composite
def records(draw):
    headers = draw(st.lists(st.tuples(HEADER_NAMES, st.text(max_size=60)), max_size=8))
    record = QueuedMessage(
        mta="eml", id=draw(st.text(alphabet="abcdef0123456789", min_size=1, max_size=8)),
        sender=draw(ADDRESSES), recipients=draw(st.lists(st.emails() | st.text(max_size=20), max_size=6)),
        client_ip=draw(st.one_of(st.none(), st.ip_addresses().map(str), st.text(max_size=15))),
        auth_user=draw(st.one_of(st.none(), st.sampled_from(["alice", "scanner", "DOM\\bob", ""]))),
        arrival=draw(st.one_of(st.none(), st.just("2026-11-27T05:00:00Z"), st.text(max_size=20))),
        queue=draw(st.sampled_from([None, "deferred", "maildrop", "pickup"])),
    )
    record.headers = [(name, value) for name, value in headers]
    record.header_from, record.subject = record.header("From"), record.header("Subject")
    record.message_id, record.date = record.header("Message-ID"), record.header("Date")
    return record


def _copy(record: QueuedMessage) -> QueuedMessage:
    data = record.to_dict(with_headers=True)
    return QueuedMessage.from_dict(data)


@given(st.lists(records(), max_size=12, unique_by=lambda r: r.id), st.randoms())
@hsettings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_scores_are_deterministic_and_independent_of_order(items, rnd):
    first = by_id(analyze_records([_copy(r) for r in items], OURS))
    shuffled = [_copy(r) for r in items]
    rnd.shuffle(shuffled)
    assert by_id(analyze_records(shuffled, OURS)) == first
    for score, verdict, _rules, _campaign in first.values():
        assert verdict in ("spam", "relay", "backscatter", "clean")
        assert isinstance(score, float)


@given(st.binary(max_size=600))
@hsettings(max_examples=150, deadline=None)
def test_hostile_header_bytes_never_raise(raw):
    record = QueuedMessage(mta="eml", id="x", sender="a@b.test", recipients=["c@d.test"])
    record.headers = parse_header_block(raw)
    out = list(analyze_records([record], OURS))
    assert len(out) == 1 and out[0].verdict is not None and "rule_errors" not in out[0].details


def test_load_settings_roundtrip_into_analysis(tmp_path):
    config = tmp_path / "queuetool.toml"
    config.write_text('[domains]\nlocal = ["example.com"]\n[thresholds]\nspam = 50\n')
    spool = write_spool(tmp_path / "q")
    records = list(analyze(spool, settings=load_settings(config)))
    assert {r.verdict for r in records} == {"clean"}  # nothing reaches 50 points


def _fragile_rule(inp):
    """Fails on most strange messages: the subject must be a number."""
    return f"subject {int(inp.record.subject or 'none')}" if inp.record.subject else None


@given(st.lists(records(), min_size=1, max_size=10, unique_by=lambda r: r.id))
@hsettings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_a_rule_failing_on_strange_messages_is_reported_and_the_scan_goes_on(items):
    import pytest

    fragile = Rule("fragile", 1.0, "spam", "record", "test rule", _fragile_rule)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(engine, "RULES", engine.RULES + (fragile,))
        out = list(analyze_records([_copy(r) for r in items], OURS))
    assert [r.id for r in out] == [r.id for r in items]
    for record in out:
        hits = [h for h in record.rules if h.rule == "fragile"]
        try:
            int(record.subject or "none")
            should_fail = False
        except ValueError:
            should_fail = bool(record.subject)
        assert (record.details.get("rule_errors") == ["fragile"]) == should_fail
        if should_fail:
            assert hits[0].points == 0.0 and "rule failed" in hits[0].why
        assert record.verdict in ("spam", "relay", "backscatter", "clean")


# ---- the two-pass worker pipeline: rendered lines, early stop, order-independent accounts


def test_lines_rendered_by_workers_equal_records_written_here(tmp_path):
    import io

    from queuetool import output
    from queuetool.analysis import analyze_lines

    spool = write_spool(tmp_path / "q", spam=300, legit=40)  # several batches of 128
    for fmt in output.FORMATS:
        expected = io.StringIO()
        output.write_records(analyze(spool, settings=OURS), fmt, expected)
        got = io.StringIO()
        batches = list(analyze_lines(spool, output.record_renderer(fmt), settings=OURS, jobs=2))
        assert sum(len(lines) for lines, _ in batches) == 340
        assert sum(unreadable for _, unreadable in batches) == 0
        output.write_record_lines((lines for lines, _ in batches), fmt, got)
        assert got.getvalue() == expected.getvalue(), fmt


def _fragile_spool_rule(inp):
    """A spool rule that fails on every record of a campaign (and on no other)."""
    if inp.spool.campaign:
        raise ValueError("campaign rule broke")
    return None


def test_json_lines_kept_as_text_between_passes_equal_records_when_spool_rules_fail(tmp_path, monkeypatch):
    import io

    from queuetool import output
    from queuetool.analysis import analyze_lines

    fragile = Rule("fragile_spool", 1.0, "spam", "spool", "test rule", _fragile_spool_rule)
    fragile_record = Rule("fragile", 1.0, "spam", "record", "test rule", lambda inp: 1 / 0)
    monkeypatch.setattr(engine, "RULES", engine.RULES + (fragile_record, fragile))
    spool = write_spool(tmp_path / "q", spam=150, legit=10)
    renderer = output.record_renderer("jsonl", with_headers=True)
    assert renderer.renders_json
    expected = io.StringIO()
    records = list(analyze(spool, settings=OURS))
    output.write_records(records, "jsonl", expected, with_headers=True)
    got = io.StringIO()
    output.write_record_lines((lines for lines, _ in analyze_lines(spool, renderer, settings=OURS)), "jsonl", got)
    assert got.getvalue() == expected.getvalue()
    failed = [r for r in records if "fragile_spool" in r.details.get("rule_errors", [])]
    assert failed and all(r.details["rule_errors"] == ["fragile", "fragile_spool"] for r in failed)


def test_stopping_early_leaves_no_workers_or_spill_files(tmp_path, monkeypatch):
    import multiprocessing
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    spool = write_spool(tmp_path / "q", spam=300, legit=40)
    records = analyze(spool, settings=OURS, jobs=2)
    first = next(records)
    assert first.verdict in ("spam", "clean")
    records.close()
    assert list((tmp_path / "tmp").iterdir()) == []
    assert multiprocessing.active_children() == []


def test_account_sets_keep_the_smallest_values_whatever_the_merge_order():
    values = [f"198.51.{i // 250}.{i % 250}" for i in range(700)]
    parts = []
    for chunk in range(7):
        part = AccountStats("scanner")
        for value in values[chunk * 100:(chunk + 1) * 100]:
            analysis._add_capped(part.client_ips, value)
        parts.append(part)
    results = []
    for order in (parts, parts[::-1], random.Random(3).sample(parts, len(parts))):
        total = AccountStats("scanner")
        for part in order:
            total.merge(part)
        analysis.trim_account_sets({"scanner": total})
        results.append(total.to_dict()["client_ips"])
    assert results[0] == results[1] == results[2] == sorted(values)[:analysis.ACCOUNT_SET_CAP]
