"""RFC 3464 delivery status notifications (DSNs, "NDRs"), read tolerantly from bytes.

Any MTA's bounce can be handed to `parse_dsn`: an IIS BadMail `.BAD`, an Exchange
NDR exported from a queue, a Postfix/Exim/Sendmail bounce sitting in a queue, or a
backscatter message. It finds the `message/delivery-status` part of a
`multipart/report` (RFC 6522), splits it into the per-message fields and one group of
per-recipient fields per recipient (RFC 3464 section 2.2/2.3), and exposes the
returned original (`message/rfc822`, `text/rfc822-headers`, or a `message/global`
twin). When there is no MIME structure it falls back to looking for the DSN field
names anywhere in the text, as older IIS tools did (bciu22 BadMailParse.ps1).

Nothing here raises on bad bytes: fields that cannot be found stay None and the
`problems` list says what looked wrong. Work is bounded by `MAX_DSN_BYTES` and
`MAX_PARTS`.
"""
from __future__ import annotations

import base64
import binascii
import quopri
import re
from dataclasses import dataclass, field
from typing import Any

from .headers import decode_bytes, first_value, iter_raw_fields, parse_header_block, split_header_block

MAX_DSN_BYTES = 4 * 1024 * 1024
MAX_PARTS = 64
MAX_DEPTH = 3
MAX_RECIPIENT_GROUPS = 1000

_STATUS = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
_BOUNDARY = re.compile(r'boundary\s*=\s*(?:"([^"]+)"|([^\s;]+))', re.IGNORECASE)
_PER_MESSAGE_NAMES = (
    "reporting-mta", "dsn-gateway", "received-from-mta", "arrival-date", "original-envelope-id",
)
_PER_RECIPIENT_NAMES = (
    "original-recipient", "final-recipient", "action", "status", "remote-mta",
    "diagnostic-code", "last-attempt-date", "final-log-id", "will-retry-until",
)
ORIGINAL_TYPES = ("message/rfc822", "text/rfc822-headers", "message/global", "message/global-headers")
STATUS_TYPES = ("message/delivery-status", "message/global-delivery-status")


@dataclass
class RecipientStatus:
    """One per-recipient group (RFC 3464 section 2.3); address types ("rfc822;") stripped."""

    final_recipient: str | None = None
    original_recipient: str | None = None
    action: str | None = None
    status: str | None = None
    remote_mta: str | None = None
    diagnostic_code: str | None = None
    last_attempt_date: str | None = None
    fields: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "final_recipient": self.final_recipient, "original_recipient": self.original_recipient,
            "action": self.action, "status": self.status, "remote_mta": self.remote_mta,
            "diagnostic_code": self.diagnostic_code, "last_attempt_date": self.last_attempt_date,
        }


@dataclass
class DeliveryReport:
    """What a DSN says: per-message fields, per-recipient groups, the returned original.

    `structured` is True when a real message/delivery-status part was found, False when
    the fields were picked out of plain text. `original` holds the returned message
    bytes (or only its headers when `original_headers_only`).
    """

    reporting_mta: str | None = None
    received_from_mta: str | None = None
    arrival_date: str | None = None
    original_envelope_id: str | None = None
    recipients: list[RecipientStatus] = field(default_factory=list)
    human_text: str | None = None
    original: bytes | None = None
    original_headers_only: bool = False
    structured: bool = False
    problems: list[str] = field(default_factory=list)

    @property
    def original_headers(self) -> list[tuple[str, str]]:
        """Decoded header fields of the returned original (empty if none)."""
        if not self.original:
            return []
        block, _ = split_header_block(self.original[:256 * 1024])
        return parse_header_block(block)

    def statuses(self) -> list[str]:
        return [r.status for r in self.recipients if r.status]

    def summary(self) -> dict[str, Any]:
        """JSON-safe digest for a record's `details`."""
        original = self.original_headers
        return {
            "reporting_mta": self.reporting_mta,
            "arrival_date": self.arrival_date,
            "structured": self.structured,
            "recipients": [r.to_dict() for r in self.recipients],
            "original": None if self.original is None else {
                "headers_only": self.original_headers_only,
                "size": len(self.original),
                "from": first_value(original, "From"),
                "to": first_value(original, "To"),
                "subject": first_value(original, "Subject"),
                "message_id": first_value(original, "Message-ID"),
            },
            "problems": self.problems,
        }


