"""Exim reader: agreement with `exim -bp` and exipick on the real corpus, the manifest,
format features (real files and byte-exact hand-built fixtures), hostile input,
filesystem trouble, detection, CLI."""
from __future__ import annotations

import email
import email.policy
import json
import os
import re
import tempfile
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import queuetool
from queuetool.cli import main
from queuetool.model import QueueUnit
from queuetool.spools import detect_mta, exim, open_spool

from corpus import CORPORA, copy_corpus, corpus_dir, load_manifest

FIXTURES = corpus_dir("exim") / "fixtures"


@pytest.fixture(scope="module")
def spool(tmp_path_factory) -> Path:
    """The committed corpus with the modes and mtimes Exim left."""
    return copy_corpus("exim", tmp_path_factory.mktemp("exim"))


@pytest.fixture(scope="module")
def records(spool) -> dict[str, queuetool.QueuedMessage]:
    return {r.id: r for r in open_spool(spool)}


def bp_listing() -> list[dict]:
    """Parse corpora/exim/listing-bp.txt (`exim -bp` at generation time) [EX queue.c]."""
    out = []
    head = re.compile(r"^\s*\d+[mhd] (.{5}) (\S+) <(.*)>( \*\*\* frozen \*\*\*)?$")
    for line in (corpus_dir("exim") / "listing-bp.txt").read_text().splitlines():
        match = head.match(line)
        if match:
            out.append({"id": match.group(2), "size": match.group(1), "sender": match.group(3),
                        "frozen": bool(match.group(4)), "pending": [], "done": []})
        elif line.startswith("        D "):
            out[-1]["done"].append(line[10:])
        elif line.startswith("          ") and line.strip():
            out[-1]["pending"].append(line.strip())
    return out


def exipick_vars() -> dict[str, dict[str, str]]:
    """Parse listing-exipick-vars.txt (`exipick --show-vars ...`): id -> {var: value}."""
    out: dict[str, dict[str, str]] = {}
    current = None
    for line in (corpus_dir("exim") / "listing-exipick-vars.txt").read_text().splitlines():
        match = re.match(r"^\s*\d+[mhd] .{5} (\S+) <", line)
        if match:
            current = out.setdefault(match.group(1), {})
            continue
        match = re.match(r"^\s+(\w+) = '(.*)'$", line)
        if match and current is not None:
            current[match.group(1)] = match.group(2)
    return out


# ---------------------------------------------------------------- (1) exim -bp / exipick agreement
def test_every_message_agrees_with_exim_bp(records):
    rows = bp_listing()
    assert len(rows) >= 60
    assert {row["id"] for row in rows} == set(records)
    agreed = dict.fromkeys(("id", "sender", "pending", "done", "frozen", "size"), 0)
    for row in rows:
        rec = records[row["id"]]
        agreed["id"] += 1
        assert rec.sender == row["sender"], row["id"]
        agreed["sender"] += 1
        assert rec.recipients == row["pending"], row["id"]
        agreed["pending"] += 1
        assert rec.done_recipients == row["done"], row["id"]
        agreed["done"] += 1
        assert (rec.queue == "frozen") == row["frozen"], row["id"]
        agreed["frozen"] += 1
        assert exim.format_size(rec.size) == row["size"], (row["id"], rec.size)
        agreed["size"] += 1
        assert rec.error is None, (row["id"], rec.error)
    print(f"exim -bp agreement over {len(rows)} messages: {agreed}")
    assert set(agreed.values()) == {len(rows)}
    assert sum(row["frozen"] for row in rows) == 4
    assert sum(1 for row in rows if row["done"]) >= 4


