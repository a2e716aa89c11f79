"""Every JSON output validates against its schema in docs/schema/ (run on the corpora).

The validator itself (tests/schema_check.py) is tested first: it must reject documents
that break each keyword it supports, or the corpus checks below would prove nothing.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from queuetool.cli import main

from corpus import CORPORA, copy_corpus
from schema_check import SCHEMA_DIR, load_schema, validate

SPOOL_CORPORA = [name for name in ("postfix", "exim", "sendmail", "exchange2003", "exchange2016", "eml")
                 if (CORPORA / name / "spool").is_dir()]


def run(*argv: str, codes: tuple[int, ...] = (0, 3)) -> str:
    result = CliRunner().invoke(main, [str(a) for a in argv], catch_exceptions=False)
    assert result.exit_code in codes, f"{argv} exited {result.exit_code}: {result.output[-600:]}"
    return result.stdout


def assert_valid(document, schema_name: str, definition: str | None = None) -> None:
    schema = load_schema(schema_name)
    if definition:
        schema = {"$ref": f"#/$defs/{definition}", "$defs": schema["$defs"]}
    errors = validate(document, schema)
    assert not errors, f"{schema_name}: {errors[:5]}"


# ---- the validator ----

TOY = {
    "type": "object", "required": ["name", "tags"], "additionalProperties": False,
    "properties": {
        "name": {"type": "string"},
        "size": {"type": ["integer", "null"], "minimum": 0},
        "kind": {"enum": ["a", "b"]},
        "tags": {"type": "array", "items": {"$ref": "#/$defs/tag"}},
        "extra": {"type": "object", "additionalProperties": {"type": "integer"}},
    },
    "$defs": {"tag": {"type": "string"}},
}


def test_validator_accepts_a_good_document():
    assert validate({"name": "x", "size": None, "kind": "a", "tags": ["t"], "extra": {"k": 1}}, TOY) == []


@pytest.mark.parametrize("document,problem", [
    ({"tags": []}, "required key 'name'"),
    ({"name": 5, "tags": []}, "expected string"),
    ({"name": "x", "tags": [], "size": -1}, "minimum"),
    ({"name": "x", "tags": [], "size": 1.5}, "expected integer or null"),
    ({"name": "x", "tags": [], "size": True}, "expected integer or null"),
    ({"name": "x", "tags": [], "kind": "c"}, "not one of"),
    ({"name": "x", "tags": [3]}, "$.tags[0]: expected string"),
    ({"name": "x", "tags": [], "surprise": 1}, "unexpected key 'surprise'"),
    ({"name": "x", "tags": [], "extra": {"k": "v"}}, "$.extra.k: expected integer"),
    ([], "expected object"),
])
def test_validator_rejects_each_kind_of_violation(document, problem):
    errors = validate(document, TOY)
    assert any(problem in error for error in errors), errors


def test_validator_refuses_keywords_it_does_not_check():
    with pytest.raises(ValueError, match="pattern"):
        validate("x", {"type": "string", "pattern": "^y"})
    with pytest.raises(ValueError, match="ref"):
        validate("x", {"$ref": "#/$defs/missing"})


def test_every_schema_is_well_formed_and_uses_only_checked_keywords():
    names = sorted(p.stem for p in SCHEMA_DIR.glob("*.json"))
    assert {"record", "scan", "show", "trace", "diagnose", "summary", "report", "plan", "outcome",
            "restore-plan", "manifest-line", "audit-line"} <= set(names)
    for name in names:
        schema = load_schema(name)
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        validate(None, schema)  # raises on an unsupported keyword or a dangling $ref
        for definition in schema.get("$defs", {}):
            validate(None, {"$ref": f"#/$defs/{definition}", "$defs": schema["$defs"]})


def test_record_schema_rejects_a_record_missing_a_contract_key():
    record = json.loads(run("scan", CORPORA / "postfix" / "spool", "--format", "jsonl", "-j", "1", "-q")
                        .splitlines()[0])
    assert_valid(record, "record")
    del record["auth_user"]
    record["verdict"] = "maybe"
    errors = validate(record, load_schema("record"))
    assert any("auth_user" in e for e in errors) and any("maybe" in e for e in errors)


# ---- CLI outputs on the corpora ----

@pytest.mark.parametrize("name", SPOOL_CORPORA)
def test_scan_json_and_jsonl(name):
    spool = CORPORA / name / "spool"
    records = json.loads(run("scan", spool, "--format", "json", "-j", "1", "-q", "--headers"))
    assert records, f"{name}: no records"
    assert_valid(records, "scan")
    lines = run("scan", spool, "--format", "jsonl", "-j", "1", "-q").splitlines()
    assert len(lines) == len(records)
    for line in lines:
        assert_valid(json.loads(line), "record")


@pytest.mark.parametrize("name", SPOOL_CORPORA)
def test_show_json(name):
    spool = CORPORA / name / "spool"
    first = json.loads(run("scan", spool, "--format", "jsonl", "-j", "1", "-q").splitlines()[0])
    shown = json.loads(run("show", spool, first["id"], "--format", "json"))
    assert shown["id"] == first["id"]
    assert_valid(shown, "show")


@pytest.mark.parametrize("name", SPOOL_CORPORA)
def test_trace_and_diagnose_json(name):
    spool = CORPORA / name / "spool"
    logs = [arg for log in sorted((CORPORA / name / "logs").glob("*.log")) for arg in ("--log", log)] \
        if (CORPORA / name / "logs").is_dir() else []
    traced = json.loads(run("trace", spool, *logs, "--format", "json", "-j", "1"))
    assert traced["records"] > 0
    assert_valid(traced, "trace")
    diagnosed = json.loads(run("diagnose", spool, *logs, "--format", "json", "-j", "1"))
    assert_valid(diagnosed, "diagnose")
    for line in run("diagnose", spool, "--format", "jsonl", "-j", "1").splitlines():
        assert_valid(json.loads(line), "diagnose", "finding")


@pytest.mark.parametrize("by", ["domain", "age", "account", "campaign", "client", "sender"])
def test_summary_json(by):
    for name in ("postfix", "exchange2003"):
        summary = json.loads(run("summary", CORPORA / name / "spool", "--by", by, "--format", "json", "-j", "1", "-q"))
        assert summary["by"] == by and summary["rows"]
        assert_valid(summary, "summary")


@pytest.mark.parametrize("name", ["postfix", "exchange2003"])
def test_report_json(name, tmp_path):
    data = json.loads(run("report", CORPORA / name / "spool", "--html", tmp_path / "r.html", "--format", "json",
                          "-j", "1", "-q"))
    assert data["messages"] > 0 and (tmp_path / "r.html").stat().st_size > 0
    assert_valid(data, "report")


def test_quarantine_restore_plan_outcome_manifest_and_audit(tmp_path):
    spool = copy_corpus("postfix", tmp_path)
    qdir = tmp_path / "q"
    plan = json.loads(run("quarantine", spool, "--to", qdir, "--auth-user", "scanner", "--format", "json"))
    assert plan and all(row["refused"] is None for row in plan)
    assert_valid(plan, "plan")
    done = json.loads(run("quarantine", spool, "--to", qdir, "--auth-user", "scanner", "--apply", "--format", "json"))
    assert {row["status"] for row in done} == {"quarantined"}
    assert_valid(done, "outcome")
    manifest = [json.loads(line) for line in (qdir / "manifest.jsonl").read_text().splitlines()]
    assert len(manifest) == sum(row["files"] for row in plan)
    for line in manifest:
        assert_valid(line, "manifest-line")
    restore_plan = json.loads(run("restore", qdir, "--format", "json"))
    assert len(restore_plan) == len(plan)
    assert_valid(restore_plan, "restore-plan")
    restored = json.loads(run("restore", qdir, "--apply", "--format", "json"))
    assert {row["status"] for row in restored} == {"restored"}
    assert_valid(restored, "outcome")
    events = [json.loads(line) for line in (qdir / "audit.jsonl").read_text().splitlines()]
    assert {"quarantine", "restore"} <= {e["event"] for e in events}
    for event in events:
        assert_valid(event, "audit-line")


def test_purge_dry_run_plan():
    spool = CORPORA / "exim" / "spool"
    plan = json.loads(run("purge", spool, "--verdict", "spam", "--to", "unused-qdir", "--format", "json"))
    assert plan
    assert_valid(plan, "plan")
    assert not Path("unused-qdir").exists()
