"""Received-chain parsing: which hops are the server's own, and what they say about logins.

Only the server's own hops (the top of the chain, written by the server that holds
the queue) are evidence of a login. The same markers further down were written by
someone else — or by the sender, to look trustworthy — so they are a spoofing
signal, never a login. Markers recognised (SpamAssassin's Received.pm catalogue,
RFC 3848, and what the MTAs write):
- RFC 3848 `with ESMTPA/ESMTPSA/LMTPA/UTF8SMTPA/UTF8SMTPSA` (Exim: `with esmtpa`)
- Postfix `(Authenticated sender: alice)` (smtpd_sasl_authenticated_header=yes)
- Sendmail `(authenticated bits=N)`; with _REC_FULL_AUTH_ `(user=alice mech=LOGIN bits=0)`
- Courier `(AUTH: LOGIN alice)`
- headers above the first foreign hop: `X-Authenticated-User`, `X-AuthUser`,
  `X-Authenticated-Sender` (cPanel `host: user@dom`), `X-Get-Message-Sender-Via`
  (`authenticated_id: user`), Exchange `X-MS-Exchange-Organization-AuthAs`/`AuthSource`.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Iterable

AUTH_PROTOCOLS = {"esmtpa", "esmtpsa", "lmtpa", "utf8smtpa", "utf8smtpsa", "asmtp"}
LOCAL_BY = {"localhost", "pickup", "replay"}
USER_HEADERS = ("x-authenticated-user", "x-authuser", "x-auth-user", "x-authenticated-sender",
                "x-get-message-sender-via", "x-sender-id")
EXCHANGE_AUTH_AS = "x-ms-exchange-organization-authas"
EXCHANGE_AUTH_SOURCE = "x-ms-exchange-organization-authsource"
# A chain longer than this is cut (hostile messages carry thousands of hops).
MAX_HOPS = 100

_FROM = re.compile(r"^\s*from\s+(\S+)(?:\s+\(([^()]*(?:\([^()]*\)[^()]*)*)\))?", re.I)
_BY = re.compile(r"\bby\s+([^\s;()]+)", re.I)
_WITH = re.compile(r"\bwith\s+([A-Za-z0-9_-]+)", re.I)
_ID = re.compile(r"\bid\s+([^\s;()]+)", re.I)
_FOR = re.compile(r"\bfor\s+<?([^\s;<>]+@[^\s;<>]+)>?", re.I)
_IP = re.compile(r"\[(?:IPv6:)?([0-9A-Fa-f:.]+)\]")
_POSTFIX_AUTH = re.compile(r"\(Authenticated sender:\s*([^)\s]+)\s*\)", re.I)
_SENDMAIL_AUTH = re.compile(r"\(authenticated\b[^)]*\)", re.I)
_SENDMAIL_FULL = re.compile(r"\(user=([^\s)]+)[^)]*\bmech=", re.I)
_COURIER_AUTH = re.compile(r"\(AUTH:\s*\S+\s+([^)\s]+)\)", re.I)
_EXIM_AUTH_ID = re.compile(r"\(authenticated (?:id|as|user)\s+([^)\s]+)\)", re.I)


@dataclass
class Hop:
    """One Received header, parsed; index 0 is the top (newest) hop."""

    index: int
    raw: str
    helo: str | None = None
    client_name: str | None = None
    client_ip: str | None = None
    by: str | None = None
    protocol: str | None = None
    queue_id: str | None = None
    for_address: str | None = None
    authenticated: bool = False
    auth_user: str | None = None
    marker: str | None = None


@dataclass
class HeaderAuth:
    """What the headers say about the login: from own hops only, plus spoofing signals."""

    auth_user: str | None = None
    authenticated: bool = False
    evidence: str | None = None
    own_hops: int = 0
    client_ip: str | None = None
    helo: str | None = None
    spoofed_markers: list[str] = field(default_factory=list)


def parse_received(value: str, index: int = 0) -> Hop:
    """Parse one Received value; never raises, unknown parts stay None."""
    value = " ".join(value.split())[:4000]
    hop = Hop(index=index, raw=value)
    head = value.split(";", 1)[0]
    match = _FROM.match(head)
    if match:
        hop.helo = match.group(1)
        comment = match.group(2) or ""
        ip = _IP.search(comment) or _IP.search(match.group(1))
        hop.client_ip = ip.group(1) if ip else None
        name = comment.split("[", 1)[0].strip().split(" ")[0] if comment else ""
        hop.client_name = name or None
    for pattern, attr in ((_BY, "by"), (_WITH, "protocol"), (_ID, "queue_id"), (_FOR, "for_address")):
        found = pattern.search(head)
        if found:
            setattr(hop, attr, found.group(1))
    if hop.protocol and hop.protocol.lower() in AUTH_PROTOCOLS:
        hop.authenticated, hop.marker = True, f"with {hop.protocol}"
    low = head.lower()
    if "auth" not in low and "user=" not in low:
        return hop  # every login marker below says "auth..." or "user=": skip their regexes
    for pattern, label in ((_POSTFIX_AUTH, "Authenticated sender"), (_SENDMAIL_FULL, "user= mech="),
                           (_COURIER_AUTH, "AUTH:"), (_EXIM_AUTH_ID, "authenticated id")):
        found = pattern.search(head)
        if found:
            hop.authenticated, hop.auth_user, hop.marker = True, found.group(1), label
            break
    if not hop.authenticated and _SENDMAIL_AUTH.search(head):
        hop.authenticated, hop.marker = True, "(authenticated)"
    return hop


def parse_chain(headers: Iterable[tuple[str, str]]) -> list[Hop]:
    """Every Received header, top first."""
    hops = []
    for name, value in headers:
        if name.lower() == "received":
            hops.append(parse_received(value, len(hops)))
            if len(hops) >= MAX_HOPS:
                break
    return hops


def _host(name: str | None) -> str:
    return (name or "").strip().rstrip(".").lower()


def own_hop_count(hops: list[Hop], server_names: Iterable[str] = ()) -> int:
    """How many hops at the top were written by this server.

    With `server_names` given, the top hops whose `by` is one of them (or a local
    pickup/replay name); otherwise the top hop's `by` names the server, and the hops
    directly under it with the same `by` count too (content filters, local pickup).
    """
    names = {_host(n) for n in server_names if n}
    if not hops:
        return 0
    if not names:
        names = {_host(hops[0].by)} if hops[0].by else set()
    count = 0
    for hop in hops:
        by = _host(hop.by)
        if by in names or by in LOCAL_BY or by.split(".", 1)[0] in LOCAL_BY:
            count += 1
        else:
            break
    return count


def _user_from_header(name: str, value: str) -> str | None:
    value = value.strip()
    if not value:
        return None
    low = name.lower()
    if low == "x-get-message-sender-via":
        match = re.search(r"authenticated_id:\s*([^\s/]+)", value)
        return match.group(1) if match else None
    if low == "x-authenticated-sender":
        value = value.split(":", 1)[1] if ":" in value else value
    return value.split()[0].strip("<>\"") or None


def header_auth(headers: list[tuple[str, str]], server_names: Iterable[str] = ()) -> HeaderAuth:
    """Login evidence from the server's own hops and the headers above the first foreign hop."""
    hops = parse_chain(headers)
    own = own_hop_count(hops, server_names)
    result = HeaderAuth(own_hops=own)
    if own:
        # the lowest own hop is where the message entered this server
        entry = hops[own - 1]
        result.client_ip, result.helo = entry.client_ip, entry.helo
    for hop in hops[:own]:
        if hop.authenticated and not result.authenticated:
            result.authenticated = True
            result.evidence = f"header:Received ({hop.marker})"
        if hop.auth_user and not result.auth_user:
            result.auth_user = hop.auth_user
            result.evidence = f"header:Received ({hop.marker})"
    for hop in hops[own:]:
        if hop.authenticated:
            result.spoofed_markers.append(f"Received #{hop.index + 1} by {hop.by or '?'}: {hop.marker}")
    # headers written above the first foreign Received belong to this server
    own_names = {_host(h.by) for h in hops[:own]} | {_host(n) for n in server_names if n}
    auth_source = next((v.strip() for k, v in headers if k.lower() == EXCHANGE_AUTH_SOURCE), None)
    seen_received = 0
    for name, value in headers:
        low = name.lower()
        if low == "received":
            seen_received += 1
            continue
        trusted = seen_received <= own and own > 0
        if low in USER_HEADERS:
            user = _user_from_header(name, value)
            if not user:
                continue
            if trusted and not result.auth_user:
                result.auth_user, result.authenticated = user, True
                result.evidence = f"header:{name}"
            elif not trusted:
                result.spoofed_markers.append(f"{name} below a foreign hop: {user}")
        elif low == EXCHANGE_AUTH_AS:
            foreign_source = auth_source is not None and _host(auth_source) not in own_names
            if trusted and foreign_source and value.strip().lower() == "internal":
                result.spoofed_markers.append(f"{name}: Internal from AuthSource {auth_source}, not this server")
            elif trusted and value.strip().lower() not in ("anonymous", ""):
                result.authenticated = True
                result.evidence = result.evidence or f"header:{name} ({value.strip()})"
            elif not trusted and value.strip().lower() == "internal":
                result.spoofed_markers.append(f"{name}: Internal below a foreign hop")
    return result