def test_client_and_auth_agree_with_exipick(records):
    shown = exipick_vars()
    assert set(shown) == set(records)
    agreed = dict.fromkeys(("client_ip", "helo", "auth_user", "protocol", "del", "undel"), 0)
    for message_id, var in shown.items():
        rec = records[message_id]
        assert (rec.client_ip or "") == var["sender_host_address"], message_id
        agreed["client_ip"] += 1
        assert (rec.helo or "") == var["sender_helo_name"], message_id
        agreed["helo"] += 1
        # exipick shows $authenticated_id also for local callers; the record keeps SMTP AUTH only
        expected_auth = var["authenticated_id"] if var["sender_host_authenticated"] else ""
        assert (rec.auth_user or "") == expected_auth, message_id
        agreed["auth_user"] += 1
        assert rec.details.get("received_protocol", "") == var["received_protocol"], message_id
        agreed["protocol"] += 1
        # exipick lists these from a Perl hash (compare as sets) and, unlike exim -bp,
        # ignores the -J journal: journal addresses are "undelivered" to exipick
        journal = rec.details.get("journal_recipients", [])
        shown_del = set(filter(None, var["recipients_del"].split(", ")))
        shown_undel = set(filter(None, var["recipients_undel"].split(", ")))
        assert set(rec.done_recipients) == shown_del | set(journal), message_id
        agreed["del"] += 1
        assert set(rec.recipients) | set(journal) == shown_undel, message_id
        agreed["undel"] += 1
    print(f"exipick agreement over {len(shown)} messages: {agreed}")
    assert set(agreed.values()) == {len(shown)}


# ---------------------------------------------------------------- (2) manifest ground truth
def test_fields_match_the_manifest(records):
    manifest = load_manifest("exim")
    assert len(manifest) == len(records)
    for entry in manifest:
        rec = records[entry["id"]]
        assert rec.queue == entry["queue"], entry["id"]
        assert rec.auth_user == entry["account"], entry["id"]
        assert rec.client_ip == entry["client_ip"], entry["id"]
        if entry["scenario"] != "bounce" or entry["client_ip"]:
            assert rec.sender == entry["sender"], entry["id"]
            assert sorted(rec.recipients + rec.done_recipients) == sorted(entry["recipients"]), entry["id"]
        else:  # bounces Exim generated itself: null sender, the -localerror flag
            assert rec.sender == "" and rec.details.get("localerror") is True, entry["id"]
    kinds = {e["kind"] for e in manifest}
    assert kinds == {"legit", "spam", "relay", "backscatter", "malformed"}
    scanner = [e for e in manifest if e["account"] == "scanner"]
    assert len(scanner) >= 20 and len({e["client_ip"] for e in scanner}) >= 3


def test_logs_hold_the_auth_evidence():
    mainlog = (corpus_dir("exim") / "logs" / "mainlog").read_text(errors="replace")
    assert re.search(r"authenticator failed for \(printer\) \[203\.0\.113\.50\]:\d+: 535 .*set_id=scanner", mainlog)
    assert "set_id=admin" in mainlog
    assert re.search(r"<= \S+ H=\(HP-MFP-M527\) \[203\.0\.113\.77\]:\d+ P=esmtpa A=(plain|login)_server:scanner", mainlog)
    assert "U=www-data P=local" in mainlog


# ---------------------------------------------------------------- (3) format features
def by_subject(records, text: str) -> queuetool.QueuedMessage:
    return next(r for r in records.values() if r.subject and text in r.subject)


def test_split_spool_and_flat_messages_both_read(records):
    flat = [r for r in records.values() if r.files[0].count("/") == 1]
    split = [r for r in records.values() if r.files[0].count("/") == 2]
    assert len(flat) >= 20 and len(split) >= 20
    for rec in split:
        assert rec.files[0] == f"input/{rec.id[5]}/{rec.id}-H"
        assert rec.files[1] == f"input/{rec.id[5]}/{rec.id}-D"


