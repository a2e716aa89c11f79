"""Exchange 2007-2019 message files: TransportRoles Pickup/Replay and Export-Message .eml.

The spool root is a `TransportRoles` folder (its `Pickup` and `Replay` are read;
`Logs` and `data` are left to the log readers), a `Pickup`/`Replay` folder itself,
or a folder of `.eml` files written by `Export-Message | AssembleMessage`.

Replay and exported files start with an injected X-header block (research
/exchange-formats.md section 4a): `X-Sender` with ESMTP parameters, one `X-Receiver`
per recipient with NOTIFY/ORCPT, optional `X-CreatedBy`, `X-HeloDomain`, `X-Source`,
`X-SourceIPAddress`, `X-ExtendedMessageProps`/`X-ExtendedProps`, and
`X-EndOfInjectedXHeaders` (the byte size of the block). That block is the envelope.
Pickup files without it get their envelope from the headers (Sender/From, To/Cc/Bcc),
as the Pickup service does.

`X-MS-Exchange-Organization-Auth*`/`OriginalClientIPAddress`/`Network-Message-Id` are
kept as evidence in `details["org_headers"]`; they fill `client_ip`/`auth_user` only
when trusted: `AuthSource` names a host that the top of the Received chain shows as
one of this organisation's own Exchange hops (phishing kits forge these headers).
"""
from __future__ import annotations

import heapq
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from .. import fsutil
from ..dsn import parse_dsn
from ..headers import (
    HEAD_READ_LIMIT, apply_headers, bare_address, decode_bytes, parse_header_block,
)
from ..model import QueuedMessage, QueueUnit
from . import find_body_start, may_be_report, read_into_record, read_message_head
from . import child_dirs, dir_listing, file_head, sample_vote
from .smtpsvc import sniff_version

MTA = "exchange"
QUEUE_DIRS = ("pickup", "replay")
MESSAGE_SUFFIXES = (".eml", ".tmp", ".bad")
INJECTED_NAMES = frozenset({
    "x-sender", "x-receiver", "x-createdby", "x-endofinjectedxheaders", "x-extendedmessageprops",
    "x-extendedprops", "x-helodomain", "x-source", "x-sourceipaddress",
})
ORG_PREFIX = "x-ms-exchange-organization-"
ORG_EVIDENCE = ("AuthAs", "AuthSource", "AuthMechanism", "OriginalClientIPAddress",
                "OriginalServerIPAddress", "Network-Message-Id", "OriginalArrivalTime",
                "MessageDirectionality", "SCL")
MAX_INJECTED_FIELDS = 10_000
_DETECT_SAMPLE = 10
_FINGERPRINT = re.compile(rb"(?im)^(x-sender[ \t]*:|x-receiver[ \t]*:|x-ms-exchange-organization-|received:[^\n]*microsoft smtp server)")
_RECEIVED_BY = re.compile(r"\bby\s+(\S+)", re.IGNORECASE)
_XTEXT = re.compile(r"\+([0-9A-Fa-f]{2})")
_STATES = {".tmp": "being processed (.tmp)", ".bad": "rejected by the Pickup/Replay service (.bad)"}


@dataclass
class InjectedEnvelope:
    """The injected X-header block of a Replay/Export .eml (the message envelope)."""

    sender: str | None = None
    sender_params: dict[str, str] = field(default_factory=dict)
    receivers: list[dict[str, Any]] = field(default_factory=list)
    created_by: str | None = None
    helo_domain: str | None = None
    source: str | None = None
    source_ip: str | None = None
    declared_size: int | None = None
    block_start: int = 0
    block_end: int = 0
    size_before_end_marker: int = 0
    has_extended_props: bool = False
    problems: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "sender": self.sender, "sender_params": self.sender_params, "receivers": self.receivers,
            "created_by": self.created_by, "helo_domain": self.helo_domain, "source": self.source,
            "source_ip": self.source_ip, "declared_size": self.declared_size,
            "block_bytes": self.size_before_end_marker, "extended_props": self.has_extended_props,
            "problems": self.problems,
        }


