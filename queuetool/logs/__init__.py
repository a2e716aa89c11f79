"""Mail and protocol log readers: one module per log format, like the spool readers.

Every reader module exposes plain functions (no base class):

    FORMAT: str                                      # e.g. "postfix", "iis-w3c"
    detect(first_bytes: bytes) -> int                # 0 = not mine; higher = surer (content)
    read_log(path, stats: LogStats | None = None) -> Iterator[Session | LogEvent]

(`read_<format>_log` is the same function under its descriptive name; `path` may be
a LogChain of rotated pieces for the formats in CHAINED_FORMATS.)
A reader never raises on bad content: a line it cannot parse is counted in
`stats.junk` (with a few examples) and skipped. Rotated (`mail.log.1`), gzipped
(`.gz`), BOM-prefixed and UTF-16 files are read the same way through `iter_lines`.

What the readers produce:
- `Session`: one SMTP client connection (or, where the log has no connection notion,
  one submission): client, HELO, login, failed logins, messages accepted.
- `LogEvent`: a Windows event (Event Viewer export, .evtx) or another single event.
`read_logs(paths)` reads many files into a `LogSet`; `trace.enrich_records` joins it
to queue records.
"""
from __future__ import annotations

import calendar
import datetime as _dt
import gzip
import importlib
import io
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

# Reader modules, by format name. Order matters only for ties.
LOG_MODULES: dict[str, str] = {
    "postfix": "queuetool.logs.postfix_log",
    "exim": "queuetool.logs.exim_log",
    "sendmail": "queuetool.logs.sendmail_log",
    "iis-w3c": "queuetool.logs.iis_w3c",
    "windows-events": "queuetool.logs.windows_events",
    "exchange-protocol": "queuetool.logs.exchange_protocol",
    "exchange-tracking": "queuetool.logs.exchange_tracking",
}

SNIFF_BYTES = 64 * 1024
MAX_LINE = 256 * 1024
JUNK_EXAMPLES = 5


class LogError(Exception):
    """A path that is not a log queuetool can read (one-line reason)."""


@dataclass
class LogMessage:
    """One message a log saw accepted (a DATA that got a queue id or Message-ID)."""

    time: str | None = None
    queue_id: str | None = None
    message_id: str | None = None
    sender: str | None = None
    recipients: list[str] = field(default_factory=list)
    size: int | None = None


@dataclass
class Session:
    """One SMTP client connection as a log saw it (or one local submission).

    `failed_logins` holds the user name of every refused AUTH attempt ("" where the
    log does not name it); `auth_user` is the login that succeeded, if any.
    """

    source: str
    path: str = ""
    session_id: str | None = None
    start: str | None = None
    end: str | None = None
    client_ip: str | None = None
    client_name: str | None = None
    helo: str | None = None
    auth_user: str | None = None
    auth_method: str | None = None
    failed_logins: list[str] = field(default_factory=list)
    messages: list[LogMessage] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class LogEvent:
    """One Windows event (or other single log event), kept generic.

    `strings` are the insertion strings where the source has them (.evt/.evtx);
    `message` the rendered description where it has one (Event Viewer exports).
    """

    source: str
    path: str = ""
    time: str | None = None
    event_id: int | None = None
    provider: str | None = None
    level: str | None = None
    category: str | None = None
    computer: str | None = None
    message: str = ""
    strings: list[str] = field(default_factory=list)
    line: int | None = None


@dataclass
class LogStats:
    """What reading one file gave: counts, and examples of lines that did not parse."""

    path: str
    format: str | None = None
    lines: int = 0
    junk: int = 0
    junk_examples: list[str] = field(default_factory=list)
    error: str | None = None

    def add_junk(self, lineno: int, line: str, why: str = "unparsed") -> None:
        self.junk += 1
        if len(self.junk_examples) < JUNK_EXAMPLES:
            self.junk_examples.append(f"{lineno}: {why}: {line[:160]!r}")


@dataclass
class LogSet:
    """Everything read from a set of log files, ready to join to queue records."""

    sessions: list[Session] = field(default_factory=list)
    events: list[LogEvent] = field(default_factory=list)
    files: list[LogStats] = field(default_factory=list)

    @property
    def junk(self) -> int:
        return sum(stats.junk for stats in self.files)

    def extend(self, items: Iterable[Session | LogEvent]) -> None:
        for item in items:
            if isinstance(item, Session):
                self.sessions.append(item)
            elif isinstance(item, LogEvent):
                self.events.append(item)


