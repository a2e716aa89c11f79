"""The fast paths of the Exim and Sendmail readers give what their general paths give.

Each reader takes a shortcut for the usual input (plain-ASCII Exim option blocks,
`%03d%c ` header prefixes, Sendmail control files without CR or meta bytes, small
files read in one go); these tests feed both the usual and the unusual spelling of
the same content and compare, so a shortcut can never change a record.
"""
from __future__ import annotations

import os

from hypothesis import given, settings
from hypothesis import strategies as st

from queuetool.spools import exim, sendmail

EXIM_ID = "1x8ell-0002bI-00"


def exim_h(options: bytes, headers: bytes = b"022F From: bob@example.com\n",
           recipients: bytes = b"1\norder@d82.example\n") -> bytes:
    return (f"{EXIM_ID}-H\nDebian-exim 101 103\n<bob@example.com>\n1790000001 0\n".encode()
            + options + b"XX\n" + recipients + b"\n" + headers)


def test_ascii_option_block_equals_the_line_by_line_path():
    """An ACL line sends the whole block through the general loop: same options."""
    plain = b"--helo_name office-pc\n-host_address [10.0.0.55]:40000\n--(quoter)auth_id bob\n-frozen 12\n-local\n-\n"
    acl = b"-aclm 0 3\nabc\n"
    fast = exim.parse_header_file(exim_h(plain))
    slow = exim.parse_header_file(exim_h(acl + plain))
    assert fast.options == slow.options == {"helo_name": "office-pc", "host_address": "[10.0.0.55]:40000",
                                            "auth_id": "bob", "frozen": "12", "local": True, "": True}
    assert fast.tainted == slow.tainted == ["helo_name", "auth_id"]
    assert slow.acl_vars == {"acl_m0": "abc"} and not fast.problems and not slow.problems


def test_non_ascii_option_values_decode_as_before():
    hf = exim.parse_header_file(exim_h("-helo_name h\u00e9lo\n".encode() + b"-host_name \xff\xfe\n"))
    assert hf.options["helo_name"] == "h\u00e9lo" and hf.options["host_name"] == "\\xff\\xfe"


def test_option_line_without_newline_runs_off_the_end():
    data = exim_h(b"-local\n").split(b"XX\n")[0] + b"-deliver_firsttime"
    hf = exim.parse_header_file(data)
    assert hf.problems == ["option lines run off the end"] and hf.options == {"local": True}


def test_header_prefixes_fast_and_regex_agree():
    """`%03d%c ` is taken without the regex; 4-digit lengths and digit flags use it."""
    long_value = b"X-Long: " + b"a" * 1000 + b"\n"
    headers = (b"022F From: bob@example.com\n"
               + f"{len(long_value)}  ".encode() + long_value
               + b"0164 Subject: digits\n")  # regex: length 016, flag '4'
    hf = exim.parse_header_file(exim_h(b"", headers=headers))
    assert [flag for flag, _ in hf.headers] == ["F", " ", "4"] and not hf.problems
    assert hf.headers[1][1] == long_value and hf.headers[2][1] == b"Subject: digits\n"
    bad = exim_h(b"", headers=b"02\n")
    assert exim.parse_header_file(bad).problems == [f"bad header prefix at byte {len(bad) - 3}"]


def _exim_header(text: bytes, flag: bytes, length_delta: int, width: int) -> bytes:
    return b"%0*d%s %s" % (width, max(len(text) + length_delta, 0), flag, text)


exim_headers = st.lists(st.tuples(
    st.sampled_from([b"From: a@b.example\n", b"Received: x\n\tby y id 123A \n", b"Subject: s\n022F x\n",
                     b"X-No-Newline: v", b"", b"\n", b"To: \xff\xfe\n", b"A: " + b"a" * 1000 + b"\n"]),
    st.sampled_from([b"F", b" ", b"*", b"P", b"4", b"\n", b"\xe9"]),
    st.sampled_from([0, 0, 0, 1, -1, 7]),
    st.sampled_from([3, 3, 3, 4])), max_size=8)


@settings(max_examples=500, deadline=None)
@given(exim_headers, st.binary(max_size=6))
def test_header_split_equals_the_header_walk(headers, tail):
    """The one-split path gives the walk's headers and problems on every spelling."""
    data = b"".join(_exim_header(*header) for header in headers) + tail
    for pos in (0, 1):
        split, walked = exim.HeaderFile(), exim.HeaderFile()
        exim._parse_headers(split, data, pos)
        exim._walk_headers(walked, data, pos)
        assert (split.headers, split.problems) == (walked.headers, walked.problems)


def test_recipient_list_that_runs_off_the_end():
    hf = exim.parse_header_file(exim_h(b"", headers=b"", recipients=b"3\na@x.example\nb@x.example"))
    assert [r.address for r in hf.recipients] == ["a@x.example", "b@x.example"]
    assert hf.problems == ["recipient list runs off the end (2 of 3)"]


