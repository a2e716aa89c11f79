"""The record every reader produces: one queued message unit, whatever the MTA.

The keys of `RECORD_KEYS` are the public contract (docs/record.md, shared DESIGN.md):
they are always present in JSON output, null where unknown. Extension keys come after
them and are documented too; readers never remove or rename a contract key.
"""
from __future__ import annotations

import dataclasses
import operator
from dataclasses import dataclass, field
from typing import Any

# Contract keys, in output order.
RECORD_KEYS: tuple[str, ...] = (
    "mta", "id", "queue", "files", "sender", "recipients", "done_recipients",
    "arrival", "size", "client_ip", "client_name", "helo", "auth_user",
    "auth_evidence", "header_from", "subject", "message_id", "date",
    "score", "verdict", "rules", "campaign", "error",
)
# Extensions (stable too): where the unit lives, the last delivery status, reader facts.
EXTENSION_KEYS: tuple[str, ...] = ("spool", "status", "details")

VERDICTS = ("spam", "relay", "backscatter", "clean")


@dataclass(frozen=True)
class QueueUnit:
    """What a reader found on disk for one message, before reading it.

    `paths` are relative to the spool root, main file first; cheap to build and to
    pickle, so the scan engine can hand units to worker processes.
    """

    id: str
    queue: str | None
    paths: tuple[str, ...]

    def __reduce__(self) -> tuple:
        """Pickle as a plain tuple: the parent sends millions of these to workers."""
        return QueueUnit, (self.id, self.queue, self.paths)


@dataclass
class RuleHit:
    rule: str
    points: float
    why: str

    def to_dict(self) -> dict[str, Any]:
        return {"rule": self.rule, "points": self.points, "why": self.why}


@dataclass
class QueuedMessage:
    """One queued message unit (see module docstring for the key contract)."""

    mta: str
    id: str
    queue: str | None = None
    files: list[str] = field(default_factory=list)
    sender: str | None = None
    recipients: list[str] = field(default_factory=list)
    done_recipients: list[str] = field(default_factory=list)
    arrival: str | None = None
    size: int | None = None
    client_ip: str | None = None
    client_name: str | None = None
    helo: str | None = None
    auth_user: str | None = None
    auth_evidence: str | None = None
    header_from: str | None = None
    subject: str | None = None
    message_id: str | None = None
    date: str | None = None
    score: float | None = None
    verdict: str | None = None
    rules: list[RuleHit] = field(default_factory=list)
    campaign: str | None = None
    error: str | None = None
    # extensions
    spool: str | None = None
    status: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    # Decoded, unfolded header fields in order. Not part of the JSON record by default
    # (`to_dict(with_headers=True)` adds them); the scorer and trace read them.
    headers: list[tuple[str, str]] = field(default_factory=list, repr=False)

    def header(self, name: str) -> str | None:
        """First value of header `name` (case-insensitive), or None."""
        low = name.lower()
        for key, value in self.headers:
            if key.lower() == low:
                return value
        return None

    def header_values(self, name: str) -> list[str]:
        low = name.lower()
        return [value for key, value in self.headers if key.lower() == low]

    def __reduce__(self) -> tuple:
        """Pickle as one flat tuple: records cross process boundaries and spill files
        by the million, and this is ~3x cheaper to load than the default."""
        values = _FIELD_VALUES(self)
        rules = tuple((hit.rule, hit.points, hit.why) if type(hit) is RuleHit else hit for hit in self.rules)
        extra = None if len(self.__dict__) == len(_FIELD_NAMES) else (
            {k: v for k, v in self.__dict__.items() if k not in _FIELD_SET} or None)
        return _record_from_tuple, (values[:_RULES_AT] + (rules,) + values[_RULES_AT + 1:],), extra

    def add_error(self, reason: str) -> None:
        """Record why (part of) the unit could not be read; keeps the first reasons."""
        reason = " ".join(str(reason).split())[:300]
        self.error = reason if not self.error else f"{self.error}; {reason}"[:600]

    def to_dict(self, with_headers: bool = False) -> dict[str, Any]:
        out = dict(zip(_OUTPUT_KEYS, _OUTPUT_VALUES(self)))
        out["rules"] = [{"rule": hit.rule, "points": hit.points, "why": hit.why} if isinstance(hit, RuleHit)
                        else hit for hit in self.rules]
        if with_headers:
            out["headers"] = [[k, v] for k, v in self.headers]
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "QueuedMessage":
        names = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in names}
        kwargs["rules"] = [
            RuleHit(**hit) if isinstance(hit, dict) else hit for hit in data.get("rules") or []
        ]
        kwargs["headers"] = [tuple(pair) for pair in data.get("headers") or []]
        return cls(**kwargs)


_OUTPUT_KEYS = RECORD_KEYS + EXTENSION_KEYS
_OUTPUT_VALUES = operator.attrgetter(*_OUTPUT_KEYS)
_FIELD_NAMES = tuple(f.name for f in dataclasses.fields(QueuedMessage))
_FIELD_SET = frozenset(_FIELD_NAMES)
_FIELD_VALUES = operator.attrgetter(*_FIELD_NAMES)
_RULES_AT = _FIELD_NAMES.index("rules")


def _record_from_tuple(values: tuple) -> QueuedMessage:
    record = object.__new__(QueuedMessage)
    state = record.__dict__
    state.update(zip(_FIELD_NAMES, values))
    state["rules"] = [RuleHit(*hit) if type(hit) is tuple else hit for hit in state["rules"]]
    return record
