"""Exchange 2007+ reader: Pickup/Replay .eml, the injected X-header block, Export-Message files."""
from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import queuetool
from corpus import copy_corpus, load_manifest
from queuetool.model import QueueUnit
from queuetool.spools import detect_mta, exchange, find_spools
from queuetool.spools.exchange import judge_org_auth, parse_esmtp_value, parse_injected_block, xtext_decode

TR = "Program Files/Microsoft/Exchange Server/V15/TransportRoles"


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    return copy_corpus("exchange2016", tmp_path_factory.mktemp("ex2016"))


@pytest.fixture(scope="module")
def records(tree):
    spools = find_spools(tree)
    assert sorted((s.mta, s.label) for s in spools) == [("exchange", TR), ("exchange", "exportfolder")]
    return {r.id: r for s in spools for r in s}


def test_every_manifest_message_is_read_with_its_envelope(records):
    manifest = load_manifest("exchange2016")
    assert {m["id"] for m in manifest} == set(records)
    for truth in manifest:
        record = records[truth["id"]]
        assert record.error is None, (truth["id"], record.error)
        assert record.queue == truth["queue"]
        assert record.sender == truth["sender"], truth["id"]
        assert record.recipients == truth["recipients"], truth["id"]


def test_trusted_org_headers_fill_login_and_client_forged_ones_do_not(records):
    for truth in load_manifest("exchange2016"):
        record = records[truth["id"]]
        if truth["queue"] == "pickup" or truth["kind"] == "backscatter":
            continue
        org = record.details["org_headers"]
        if truth["scenario"] == "inbound":  # the phishing kit's forged AuthAs: Internal
            assert org["trusted"] is False and "not among" in org["why"]
            assert record.auth_user is None and record.client_ip == truth["client_ip"]
            continue
        assert org["trusted"] is True
        assert record.client_ip == truth["client_ip"]
        if truth["account"]:
            assert record.auth_user == f"{truth['account']}@example.com"
            assert record.auth_evidence.startswith("header:X-Sender AUTH=")
        else:
            assert record.auth_user is None and org["headers"]["AuthAs"] == "Anonymous"
        assert org["headers"]["Network-Message-Id"]


def test_injected_block_details_and_declared_size(records):
    replay = [r for r in records.values() if r.queue == "replay"]
    assert len(replay) == 2
    for record in replay:
        injected = record.details["injected"]
        assert injected["created_by"] == "MSExchange15" and injected["extended_props"]
        assert injected["declared_size"] == injected["block_bytes"]
        assert record.helo == injected["helo_domain"]
        assert record.details["server_version"]["product"] == "Exchange 2016"


def test_ndrs_expose_their_dsn_with_the_kb_895853_codes(records):
    ndrs = [r for r in records.values() if "dsn" in r.details]
    assert sorted(r.details["dsn"]["recipients"][0]["status"] for r in ndrs) == ["5.0.0", "5.7.1", "5.7.3"]
    for record in ndrs:
        assert record.sender == "" and record.status
        assert record.details["dsn"]["original"]["headers_only"] is True


def test_pickup_envelope_from_headers_and_bad_state(records):
    pickup = {r.id: r for r in records.values() if r.queue == "pickup"}
    assert pickup["webform-0000"].details["envelope"].startswith("headers")
    assert pickup["broken-0001"].details["state"].startswith("rejected")


def test_get_bytes_drops_the_injected_block(tree):
    spool = queuetool.open_spool(tree / "exportfolder")
    key = spool.keys()[0]
    raw = spool.get_bytes(key)
    assert raw.startswith(b"Received: from ") and b"X-Receiver:" not in raw
    assert (tree / "exportfolder" / f"{key}.eml").read_bytes().endswith(raw)


def test_detection_prefers_exchange_for_2007_files_and_leaves_plain_eml(tree, tmp_path):
    assert detect_mta(tree / TR) == "exchange"
    assert detect_mta(tree / "exportfolder") == "exchange"
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "a.eml").write_bytes(b"From: a@b\r\nSubject: s\r\n\r\nbody\r\n")
    assert detect_mta(plain) == "eml"
    assert detect_mta(tree / TR / "Logs") is None


