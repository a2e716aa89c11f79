"""Writing records and tables as table, jsonl, json or csv — streaming, one pass."""
from __future__ import annotations

import csv
import io
import itertools
import json
import operator
from dataclasses import dataclass
from typing import IO, Any, Iterable, Iterator, Sequence

from .model import EXTENSION_KEYS, RECORD_KEYS, QueuedMessage, RuleHit

FORMATS = ("table", "jsonl", "json", "csv")
TABLE_WIDTH = 80


try:
    import orjson
except ImportError:  # no orjson wheel for this platform: the stdlib gives the same text, slower
    orjson = None

_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=str)
# orjson writes what _JSON writes for records (compact, UTF-8, str() of unknown types) in
# a tenth of the time; what it refuses (lone surrogates from undecodable file names,
# integers beyond 64 bits, non-string keys) goes to _JSON.
_ORJSON_OPTIONS = (orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_PASSTHROUGH_DATETIME) if orjson else 0


def to_json_line(data: Any) -> str:
    """`data` as compact one-line JSON (non-ASCII kept as is)."""
    if orjson is not None:
        try:
            return orjson.dumps(data, default=str, option=_ORJSON_OPTIONS).decode()
        except TypeError:  # orjson.JSONEncodeError is a TypeError
            pass
    return _JSON.encode(data)


def _csv_cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, list):
        return ";".join(_csv_cell(v) if not isinstance(v, dict) else v.get("rule", json.dumps(v)) for v in value)
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    return value


def clip(text: Any, width: int) -> str:
    """Fit text into `width` columns, marking a cut with "~"; numbers are never cut."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        return str(text)
    text = "" if text is None else " ".join(str(text).split())
    return text if len(text) <= width else text[: max(width - 1, 0)] + "~"


def _table_line(cells: Iterable[tuple[Any, int]], rest: int) -> str:
    parts = [clip(text, width or rest).ljust(width or rest) for text, width in cells]
    return " ".join(parts).rstrip()


def _table_rest(columns: Sequence[tuple[str, str, int]]) -> int:
    fixed = sum(width for _, _, width in columns if width) + len(columns) - 1
    return max(TABLE_WIDTH - fixed, 8)


def render_row(row: dict[str, Any], fmt: str, columns: Sequence[tuple[str, str, int]]) -> str:
    """One row as one output line of `fmt`, without the newline (csv may contain some)."""
    if fmt in ("jsonl", "json"):
        return to_json_line(row)
    if fmt == "csv":
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerow([_csv_cell(row.get(key)) for key, _, _ in columns])
        return buffer.getvalue()[:-1]
    if fmt == "table":
        return _table_line(((_table_cell(row.get(key)), width) for key, _, width in columns), _table_rest(columns))
    raise ValueError(f"unknown format {fmt!r}")


def write_lines(batches: Iterable[list[str]], fmt: str, out: IO[str],
                columns: Sequence[tuple[str, str, int]]) -> int:
    """Write rendered lines (in batches) with the format's framing; returns how many."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}")
    count = 0
    if fmt == "json":
        out.write("[")
    elif fmt == "csv":
        csv.writer(out, lineterminator="\n").writerow([key for key, _, _ in columns])
    elif fmt == "table":
        out.write(_table_line(((heading, width) for _, heading, width in columns), _table_rest(columns)) + "\n")
    for lines in batches:
        if not lines:
            continue
        if fmt == "json":
            out.write(("\n" if count == 0 else ",\n") + ",\n".join(lines))
        else:
            out.write("\n".join(lines) + "\n")
        count += len(lines)
    if fmt == "json":
        out.write("\n]\n" if count else "]\n")
    return count


def _in_batches(lines: Iterable[str], size: int = 256) -> Iterator[list[str]]:
    iterator = iter(lines)
    return iter(lambda: list(itertools.islice(iterator, size)), [])


def write_rows(
    rows: Iterable[dict[str, Any]],
    fmt: str,
    out: IO[str],
    columns: Sequence[tuple[str, str, int]],
) -> int:
    """Write dict rows; `columns` = (key, heading, table width; 0 = rest of the line)."""
    return write_lines(_in_batches(render_row(row, fmt, columns) for row in rows), fmt, out, columns)


def _table_cell(value: Any) -> Any:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    if value is None:
        return "-"
    if isinstance(value, list):
        if not value:
            return "-"
        first = value[0].get("rule") if isinstance(value[0], dict) else value[0]
        return f"{first} +{len(value) - 1}" if len(value) > 1 else str(first)
    return str(value)