def _strip_type(value: str) -> str:
    """'rfc822; a@b' -> 'a@b'; 'dns; host' -> 'host'; other values unchanged."""
    kind, sep, rest = value.partition(";")
    if sep and kind.strip() and " " not in kind.strip() and len(kind.strip()) <= 20:
        return rest.strip().strip("<>")
    return value.strip()


def status_code(text: str | None) -> str | None:
    """The first RFC 3463 enhanced status code (`5.7.1`) in text, or None."""
    if not text:
        return None
    match = _STATUS.search(text)
    return match.group(0) if match else None


def _field_groups(text: bytes) -> list[list[tuple[str, str]]]:
    """Blank-line separated header-like groups of a delivery-status body."""
    groups = []
    for chunk in re.split(rb"\r?\n[ \t]*\r?\n", text.strip()):
        pairs = [
            (name.decode("ascii", "replace").lower(), decode_bytes(value))
            for name, value in iter_raw_fields(chunk)
        ]
        if pairs:
            groups.append(pairs)
        if len(groups) > MAX_RECIPIENT_GROUPS:
            break
    return groups


def _recipient_from(pairs: list[tuple[str, str]]) -> RecipientStatus:
    rcpt = RecipientStatus()
    for name, value in pairs:
        rcpt.fields.setdefault(name, value)
    get = rcpt.fields.get
    rcpt.final_recipient = _strip_type(get("final-recipient")) if get("final-recipient") else None
    rcpt.original_recipient = _strip_type(get("original-recipient")) if get("original-recipient") else None
    rcpt.action = get("action", "").strip().lower() or None
    rcpt.status = status_code(get("status")) or (get("status") or None)
    rcpt.remote_mta = _strip_type(get("remote-mta")) if get("remote-mta") else None
    rcpt.diagnostic_code = _strip_type(get("diagnostic-code")) if get("diagnostic-code") else None
    rcpt.last_attempt_date = get("last-attempt-date")
    return rcpt


def parse_delivery_status(body: bytes, report: DeliveryReport | None = None) -> DeliveryReport:
    """Fill a report from the body of a message/delivery-status part."""
    report = report or DeliveryReport()
    groups = _field_groups(body[:MAX_DSN_BYTES])
    for pairs in groups:
        names = {name for name, _ in pairs}
        if names & {"final-recipient", "original-recipient", "action", "status"}:
            report.recipients.append(_recipient_from(pairs))
        elif names & set(_PER_MESSAGE_NAMES):
            values = dict(reversed(pairs))
            report.reporting_mta = report.reporting_mta or (
                _strip_type(values["reporting-mta"]) if "reporting-mta" in values else None)
            report.received_from_mta = report.received_from_mta or (
                _strip_type(values["received-from-mta"]) if "received-from-mta" in values else None)
            report.arrival_date = report.arrival_date or values.get("arrival-date")
            report.original_envelope_id = report.original_envelope_id or values.get("original-envelope-id")
    if not report.recipients:
        report.problems.append("delivery-status part has no per-recipient fields")
    return report


def _content_type(headers: list[tuple[str, str]]) -> tuple[str, str | None]:
    value = first_value(headers, "Content-Type") or "text/plain"
    mime = value.split(";", 1)[0].strip().lower()
    match = _BOUNDARY.search(value)
    boundary = (match.group(1) or match.group(2)) if match else None
    return mime, boundary


def _decode_transfer(headers: list[tuple[str, str]], body: bytes) -> bytes:
    encoding = (first_value(headers, "Content-Transfer-Encoding") or "").strip().lower()
    try:
        if encoding == "base64":
            return base64.b64decode(re.sub(rb"[^A-Za-z0-9+/=]", b"", body) + b"==", validate=False)
        if encoding == "quoted-printable":
            return quopri.decodestring(body)
    except (binascii.Error, ValueError):
        return body
    return body


