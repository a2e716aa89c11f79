"""The eml reader: .eml trees, Maildir (flags, Maildir++ folders) and mbox (offsets as keys)."""
from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import queuetool
from corpus import copy_corpus, load_manifest
from queuetool.model import QueueUnit
from queuetool.spools import detect_mta, eml, find_spools
from queuetool.spools.eml import maildir_info, mbox_offsets


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    return copy_corpus("eml", tmp_path_factory.mktemp("eml"))


@pytest.fixture(scope="module")
def records(tree):
    spools = find_spools(tree)
    assert sorted((s.mta, s.label) for s in spools) == [("eml", "Maildir"), ("eml", "eml-tree"), ("eml", "mbox")]
    return {r.id: r for s in spools for r in s}


def test_every_manifest_message_is_read(records):
    manifest = load_manifest("eml")
    assert {m["id"] for m in manifest} == set(records)
    for truth in manifest:
        record = records[truth["id"]]
        assert record.error is None, (truth["id"], record.error)
        assert record.queue == truth["queue"]
        assert record.sender is None and record.recipients == []  # no envelope in plain messages
        assert record.subject


def test_maildir_flags_and_subfolders(records):
    assert records["1764151800.M2P101.mail.example.com"].details["maildir_flags"] == ["seen"]
    assert records["1764165600.M3P102.mail.example.com"].details["maildir_flags"] == ["replied", "seen"]
    junk = records[".Junk/1764166500.M5P104.mail.example.com"]
    assert junk.details["maildir_flags"] == ["seen", "trashed"] and junk.files == [
        ".Junk/cur/1764166500.M5P104.mail.example.com!2,ST"]
    assert maildir_info("123.M1.host") == ("123.M1.host", [])
    assert maildir_info("1.x;2,FD") == ("1.x", ["flagged", "draft"])


def test_mbox_units_have_offsets_sizes_and_from_lines(tree, records):
    data = (tree / "mbox" / "carol.mbox").read_bytes()
    offsets = list(mbox_offsets(tree / "mbox", "carol.mbox"))
    assert offsets[0] == 0 and all(data[o:o + 5] == b"From " for o in offsets)
    assert [f"carol.mbox:{o}" for o in offsets] == sorted(
        (k for k in records if k.startswith("carol.mbox:")), key=lambda k: int(k.split(":")[1]))
    first = records["carol.mbox:0"]
    assert first.details["mbox_from"] == "offers@pharma-deals0.example"
    assert first.size == offsets[1] - len(data[:offsets[1]].split(b"\n", 1)[0]) - 1


def test_mbox_get_bytes_unescapes_from_lines(tree):
    spool = queuetool.open_spool(tree / "mbox")
    key = next(k for k in spool.keys() if k != "carol.mbox:0" and k.startswith("carol.mbox:")
               and b">From" in spool.get_bytes(k))
    raw = spool.get_bytes(key)
    assert b"\nFrom now on" in raw and b"\n>From the pharmacy team" in raw
    assert not raw.startswith(b"From ")


def test_detect_each_kind(tree):
    assert detect_mta(tree / "Maildir") == "eml"
    assert detect_mta(tree / "mbox") == "eml"
    assert detect_mta(tree / "eml-tree") == "eml"
    assert detect_mta(tree) is None  # the top holds three spools, none directly


def test_bad_mbox_keys_and_truncated_mbox_become_error_records(tmp_path):
    (tmp_path / "box").write_bytes(b"From a@b Thu Nov 26 10:00:00 2026\nSubject: x\n\nbody\n")
    bad_offset = queuetool.spools.read_unit_safely(eml, tmp_path, QueueUnit("box:9999", "mbox", ("box",)))
    assert "outside the mbox" in bad_offset.error
    not_from = queuetool.spools.read_unit_safely(eml, tmp_path, QueueUnit("box:3", "mbox", ("box",)))
    assert "no mbox From_ line" in not_from.error
    no_offset = queuetool.spools.read_unit_safely(eml, tmp_path, QueueUnit("box", "mbox", ("box",)))
    assert "no byte offset" in no_offset.error
    (tmp_path / "cut").write_bytes(b"From a@b Thu Nov 26 10:00:00 2026\n")
    cut = queuetool.spools.read_unit_safely(eml, tmp_path, QueueUnit("cut:0", "mbox", ("cut",)))
    assert "no RFC 5322 header" in cut.error


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.binary(max_size=400), min_size=1, max_size=6))
def test_random_mbox_contents_never_raise(tmp_path, bodies):
    data = b"".join(b"From x@y Thu Nov 26 10:00:00 2026\n" + body + b"\n" for body in bodies)
    (tmp_path / "mb").write_bytes(data)
    units = list(eml.iter_units(tmp_path))
    assert len(units) >= len(bodies)
    for unit in units:
        record = eml.read_unit(tmp_path, unit)
        json.dumps(record.to_dict())
        eml.read_message_bytes(tmp_path, unit)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=3000), st.sampled_from(["new/1.a", "cur/2.b:2,S", "tmp/3.c"]))
def test_random_maildir_files_never_raise(tmp_path, data, rel):
    for sub in ("cur", "new", "tmp"):
        (tmp_path / sub).mkdir(exist_ok=True)
    (tmp_path / rel).write_bytes(data)
    for unit in eml.iter_units(tmp_path):
        json.dumps(eml.read_unit(tmp_path, unit).to_dict())


def test_large_mbox_message_header_read_still_knows_its_size(tmp_path):
    big = b"Subject: big\n\n" + b"x" * 70 + b"\n"
    big = big + b"y" * (300 * 1024) + b"\n"
    data = b"From a@b Thu Nov 26 10:00:00 2026\n" + big + b"From c@d Thu Nov 26 10:01:00 2026\nSubject: next\n\n"
    (tmp_path / "box").write_bytes(data)
    units = list(eml.iter_units(tmp_path))
    assert [u.id for u in units] == ["box:0", f"box:{data.index(b'From c@d')}"]
    first = eml.read_unit(tmp_path, units[0])
    assert first.subject == "big" and first.size == len(big) and first.error is None
    assert eml.read_message_bytes(tmp_path, units[0]) == big
    assert eml.read_unit(tmp_path, units[1]).subject == "next"


def test_mbox_message_with_a_header_block_longer_than_the_read_limit_says_it_was_cut(tmp_path):
    """Same as an .eml file: the header-only read stops at HEAD_READ_LIMIT and says so."""
    from queuetool.headers import HEAD_READ_LIMIT

    pad = b"".join(b"X-Pad-%d: %s\n" % (i, b"p" * 70) for i in range(HEAD_READ_LIMIT // 70))
    long_one = b"From a@b.example Thu Nov 26 10:00:00 2026\nSubject: long\n" + pad + b"\nbody\n"
    short_one = b"From c@d.example Thu Nov 26 10:01:00 2026\nSubject: short\n\nbody\n"
    (tmp_path / "box").write_bytes(long_one + short_one)
    (tmp_path / "cut.eml").write_bytes(long_one.partition(b"\n")[2])
    records = {r.id: r for r in queuetool.open_spool(tmp_path)}
    cut = records["box:0"]
    assert cut.error and "header block longer than" in cut.error
    assert cut.subject == "long" and cut.size == len(long_one) - len(long_one.partition(b"\n")[0]) - 1
    assert records["cut"].error == cut.error
    assert records[f"box:{len(long_one)}"].error is None
