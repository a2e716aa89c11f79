"""Everyday CLI behaviour: help with examples, --quiet/--verbose, completion, one-line errors, UTC."""
from __future__ import annotations

import re
import subprocess
import sys

import pytest
from click.testing import CliRunner

from queuetool.cli import main

from corpus import CORPORA, copy_corpus

POSTFIX = str(CORPORA / "postfix" / "spool")
VERBS = ["scan", "show", "summary", "trace", "diagnose", "quarantine", "purge", "restore", "recover", "report", "demo"]


def invoke(*argv: str, env: dict | None = None):
    return CliRunner().invoke(main, [str(a) for a in argv], env=env, prog_name="queuetool")


def test_every_verb_is_listed_and_every_help_shows_examples():
    assert set(VERBS) <= set(main.commands)
    for verb in main.commands:
        result = invoke(verb, "--help")
        assert result.exit_code == 0, verb
        examples = result.stdout.split("Examples:", 1)
        assert len(examples) == 2, f"`queuetool {verb} --help` has no Examples section"
        assert f"queuetool {verb} " in examples[1], f"{verb}: examples do not show the verb"


def test_group_help_documents_global_flags_utc_and_completion():
    text = invoke("--help").stdout
    for needle in ("--quiet", "--verbose", "UTC", "_QUEUETOOL_COMPLETE=bash_source"):
        assert needle in text


@pytest.mark.parametrize("shell,marker", [("bash", "complete -o nosort -F"), ("zsh", "compdef"), ("fish", "complete")])
def test_shell_completion_script_is_produced(shell, marker):
    result = invoke(env={"_QUEUETOOL_COMPLETE": f"{shell}_source"})
    assert result.exit_code == 0
    assert marker in result.stdout and "_QUEUETOOL_COMPLETE" in result.stdout


def test_completion_offers_verbs_and_options():
    verbs = invoke(env={"_QUEUETOOL_COMPLETE": "bash_complete", "COMP_WORDS": "queuetool qua", "COMP_CWORD": "1"})
    assert verbs.stdout.split() == ["plain,quarantine"]
    options = invoke(env={"_QUEUETOOL_COMPLETE": "bash_complete", "COMP_WORDS": "queuetool summary x --b",
                          "COMP_CWORD": "3"})
    assert "plain,--by" in options.stdout.split()


def test_inferred_domain_note_shown_by_default_and_dropped_by_global_quiet():
    loud = invoke("scan", POSTFIX, "-j", "1")
    assert "inferred" in loud.stderr
    quiet = invoke("-q", "scan", POSTFIX, "-j", "1")
    assert "inferred" not in quiet.stderr
    assert quiet.exit_code == loud.exit_code == 3  # the corpus holds deliberately unreadable units
    assert quiet.stdout == loud.stdout
    # the per-verb flag still works and still means "no progress bar"
    assert invoke("scan", POSTFIX, "-j", "1", "-q").stdout == loud.stdout


def test_errors_are_one_line_with_the_fix_and_verbose_adds_the_traceback(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    plain = invoke("scan", empty)
    assert plain.exit_code == 1
    assert plain.stderr.count("\n") == 1 and plain.stderr.startswith("queuetool: ")
    assert "give --mta" in plain.stderr
    verbose = invoke("-v", "scan", empty)
    assert verbose.exit_code == 1
    assert "Traceback (most recent call last)" in verbose.stderr
    assert verbose.stderr.rstrip().splitlines()[-1] == plain.stderr.rstrip()


@pytest.mark.parametrize("argv,code,fix", [
    (["show", POSTFIX, "NO-SUCH-ID"], 1, "list ids with 'queuetool scan'"),
    (["restore", "{tmp}"], 4, "not a queuetool quarantine"),
    (["trace", POSTFIX, "--log", "/etc/hostname"], 0, "not a mail, W3C, Exchange or Windows event log"),
])
def test_error_paths_say_what_is_wrong_in_one_line(argv, code, fix, tmp_path):
    result = invoke(*[a.replace("{tmp}", str(tmp_path)) for a in argv], "-j", "1") if argv[0] == "trace" \
        else invoke(*[a.replace("{tmp}", str(tmp_path)) for a in argv])
    assert result.exit_code == code
    lines = [line for line in result.stderr.splitlines() if fix in line]
    assert len(lines) == 1 and lines[0].startswith("queuetool: ")


def test_quarantine_inside_the_spool_is_refused_with_the_fix(tmp_path):
    spool = copy_corpus("postfix", tmp_path)
    result = invoke("quarantine", spool, "--to", spool / "q", "--auth-user", "scanner", "--apply")
    assert result.exit_code == 4
    assert "choose a quarantine directory outside it" in result.stderr
    assert not (spool / "q" / "manifest.jsonl").exists()


def test_missing_selection_is_a_usage_error_naming_the_fix(tmp_path):
    result = invoke("quarantine", POSTFIX, "--to", tmp_path / "q")
    assert result.exit_code == 2
    assert "--where true" in result.stderr


def test_times_are_utc_and_say_so():
    table = invoke("-q", "scan", POSTFIX, "-j", "1").stdout
    heading = table.splitlines()[0]
    assert "UTC" in heading
    record_id = table.splitlines()[1].split()[0]
    shown = invoke("show", POSTFIX, record_id).stdout
    arrival = re.search(r"^arrival:\s+(\S+)$", shown, re.M)
    assert arrival and re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", arrival.group(1))


def test_closed_stdout_ends_quietly():
    """`queuetool scan ... | head -1` must not print a Broken pipe error."""
    proc = subprocess.Popen([sys.executable, "-m", "queuetool", "-q", "scan", POSTFIX, "--format", "jsonl",
                             "--headers", "-j", "1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    first = proc.stdout.readline()
    proc.stdout.close()  # the output is ~190 kB, far more than a pipe buffer: the writer hits EPIPE
    stderr = proc.stderr.read().decode()
    proc.wait()
    assert first.startswith(b"{")
    assert "Broken pipe" not in stderr and "Traceback" not in stderr, stderr


def test_api_guide_examples_run(tmp_path, monkeypatch):
    """docs/api.md's Python blocks run in order (shared namespace) in a scratch copy of corpora/."""
    import shutil

    from corpus import restore_file_metadata

    shutil.copytree(CORPORA, tmp_path / "corpora", symlinks=True)
    for files_json in (tmp_path / "corpora").glob("*/files.json"):
        restore_file_metadata(files_json.parent / "spool", files_json)
    monkeypatch.chdir(tmp_path)
    guide = (CORPORA.parent / "docs" / "api.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", guide, re.S)
    assert len(blocks) >= 8
    namespace: dict = {}
    for number, block in enumerate(blocks):
        exec(compile(block, f"docs/api.md python block {number + 1}", "exec"), namespace)
    assert (tmp_path / "api-report.html").stat().st_size > 0
    assert namespace["back"].result.count("restored") == namespace["report"].result.count("quarantined") > 0