RECORD_TABLE_COLUMNS = (
    ("id", "ID", 16),
    ("queue", "QUEUE", 8),
    ("arrival_short", "ARRIVED UTC", 11),
    ("sender_short", "SENDER", 18),
    ("recipients", "RECIPIENTS", 0),
    ("flag", "VERDICT", 7),
)


def _table_row(record: QueuedMessage) -> dict[str, Any]:
    row = record.to_dict()
    arrival = record.arrival or ""
    row["arrival_short"] = arrival[5:16].replace("T", " ") if arrival else None
    row["sender_short"] = "<>" if record.sender == "" else record.sender
    row["flag"] = "ERROR" if record.error else record.verdict
    return row


RECORD_COLUMNS = tuple((key, key, 0) for key in RECORD_KEYS + EXTENSION_KEYS)


def record_columns(fmt: str) -> Sequence[tuple[str, str, int]]:
    return RECORD_TABLE_COLUMNS if fmt == "table" else RECORD_COLUMNS


def render_record(record: QueuedMessage, fmt: str, with_headers: bool = False) -> str:
    """One record as one output line of `fmt` (what scan workers run for analyze_lines)."""
    if fmt == "jsonl" or fmt == "json":
        return to_json_line(record.to_dict(with_headers=with_headers))
    row = _table_row(record) if fmt == "table" else record.to_dict(with_headers=with_headers)
    return render_row(row, fmt, record_columns(fmt))


# The keys the spool-wide pass decides; a JSON line is the text of the keys before them,
# these four, and the text of the keys after them.
SPOOL_DECIDED_KEYS = ("score", "verdict", "rules", "campaign")
_BEFORE = RECORD_KEYS[:RECORD_KEYS.index("score")]
_AFTER = RECORD_KEYS[RECORD_KEYS.index("campaign") + 1:] + EXTENSION_KEYS
_BEFORE_VALUES = operator.attrgetter(*_BEFORE)
_AFTER_VALUES = operator.attrgetter(*_AFTER)
assert RECORD_KEYS[len(_BEFORE):len(_BEFORE) + 4] == SPOOL_DECIDED_KEYS


@dataclass(frozen=True)
class RecordRenderer:
    """`render_record(record, fmt, with_headers)` as a picklable callable for worker processes.

    For the JSON formats it also renders a record before its spool-wide keys are known
    (`json_parts`) and finishes the line from those parts later (`join_json_parts`):
    scan workers then keep text between their two passes instead of whole records.
    """

    fmt: str
    with_headers: bool = False

    def __call__(self, record: QueuedMessage) -> str:
        return render_record(record, self.fmt, self.with_headers)

    @property
    def renders_json(self) -> bool:
        return self.fmt in ("jsonl", "json")

    def json_parts(self, record: QueuedMessage) -> tuple[str, str]:
        """(text before "score", text after "campaign") of the record's JSON line."""
        before = to_json_line(dict(zip(_BEFORE, _BEFORE_VALUES(record))))
        after = dict(zip(_AFTER, _AFTER_VALUES(record)))
        if self.with_headers:
            after["headers"] = record.headers
        return before[:-1], to_json_line(after)[1:]

    @staticmethod
    def join_json_parts(parts: tuple[str, str], score: float | None, verdict: str | None,
                        rules: Iterable[RuleHit], campaign: str | None) -> str:
        """The JSON line `render_record` gives once the spool-wide keys are decided."""
        middle = to_json_line({"score": score, "verdict": verdict, "rules": [hit.to_dict() for hit in rules],
                               "campaign": campaign})
        return f"{parts[0]},{middle[1:-1]},{parts[1]}"


def record_renderer(fmt: str, with_headers: bool = False) -> RecordRenderer:
    """A picklable `render_record` for worker processes."""
    return RecordRenderer(fmt, with_headers)


def write_record_lines(batches: Iterable[list[str]], fmt: str, out: IO[str]) -> int:
    """Write records rendered by `record_renderer(fmt)`; returns how many."""
    return write_lines(batches, fmt, out, record_columns(fmt))


def write_records(records: Iterable[QueuedMessage], fmt: str, out: IO[str], with_headers: bool = False) -> int:
    """Write records in `fmt`; returns how many were written."""
    render = record_renderer(fmt, with_headers)
    return write_record_lines(_in_batches(render(record) for record in records), fmt, out)
