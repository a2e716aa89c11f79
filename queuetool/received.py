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


_LOGIN_MARKERS = ((_POSTFIX_AUTH, "Authenticated sender"), (_SENDMAIL_FULL, "user= mech="),
                  (_COURIER_AUTH, "AUTH:"), (_EXIM_AUTH_ID, "authenticated id"))


def _has_marker_hint(low: str) -> bool:
    """False when a lowercased hop (or several) cannot hold any login marker.

    Every marker contains "auth" or "user=" (the login markers) or "mtpa", "mtpsa",
    "asmtp" (every AUTH_PROTOCOLS name) once lowercased.
    """
    return "auth" in low or "user=" in low or "mtpa" in low or "mtpsa" in low or "asmtp" in low


def _normalize(value: str) -> str:
    """Whitespace runs as one space, cut at 4000; most values already are (no copy then)."""
    if value.isprintable() and "  " not in value and value[:1] != " " and value[-1:] != " ":
        return value[:4000]  # str.split() whitespace other than " " is never printable
    return " ".join(value.split())[:4000]


def _search(pattern: re.Pattern[str], keyword: str, head: str, low: str | None) -> re.Match[str] | None:
    """pattern.search(head) for a case-insensitive pattern that is `\\b` + keyword + ...

    On an ASCII head (`low` is its lowercase copy, same offsets) only the offsets where
    the keyword occurs are tried, instead of a case-insensitive scan of every offset.
    """
    if low is None:
        return pattern.search(head)
    pos = low.find(keyword)
    while pos >= 0:
        found = pattern.match(head, pos)  # \b still sees the character before pos
        if found:
            return found
        pos = low.find(keyword, pos + 1)
    return None


def _login(head: str, low: str, protocol: str | None) -> tuple[bool, str | None, str | None]:
    """(authenticated, auth_user, marker) of one hop's head (the part before ";")."""
    authenticated, marker = False, None
    if protocol and protocol.lower() in AUTH_PROTOCOLS:
        authenticated, marker = True, f"with {protocol}"
    if "auth" not in low and "user=" not in low:
        return authenticated, None, marker  # every login marker says "auth..." or "user="
    for pattern, label in _LOGIN_MARKERS:
        found = pattern.search(head)
        if found:
            return True, found.group(1), label
    if not authenticated and _SENDMAIL_AUTH.search(head):
        return True, None, "(authenticated)"
    return authenticated, None, marker


def _client(head: str) -> tuple[str | None, str | None, str | None]:
    """(helo, client_name, client_ip) from the `from` part of a hop's head."""
    match = _FROM.match(head)
    if not match:
        return None, None, None
    comment = match.group(2) or ""
    ip = _IP.search(comment) or _IP.search(match.group(1))
    name = comment.split("[", 1)[0].strip().split(" ")[0] if comment else ""
    return match.group(1), name or None, ip.group(1) if ip else None


def _group(pattern: re.Pattern[str], keyword: str, head: str, low: str | None) -> str | None:
    found = _search(pattern, keyword, head, low)
    return found.group(1) if found else None


def parse_received(value: str, index: int = 0) -> Hop:
    """Parse one Received value; never raises, unknown parts stay None."""
    value = _normalize(value)
    head = value.split(";", 1)[0]
    low = head.lower()
    ascii_low = low if head.isascii() else None
    hop = Hop(index=index, raw=value)
    hop.helo, hop.client_name, hop.client_ip = _client(head)
    hop.by = _group(_BY, "by", head, ascii_low)
    hop.protocol = _group(_WITH, "with", head, ascii_low)
    hop.queue_id = _group(_ID, "id", head, ascii_low)
    hop.for_address = _group(_FOR, "for", head, ascii_low)
    hop.authenticated, hop.auth_user, hop.marker = _login(head, low, hop.protocol)
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
    words = value.split()  # "host: " leaves nothing after the colon
    return (words[0].strip("<>\"") or None) if words else None


# What header_auth needs to know about a field name: 0 nothing, 1 Received, 2 a login
# header (USER_HEADERS, AuthAs), 3 AuthSource. Cached per spelling (few distinct
# names in practice; a hostile stream of new names stops filling the cache at the cap).
_OTHER, _RECEIVED, _LOGIN_HEADER, _AUTH_SOURCE = 0, 1, 2, 3
_NAME_KINDS: dict[str, int] = {}
_NAME_KINDS_MAX = 4096
_NO_NAMES: frozenset[str] = frozenset()


def _name_kind(name: str) -> int:
    low = name.lower()
    if low == "received":
        kind = _RECEIVED
    elif low in USER_HEADERS or low == EXCHANGE_AUTH_AS:
        kind = _LOGIN_HEADER
    elif low == EXCHANGE_AUTH_SOURCE:
        kind = _AUTH_SOURCE
    else:
        kind = _OTHER
    if len(_NAME_KINDS) < _NAME_KINDS_MAX:
        _NAME_KINDS[name] = kind
    return kind


