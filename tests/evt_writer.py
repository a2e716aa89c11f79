"""A tiny writer of legacy Windows .evt files (EVENTLOGRECORD, Windows 2000/2003) for tests.

Layout per the Win32 docs (ELF_LOGFILE_HEADER, EVENTLOGRECORD, ELF_EOF_RECORD); just
enough to give the .evt reader a real file without a Windows machine.
"""
from __future__ import annotations

import struct

HEADER_SIZE = 0x30
EOF_SIZE = 0x28


def _utf16z(text: str) -> bytes:
    return text.encode("utf-16-le") + b"\x00\x00"


def event_record(number: int, when: int, event_id: int, source: str, computer: str, strings: list[str],
                 event_type: int = 4, category: int = 0) -> bytes:
    names = _utf16z(source) + _utf16z(computer)
    strings_blob = b"".join(_utf16z(s) for s in strings)
    fixed = 56
    string_offset = fixed + len(names)
    body = names + strings_blob
    body += b"\x00" * (-(fixed + len(body)) % 4)
    length = fixed + len(body) + 4
    data_offset = fixed + len(body)
    head = struct.pack("<I4sIIIIHHHHIIIIII", length, b"LfLe", number, when, when, event_id, event_type,
                       len(strings), category, 0, 0, string_offset, 0, data_offset, 0, data_offset)
    return head + body + struct.pack("<I", length)


def evt_file(records: list[bytes]) -> bytes:
    body = b"".join(records)
    end = HEADER_SIZE + len(body)
    max_size = end + EOF_SIZE
    header = struct.pack("<I4sIIIIIIIIII", HEADER_SIZE, b"LfLe", 1, 1, HEADER_SIZE, end, len(records) + 1, 1,
                         max_size, 0, 0, HEADER_SIZE)
    eof = struct.pack("<IIIIIIIIII", EOF_SIZE, 0x11111111, 0x22222222, 0x33333333, 0x44444444,
                      HEADER_SIZE, end, len(records) + 1, 1, EOF_SIZE)
    return header + body + eof
