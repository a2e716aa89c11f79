"""Writing records and tables as table, jsonl, json or csv — streaming, one pass."""
from __future__ import annotations

import csv
import json
from typing import IO, Any, Iterable, Iterator, Sequence

from .model import EXTENSION_KEYS, RECORD_KEYS, QueuedMessage

FORMATS = ("table", "jsonl", "json", "csv")
TABLE_WIDTH = 80


def to_json_line(data: Any) -> str:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"), default=str)


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


def write_rows(
    rows: Iterable[dict[str, Any]],
    fmt: str,
    out: IO[str],
    columns: Sequence[tuple[str, str, int]],
) -> int:
    """Write dict rows; `columns` = (key, heading, table width; 0 = rest of the line)."""
    count = 0
    if fmt == "jsonl":
        for row in rows:
            out.write(to_json_line(row) + "\n")
            count += 1
    elif fmt == "json":
        out.write("[")
        for row in rows:
            out.write(("\n" if count == 0 else ",\n") + to_json_line(row))
            count += 1
        out.write("\n]\n" if count else "]\n")
    elif fmt == "csv":
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow([key for key, _, _ in columns])
        for row in rows:
            writer.writerow([_csv_cell(row.get(key)) for key, _, _ in columns])
            count += 1
    elif fmt == "table":
        fixed = sum(width for _, _, width in columns if width) + len(columns) - 1
        rest = max(TABLE_WIDTH - fixed, 8)

        def line(cells: Iterator[tuple[str, int]]) -> str:
            parts = [clip(text, width or rest).ljust(width or rest) for text, width in cells]
            return " ".join(parts).rstrip()

        out.write(line((heading, width) for _, heading, width in columns) + "\n")
        for row in rows:
            out.write(line((_table_cell(row.get(key)), width) for key, _, width in columns) + "\n")
            count += 1
    else:
        raise ValueError(f"unknown format {fmt!r}")
    return count


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


def write_records(records: Iterable[QueuedMessage], fmt: str, out: IO[str], with_headers: bool = False) -> int:
    """Write records in `fmt`; returns how many were written."""
    if fmt == "table":
        return write_rows((_table_row(r) for r in records), fmt, out, RECORD_TABLE_COLUMNS)
    keys = RECORD_KEYS + EXTENSION_KEYS
    columns = [(key, key, 0) for key in keys]
    return write_rows((r.to_dict(with_headers=with_headers) for r in records), fmt, out, columns)