def _hop_auth(value: str) -> tuple[str | None, bool, str | None, str | None, str]:
    """(by, authenticated, auth_user, marker, head): parse_received's answers that
    header_auth uses, without the parts it does not (from, id, for); inlined, as it
    runs for one to three hops of every message."""
    if not (value.isprintable() and "  " not in value and value[:1] != " " and value[-1:] != " "):
        value = " ".join(value.split())  # _normalize
    head = value[:4000].partition(";")[0]
    low = head.lower()
    ascii_low = low if head.isascii() else None
    by = None
    if ascii_low is None:
        found = _BY.search(head)
        by = found.group(1) if found else None
    else:
        pos = low.find("by")
        while pos >= 0:
            found = _BY.match(head, pos)
            if found:
                by = found.group(1)
                break
            pos = low.find("by", pos + 1)
    protocol = None
    if "mtpa" in low or "mtpsa" in low or "asmtp" in low:  # else no AUTH_PROTOCOLS name
        protocol = _group(_WITH, "with", head, ascii_low)
    elif "auth" not in low and "user=" not in low:
        return by, False, None, None, head  # what _login says without a marker
    return (by, *_login(head, low, protocol), head)


def _is_own(by: str | None, names: set[str]) -> bool:
    host = _host(by)
    return host in names or host in LOCAL_BY or host.split(".", 1)[0] in LOCAL_BY


def header_auth(headers: list[tuple[str, str]], server_names: Iterable[str] = ()) -> HeaderAuth:
    """Login evidence from the server's own hops and the headers above the first foreign hop.

    Same answer as parse_chain + own_hop_count + a look at every hop, but it runs on
    every scanned message: hops are parsed from the top only until the first foreign
    one; below it a hop is parsed only if it holds a marker keyword (a spoofing
    signal needs one), and one pass over the fields finds everything else.
    """
    received: list[str] = []
    login_headers = []  # (Received fields above it, name, value)
    auth_source = None
    seen_received = 0
    kinds = _NAME_KINDS
    for name, value in headers:
        kind = kinds.get(name)
        if kind is None:
            kind = _name_kind(name)
        if not kind:
            continue
        if kind == _RECEIVED:
            seen_received += 1
            if seen_received <= MAX_HOPS:
                received.append(value)
        elif kind == _LOGIN_HEADER:
            login_headers.append((seen_received, name, value))
        elif auth_source is None:
            auth_source = value.strip()
    given = {_host(n) for n in server_names if n} if server_names else _NO_NAMES
    names = given
    own_hops = []  # (by, authenticated, auth_user, marker, head) of each own hop, top first
    first_foreign = None
    for index, value in enumerate(received):
        hop = _hop_auth(value)
        if index == 0 and not names:
            names = {_host(hop[0])} if hop[0] else set()
        if not _is_own(hop[0], names):
            first_foreign = hop
            break
        own_hops.append(hop)
    own = len(own_hops)
    result = HeaderAuth(own_hops=own)
    if own:
        # the lowest own hop is where the message entered this server
        helo, _name, result.client_ip = _client(own_hops[-1][4])
        result.helo = helo
    for _by, authenticated, auth_user, marker, _head in own_hops:
        if authenticated and not result.authenticated:
            result.authenticated = True
            result.evidence = f"header:Received ({marker})"
        if auth_user and not result.auth_user:
            result.auth_user = auth_user
            result.evidence = f"header:Received ({marker})"
    if first_foreign is not None and first_foreign[1]:
        result.spoofed_markers.append(f"Received #{own + 1} by {first_foreign[0] or '?'}: {first_foreign[3]}")
    # below the first foreign hop, a hop can only be a spoofing signal if it holds a
    # marker keyword; most chains have none at all (one look at them together)
    if own + 1 < len(received) and _has_marker_hint("\n".join(received[own + 1:]).lower()):
        for index in range(own + 1, len(received)):
            if _has_marker_hint(received[index].lower()):
                hop = _hop_auth(received[index])
                if hop[1]:
                    result.spoofed_markers.append(f"Received #{index + 1} by {hop[0] or '?'}: {hop[3]}")
    own_names = None
    for seen, name, value in login_headers:
        # headers written above the first foreign Received belong to this server
        trusted = seen <= own and own > 0
        low = name.lower()
        if low in USER_HEADERS:
            user = _user_from_header(name, value)
            if not user:
                continue
            if trusted and not result.auth_user:
                result.auth_user, result.authenticated = user, True
                result.evidence = f"header:{name}"
            elif not trusted:
                result.spoofed_markers.append(f"{name} below a foreign hop: {user}")
            continue
        if own_names is None:
            own_names = {_host(hop[0]) for hop in own_hops} | given
        foreign_source = auth_source is not None and _host(auth_source) not in own_names
        if trusted and foreign_source and value.strip().lower() == "internal":
            result.spoofed_markers.append(f"{name}: Internal from AuthSource {auth_source}, not this server")
        elif trusted and value.strip().lower() not in ("anonymous", ""):
            result.authenticated = True
            result.evidence = result.evidence or f"header:{name} ({value.strip()})"
        elif not trusted and value.strip().lower() == "internal":
            result.spoofed_markers.append(f"{name}: Internal below a foreign hop")
    return result