@dataclass
class LogChain:
    """Rotated pieces of one log, oldest first, read as one stream.

    Readers keep state across lines (open connections, queue ids); reading
    `mail.log.1` and `mail.log` as one stream keeps a connection that spans the
    rotation whole. Each piece keeps its own LogStats (junk is counted per file).
    """

    paths: list[Path]
    stats: list[LogStats]

    def __str__(self) -> str:
        return str(self.paths[-1])


class ChainStats(LogStats):
    """The LogStats a reader sees for a chain: junk goes to the piece being read."""

    def __init__(self, chain: LogChain) -> None:
        super().__init__(str(chain), chain.stats[0].format)
        self.chain = chain
        self.current = chain.stats[0]

    def add_junk(self, lineno: int, line: str, why: str = "unparsed") -> None:
        self.current.add_junk(lineno, line, why)


def as_source(path: "str | Path | LogChain") -> "Path | LogChain":
    """What a reader's `path` argument may be: one file, or a LogChain."""
    return path if isinstance(path, LogChain) else Path(path)


# ---------------------------------------------------------------- reading bytes


def _open_binary(path: Path) -> io.BufferedIOBase:
    raw = open(path, "rb")  # noqa: SIM115 - returned to the caller
    magic = raw.read(2)
    raw.seek(0)
    if magic == b"\x1f\x8b":
        return gzip.GzipFile(fileobj=raw)  # type: ignore[return-value]
    return raw  # type: ignore[return-value]


def _utf16_encoding(head: bytes) -> str | None:
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "utf-16"
    # BOM-less UTF-16LE text (some exports): ASCII with a NUL after every byte
    if len(head) >= 8 and head[1:8:2] == b"\x00\x00\x00\x00" and head[0:8:2].isascii() and b"\x00" not in head[0:8:2]:
        return "utf-16-le"
    return None


def sniff(path: str | Path, size: int = SNIFF_BYTES) -> bytes:
    """The first `size` bytes of a log as UTF-8: decompressed, BOM removed, UTF-16 decoded."""
    try:
        with _open_binary(Path(path)) as handle:
            head = handle.read(size)
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise LogError(f"{path}: cannot read: {exc}") from None
    encoding = _utf16_encoding(head)
    if encoding:
        return head.decode(encoding, "replace").lstrip("\ufeff").encode("utf-8")
    return head[3:] if head.startswith(b"\xef\xbb\xbf") else head


def iter_lines(path: "str | Path | LogChain", stats: LogStats | None = None) -> Iterator[tuple[int, str]]:
    """(line number, text) for every line, .gz/BOM/UTF-16 aware; never raises on content.

    A LogChain yields the lines of each piece in turn (line numbers restart per piece;
    a ChainStats routes junk to the piece being read).

    Bytes that are not UTF-8 stay visible as \\xNN escapes. A truncated last line is
    yielded as it is (readers count it as junk if it does not parse); an over-long
    line is cut at MAX_LINE. A file that cannot be read (or a corrupt .gz) ends the
    iteration and sets `stats.error`.
    """
    if isinstance(path, LogChain):
        for piece, piece_stats in zip(path.paths, path.stats):
            if isinstance(stats, ChainStats):
                stats.current = piece_stats
            yield from iter_lines(piece, piece_stats)
        return
    path = Path(path)
    lineno = 0
    try:
        with _open_binary(path) as handle:
            head = handle.read(4096)
            encoding = _utf16_encoding(head)
            if encoding:
                rest = handle.read()
                text = (head + rest).decode(encoding, "replace").lstrip("\ufeff")
                for lineno, line in enumerate(text.splitlines(), 1):
                    if stats is not None:
                        stats.lines = lineno
                    yield lineno, line[:MAX_LINE]
                return
            if head.startswith(b"\xef\xbb\xbf"):
                head = head[3:]
            stream = io.BufferedReader(_Prefixed(head, handle))  # type: ignore[arg-type]
            while True:
                raw = stream.readline(MAX_LINE)
                if not raw:
                    break
                if len(raw) >= MAX_LINE and not raw.endswith(b"\n"):
                    while True:  # skip the rest of the over-long line
                        more = stream.readline(MAX_LINE)
                        if not more or more.endswith(b"\n"):
                            break
                lineno += 1
                if stats is not None:
                    stats.lines = lineno
                line = raw.rstrip(b"\r\n")
                if lineno == 1 and line.startswith(b"\xef\xbb\xbf"):
                    line = line[3:]
                try:
                    text = line.decode("utf-8")
                except UnicodeDecodeError:
                    text = line.decode("utf-8", "backslashreplace")
                yield lineno, text.replace("\x00", "")
    except (OSError, EOFError, gzip.BadGzipFile, ValueError) as exc:
        if stats is not None:
            stats.error = f"read stopped after line {lineno}: {type(exc).__name__}: {exc}"


