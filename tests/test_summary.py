"""summary: qshape-style tables in one pass, bounded rows, and the CLI verb."""
from __future__ import annotations

import csv
import datetime as dt
import io
import json

import pytest
from click.testing import CliRunner

from queuetool.cli import main
from queuetool.model import QueuedMessage
from queuetool.summary import AGE_BUCKETS_MINUTES, OTHER, TOTAL, age_bucket, age_labels, summarize

from corpus import CORPORA

NOW = dt.datetime(2026, 11, 27, 12, 0, tzinfo=dt.timezone.utc)


def msg(i: int, minutes_old: float, recipients: list[str], sender: str = "a@example.com", **kw) -> QueuedMessage:
    arrival = (NOW - dt.timedelta(minutes=minutes_old)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return QueuedMessage(mta="postfix", id=f"M{i}", arrival=arrival, recipients=recipients, sender=sender, **kw)


def test_age_buckets_are_geometric_like_qshape():
    assert age_labels() == ["5", "10", "20", "40", "80", "160", "320", "640", "1280", "1280+"]
    assert age_bucket((NOW - dt.timedelta(minutes=3)).strftime("%Y-%m-%dT%H:%M:%SZ"), NOW) == "5"
    assert age_bucket((NOW - dt.timedelta(minutes=7)).strftime("%Y-%m-%dT%H:%M:%SZ"), NOW) == "10"
    assert age_bucket((NOW - dt.timedelta(days=3)).strftime("%Y-%m-%dT%H:%M:%SZ"), NOW) == "1280+"
    assert age_bucket(None, NOW) == "1280+"
    assert age_bucket("garbage", NOW) == "1280+"


def test_domain_table_counts_messages_per_domain_and_bucket():
    records = [
        msg(1, 1, ["a@gmail.test", "b@gmail.test"], verdict="spam"),
        msg(2, 30, ["c@gmail.test", "d@yahoo.test"], verdict="clean"),
        msg(3, 3000, ["e@yahoo.test"], verdict="relay"),
    ]
    result = summarize(records, "domain", now=NOW)
    rows = {row["domain"]: row for row in result.rows}
    assert rows[TOTAL]["T"] == 3 and rows[TOTAL]["flagged"] == 2
    assert rows["gmail.test"]["T"] == 2 and rows["gmail.test"]["5"] == 1 and rows["gmail.test"]["40"] == 1
    assert rows["yahoo.test"]["1280+"] == 1 and rows["yahoo.test"]["flagged"] == 1
    assert [row["domain"] for row in result.rows] == [TOTAL, "gmail.test", "yahoo.test"]


def test_sender_client_account_rows():
    records = [msg(1, 1, ["x@y.test"], sender="", client_ip="192.0.2.1"),
               msg(2, 1, ["x@y.test"], sender="p@rx.test", auth_user="scanner")]
    senders = {row["sender"] for row in summarize(records, "sender", now=NOW).rows}
    assert senders == {TOTAL, "<>", "rx.test"}
    clients = {row["client"] for row in summarize(records, "client", now=NOW).rows}
    assert clients == {TOTAL, "192.0.2.1", "(unknown)"}
    accounts = {row["account"] for row in summarize(records, "account", now=NOW).rows}
    assert accounts == {TOTAL, "scanner", "(no login)"}


def test_age_table():
    records = [msg(1, 1, ["a@x.test"], verdict="spam"), msg(2, 1, ["a@x.test", "b@x.test"], verdict="clean")]
    rows = {row["age"]: row for row in summarize(records, "age", now=NOW).rows}
    assert rows["5"]["messages"] == 2 and rows["5"]["recipients"] == 3 and rows["5"]["spam"] == 1
    assert len(rows) == len(AGE_BUCKETS_MINUTES) + 1


def test_campaign_table():
    records = [msg(i, i, ["a@x.test"], campaign="c1", auth_user="scanner", client_ip=f"203.0.113.{i}",
                   subject=f"Cheap meds {i}", verdict="spam") for i in range(1, 5)]
    records.append(msg(9, 1, ["a@x.test"], campaign=None))
    (row,) = summarize(records, "campaign", now=NOW).rows
    assert row["campaign"] == "c1" and row["size"] == 4 and row["flagged"] == 4
    assert row["accounts"] == ["scanner"] and len(row["clients"]) == 4
    assert row["subject"] == "Cheap meds 4"  # the earliest message's subject
    assert row["first_seen"] < row["last_seen"]


def test_rows_are_bounded_and_pooled():
    records = (msg(i, 1, [f"u@d{i}.test"]) for i in range(500))  # a generator: one pass
    result = summarize(records, "domain", now=NOW, max_keys=50)
    keys = [row["domain"] for row in result.rows]
    assert len(keys) == 52 and keys[-1] == OTHER
    assert next(r for r in result.rows if r["domain"] == OTHER)["T"] == 450
    assert result.pooled_keys == 450


def test_unknown_kind_is_refused():
    with pytest.raises(ValueError):
        summarize([], "colour")


@pytest.mark.parametrize("by", ["domain", "age", "account", "campaign", "client", "sender"])
def test_cli_summary_on_postfix_corpus(by):
    result = CliRunner().invoke(main, ["summary", str(CORPORA / "postfix" / "spool"), "--by", by,
                                       "--local-domain", "example.com", "--format", "json", "-q"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["by"] == by and data["messages"] > 0 and data["rows"]


def test_cli_summary_csv_and_inferred_domains_on_stderr():
    result = CliRunner().invoke(main, ["summary", str(CORPORA / "sendmail" / "spool"), "--format", "csv", "-q"])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert rows[0]["domain"] == TOTAL and int(rows[0]["T"]) > 0
    assert "inferred: example.com" in result.stderr


def test_table_never_cuts_numbers_and_keeps_domains_readable():
    import io

    from queuetool.output import write_rows

    out = io.StringIO()
    write_rows([{"domain": "freemail.test", "T": 1234567}], "table", out, [("domain", "DOMAIN", 0), ("T", "T", 3)])
    row = out.getvalue().splitlines()[1]
    assert "1234567" in row and row.startswith("freemail.test")


def test_summary_reads_the_logs_inside_a_server_tree_unless_told_not_to():
    """Exchange 2003 queue files name no account; the W3C log + Event 1708 exports copied
    with the server tree do, and every spool verb reads them like trace does."""
    from click.testing import CliRunner

    from corpus import CORPORA, load_manifest
    from queuetool.cli import main

    spool = CORPORA / "exchange2003" / "spool"
    expected = sum(1 for m in load_manifest("exchange2003") if m.get("account") == "scanner")
    args = ["summary", str(spool), "--by", "account", "--local-domain", "example.com", "--format", "json", "-j", "1"]
    rows = {r["account"]: r for r in json.loads(CliRunner().invoke(main, args).stdout)["rows"]}
    assert rows["scanner"]["T"] == expected
    bare = json.loads(CliRunner().invoke(main, args + ["--no-logs-below"]).stdout)["rows"]
    assert "scanner" not in {r["account"] for r in bare}
