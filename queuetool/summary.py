"""qshape-style summaries of a queue, in one streaming pass with bounded memory.

`summarize(records, by="domain")` counts messages per recipient domain in geometric age
buckets (5, 10, 20 ... 1280 minutes and older, as Postfix's qshape does); `by` may also
be sender (sender domain), client (client IP), account (SMTP AUTH login), age (one row
per bucket) or campaign (size, first/last seen, accounts, clients, a sample subject).

Memory: one small counter per distinct row key, at most `max_keys` of them; keys seen
after that are pooled in an "(other)" row, so a queue with 10^6 distinct spam domains
still fits. Sets inside a row (accounts, clients) keep at most SET_CAP members.
"""
from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from .config import address_domain
from .model import QueuedMessage
from .score.rules import is_null_sender, login_of

SUMMARY_KINDS = ("domain", "age", "account", "campaign", "client", "sender")
AGE_BUCKETS_MINUTES = (5, 10, 20, 40, 80, 160, 320, 640, 1280)
MAX_KEYS = 50_000
SET_CAP = 20
OTHER = "(other)"
TOTAL = "TOTAL"


def age_labels(buckets: tuple[int, ...] = AGE_BUCKETS_MINUTES) -> list[str]:
    """Column names of the age buckets: upper bounds in minutes, then "<last>+"."""
    return [str(b) for b in buckets] + [f"{buckets[-1]}+"]


def _parse_arrival(arrival: str | None) -> _dt.datetime | None:
    if not arrival:
        return None
    try:
        return _dt.datetime.strptime(arrival, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=_dt.timezone.utc)
    except ValueError:
        return None


def age_bucket(arrival: str | None, now: _dt.datetime,
               buckets: tuple[int, ...] = AGE_BUCKETS_MINUTES) -> str:
    """The bucket label of a message that arrived at `arrival` (unknown ages count as oldest)."""
    when = _parse_arrival(arrival)
    labels = age_labels(buckets)
    if when is None:
        return labels[-1]
    minutes = (now - when).total_seconds() / 60
    for bound, label in zip(buckets, labels):
        if minutes < bound:
            return label
    return labels[-1]


def _recipient_domains(record: QueuedMessage) -> list[str]:
    domains = {address_domain(r) or "(no domain)" for r in record.recipients}
    return sorted(domains) or ["(no recipient)"]


def _sender_domain(record: QueuedMessage) -> list[str]:
    if record.sender is None:
        return ["(unknown)"]
    if is_null_sender(record.sender):
        return ["<>"]
    return [address_domain(record.sender) or "(no domain)"]


ROW_KEYS: dict[str, Callable[[QueuedMessage], list[str]]] = {
    "domain": _recipient_domains,
    "sender": _sender_domain,
    "client": lambda r: [r.client_ip or "(unknown)"],
    "account": lambda r: [login_of(r) or "(no login)"],
}


@dataclass
class CampaignRow:
    campaign: str
    size: int = 0
    flagged: int = 0
    first_seen: str | None = None
    last_seen: str | None = None
    accounts: set[str] = field(default_factory=set)
    clients: set[str] = field(default_factory=set)
    sample: tuple[str, str, str] | None = None  # (arrival, id, subject) of the earliest message

    def add(self, record: QueuedMessage) -> None:
        self.size += 1
        self.flagged += record.verdict not in (None, "clean")
        if record.arrival:
            self.first_seen = min(self.first_seen or record.arrival, record.arrival)
            self.last_seen = max(self.last_seen or record.arrival, record.arrival)
        account = login_of(record)
        if account and len(self.accounts) < SET_CAP:
            self.accounts.add(account)
        if record.client_ip and len(self.clients) < SET_CAP:
            self.clients.add(record.client_ip)
        candidate = (record.arrival or "", record.id, record.subject or "")
        if self.sample is None or candidate < self.sample:
            self.sample = candidate

    def to_row(self) -> dict[str, Any]:
        return {
            "campaign": self.campaign, "size": self.size, "flagged": self.flagged,
            "first_seen": self.first_seen, "last_seen": self.last_seen,
            "accounts": sorted(self.accounts), "clients": sorted(self.clients),
            "subject": self.sample[2] if self.sample else None,
        }


@dataclass
class Summary:
    """A finished table: `columns` as output.write_rows wants them, `rows` as dicts."""

    by: str
    columns: list[tuple[str, str, int]]
    rows: list[dict[str, Any]]
    messages: int = 0
    pooled_keys: int = 0  # row entries counted in "(other)" because max_keys rows existed