def test_authenticated_message_fields(records):
    rec = by_subject(records, "Quarterly figures Q3")
    assert rec.auth_user == "alice" and rec.auth_evidence == "spool:auth_id"
    assert rec.client_ip == "10.0.0.11" and rec.helo == "alice-pc.office.example.com"
    assert rec.details["authenticator"] == "plain_server" and rec.details["auth_mechanism"] == "PLAIN"
    assert rec.details["received_protocol"] == "esmtpa"
    assert rec.details["auth_sender"] == "<alice@example.com>"  # the client sent AUTH=<...> verbatim
    assert rec.details["host_address_syntax"] == "[ip]:port" and isinstance(rec.details["client_port"], int)
    assert {"helo_name", "auth_id"} <= set(rec.details["tainted_options"])
    assert rec.arrival == queuetool.fsutil.iso_utc(exim.id_time(rec.id))
    login = by_subject(records, "Lieferung")
    assert login.auth_user == "bob" and login.details["authenticator"] == "login_server"
    assert login.subject == "Order 4711 – Lieferung nächste Woche?"  # RFC 2047 decoded


def test_local_submission_is_not_smtp_auth(records):
    web = [r for r in records.values() if r.sender == "www-data@example.com"]
    assert len(web) == 6
    for rec in web:
        assert rec.auth_user is None and rec.client_ip is None
        assert rec.details["local_user"] == "www-data" and rec.details["received_protocol"] == "local"
        assert [name for name, _ in rec.details["deleted_headers"]] == ["Bcc"]
        assert rec.header("Bcc") is None
        assert rec.details["deleted_headers"][0][1] in rec.recipients


def test_acl_variables_are_read_by_length(records):
    rec = by_subject(records, "Project plan v2")
    assert rec.details["acl_variables"] == {"acl_c_session": "10.0.0.12 helo=bob-laptop",
                                            "acl_m_origin": "auth=bob\nproto=esmtpa"}
    relay = next(r for r in records.values() if r.client_ip == "192.0.2.44")
    assert relay.details["acl_variables"]["acl_m_origin"] == "unauthenticated\nproto=esmtp"


def test_journal_marks_delivered_recipients(records):
    rec = by_subject(records, "Project plan v2")
    assert any(path.endswith("-J") for path in rec.files)
    assert rec.details["journal_recipients"] == ["carol@example.com"]
    assert rec.done_recipients == ["carol@example.com"]
    assert rec.recipients == ["team@partner.example", "lead@partner.example"]
    assert rec.details["nonrecipients"] == []  # only the journal knows, the tree was not rewritten


def test_delivered_tree_and_msglog_status(records):
    rec = by_subject(records, "Quarterly figures Q3")
    assert rec.details["nonrecipients"] == ["bob@example.com"]
    assert rec.done_recipients == ["bob@example.com"] and rec.recipients == ["j.smith@example.net"]
    assert rec.status.startswith("j.smith@example.net R=smarthost T=remote_smtp_smarthost defer (111)")
    assert rec.details["msglog"]["defers"] == 2 and rec.details["msglog"]["deliveries"] == 1
    assert rec.files[-1] == f"msglog/{rec.id}"
    fresh = by_subject(records, "Ticket #5521")
    assert fresh.details["deliver_firsttime"] is True and fresh.status is None


def test_frozen_and_generated_bounces(records):
    frozen = [r for r in records.values() if r.queue == "frozen"]
    assert len(frozen) == 4
    assert all(r.details["frozen_at"] for r in frozen)
    bounces = [r for r in records.values() if r.details.get("localerror")]
    assert bounces and all(r.sender == "" and r.details["originator_login"] == "Debian-exim" for r in bounces)
    assert any(r.queue == "frozen" for r in bounces)
    assert all(r.header("X-Failed-Recipients") for r in bounces)


def test_partner_spam_headers_removed_by_acl_are_evidence(records):
    rec = by_subject(records, "Ticket #5521")
    assert rec.details["deleted_headers"] == [["X-Spam-Status", "No, score=-1.0"], ["X-Spam-Flag", "NO"]]
    raw = open_spool(corpus_dir("exim") / "spool").get_bytes(rec.id)
    assert b"X-Spam-Status" not in raw and b"Subject: Ticket #5521 update" in raw


