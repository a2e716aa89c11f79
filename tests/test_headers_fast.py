"""parse_header_block's fast path gives exactly what the straightforward per-line code gave.

The reference below is the implementation parse_header_block had before it was made
fast (one regex pass over the decoded block); it is kept here only to compare against.
"""
from __future__ import annotations

import base64
import binascii
import codecs
import importlib.util
import quopri
import re
import sys
from pathlib import Path

from hypothesis import example, given, settings, strategies as st

from queuetool.headers import find_body_start, parse_header_block

ROOT = Path(__file__).resolve().parents[1]

# ---------------------------------------------------------------- reference (old code)
_REF_ENCODED_WORD = re.compile(r"=\?([^?\s]+)\?([bBqQ])\?([^?\s]*)\?=")
_REF_BETWEEN_WORDS = re.compile(r"(=\?[^?\s]+\?[bBqQ]\?[^?\s]*\?=)\s+(?==\?)")
_REF_FOLD = re.compile(rb"\r?\n[ \t]+")
_REF_BAD_NAME_BYTES = re.compile(rb"[\x00-\x20\x7f-\xff]")


def ref_iter_raw_fields(block: bytes):
    for line in _REF_FOLD.sub(b" ", block).split(b"\n"):
        key, sep, value = line.partition(b":")
        if not sep:
            continue
        key = key.rstrip(b" \t")
        if not key or _REF_BAD_NAME_BYTES.search(key):
            continue
        yield key, value.strip()


def ref_decode_bytes(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("utf-8", "backslashreplace")


def ref_decode_word(charset: str, encoding: str, text: str) -> str | None:
    charset = charset.split("*", 1)[0].lower()
    try:
        codecs.lookup(charset)
    except (LookupError, ValueError):
        return None
    try:
        if encoding in "bB":
            padded = text + "=" * (-len(text) % 4)
            payload = base64.b64decode(padded.encode("ascii"), validate=False)
        else:
            payload = quopri.decodestring(text.replace("_", " ").encode("ascii"), header=False)
    except (binascii.Error, ValueError, UnicodeEncodeError):
        return None
    try:
        return payload.decode(charset, "backslashreplace")
    except (LookupError, UnicodeError):
        return None


def ref_decode_rfc2047(value: str) -> str:
    if "=?" not in value:
        return value
    value = _REF_BETWEEN_WORDS.sub(r"\1", value)

    def replace(match):
        decoded = ref_decode_word(match.group(1), match.group(2), match.group(3))
        return match.group(0) if decoded is None else decoded

    return _REF_ENCODED_WORD.sub(replace, value)


def ref_parse_header_block(block: bytes) -> list[tuple[str, str]]:
    return [(name.decode("ascii", "replace"), ref_decode_rfc2047(ref_decode_bytes(raw)))
            for name, raw in ref_iter_raw_fields(block)]


# ---------------------------------------------------------------- inputs
def _load_spoolgen():
    spec = importlib.util.spec_from_file_location("spoolgen", ROOT / "benchmarks" / "spoolgen.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("spoolgen", module)  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def _head(data: bytes) -> bytes:
    data = data[:65536]
    pos = find_body_start(data)
    return data if pos < 0 else data[:pos]


def real_blocks() -> list[bytes]:
    """Header blocks of every file under corpora/*/spool and of generated messages (LF and CRLF)."""
    blocks = []
    for path in sorted((ROOT / "corpora").glob("*/spool/**/*")):
        if path.is_file() and not path.is_symlink():
            blocks.append(_head(path.read_bytes()))
    spoolgen = _load_spoolgen()
    for i in range(150):
        header = spoolgen.make_message(20261127, i).header + b"\n"
        blocks += [header, header.replace(b"\n", b"\r\n")]
    return blocks


REAL_BLOCKS = real_blocks()

# pieces that hit every branch: line ends, folds, blanks bytes.strip() removes (and
# ones it does not), colons, bad name bytes, invalid/partial UTF-8, encoded words
PIECES = [b"\r", b"\n", b"\r\n", b"\n\t", b"\r\n ", b" ", b"\t", b"\x0b", b"\x0c", b"\x1c", b"\x00", b"\x7f",
          b":", b"X", b"a", b"Subject", b"Received", b"from", b"=?", b"?=", b"\xc3", b"\xa9", b"\xc3\xa9",
          b"\xff", b"\x80", b"\xe2\x82", b"\xe2\x82\xac", b"\xed\xa0\x80", b"\xc2\x85", b"\xc2\xa0",
          b"=?utf-8?q?a=C3=A9_b?=", b"=?utf-8?b?w6k=?=", b"=?iso-8859-1?q?=E4?=", b"=?bogus?q?x?=",
          b"=?utf-8?b?####?="]
pieced = st.lists(st.sampled_from(PIECES), max_size=40).map(b"".join)


def same(block: bytes) -> bool:
    """Fast and reference agree: same fields, or the same exception."""
    def outcome(parse):
        try:
            return parse(block)
        except Exception as exc:  # noqa: BLE001 - compared, not hidden
            return type(exc)
    return outcome(parse_header_block) == outcome(ref_parse_header_block)


def test_real_headers_match_the_reference():
    assert len(REAL_BLOCKS) > 500
    for block in REAL_BLOCKS:
        assert parse_header_block(block) == ref_parse_header_block(block), block[:200]


@settings(max_examples=1500)
@given(pieced)
@example(b"Foo\r\n\t: bar\r\nX:\r\n\tval \r\n")
@example(b"A: b\r\r\n\tc\n\n\tD: e")
@example(b"K: caf\xe9 =?utf-8?q?x?= \xc3\n")
@example(b"S: =?\x00utf-8?q?a?=\n")
def test_pieced_blocks_match_the_reference(block):
    assert same(block)


@given(st.binary(max_size=600))
def test_random_bytes_match_the_reference(block):
    assert same(block)


@settings(max_examples=500)
@given(st.sampled_from(REAL_BLOCKS), st.lists(st.tuples(st.integers(0, 4000), st.sampled_from(PIECES)), max_size=6))
def test_mutated_real_headers_match_the_reference(block, edits):
    for pos, piece in edits:
        pos %= len(block) + 1
        block = block[:pos] + piece + block[pos:]
    assert same(block)