def split_multipart(body: bytes, boundary: str) -> list[bytes]:
    """The parts between `--boundary` lines (preamble and epilogue dropped).

    A delimiter line starts the body or follows a line break (which belongs to it),
    may end in `--` (the closing one) and trailing blanks. Scanned with bytes.find:
    every report has its own boundary, and compiling a regex per message cost more
    than the rest of the parse.
    """
    delimiter = b"--" + boundary.encode("latin-1", "replace")
    size = len(body)
    parts: list[bytes] = []
    part_start = -1         # where the current part began; -1 before the first delimiter
    consumed = 0            # end of the last delimiter line (its bytes are not reused)
    found = body.find(delimiter)
    while found >= 0:
        if found == 0:
            cut = 0
        elif found - 1 >= consumed and body[found - 1] == 0x0A:
            cut = found - 2 if found - 2 >= consumed and body[found - 2] == 0x0D else found - 1
        else:
            found = body.find(delimiter, found + 1)
            continue
        after = found + len(delimiter)
        closing = body.startswith(b"--", after)
        end = after + 2 if closing else after
        while end < size and body[end] in (0x20, 0x09):
            end += 1
        if body.startswith(b"\r\n", end):
            end += 2
        elif body.startswith(b"\n", end):
            end += 1
        elif end != size:
            found = body.find(delimiter, found + 1)
            continue
        if part_start >= 0:
            parts.append(body[part_start:cut])
        if closing or len(parts) >= MAX_PARTS:
            return parts
        part_start = consumed = end
        found = body.find(delimiter, end)
    if part_start >= 0:
        parts.append(body[part_start:])
    return parts


def _walk(data: bytes, report: DeliveryReport, depth: int) -> None:
    block, body = split_header_block(data)
    headers = parse_header_block(block)
    mime, boundary = _content_type(headers)
    if mime.startswith("multipart/") and boundary and depth < MAX_DEPTH:
        for index, part in enumerate(split_multipart(body, boundary)):
            part_block, part_body = split_header_block(part)
            part_headers = parse_header_block(part_block)
            part_mime, _ = _content_type(part_headers) if part_headers else ("text/plain", None)
            if part_mime in STATUS_TYPES:
                report.structured = True
                parse_delivery_status(_decode_transfer(part_headers, part_body), report)
            elif part_mime in ORIGINAL_TYPES and report.original is None:
                report.original = _decode_transfer(part_headers, part_body).lstrip(b"\r\n")
                report.original_headers_only = part_mime.endswith("-headers")
            elif part_mime.startswith("multipart/"):
                _walk(part, report, depth + 1)
            elif part_mime == "text/plain" and index == 0 and report.human_text is None:
                report.human_text = decode_bytes(_decode_transfer(part_headers, part_body)[:4096]).strip()


def parse_dsn(data: bytes) -> DeliveryReport | None:
    """The delivery report in `data` (a whole message), or None if it is not a DSN.

    Structured multipart/report first; else the DSN field names in plain text.
    """
    data = data[:MAX_DSN_BYTES]
    report = DeliveryReport()
    try:
        _walk(data, report, 0)
    except RecursionError:
        report.problems.append("MIME nesting too deep")
    if report.structured:
        return report
    # Unstructured fallback: Final-Recipient/Status/... lines anywhere in the text.
    _, body = split_header_block(data)
    if not re.search(rb"(?im)^(final-recipient|diagnostic-code)[ \t]*:", body):
        return None
    pairs = [
        (name.decode("ascii", "replace").lower(), decode_bytes(value))
        for name, value in iter_raw_fields(body)
        if name.decode("ascii", "replace").lower() in _PER_RECIPIENT_NAMES + _PER_MESSAGE_NAMES
    ]
    current: list[tuple[str, str]] = []
    for name, value in pairs:
        if name in _PER_MESSAGE_NAMES:
            if name == "reporting-mta" and report.reporting_mta is None:
                report.reporting_mta = _strip_type(value)
            continue
        if name == "final-recipient" and any(n == "final-recipient" for n, _ in current):
            report.recipients.append(_recipient_from(current))
            current = []
        current.append((name, value))
        if len(report.recipients) >= MAX_RECIPIENT_GROUPS:
            break
    if current:
        report.recipients.append(_recipient_from(current))
    report.problems.append("no message/delivery-status part; fields taken from plain text")
    return report