SECUNET = (
    b"Received: from Pickup by mbx-essen-01.secunet.de with Microsoft SMTP Server id\r\n"
    b" 15.1.2507.17; Sun, 31 Mar 2024 16:36:42 +0000\r\n"
    b"X-sender: <kvm+bounces-13106-martin.weber=secunet.com@vger.kernel.org>\r\n"
    b"X-Receiver: <martin.weber@secunet.com> ORCPT=rfc822;martin.weber@secunet.com\r\n"
    b"X-CreatedBy: MSExchange15\r\n"
    b"X-HeloDomain: mbx-dresden-01.secunet.de\r\n"
    b"X-ExtendedProps: BQBjAAoAgkemlidQ3AgF\r\n"
    b"X-Source: SMTP:Default MBX-ESSEN-02\r\n"
    b"X-SourceIPAddress: 10.53.40.199\r\n"
    b"X-EndOfInjectedXHeaders: 12503\r\n"
    b"Subject: real header\r\n\r\n"
)


def test_real_2016_block_any_case_after_received():
    env = parse_injected_block(SECUNET)
    assert env.sender == "kvm+bounces-13106-martin.weber=secunet.com@vger.kernel.org"
    assert env.receivers == [{"address": "martin.weber@secunet.com",
                              "params": {"ORCPT": "rfc822;martin.weber@secunet.com"}}]
    assert (env.helo_domain, env.source, env.source_ip) == ("mbx-dresden-01.secunet.de", "SMTP:Default MBX-ESSEN-02",
                                                            "10.53.40.199")
    assert env.declared_size == 12503 and env.has_extended_props and env.problems == []
    assert env.block_start > 0  # the Received line stays above the block


def test_esmtp_parameters_and_xtext():
    assert parse_esmtp_value("<bob@fabrikam.com> BODY=7bit RET=HDRS ENVID=12345ABCD auth=<someAuth>") == (
        "bob@fabrikam.com", {"BODY": "7bit", "RET": "HDRS", "ENVID": "12345ABCD", "AUTH": "<someAuth>"})
    assert parse_esmtp_value("<>") == ("", {})
    assert xtext_decode("a+2Bb+3Dc") == "a+b=c"


def test_no_block_and_replay_without_block_is_an_error(tmp_path):
    assert parse_injected_block(b"From: a\r\nX-Sender: late\r\n\r\n") is None
    replay = tmp_path / "Replay"
    replay.mkdir()
    (replay / "m.eml").write_bytes(b"From: a@b.example\r\nSubject: s\r\n\r\n")
    record = exchange.read_unit(replay, QueueUnit("m", "replay", ("m.eml",)))
    assert "X-Sender/X-Receiver" in record.error


def test_org_auth_without_authsource_is_untrusted():
    verdict = judge_org_auth([("Received", "from x by mail.example.com with Microsoft SMTP Server id 15.1.1; d"),
                              ("X-MS-Exchange-Organization-AuthAs", "Internal")])
    assert verdict["trusted"] is False and verdict["why"] == "no AuthSource header"
    assert judge_org_auth([("Subject", "x")]) is None


_ADDR = st.from_regex(r"[a-z0-9.]{1,12}@[a-z]{1,10}\.(example|test)", fullmatch=True)


@settings(max_examples=200, deadline=None)
@given(sender=_ADDR, receivers=st.lists(_ADDR, min_size=1, max_size=10),
       case=st.sampled_from(["X-Sender", "x-sender", "X-SENDER"]), helo=st.from_regex(r"[a-z]{1,10}", fullmatch=True))
def test_generated_blocks_round_trip(sender, receivers, case, helo):
    lines = [f"{case}: <{sender}> BODY=7bit"] + [f"X-Receiver: <{r}> NOTIFY=NEVER" for r in receivers]
    lines += [f"X-HeloDomain: {helo}"]
    block = ("\r\n".join(lines) + "\r\n").encode()
    data = block + f"X-EndOfInjectedXHeaders: {len(block)}\r\nSubject: s\r\n\r\nbody".encode()
    env = parse_injected_block(data)
    assert env.sender == sender and [r["address"] for r in env.receivers] == receivers
    assert env.declared_size == env.size_before_end_marker == len(block)
    assert data[env.block_end:].startswith(b"Subject: s")


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=3000))
def test_random_header_bytes_never_raise_in_block_parser(data):
    env = parse_injected_block(b"X-Sender: <a@b>\r\n" + data)
    assert env is not None


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=3000), queue=st.sampled_from(["pickup", "replay", "export"]))
def test_random_files_never_raise_from_read_unit(tmp_path, data, queue):
    (tmp_path / "u.eml").write_bytes(b"X-Sender: <a@b.example>\r\nX-Receiver: <" + data)
    record = exchange.read_unit(tmp_path, QueueUnit("u", queue, ("u.eml",)))
    json.dumps(record.to_dict())
    (tmp_path / "u.eml").write_bytes(data)
    exchange.read_unit(tmp_path, QueueUnit("u", queue, ("u.eml",)))
