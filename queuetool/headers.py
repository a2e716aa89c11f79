"""Fast, tolerant RFC 5322 header handling on bytes.

The email package is ~5x slower than this and raises on hostile input; queue scans
only need the header block, unfolded and decoded. Nothing here raises on bad bytes:
undecodable bytes stay visible as backslash escapes, a bad encoded word stays as it
was written.
"""
from __future__ import annotations

import base64
import binascii
import codecs
import quopri
import re
from typing import Iterable

# How much of a plain message file the header-only path reads. Headers of real spam
# and of heavy corporate mail fit easily; a longer block is cut and flagged.
HEAD_READ_LIMIT = 64 * 1024

_ENCODED_WORD = re.compile(r"=\?([^?\s]+)\?([bBqQ])\?([^?\s]*)\?=")
_BETWEEN_WORDS = re.compile(r"(=\?[^?\s]+\?[bBqQ]\?[^?\s]*\?=)\s+(?==\?)")


def find_body_start(data: bytes) -> int:
    """Offset of the body (just after the blank line), or -1 if no blank line is seen."""
    if data.startswith((b"\r\n", b"\n")):
        return 2 if data.startswith(b"\r\n") else 1
    best = -1
    for sep in (b"\n\n", b"\n\r\n"):
        pos = data.find(sep)
        if pos >= 0 and (best < 0 or pos + len(sep) < best):
            best = pos + len(sep)
    return best


def split_header_block(data: bytes) -> tuple[bytes, bytes]:
    """Split a message into (header block, body); no blank line means all headers."""
    pos = find_body_start(data)
    if pos < 0:
        return data, b""
    return data[:pos], data[pos:]


_FOLD = re.compile(rb"\r?\n[ \t]+")
_BAD_NAME_BYTES = re.compile(rb"[\x00-\x20\x7f-\xff]")


def iter_raw_fields(block: bytes) -> Iterable[tuple[bytes, bytes]]:
    """Yield (name, unfolded raw value) pairs; lines that are not fields are skipped.

    A leading mbox "From " line or other garbage line is ignored rather than fatal;
    a continuation line with no field before it is dropped.
    """
    for line in _FOLD.sub(b" ", block).split(b"\n"):
        key, sep, value = line.partition(b":")
        if not sep:
            continue
        key = key.rstrip(b" \t")
        if not key or _BAD_NAME_BYTES.search(key):
            continue
        yield key, value.strip()


def decode_bytes(raw: bytes) -> str:
    """UTF-8 if it is UTF-8 (RFC 6532), else keep every byte visible as \\xNN."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("utf-8", "backslashreplace")


def _decode_word(charset: str, encoding: str, text: str) -> str | None:
    charset = charset.split("*", 1)[0].lower()  # RFC 2231 language suffix
    try:
        codecs.lookup(charset)
    except (LookupError, ValueError):  # ValueError: a NUL byte in the charset name
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


def decode_rfc2047(value: str) -> str:
    """Decode RFC 2047 encoded words, any charset Python knows; keep the rest as is."""
    if "=?" not in value:
        return value
    value = _BETWEEN_WORDS.sub(r"\1", value)

    def replace(match: re.Match[str]) -> str:
        decoded = _decode_word(match.group(1), match.group(2), match.group(3))
        return match.group(0) if decoded is None else decoded

    return _ENCODED_WORD.sub(replace, value)


# One field per match on the unfolded text with "\n" put in front: the name (printable
# ASCII, no colon) starts a line, may be followed by blanks, then the colon; the value
# is the rest of the line without the blanks bytes.strip() removes. The same fields
# as iter_raw_fields, found in one C-level pass instead of a Python loop per line.
_FIELD = re.compile(r"\n([\x21-\x39\x3b-\x7e]+)[ \t]*:[ \t\r\x0b\x0c]*((?:[^\n]*[^ \t\r\n\x0b\x0c])?)")
_FOLD_LF = re.compile(r"\n[ \t]+")


def parse_header_block(block: bytes) -> list[tuple[str, str]]:
    """Decoded (name, value) pairs of a raw header block, in order.

    Same result as decoding each field of iter_raw_fields with decode_bytes and
    decode_rfc2047, but it runs once per message on every reader: the block is
    decoded once, folds are undone only when there is one (after "\r\n" -> "\n";
    a "\r" at a line end is stripped from the value either way), and only values
    with "=?" go through RFC 2047.
    """
    try:
        text = block.decode("utf-8")
        clean = True
    except UnicodeDecodeError:
        # invalid bytes become lone surrogates here and \xNN per value below
        text = block.decode("utf-8", "surrogateescape")
        clean = False
    if "\n " in text or "\n\t" in text:
        if "\r" in text:
            text = text.replace("\r\n", "\n")
        text = _FOLD_LF.sub(" ", text)
    fields = _FIELD.findall("\n" + text)
    if clean and "=?" not in text:
        return fields
    for pos, (name, value) in enumerate(fields):
        if not clean and not value.isascii():
            value = value.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
        if "=?" in value:
            value = decode_rfc2047(value)
        fields[pos] = (name, value)
    return fields


def first_value(headers: list[tuple[str, str]], name: str) -> str | None:
    low = name.lower()
    for key, value in headers:
        if key.lower() == low:
            return value
    return None


_SUMMARY_KEYS = {"from": "header_from", "subject": "subject", "message-id": "message_id", "date": "date"}


def summary_fields(headers: list[tuple[str, str]]) -> dict[str, str | None]:
    """The record's header-derived keys: header_from, subject, message_id, date (first of each)."""
    out: dict[str, str | None] = dict.fromkeys(_SUMMARY_KEYS.values())
    missing = len(_SUMMARY_KEYS)
    for name, value in headers:
        key = _SUMMARY_KEYS.get(name.lower())
        if key is not None and out[key] is None:
            out[key] = value
            missing -= 1
            if not missing:
                break
    return out


_ADDR_IN_ANGLES = re.compile(r"<([^<>]*)>")


def bare_address(value: str | None) -> str | None:
    """The address inside `Name <addr>` (or the value itself); `<>` gives ""."""
    if value is None:
        return None
    match = _ADDR_IN_ANGLES.search(value)
    if match:
        return match.group(1).strip()
    return value.strip().strip('"')


def apply_headers(record, headers: list[tuple[str, str]]) -> None:
    """Attach decoded headers to a record and fill its header-derived keys."""
    record.headers = headers
    for key, value in summary_fields(headers).items():
        setattr(record, key, value)