def _folded_lines_reference(data: bytes) -> list[bytes]:
    """fgetfolded() as the line-by-line loop does it (the path taken when CRs appear)."""
    groups: list[list[bytes]] = []
    for line in data.split(b"\n"):
        if line.endswith(b"\r"):
            line = line[:-1]
        if line[:1] in (b" ", b"\t") and groups:
            groups[-1].append(line)
        else:
            groups.append([line])
    if groups and groups[-1] == [b""]:
        groups.pop()
    return [b"\n".join(parts) for parts in groups]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from([b"H??A: b", b"\tcont", b" cont", b"", b"\n", b"V8", b".", b"\r", b"x\ty"]), max_size=12))
def test_folded_lines_split_equals_the_loop(pieces):
    data = b"\n".join(pieces)
    assert sendmail.folded_lines(data) == _folded_lines_reference(data)
    with_cr = data.replace(b"\n", b"\r\n")
    assert sendmail.folded_lines(with_cr) == _folded_lines_reference(with_cr)


def test_control_file_with_meta_bytes_and_crs_parses_like_the_plain_one():
    plain = b"V8\nT1790000001\nS<a@b.example>\nRPF:<c@d.example>\nH?P?Return-Path: <$g>\nH??Subject: hi\n\tthere\n.\n"
    meta = plain.replace(b"<$g>", b"<\x81g>")
    for variant in (meta, plain.replace(b"\n", b"\r\n")):
        ctl, ref = sendmail.parse_control(variant), sendmail.parse_control(plain)
        assert (ctl.header_lines, ctl.header_flags, ctl.recipients, ctl.sender, ctl.created, ctl.ended) == \
               (ref.header_lines, ref.header_flags, ref.recipients, ref.sender, ref.created, ref.ended)
    assert sendmail.parse_control(plain).header_flags == [("Return-Path", "P"), ("Subject", "")]


def test_queue_id_year_from_gmtime_and_datetime_agree():
    qid = "6AR5fnhS029473"
    for near in (0, 1530010333, 1795758109, 253402300799):
        fast = sendmail.decode_queue_id_time(qid, near)
        slow = sendmail.decode_queue_id_time(qid, float(near))  # float: the datetime path
        assert fast == slow
    assert sendmail.decode_queue_id_time(qid, 10 ** 12) == sendmail.decode_queue_id_time(qid, None)


def test_long_control_file_is_read_whole(tmp_path):
    """A control file longer than one 64 KiB read is read whole (up to the limit)."""
    headers = b"".join(b"H??X-Pad-%d: %s\n" % (i, b"p" * 100) for i in range(1000))
    qf = b"V8\nT1790000001\nS<a@b.example>\nR:<c@d.example>\n" + headers + b"H??Subject: last\n.\n"
    assert len(qf) > 64 * 1024
    (tmp_path / "qf6AR5fnhS029473").write_bytes(qf)
    (tmp_path / "df6AR5fnhS029473").write_bytes(b"body\n")
    [unit] = sendmail.iter_units(tmp_path)
    record = sendmail.read_unit(tmp_path, unit)
    assert record.error is None and record.subject == "last" and len(record.headers) == 1001


def test_exim_header_file_read_in_one_piece_even_when_reads_come_back_short(tmp_path, monkeypatch):
    """A short read (network/FUSE file systems) before the end goes on reading."""
    data = exim_h(b"-local\n")
    (tmp_path / f"{EXIM_ID}-H").write_bytes(data)
    real_read = os.read
    monkeypatch.setattr(os, "read", lambda fd, n: real_read(fd, min(n, 7)))
    assert exim.fsutil.read_file(tmp_path, f"{EXIM_ID}-H", exim.H_READ_LIMIT + 1) == data


def test_sendmail_listing_groups_type_subdirs_and_queue_dirs(tmp_path):
    from queuetool.spools.sendmail import iter_units

    for rel in ["q1/qf/qfAB12CD34EF56", "q1/df/dfAB12CD34EF56", "q1/xf/xfAB12CD34EF56", "q1/hfAB12CD34EF57",
                "q1/dfAB12CD34EF57", "q2/qfAB12CD34EF56", "q2/other/qfAB12CD34EF58", "q2/zzAB12CD34EF59"]:
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
    units = [(u.id, u.queue, u.paths) for u in iter_units(tmp_path)]
    assert units == [
        ("AB12CD34EF56", "queued", ("q1/qf/qfAB12CD34EF56", "q1/df/dfAB12CD34EF56", "q1/xf/xfAB12CD34EF56")),
        ("AB12CD34EF57", "quarantined", ("q1/hfAB12CD34EF57", "q1/dfAB12CD34EF57")),
        ("AB12CD34EF56", "queued", ("q2/qfAB12CD34EF56",)),
        ("AB12CD34EF58", "queued", ("q2/other/qfAB12CD34EF58",)),
    ]
