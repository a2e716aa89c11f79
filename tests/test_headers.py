from hypothesis import given, strategies as st

from queuetool.headers import (
    bare_address, decode_rfc2047, find_body_start, parse_header_block, split_header_block,
)


def test_unfolds_and_decodes_encoded_words():
    block = (b"Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\n =?iso-8859-1?b?5A==?= tail\r\n"
             b"From: \"X\" <x@example.org>\r\n\r\n")
    headers = parse_header_block(block)
    assert headers[0] == ("Subject", "Grüßeä tail")
    assert bare_address(headers[1][1]) == "x@example.org"


def test_undecodable_bytes_stay_visible():
    headers = parse_header_block(b"Subject: caf\xe9 =?bogus-cs?q?x?=\n")
    assert headers == [("Subject", "caf\\xe9 =?bogus-cs?q?x?=")]


def test_body_start_lf_and_crlf():
    assert find_body_start(b"A: b\n\nbody") == 6
    assert find_body_start(b"A: b\r\n\r\nbody") == 8
    assert find_body_start(b"A: b\r\nC: d") == -1
    assert split_header_block(b"A: b\n\nbody") == (b"A: b\n\n", b"body")


def test_garbage_lines_are_skipped_not_fatal():
    headers = parse_header_block(b"From nobody Mon Jan  1\nnot a header\n\tcontinuation\nX-A: 1\n")
    assert headers == [("X-A", "1")]


@given(st.binary(max_size=2000))
def test_never_raises_on_random_bytes(data):
    headers = parse_header_block(data)
    assert all(isinstance(n, str) and isinstance(v, str) for n, v in headers)


@given(st.text(max_size=200))
def test_rfc2047_total_on_any_text(text):
    assert isinstance(decode_rfc2047(text), str)


def test_nul_in_an_encoded_word_charset_keeps_the_word_as_written():
    from queuetool.headers import parse_header_block

    assert parse_header_block(b"Subject: =?\x00utf-8?q?a?=\n\n") == [("Subject", "=?\x00utf-8?q?a?=")]


def test_summary_fields_take_the_first_of_each_case_insensitively():
    from queuetool.headers import summary_fields

    headers = [("SUBJECT", "one"), ("from", "a@x"), ("Subject", "two"), ("Message-Id", "<m>"), ("X", "y")]
    assert summary_fields(headers) == {"header_from": "a@x", "subject": "one", "message_id": "<m>", "date": None}
    assert summary_fields([]) == dict.fromkeys(["header_from", "subject", "message_id", "date"])
