"""Exchange 2007+ message tracking log (CSV): one Session per RECEIVE event.

Schemas by `#Fields:` (research/exchange-formats.md §4e): 26 fields (v14, E2010: no
network-message-id), 27 (v15.00.1104) and 30 (2013+: + custom-data,
transport-traffic-type, log-id, schema-version). UTF-8 BOM, quoted subjects and
`;`-separated multi-values are common. The log names no login; its RECEIVE rows give
client, message-id, network-message-id, sender and recipients, and `source-context`
starts with the SMTP Receive session-id, which is how trace joins the protocol log's
login to these messages.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

from . import LogMessage, LogStats, Session, parse_iso
from .exchange_protocol import iter_csv_rows

FORMAT = "exchange-tracking"
FIELDS_30 = ("date-time,client-ip,client-hostname,server-ip,server-hostname,source-context,connector-id,"
             "source,event-id,internal-message-id,message-id,network-message-id,recipient-address,"
             "recipient-status,total-bytes,recipient-count,related-recipient-address,reference,"
             "message-subject,sender-address,return-path,message-info,directionality,tenant-id,"
             "original-client-ip,original-server-ip,custom-data,transport-traffic-type,log-id,"
             "schema-version").split(",")


def detect(first_bytes: bytes) -> int:
    text = first_bytes[:8192].decode("utf-8", "replace")
    if "Message Tracking Log" in text:
        return 50
    if "#Fields:" in text and "event-id" in text and "internal-message-id" in text:
        return 40
    return 0


def _split(value: str) -> list[str]:
    return [part.strip() for part in value.split(";") if part.strip()]


def read_log(path: str | Path, stats: LogStats | None = None) -> Iterator[Session]:
    """Sessions for RECEIVE events from SMTP (and others, with their source in details)."""
    path = Path(path)
    stats = stats if stats is not None else LogStats(str(path), FORMAT)
    for lineno, row in iter_csv_rows(path, stats, FIELDS_30):
        when = parse_iso(row.get("date-time", ""))
        if when is None:
            stats.add_junk(lineno, ",".join(row.values()), "bad date-time")
            continue
        if row.get("event-id", "").upper() != "RECEIVE":
            continue
        context = row.get("source-context", "")
        session_id = context.split(";", 1)[0].strip() if ";" in context else None
        message = LogMessage(
            time=when,
            queue_id=row.get("internal-message-id") or None,
            message_id=row.get("message-id") or None,
            sender=row.get("return-path") or row.get("sender-address") or None,
            recipients=_split(row.get("recipient-address", "")),
        )
        try:
            message.size = int(row.get("total-bytes", ""))
        except ValueError:
            pass
        session = Session(FORMAT, str(path), session_id=session_id, start=when, end=when,
                          client_ip=row.get("original-client-ip") or row.get("client-ip") or None,
                          client_name=row.get("client-hostname") or None, messages=[message])
        session.details = {
            "source": row.get("source"),
            "network_message_id": row.get("network-message-id") or None,
            "header_sender": row.get("sender-address") or None,
            "directionality": row.get("directionality") or None,
            "subject": row.get("message-subject") or None,
        }
        yield session


read_exchange_tracking_log = read_log