def test_message_bytes_match_size_and_parse(records):
    opened = open_spool(corpus_dir("exim") / "spool")
    for rec in records.values():
        raw = opened.get_bytes(rec.id)
        assert len(raw) == rec.size, rec.id
        assert not raw.startswith(rec.id.encode())
    rec = by_subject(records, "Quarterly figures Q3")
    parsed = email.message_from_bytes(opened.get_bytes(rec.id), policy=email.policy.default)
    names = [part.get_filename() for part in parsed.iter_attachments()]
    assert names == ["Q3-figures.pdf"]


def test_malformed_messages_are_read_without_error(records):
    latin = by_subject(records, "Caf")
    assert "\\xe9" in latin.subject and latin.error is None
    assert by_subject(records, "no date, no message-id").date is None
    long_subject = by_subject(records, "very long subject")
    assert len(long_subject.subject) > 1500


def test_hand_built_497_fixture_with_23_char_id():
    opened = open_spool(FIXTURES / "v497")
    assert opened.mta == "exim" and opened.keys() == ["1tWx0A-000000004Zq-0001"]
    rec = opened.get("1tWx0A-000000004Zq-0001")
    assert rec.error is None and rec.details["id_format"] == "4.97+"
    assert rec.queue == "frozen" and rec.details["frozen_at"] == "2025-01-02T06:50:00Z"
    assert rec.arrival == "2025-01-02T06:40:00Z"
    assert rec.client_ip == "127.0.0.1" and rec.details["client_port"] == 9999 and rec.helo == "rhu.barb"
    assert rec.auth_user == "username" and rec.details["auth_sender"] == "username@myhost.test.ex"
    assert "auth_sender" in rec.details["tainted_options"]  # --(quoter)name form
    assert rec.details["acl_variables"] == {"acl_m0": "line one\nline two with trailing space "}
    assert rec.details["nonrecipients"] == ["b@y", "a@y", "c@y"]
    assert rec.done_recipients == ["a@y", "b@y", "c@y"]
    assert rec.recipients == ["x y@example.org", "list@example.org"]
    options = {o["address"]: o for o in rec.details["recipient_options"]}
    assert options["x y@example.org"]["orcpt"] == "rfc822;x y@example.org" and options["x y@example.org"]["dsn_flags"] == 6
    assert options["list@example.org"]["errors_to"] == "owner-list@example.org" and options["list@example.org"]["pno"] == 2
    raw = opened.get_bytes(rec.id)
    assert b"X-Secret" not in raw and raw.endswith(b"Subject: 23-char id\n\nhello\n")
    assert rec.details["deleted_headers"] == [["X-Secret", "removed by ACL"]]
    assert len(raw) == rec.size


def test_foreign_data_file_is_reported(tmp_path):
    src = corpus_dir("exim") / "spool" / "input"
    first, second = sorted(p.name[:-2] for p in src.glob("*-H"))[:2]
    (tmp_path / "input").mkdir()
    (tmp_path / "input" / f"{first}-H").write_bytes((src / f"{first}-H").read_bytes())
    (tmp_path / "input" / f"{first}-D").write_bytes((src / f"{second}-D").read_bytes())
    (unit,) = exim.iter_units(tmp_path)
    assert exim.read_unit(tmp_path, unit).error is None            # header-only: -D only stat'ed
    assert f"does not start with '{first}-D'" in exim.read_unit(tmp_path, unit, full=True).error
    with pytest.raises(ValueError, match="not this message's body"):
        exim.read_message_bytes(tmp_path, unit)


def test_hand_built_495_fixture_old_host_address():
    recs = {r.id: r for r in open_spool(FIXTURES / "v495")}
    old = recs["1mAbCd-0001Xy-5Z"]
    assert old.client_ip == "10.0.0.11" and old.details["client_port"] == 50022
    assert old.details["host_address_syntax"] == "ip.port" and old.client_name == "alice-pc.office.example.com"
    assert old.details["interface_address"] == "127.0.0.1" and old.details["interface_port"] == 25
    assert old.recipients == ["one@example.net", "two@example.net", "three@example.net"]
    v6 = recs["1mAbCe-0001Xz-00"]
    assert v6.client_ip == "2001:db8::25" and v6.details["client_port"] == 4711 and v6.sender == ""