class _Prefixed(io.RawIOBase):
    """A raw stream that first returns `prefix`, then the rest of `handle`."""

    def __init__(self, prefix: bytes, handle: Any) -> None:
        self.prefix = prefix
        self.handle = handle

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self.prefix:
            n = min(len(buffer), len(self.prefix))
            buffer[:n] = self.prefix[:n]
            self.prefix = self.prefix[n:]
            return n
        data = self.handle.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


# ---------------------------------------------------------------- times


def iso_from_parts(year: int, month: int, day: int, hour: int, minute: int, second: int,
                   offset_minutes: int = 0) -> str | None:
    """ISO-8601 UTC (Z) of a wall-clock time at `offset_minutes` east of UTC; None if impossible."""
    try:
        when = _dt.datetime(year, month, day, hour, minute, second, tzinfo=_dt.timezone.utc)
    except (ValueError, OverflowError):
        return None
    when -= _dt.timedelta(minutes=offset_minutes)
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


_ISO = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2}):(\d{2})(?:[.,]\d+)?\s*(Z|[+-]\d{2}:?\d{2})?"
)


def parse_iso(text: str) -> str | None:
    """ISO-8601 UTC string from `2026-11-27 05:34:49[.fff][Z|+hh:mm]` (naive = UTC)."""
    match = _ISO.match(text.strip())
    if not match:
        return None
    offset = 0
    zone = match.group(7)
    if zone and zone != "Z":
        sign = -1 if zone[0] == "-" else 1
        digits = zone[1:].replace(":", "")
        offset = sign * (int(digits[:2]) * 60 + int(digits[2:4]))
    return iso_from_parts(*(int(match.group(i)) for i in range(1, 7)), offset_minutes=offset)


def to_epoch(iso: str | None) -> float | None:
    """Epoch seconds of an ISO-8601 UTC string written by this package (or None)."""
    if not iso:
        return None
    parsed = parse_iso(iso)
    if parsed is None:
        return None
    return float(calendar.timegm(_dt.datetime.strptime(parsed, "%Y-%m-%dT%H:%M:%SZ").timetuple()))


def file_year(path: "str | Path | LogChain") -> tuple[int, int]:
    """(year, month) of the file's last write (else now): what year-less syslog stamps get."""
    if isinstance(path, LogChain):
        path = path.paths[-1]
    try:
        when = _dt.datetime.fromtimestamp(os.stat(path).st_mtime, tz=_dt.timezone.utc)
    except (OSError, OverflowError, ValueError):
        when = _dt.datetime.now(tz=_dt.timezone.utc)
    return when.year, when.month


def strip_angles(value: str | None) -> str | None:
    """`<a@b>` -> `a@b`; `<>` -> ``; None stays None."""
    if value is None:
        return None
    value = value.strip()
    if value.startswith("<") and ">" in value:
        return value[1:value.index(">")].strip()
    return value


# ---------------------------------------------------------------- registry


def available_log_readers() -> dict[str, Any]:
    out = {}
    for name, module in LOG_MODULES.items():
        try:
            out[name] = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise
    return out


def detect_log(path: str | Path) -> str | None:
    """Format name of the log at `path` by content (the strongest claim), or None."""
    head = sniff(path)
    best, best_score = None, 0
    for name, reader in available_log_readers().items():
        try:
            score = int(reader.detect(head))
        except Exception:  # noqa: BLE001 - a detector bug must not stop detection
            score = 0
        if score > best_score:
            best, best_score = name, score
    return best


@dataclass
class OpenLog:
    """A log file (or LogChain) with its detected format; iterate it for Session/LogEvent items."""

    path: Path | LogChain
    format: str
    stats: LogStats

    def __iter__(self) -> Iterator[Session | LogEvent]:
        reader = importlib.import_module(LOG_MODULES[self.format])
        try:
            yield from reader.read_log(self.path, self.stats)
        except Exception as exc:  # noqa: BLE001 - a reader bug must not stop a trace
            target = self.stats.current if isinstance(self.stats, ChainStats) else self.stats
            target.error = f"reader failed: {type(exc).__name__}: {exc}"


