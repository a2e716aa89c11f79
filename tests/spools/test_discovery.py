"""Whole server trees: find every spool below a directory, pick the right reader, find logs."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

import queuetool
from corpus import CORPORA, copy_corpus, load_manifest
from queuetool.cli import main
from queuetool.spools import child_dirs, detect_mta, find_logs, find_spools

# corpus -> (spool label relative to the corpus spool/, reader)
EXPECTED = {
    "exchange2003": {("Program Files/Exchsrvr/Mailroot/vsi 1", "smtpsvc"),
                     ("Program Files/Exchsrvr/Mailroot/vsi 2", "smtpsvc"),
                     ("Inetpub/mailroot", "smtpsvc")},
    "exchange2016": {("Program Files/Microsoft/Exchange Server/V15/TransportRoles", "exchange"),
                     ("exportfolder", "exchange")},
    "eml": {("eml-tree", "eml"), ("Maildir", "eml"), ("mbox", "eml")},
}
UNIX = {"postfix": "postfix", "exim": "exim", "sendmail": "sendmail"}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_auto_detection_picks_the_right_reader_for_every_spool_of_each_corpus(name, tmp_path):
    tree = copy_corpus(name, tmp_path)
    found = {(s.label, s.mta) for s in find_spools(tree)}
    assert found == EXPECTED[name]
    for label, mta in EXPECTED[name]:
        assert detect_mta(tree / label) == mta
        assert isinstance(queuetool.open_spool(tree / label), queuetool.spools.Spool)


@pytest.fixture(scope="module")
def server_drive(tmp_path_factory):
    """One copied 'drive' with every corpus under its own folder, as a responder would mount it."""
    top = tmp_path_factory.mktemp("drive")
    for name in sorted(EXPECTED):
        copy_corpus(name, top)
    for name in UNIX:
        if (CORPORA / name / "spool").is_dir():
            copy_corpus(name, top)
    return top


def test_whole_tree_discovery_finds_every_spool(server_drive):
    found = {(s.label, s.mta) for s in find_spools(server_drive)}
    for name, spools in EXPECTED.items():
        for label, mta in spools:
            assert (f"{name}/{label}", mta) in found
    for name, mta in UNIX.items():
        if (server_drive / name).is_dir():
            assert any(label.startswith(f"{name}") and kind == mta for label, kind in found), name
    assert not any("/Logs" in label or "LogFiles" in label or "EventLogs" in label for label, _ in found)


def test_scan_of_the_whole_tree_reads_every_windows_and_eml_message(server_drive):
    result = CliRunner().invoke(main, ["scan", str(server_drive), "--format", "jsonl", "-q", "-j", "1"])
    rows = [json.loads(line) for line in result.output.splitlines() if line.startswith("{")]
    assert result.exit_code == (3 if any(r["error"] for r in rows) else 0)
    by_corpus: dict[str, set[str]] = {}
    for row in rows:
        by_corpus.setdefault(row["spool"].split("/", 1)[0], set()).add(row["id"])
    for name in EXPECTED:
        assert by_corpus[name] == {m["id"] for m in load_manifest(name)}, name
    # logs below the top are never read as queue files
    assert not any("Logs/" in f or "LogFiles/" in f for row in rows for f in row["files"])


def test_find_logs_offers_w3c_event_exports_and_exchange_logs(server_drive):
    logs = {p.relative_to(server_drive).as_posix() for p in find_logs(server_drive)}
    expected = {
        "exchange2003/WINDOWS/system32/LogFiles/SMTPSVC1/ex261126.log",
        "exchange2003/WINDOWS/system32/LogFiles/SMTPSVC2/ex261126.log",
        "exchange2003/EventLogs/Application.csv",
        "exchange2003/EventLogs/Application.txt",
        "exchange2003/EventLogs/Security.csv",
        "exchange2016/Program Files/Microsoft/Exchange Server/V15/TransportRoles/Logs/FrontEnd/ProtocolLog/"
        "SmtpReceive/RECV2026112610-1.LOG",
        "exchange2016/Program Files/Microsoft/Exchange Server/V15/TransportRoles/Logs/MessageTracking/"
        "MSGTRK2026112610-1.LOG",
    }
    assert expected <= logs
    assert not any("/Queue/" in p or "/BadMail/" in p or "exportfolder" in p or p.startswith("eml/") for p in logs)


def test_upper_case_copy_is_found_the_same(tmp_path):
    tree = copy_corpus("exchange2003", tmp_path)
    vsi = tree / "Program Files/Exchsrvr/Mailroot/vsi 1"
    for old, new in (("Queue", "QUEUE"), ("PickUp", "pickup"), ("BadMail", "BADMAIL")):
        (vsi / old).rename(vsi / new)
    (tree / "Inetpub/mailroot").rename(tree / "Inetpub/MAILROOT")
    spools = find_spools(tree)
    assert len(spools) == 3 and {s.mta for s in spools} == {"smtpsvc"}
    assert sum(len(s) for s in spools) == len(load_manifest("exchange2003"))
    assert set(child_dirs(vsi, "queue", "PICKUP", "badmail")) == {"queue", "pickup", "badmail"}


def test_event_exports_next_to_an_evtx_and_logs_in_log_folders_only(tmp_path):
    (tmp_path / "Desktop").mkdir()
    (tmp_path / "Desktop" / "Application.evtx").write_bytes(b"ElfFile\x00")
    (tmp_path / "Desktop" / "Application.csv").write_text("x")
    (tmp_path / "Documents").mkdir()
    (tmp_path / "Documents" / "notes.txt").write_text("not a log")
    (tmp_path / "var/log/exim4").mkdir(parents=True)
    (tmp_path / "var/log/exim4/mainlog").write_text("2026-11-26 log")
    (tmp_path / "var/log/exim4/stray.eml").write_bytes(b"From: a\r\nSubject: s\r\n\r\n")
    logs = {p.relative_to(tmp_path).as_posix() for p in find_logs(tmp_path)}
    assert logs == {"Desktop/Application.evtx", "Desktop/Application.csv", "var/log/exim4/mainlog",
                    "var/log/exim4/stray.eml"}
    assert find_spools(tmp_path) == []  # a message file inside a log folder is not a spool


def test_symlinked_directories_are_not_followed(tmp_path):
    real = copy_corpus("eml", tmp_path / "real")
    top = tmp_path / "top"
    top.mkdir()
    (top / "link").symlink_to(real, target_is_directory=True)
    assert find_spools(top) == [] and find_logs(top) == []


def test_spool_inside_a_spool_is_claimed_once(tmp_path):
    tree = copy_corpus("exchange2003", tmp_path)
    nested = tree / "Program Files/Exchsrvr/Mailroot/vsi 1/Queue/old"
    shutil.copytree(CORPORA / "eml" / "spool" / "eml-tree", nested)
    labels = [s.label for s in find_spools(tree)]
    assert labels.count("Program Files/Exchsrvr/Mailroot/vsi 1") == 1
    assert not any(label.endswith("/old") for label in labels)
    assert Path(nested).is_dir()