def test_exim_test_suite_file_0699():
    rec = next(iter(open_spool(FIXTURES / "testsuite-0699")))
    assert rec.id == "1qDO9M-0003B3-2p" and rec.error is None
    assert rec.arrival == "2023-06-25T11:43:24Z"  # 1687693404, also the id's base-62 seconds
    assert exim.id_time(rec.id) == 1687693404
    assert rec.sender == "nobody@test.ex" and rec.recipients == ["nulldeliver@test.ex"]
    assert rec.details["originator_login"] == "nobody" and rec.details["originator_uid"] == 9999
    assert rec.subject == "test" and rec.message_id == "<E1qDO9M-0003B3-2p@xxxxxxxtest.ex>"
    assert rec.size == 170 + 14 + 47 + 34 + 38 + (32 - 19) + 1


@pytest.mark.parametrize("line, expected", [
    (b"a@b.example", ("a@b.example", None, None, None, None)),
    (b"a@b.example  0,0  0,-1#3", ("a@b.example", None, 0, None, -1)),
    (b"a@b.example rfc822;a@b.example 18,2  0,-1#3", ("a@b.example", "rfc822;a@b.example", 2, None, -1)),
    (b"a@b.example  0,0 owner@x.example 15,1#3", ("a@b.example", None, 0, "owner@x.example", 1)),
    (b"with space@b.example 7", ("with space@b.example", None, None, None, 7)),
    (b"old@b.example 0,4,0", ("old@b.example", None, None, None, 4)),
    (b"a@b.example 999,2 x 999,1#3", ("a@b.example 999,2 x", None, None, None, 1)),
])
def test_recipient_line_forms(line, expected):
    rcpt = exim.parse_recipient(line)
    assert (rcpt.address, rcpt.orcpt, rcpt.dsn_flags, rcpt.errors_to, rcpt.pno) == expected


@pytest.mark.parametrize("value, expected", [
    ("[10.0.0.1]:25", ("10.0.0.1", 25)), ("[2001:db8::1]:587", ("2001:db8::1", 587)),
    ("10.0.0.1.25", ("10.0.0.1", 25)), ("2001:db8::1.587", ("2001:db8::1", 587)),
    ("[10.0.0.1]", ("10.0.0.1", None)), ("garbage", ("garbage", None)),
])
def test_host_address_syntaxes(value, expected):
    assert exim.parse_host_address(value) == expected


def test_format_size_matches_exim():
    assert [exim.format_size(n) for n in (0, 893, 1024, 5017, 10240, 2 << 20, 20 << 20)] == \
        ["     ", "  893", " 1.0K", " 4.9K", "  10K", " 2.0M", "  20M"]


# ---------------------------------------------------------------- (4) hostile input
def corpus_header_files() -> list[bytes]:
    base = corpus_dir("exim") / "spool" / "input"
    files = sorted(base.rglob("*-H"))
    return [p.read_bytes() for p in files[::6]] + [next((FIXTURES / "v497" / "input").glob("*-H")).read_bytes()]


SAMPLES = corpus_header_files()
HOSTILE_ID = "1aaaaa-000000-00"


def check_bounded(data: bytes, body: bytes | None = b"") -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "input").mkdir()
        (root / "input" / f"{HOSTILE_ID}-H").write_bytes(data)
        if body is not None:
            (root / "input" / f"{HOSTILE_ID}-D").write_bytes(f"{HOSTILE_ID}-D\n".encode() + body)
        unit = next(exim.iter_units(root))
        got = exim.read_unit(root, unit, full=True)  # must not raise
        assert got.id == HOSTILE_ID
        lines = data.count(b"\n") + 1
        assert len(got.recipients) + len(got.details.get("nonrecipients", [])) <= lines
        assert len(got.headers) <= lines + 1
        exim.read_unit(root, unit, full=False)
        try:
            exim.read_message_bytes(root, unit)
        except FileNotFoundError:
            assert body is None


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=800), with_body=st.booleans())
def test_random_bytes_never_raise(data, with_body):
    check_bounded(data, b"x\n" if with_body else None)


