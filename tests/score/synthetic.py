"""Synthetic records for the scoring tests (import as `from score.synthetic import ...`)."""
from __future__ import annotations

from queuetool.config import Settings
from queuetool.headers import parse_header_block
from queuetool.model import QueuedMessage

OURS = Settings(local_domains=frozenset({"example.com"}))
GOOD_HEADERS = ("From: Alice <alice@example.com>\nDate: Fri, 27 Nov 2026 05:00:00 +0000\n"
                "Message-ID: <1@example.com>\nSubject: Quarterly figures\n")


def make_record(headers: str = "", **envelope) -> QueuedMessage:
    """A record as a reader would give it: envelope fields plus decoded headers."""
    record = QueuedMessage(mta="postfix", id=envelope.pop("id", "ID1"), arrival="2026-11-27T05:00:00Z")
    for key, value in envelope.items():
        setattr(record, key, value)
    record.headers = parse_header_block(headers.encode())
    record.header_from = record.header("From")
    record.subject = record.header("Subject")
    record.message_id = record.header("Message-ID")
    record.date = record.header("Date")
    return record