def xtext_decode(value: str) -> str:
    """RFC 3461 xtext (`+2B` -> `+`), used by ORCPT= and AUTH= parameters."""
    return _XTEXT.sub(lambda m: chr(int(m.group(1), 16)), value)


def parse_esmtp_value(value: str) -> tuple[str, dict[str, str]]:
    """`<a@b> BODY=7bit ORCPT=rfc822;a@b` -> ("a@b", {"BODY": "7bit", "ORCPT": "rfc822;a@b"})."""
    value = value.strip()
    if value.startswith("<"):
        end = value.find(">")
        address, rest = (value[1:end], value[end + 1:]) if end >= 0 else (value[1:], "")
    else:
        address, _, rest = value.partition(" ")
    params: dict[str, str] = {}
    for word in rest.split()[:50]:
        key, _, val = word.partition("=")
        if key:
            params.setdefault(key.upper(), val)
    return address.strip(), params


def _iter_fields_with_offsets(data: bytes, start: int = 0) -> Iterator[tuple[str, bytes, int, int]]:
    """(lower name, raw value, start, end) of each header field, folding kept, until the blank line."""
    pos = start
    current: tuple[str, int] | None = None
    value_parts: list[bytes] = []
    while pos < len(data):
        end = data.find(b"\n", pos)
        end = len(data) if end < 0 else end + 1
        line = data[pos:end]
        if line in (b"\r\n", b"\n"):
            break
        if line[:1] in (b" ", b"\t") and current is not None:
            value_parts.append(line)
        else:
            if current is not None:
                yield current[0], b"".join(value_parts), current[1], pos
            name, sep, value = line.partition(b":")
            if not sep:
                current = None
                pos = end
                continue
            current = (name.strip().decode("ascii", "replace").lower(), pos)
            value_parts = [value]
        pos = end
    if current is not None:
        yield current[0], b"".join(value_parts), current[1], pos


def parse_injected_block(data: bytes) -> InjectedEnvelope | None:
    """The injected X-header block at the top of `data`, or None if there is none.

    Leading `Received:` lines are skipped (a delivered copy of a Replay file keeps
    them above the block). The block ends at `X-EndOfInjectedXHeaders` or at the first
    other header field. Names match in any case.
    """
    env = InjectedEnvelope()
    started = False
    for count, (name, raw, start, end) in enumerate(_iter_fields_with_offsets(data)):
        if count >= MAX_INJECTED_FIELDS:
            env.problems.append("too many header fields; block cut")
            break
        if name not in INJECTED_NAMES:
            if not started and name == "received":
                continue
            break
        if not started:
            started, env.block_start = True, start
        value = " ".join(decode_bytes(raw).split())
        env.block_end = end
        if name == "x-sender":
            if env.sender is None:
                address, env.sender_params = parse_esmtp_value(value)
                env.sender = address
            else:
                env.problems.append("more than one X-Sender")
        elif name == "x-receiver":
            address, params = parse_esmtp_value(value)
            if address:
                env.receivers.append({"address": address, "params": params})
        elif name == "x-createdby":
            env.created_by = value
        elif name == "x-helodomain":
            env.helo_domain = value
        elif name == "x-source":
            env.source = value
        elif name == "x-sourceipaddress":
            env.source_ip = value
        elif name in ("x-extendedmessageprops", "x-extendedprops"):
            env.has_extended_props = True
        elif name == "x-endofinjectedxheaders":
            env.size_before_end_marker = start - env.block_start
            try:
                env.declared_size = int(value.split()[0]) if value else None
            except ValueError:
                env.problems.append(f"X-EndOfInjectedXHeaders is not a number: {value[:40]!r}")
            break
    if not started:
        return None
    if env.size_before_end_marker == 0:
        env.size_before_end_marker = env.block_end - env.block_start
    if env.sender is None:
        env.problems.append("no X-Sender in the injected block")
    if not env.receivers:
        env.problems.append("no X-Receiver in the injected block")
    return env