@settings(max_examples=300, deadline=None)
@given(index=st.integers(0, len(SAMPLES) - 1), cut=st.integers(0, 10_000),
       flips=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=6))
def test_mutated_corpus_files_never_raise(index, cut, flips):
    data = bytearray(SAMPLES[index])
    for pos, value in flips:
        data[pos % len(data)] = value
    check_bounded(bytes(data[: max(1, len(data) - cut % len(data))]))


def test_huge_lengths_counts_and_tree_loops():
    base = f"{HOSTILE_ID}-H\nu 1 1\n<a@b>\n1700000000 0\n"
    cases = {
        "acl": base + "-aclm 0 999999999\nshort\nXX\n0\n\n",
        "count": base + "XX\n999999999\na@b\n\n",
        "header": base + "XX\n1\na@b\n\n999999999  Subject: x\n",
        "tree": base + "YY a\n" * 5000,
        "rcpt": base + "XX\n1\n" + "a@b " + "9" * 5000 + "#3\n\n",
    }
    for name, text in cases.items():
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            (root / "input").mkdir()
            (root / "input" / f"{HOSTILE_ID}-H").write_text(text)
            got = exim.read_unit(root, next(exim.iter_units(root)))
            assert got.error, name
    assert "runs off the end" in exim.parse_header_file((base + "-aclm 0 999999999\nx\n").encode()).problems[0]
    assert "bad recipient count" in exim.parse_header_file((base + "XX\n999999999\n").encode()).problems
    assert "runs off the end" in exim.parse_header_file((base + "YY a\n" * 50).encode()).problems[0]


# ---------------------------------------------------------------- (5) filesystem trouble
def test_symlink_directory_vanished_and_unreadable(tmp_path, monkeypatch):
    src = corpus_dir("exim") / "spool" / "input"
    root = tmp_path / "spool"
    (root / "input").mkdir(parents=True)
    (root / "msglog").mkdir()
    good = sorted(p.name[:-2] for p in src.glob("*-H"))[0]   # a flat message of the corpus
    good_sender = (src / f"{good}-H").read_bytes().split(b"\n")[2].decode().strip("<>")
    for suffix in ("-H", "-D"):
        (root / "input" / f"{good}{suffix}").write_bytes((src / f"{good}{suffix}").read_bytes())
    (tmp_path / "outside-H").write_bytes((src / f"{good}-H").read_bytes().replace(good.encode(), b"1link0-000000-00"))
    os.symlink(tmp_path / "outside-H", root / "input" / "1link0-000000-00-H")
    (root / "input" / "1dir00-000000-00-H").mkdir()            # a directory where -H belongs
    (root / "input" / "1dir00-000000-00-D").write_bytes(b"1dir00-000000-00-D\nx\n")
    (root / "input" / "1ddir0-000000-00-H").write_bytes((src / f"{good}-H").read_bytes().replace(good.encode(), b"1ddir0-000000-00"))
    (root / "input" / "1ddir0-000000-00-D").mkdir()            # a directory where -D belongs
    units = {u.id: u for u in exim.iter_units(root)}
    assert set(units) == {good, "1link0-000000-00", "1dir00-000000-00", "1ddir0-000000-00"}
    assert "symlink" in exim.read_unit(root, units["1link0-000000-00"]).error
    assert "no -H file" in exim.read_unit(root, units["1dir00-000000-00"]).error
    ddir = exim.read_unit(root, units["1ddir0-000000-00"])
    assert "no -D file" in ddir.error and ddir.sender == good_sender  # walk_files never yields a dir
    dir_as_d = QueueUnit(id="1ddir0-000000-00", queue="queued",
                         paths=("input/1ddir0-000000-00-H", "input/1ddir0-000000-00-D"))
    assert "not a regular file" in exim.read_unit(root, dir_as_d).error
    vanished = QueueUnit(id="1gone0-000000-00", queue="queued",
                         paths=("input/1gone0-000000-00-H", "input/1gone0-000000-00-D"))
    assert "No such file" in exim.read_unit(root, vanished).error
    real_open = os.open

    def denied(path, *args, **kwargs):
        if str(path).endswith(f"{good}-H"):
            raise PermissionError(13, "Permission denied")
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", denied)
    assert "Permission denied" in exim.read_unit(root, units[good]).error


