"""Syslog line prefixes shared by the Postfix and Sendmail log readers.

Two shapes: traditional `Nov 27 05:34:49 host prog[pid]: text` (no year, no zone:
the year comes from the file, the zone is taken as UTC) and RFC 3339
`2026-11-27T05:34:49.123456+00:00 host prog[pid]: text` (rsyslog high precision,
Postfix `maillog_file`).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from typing import Iterator

from . import LogStats, file_year, iso_from_parts, iter_lines, parse_iso

MONTHS = {m: i for i, m in enumerate(
    ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), 1)}

_TRADITIONAL = re.compile(
    r"^([A-Za-z]{3})\s+(\d{1,2})\s+(\d{2}):(\d{2}):(\d{2})\s+(\S+)\s+([^\s\[:]+)(?:\[(\d+)\])?:\s?(.*)$"
)
_RFC3339 = re.compile(
    r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:?\d{2})?)\s+(\S+)\s+([^\s\[:]+)(?:\[(\d+)\])?:\s?(.*)$"
)


@dataclass
class SyslogLine:
    time: str | None
    host: str
    program: str
    pid: int | None
    text: str


def parse_syslog_line(line: str, year: int, last_month: int = 12) -> SyslogLine | None:
    """Split a syslog line into its prefix and text, or None if it is not one.

    Year-less stamps get `year`; a month after `last_month` (the file's last write)
    belongs to the year before (a December line in a file written in January).
    """
    match = _TRADITIONAL.match(line)
    if match:
        month = MONTHS.get(match.group(1).lower())
        if month is None:
            return None
        when = iso_from_parts(year - 1 if month > last_month else year, month, int(match.group(2)), int(match.group(3)),
                              int(match.group(4)), int(match.group(5)))
        pid = match.group(8)
        return SyslogLine(when, match.group(6), match.group(7), int(pid) if pid else None, match.group(9))
    match = _RFC3339.match(line)
    if match:
        pid = match.group(4)
        return SyslogLine(parse_iso(match.group(1)), match.group(2), match.group(3),
                          int(pid) if pid else None, match.group(5))
    return None


def iter_syslog(path, stats: LogStats) -> Iterator[SyslogLine]:
    """Every syslog line of a (possibly rotated, gzipped) log, year taken from the file;
    lines that are not syslog are counted in `stats` as junk."""
    year, last_month = file_year(path)
    for lineno, line in iter_lines(path, stats):
        if not line.strip():
            continue
        parsed = parse_syslog_line(line, year, last_month)
        if parsed is None:
            stats.add_junk(lineno, line, "not a syslog line")
            continue
        yield parsed


def looks_like_syslog(head: bytes, programs: tuple[bytes, ...]) -> int:
    """How many of the first lines are syslog lines from one of `programs`."""
    hits = 0
    for raw in head.split(b"\n")[:400]:
        line = raw.decode("utf-8", "replace")
        parsed = parse_syslog_line(line, 2000)
        if parsed and parsed.program.encode().split(b"/")[0] in programs:
            hits += 1
    return hits


_KV = re.compile(r"([A-Za-z_][\w-]*)=(<[^>]*>|\"[^\"]*\"|\[[^\]]*\][^,\s]*|[^,\s]*)")


def key_values(text: str) -> dict[str, str]:
    """`a=1, b=<x@y>, relay=host [1.2.3.4]` style pairs (first occurrence of each key wins)."""
    out: dict[str, str] = {}
    for match in _KV.finditer(text):
        out.setdefault(match.group(1).lower(), match.group(2))
    return out
