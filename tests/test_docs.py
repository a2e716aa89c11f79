"""Every `$ queuetool ...` command shown in docs/ and README.md runs as documented.

Commands run in a scratch directory holding a copy of corpora/ (so documented
`--apply` examples never touch the committed corpora). A block line `# exit N` after a
command states its documented exit code; otherwise 0 (or 3, "some units unreadable",
which the corpora's deliberately malformed messages cause) is expected.
"""
from __future__ import annotations

import re
import shlex
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from queuetool.cli import main

from corpus import CORPORA

ROOT = Path(__file__).resolve().parents[1]
DOC_FILES = sorted((ROOT / "docs").rglob("*.md")) + [ROOT / "README.md"]
BLOCK = re.compile(r"```(?:console|sh|shell)\n(.*?)```", re.S)


def documented_commands() -> list[tuple[str, str, int | None]]:
    found = []
    for path in DOC_FILES:
        for block in BLOCK.findall(path.read_text(encoding="utf-8")):
            lines = block.splitlines()
            for i, line in enumerate(lines):
                match = re.match(r"^\$ (queuetool .*)$", line.strip())
                if not match:
                    continue
                expected = None
                following = lines[i + 1].strip() if i + 1 < len(lines) else ""
                code = re.match(r"^# exit (\d+)", following)
                if code:
                    expected = int(code.group(1))
                found.append((str(path.relative_to(ROOT)), match.group(1), expected))
    return found


COMMANDS = documented_commands()


def test_docs_show_commands_at_all():
    assert len(COMMANDS) >= 5, "docs should show runnable queuetool examples"


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    work = tmp_path_factory.mktemp("docs")
    shutil.copytree(CORPORA, work / "corpora", symlinks=True)
    from corpus import restore_file_metadata

    for files_json in (work / "corpora").glob("*/files.json"):
        restore_file_metadata(files_json.parent / "spool", files_json)
    return work


@pytest.mark.parametrize("doc,command,expected", COMMANDS, ids=[f"{d}:{c[:60]}" for d, c, _ in COMMANDS])
def test_documented_command_runs(doc, command, expected, scratch, monkeypatch):
    monkeypatch.chdir(scratch)
    argv = shlex.split(command, comments=True)[1:]
    for stop in (">", "|", "2>"):
        if stop in argv:
            argv = argv[: argv.index(stop)]
    result = CliRunner().invoke(main, argv, catch_exceptions=False)
    allowed = {expected} if expected is not None else {0, 3}
    assert result.exit_code in allowed, f"{doc}: `{command}` exited {result.exit_code}: {result.output[-800:]}"