def open_log(path: str | Path, fmt: str | None = None) -> OpenLog:
    """Open one log file, its format detected from content unless `fmt` is given."""
    path = Path(path)
    if not path.is_file():
        raise LogError(f"{path}: not a file")
    if fmt is None:
        fmt = detect_log(path)
        if fmt is None:
            raise LogError(f"{path}: not a mail, W3C, Exchange or Windows event log queuetool knows")
    elif fmt not in LOG_MODULES:
        raise LogError(f"unknown log format {fmt!r}; choose one of {', '.join(LOG_MODULES)}")
    return OpenLog(path, fmt, LogStats(str(path), fmt))


_ROTATION = re.compile(r"\.(\d+)(?:\.gz|\.bz2|\.xz)?$")


def rotation_order(paths: Iterable[str | Path]) -> list[Path]:
    """Oldest first: `mail.log.3.gz, mail.log.2.gz, mail.log.1, mail.log`, then by name."""

    def key(path: Path) -> tuple[str, int, str]:
        match = _ROTATION.search(path.name)
        base = path.name[: match.start()] if match else path.name.removesuffix(".gz")
        number = int(match.group(1)) if match else 0
        return (str(path.parent / base), -number, path.name)

    return sorted((Path(p) for p in paths), key=key)


def expand_log_paths(paths: Iterable[str | Path]) -> list[Path]:
    """Files as given; a directory gives every regular file below it (symlinks skipped)."""
    out: list[Path] = []
    for given in paths:
        path = Path(given)
        if path.is_dir():
            for dirpath, dirnames, filenames in os.walk(path):
                dirnames.sort()
                for name in sorted(filenames):
                    candidate = Path(dirpath) / name
                    if candidate.is_file() and not candidate.is_symlink():
                        out.append(candidate)
        else:
            out.append(path)
    return out


# Formats whose readers keep per-connection state: rotated pieces are read as one stream.
CHAINED_FORMATS = {"postfix", "sendmail", "exim", "iis-w3c", "exchange-protocol"}
# Formats whose pieces are dated names in one directory (exYYMMDD.log, RECVyyyymmdd-n.LOG).
DATED_NAME_FORMATS = {"iis-w3c", "exchange-protocol"}


def _chain_key(path: Path, fmt: str) -> tuple[str, str, str]:
    if fmt in DATED_NAME_FORMATS:
        return (str(path.parent), fmt, "")
    match = _ROTATION.search(path.name)
    base = path.name[: match.start()] if match else path.name.removesuffix(".gz")
    return (str(path.parent), fmt, base)


def read_logs(paths: Iterable[str | Path], strict: bool = False) -> LogSet:
    """Read every log (rotation order, format by content) into one LogSet.

    Rotated pieces of one log (mail.log.2.gz, mail.log.1, mail.log; a W3C or protocol
    log directory) are read as one stream, oldest first, so connections spanning a
    rotation stay whole; `files` still has one LogStats per file. A file that is not a
    known log is recorded in `files` with `error` (or raises LogError when `strict`).
    """
    logset = LogSet()
    opened: list[OpenLog] = []
    for path in rotation_order(expand_log_paths(paths)):
        try:
            opened.append(open_log(path))
        except LogError as exc:
            if strict:
                raise
            logset.files.append(LogStats(str(path), None, error=str(exc)))
    groups: dict[tuple[str, str, str], list[OpenLog]] = {}
    for item in opened:
        key = _chain_key(Path(item.path), item.format) if item.format in CHAINED_FORMATS else (str(item.path), "", "")
        groups.setdefault(key, []).append(item)
    for items in groups.values():
        if len(items) == 1:
            logset.extend(items[0])
        else:
            items.sort(key=lambda o: (_dated_order(Path(o.path)) if o.format in DATED_NAME_FORMATS else 0))
            chain = LogChain([Path(o.path) for o in items], [o.stats for o in items])
            logset.extend(OpenLog(chain, items[0].format, ChainStats(chain)))
        logset.files.extend(o.stats for o in items)
    return logset


def _dated_order(path: Path) -> str:
    return path.name.lower()