def test_msglog_that_vanished_keeps_the_envelope(spool):
    unit = next(u for u in exim.iter_units(spool) if len(u.paths) == 3)
    missing = QueueUnit(id=unit.id, queue=unit.queue, paths=unit.paths[:2] + ("msglog/" + unit.id + "x",))
    got = exim.read_unit(spool, missing)
    assert got.sender is not None and got.status is None
    gone = QueueUnit(id=unit.id, queue=unit.queue, paths=unit.paths[:2] + ("msglog/Z/" + unit.id,))
    got = exim.read_unit(spool, gone)
    assert "No such file" in got.error and got.recipients


# ---------------------------------------------------------------- (6) detection
def test_detection_picks_exim_for_its_corpus_only(spool, tmp_path):
    assert exim.detect(spool) >= 50
    assert detect_mta(spool) == "exim"
    assert open_spool(spool).mta == "exim"
    assert exim.detect(spool / "input") >= 30  # given the input directory itself
    assert exim.detect(tmp_path) == 0
    others = [p / "spool" for p in CORPORA.iterdir() if p.name != "exim" and (p / "spool").is_dir()]
    for other in others:
        assert exim.detect(other) == 0, other
        assert detect_mta(other) != "exim", other
    # names alone are not enough: an input/ dir with a file that is not an -H file
    (tmp_path / "fake" / "input").mkdir(parents=True)
    (tmp_path / "fake" / "input" / "1aaaaa-000000-00-H").write_bytes(b"From: a@b\n\nhi\n")
    assert exim.detect(tmp_path / "fake") == 0


def test_split_only_spool_and_finput(tmp_path):
    src = corpus_dir("exim") / "spool" / "input"
    split = sorted(p for p in src.glob("?/*-[HD]"))[:4]
    for path in split:
        target = tmp_path / "split" / "input" / path.parent.name
        target.mkdir(parents=True, exist_ok=True)
        (target / path.name).write_bytes(path.read_bytes())
    assert exim.detect(tmp_path / "split") >= 50
    assert len(open_spool(tmp_path / "split")) == 2
    flat = sorted(src.glob("*-H"))[0]
    (tmp_path / "moved" / "Finput").mkdir(parents=True)
    (tmp_path / "moved" / "input").mkdir()
    for suffix in ("-H", "-D"):
        name = flat.name[:-2] + suffix
        (tmp_path / "moved" / "Finput" / name).write_bytes((src / name).read_bytes())
    (unit,) = exim.iter_units(tmp_path / "moved")
    assert unit.paths[0].startswith("Finput/") and exim.read_unit(tmp_path / "moved", unit).queue == "frozen"


# ---------------------------------------------------------------- CLI
def test_cli_scan_and_show(spool, records):
    target = by_subject(records, "Project plan v2").id
    runner = CliRunner()
    result = runner.invoke(main, ["scan", str(spool), "--format", "jsonl", "-j", "1", "-q"])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.output.splitlines() if line.startswith("{")]
    assert len(lines) == len(bp_listing())
    assert {line["mta"] for line in lines} == {"exim"}
    shown = runner.invoke(main, ["show", str(spool), target])
    assert shown.exit_code == 0, shown.output
    assert "auth_user:       bob" in shown.output and "acl_m_origin" in shown.output
    raw = runner.invoke(main, ["show", str(spool), target, "--raw"])
    assert raw.stdout_bytes == open_spool(spool).get_bytes(target)
    table = runner.invoke(main, ["scan", str(spool), "-j", "1", "-q"])
    assert table.exit_code == 0 and target in table.output