def own_hops(headers: list[tuple[str, str]]) -> list[str]:
    """`by` hosts of the top run of Received lines written by Exchange (Microsoft SMTP
    Server, Pickup, Replay): the hops this organisation's servers stamped."""
    hosts = []
    for name, value in headers:
        if name.lower() != "received":
            continue
        if "microsoft smtp server" not in value.lower():
            break
        match = _RECEIVED_BY.search(value)
        if match:
            hosts.append(match.group(1).lower().rstrip(";"))
    return hosts


_ORG_WANTED = {f"{ORG_PREFIX}{name}".lower(): name for name in ORG_EVIDENCE}


def org_evidence(headers: list[tuple[str, str]]) -> dict[str, str]:
    """The X-MS-Exchange-Organization-* evidence headers present (first value each)."""
    out: dict[str, str] = {}
    wanted = _ORG_WANTED
    for name, value in headers:
        key = wanted.get(name.lower())
        if key and key not in out:
            out[key] = value.strip()
    return out


def judge_org_auth(headers: list[tuple[str, str]]) -> dict[str, Any] | None:
    """Whether the org Auth headers can be believed, and why (None if there are none)."""
    evidence = org_evidence(headers)
    if not evidence:
        return None
    hops = own_hops(headers)
    source = (evidence.get("AuthSource") or "").lower()
    if not source:
        trusted, why = False, "no AuthSource header"
    elif source in hops:
        trusted, why = True, f"AuthSource {source} is an Exchange hop at the top of the Received chain"
    else:
        trusted = False
        why = f"AuthSource {source} is not among this server's Received hops ({', '.join(hops) or 'none'})"
    return {"headers": evidence, "trusted": trusted, "why": why, "own_hops": hops}


# ---------------------------------------------------------------- reader

def _message_names(directory: Path) -> list[str]:
    names = [name for name, is_dir in dir_listing(directory) if not is_dir]
    return sorted((n for n in names if n.lower().endswith(MESSAGE_SUFFIXES)), key=str.lower)


# Every _FINGERPRINT match holds one of these words (lower case): most files have none,
# and two searches of the lowered bytes cost a fifth of the line-anchored regex.
_FINGERPRINT_X_WORDS = re.compile(rb"x-(?:sender|receiver|ms-exchange-organization-)")


def _looks_2007(head: bytes) -> bool:
    head = head[:16384]
    low = head.lower()
    if _FINGERPRINT_X_WORDS.search(low) is None and b"microsoft smtp server" not in low:
        return False
    return bool(_FINGERPRINT.search(head))


def detect(root: Path) -> int:
    """TransportRoles (Pickup+Replay), or a folder of 2007+ .eml (Replay block, org headers)."""
    root = Path(root)
    dirs = child_dirs(root, *QUEUE_DIRS)
    if "replay" in dirs or (dirs and root.name.lower() == "transportroles"):
        return 25
    # the first .eml names in _message_names order, without sorting a whole hashed directory
    names = heapq.nsmallest(_DETECT_SAMPLE, (name for name, is_dir in dir_listing(root)
                                             if not is_dir and name.lower().endswith(".eml")), key=str.lower)
    return 20 if sample_vote(names, lambda name: _looks_2007(file_head(root, name, 16384))) else 0


def _root_queue(root: Path) -> str:
    low = Path(root).name.lower()
    return low if low in QUEUE_DIRS else "export"


def iter_units(root: Path) -> Iterator[QueueUnit]:
    root = Path(root)
    dirs = child_dirs(root, *QUEUE_DIRS)
    if dirs:
        for key in QUEUE_DIRS:
            if key in dirs:
                for name in _message_names(dirs[key]):
                    yield QueueUnit(id=name.rpartition(".")[0], queue=key, paths=(f"{dirs[key].name}/{name}",))
        return
    queue = _root_queue(root)
    for name in _message_names(root):
        if queue == "export" and not name.lower().endswith(".eml"):
            continue
        yield QueueUnit(id=name.rpartition(".")[0], queue=queue, paths=(name,))