def summarize(
    records: Iterable[QueuedMessage],
    by: str = "domain",
    *,
    now: _dt.datetime | None = None,
    buckets: tuple[int, ...] = AGE_BUCKETS_MINUTES,
    max_keys: int = MAX_KEYS,
    top: int | None = None,
) -> Summary:
    """One pass over `records` into a qshape-like table (see module docstring)."""
    if by not in SUMMARY_KINDS:
        raise ValueError(f"cannot summarize by {by!r}; choose one of {', '.join(SUMMARY_KINDS)}")
    now = now or _dt.datetime.now(_dt.timezone.utc)
    if by == "campaign":
        return _summarize_campaigns(records, max_keys, top)
    labels = age_labels(buckets)
    if by == "age":
        return _summarize_ages(records, now, buckets, labels)
    key_of = ROW_KEYS[by]
    counts: dict[str, list[int]] = {}   # key -> [total, flagged, per bucket...]
    grand = [0] * (len(labels) + 2)
    messages = 0
    pooled = 0
    for record in records:
        messages += 1
        index = labels.index(age_bucket(record.arrival, now, buckets)) + 2
        flagged = record.verdict not in (None, "clean")
        grand[0] += 1
        grand[1] += flagged
        grand[index] += 1
        for key in key_of(record):
            if key not in counts and len(counts) >= max_keys:
                key, pooled = OTHER, pooled + 1
            row = counts.setdefault(key, [0] * (len(labels) + 2))
            row[0] += 1
            row[1] += flagged
            row[index] += 1
    ordered = sorted(counts.items(), key=lambda item: (item[0] == OTHER, -item[1][0], item[0]))
    if top:
        ordered = ordered[:top]
    rows = [_count_row(by, TOTAL, grand, labels)] + [_count_row(by, key, c, labels) for key, c in ordered]
    columns = [(by, by.upper(), 0), ("T", "T", 6), ("flagged", "FLAG", 5)]
    columns += [(label, label, max(4, len(label))) for label in labels]
    return Summary(by, columns, rows, messages, pooled)


def _count_row(by: str, key: str, counts: list[int], labels: list[str]) -> dict[str, Any]:
    row: dict[str, Any] = {by: key, "T": counts[0], "flagged": counts[1]}
    row.update(zip(labels, counts[2:]))
    return row


def _summarize_ages(records: Iterable[QueuedMessage], now: _dt.datetime, buckets: tuple[int, ...],
                    labels: list[str]) -> Summary:
    verdicts = ("spam", "relay", "backscatter", "clean")
    rows = {label: {"age": label, "messages": 0, "recipients": 0, **{v: 0 for v in verdicts}}
            for label in labels}
    messages = 0
    for record in records:
        messages += 1
        row = rows[age_bucket(record.arrival, now, buckets)]
        row["messages"] += 1
        row["recipients"] += len(record.recipients)
        row[record.verdict if record.verdict in verdicts else "clean"] += 1
    columns = [("age", "AGE (MIN)", 10), ("messages", "MSGS", 7), ("recipients", "RCPTS", 7)]
    columns += [(v, v.upper(), 11) for v in verdicts]
    return Summary("age", columns, [rows[label] for label in labels], messages)


def _summarize_campaigns(records: Iterable[QueuedMessage], max_keys: int, top: int | None) -> Summary:
    campaigns: dict[str, CampaignRow] = {}
    messages = pooled = 0
    for record in records:
        messages += 1
        if not record.campaign:
            continue
        key = record.campaign
        if key not in campaigns and len(campaigns) >= max_keys:
            key, pooled = OTHER, pooled + 1
        campaigns.setdefault(key, CampaignRow(key)).add(record)
    ordered = sorted(campaigns.values(), key=lambda c: (c.campaign == OTHER, -c.size, c.campaign))
    if top:
        ordered = ordered[:top]
    columns = [("campaign", "CAMPAIGN", 12), ("size", "SIZE", 5), ("flagged", "FLAG", 5),
               ("first_seen", "FIRST SEEN", 20), ("last_seen", "LAST SEEN", 20),
               ("accounts", "ACCOUNTS", 12), ("clients", "CLIENTS", 16), ("subject", "SUBJECT", 0)]
    return Summary("campaign", columns, [c.to_row() for c in ordered], messages, pooled)