def _header_envelope(record: QueuedMessage) -> None:
    """Pickup without X-headers: Sender (else From) and To/Cc/Bcc, as the Pickup service does."""
    record.sender = bare_address(record.header("Sender") or record.header("From"))
    recipients: list[str] = []
    for name in ("To", "Cc", "Bcc"):
        for value in record.header_values(name):
            for part in value.split(","):
                address = bare_address(part)
                if address and "@" in address:
                    recipients.append(address)
    record.recipients = recipients
    record.details["envelope"] = "headers (Pickup rule: Sender/From, To/Cc/Bcc)"


def read_unit(root: Path, unit: QueueUnit, full: bool = False) -> QueuedMessage:
    return read_into_record(MTA, root, unit, full, _read_into)


def _read_into(root: Path, unit: QueueUnit, record: QueuedMessage, full: bool) -> None:
    rel = unit.paths[0]
    suffix = "." + rel.rpartition(".")[2].lower()
    if suffix in _STATES:
        record.details["state"] = _STATES[suffix]
    if full:
        data, st = fsutil.read_file_and_stat(root, rel)
        body_start = find_body_start(data)
    else:  # the body only for a DSN (multipart/report), up to HEAD_READ_LIMIT
        data, body_start, st = read_message_head(root, rel, HEAD_READ_LIMIT, may_be_report)
    record.size = st.st_size
    record.arrival = fsutil.iso_utc(st.st_mtime)
    block = data if body_start < 0 else data[:body_start]
    if body_start < 0 and not full and st.st_size > len(data):
        record.add_error(f"header block longer than {HEAD_READ_LIMIT} bytes; cut there")
    headers = parse_header_block(block)
    apply_headers(record, headers)
    if not headers:
        record.add_error("no RFC 5322 header fields found")
        return
    env = parse_injected_block(block)
    if env is not None:
        record.sender = "" if env.sender in ("", "<>") else env.sender
        record.recipients = [r["address"] for r in env.receivers]
        record.helo = env.helo_domain
        if env.source_ip and env.source_ip != "0.0.0.0":
            record.client_ip = env.source_ip
        record.details["envelope"] = "injected X-header block"
        record.details["injected"] = env.to_dict()
        if env.sender is None or not env.receivers:
            record.add_error("; ".join(env.problems))
    elif unit.queue == "replay":
        record.add_error("Replay file without the required X-Sender/X-Receiver block")
    else:
        _header_envelope(record)
    version = sniff_version(headers)
    if version:
        record.details["server_version"] = version
    if "multipart/report" in (record.header("Content-Type") or "").lower():
        report = parse_dsn(data)
        if report is not None:
            record.details["dsn"] = report.summary()
            record.status = "; ".join(
                f"{r.final_recipient}: {r.status} {r.diagnostic_code or ''}".strip() for r in report.recipients
            )[:1000] or None
    auth = judge_org_auth(headers)
    if auth is not None:
        record.details["org_headers"] = auth
        if auth["trusted"]:
            _apply_trusted_auth(record, auth, env)


def _apply_trusted_auth(record: QueuedMessage, auth: dict[str, Any], env: InjectedEnvelope | None) -> None:
    evidence = auth["headers"]
    client = evidence.get("OriginalClientIPAddress")
    if client:
        record.client_ip = client
    auth_as = (evidence.get("AuthAs") or "").lower()
    login = xtext_decode(env.sender_params.get("AUTH", "")) if env else ""
    login = login.strip().strip("<>")
    if auth_as and auth_as != "anonymous" and login:
        record.auth_user = login
        record.auth_evidence = f"header:X-Sender AUTH= (AuthAs={evidence.get('AuthAs')}, trusted AuthSource)"


def read_message_bytes(root: Path, unit: QueueUnit) -> bytes:
    """The message without a leading injected X-header block (as Replay would submit it)."""
    data = fsutil.read_file(root, unit.paths[0])
    env = parse_injected_block(data[:HEAD_READ_LIMIT * 4])
    if env is not None and env.block_start == 0:
        return data[env.block_end:]
    return data
