"""header_auth / parse_received give exactly what the straightforward code gave.

The reference below is the implementation received.py had before it was made fast
(every hop parsed with one regex search per part, two passes over the fields); it is
kept here only to compare against, on random and on real headers.
"""
from __future__ import annotations

import re
from dataclasses import asdict

from hypothesis import example, given, settings, strategies as st

from queuetool.headers import parse_header_block
from queuetool.received import (
    _BY, _COURIER_AUTH, _EXIM_AUTH_ID, _FOR, _FROM, _ID, _IP, _POSTFIX_AUTH, _SENDMAIL_AUTH, _SENDMAIL_FULL,
    _WITH, AUTH_PROTOCOLS, EXCHANGE_AUTH_AS, EXCHANGE_AUTH_SOURCE, LOCAL_BY, MAX_HOPS, USER_HEADERS, HeaderAuth,
    Hop, _host, _user_from_header, header_auth, parse_received,
)
from corpus import CORPORA
from queuetool.spools import find_spools
from test_headers_fast import REAL_BLOCKS


# ---------------------------------------------------------------- reference (old code)
def ref_parse_received(value: str, index: int = 0) -> Hop:
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
        return hop
    for pattern, label in ((_POSTFIX_AUTH, "Authenticated sender"), (_SENDMAIL_FULL, "user= mech="),
                           (_COURIER_AUTH, "AUTH:"), (_EXIM_AUTH_ID, "authenticated id")):
        found = pattern.search(head)
        if found:
            hop.authenticated, hop.auth_user, hop.marker = True, found.group(1), label
            break
    if not hop.authenticated and _SENDMAIL_AUTH.search(head):
        hop.authenticated, hop.marker = True, "(authenticated)"
    return hop


def ref_parse_chain(headers):
    hops = []
    for name, value in headers:
        if name.lower() == "received":
            hops.append(ref_parse_received(value, len(hops)))
            if len(hops) >= MAX_HOPS:
                break
    return hops


def ref_own_hop_count(hops, server_names=()):
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


def ref_header_auth(headers, server_names=()) -> HeaderAuth:
    hops = ref_parse_chain(headers)
    own = ref_own_hop_count(hops, server_names)
    result = HeaderAuth(own_hops=own)
    if own:
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


# ---------------------------------------------------------------- inputs
def reader_headers() -> list[list[tuple[str, str]]]:
    """The headers the readers give for every message of corpora/* (Postfix, Exim ... records)."""
    found = []
    for spool in find_spools(CORPORA):
        found += [record.headers for record in spool if record.headers]
    return found


REAL_HEADERS = [h for h in (parse_header_block(b) for b in REAL_BLOCKS) if h] + reader_headers()
REAL_RECEIVED = sorted({v for h in REAL_HEADERS for n, v in h if n.lower() == "received"})
REAL_BY = sorted({hop.by for hop in map(ref_parse_received, REAL_RECEIVED) if hop.by})

# words that make up Received values: every marker, near-misses, case and Unicode
# look-alikes (re.I lets "ı"/"İ" match "i"), separators and odd whitespace
WORDS = ["from", "FROM", "by", "By", "with", "WıTH", "wİth", "id", "ıd", "for", "user=bob", "uſer=x", "mech=LOGIN",
         "ESMTP", "ESMTPA", "esmtpsa", "LMTPA", "UTF8SMTPSA", "asmtp", "esmtpa1", "Microsoft", "SMTP", "Server",
         "(Authenticated sender: mallory)", "(Authenticated sender:", "(authenticated bits=0)", "(authenticated)",
         "(AUTH: LOGIN carol)", "(authenticated id scanner)", "(authenticated as x)", "(user=dave mech=PLAIN bits=0)",
         "(helo=odd)", "[203.0.113.7]", "[IPv6:2001:db8::1]", "(unknown [192.0.2.15])", "(", ")", "[", "]", "<",
         ">", "<joe@partner.example>", "joe@x", ";", "; Fri, 27 Nov 2026", "mail.example.com", "MAIL.example.com.",
         "mx.other.example", "localhost", "pickup", "replay.example.com", "EX16.example.com", "_by", "xby", "by(",
         "K", "é", "\u2028", "\x00", "\x1c", "\xa0", "auth", "AUTH", "mtpa"]
SEPARATORS = [" ", " ", " ", "  ", "\t", "\r\n\t", "", "\u3000", "\x85"]
received_value = st.lists(st.tuples(st.sampled_from(WORDS), st.sampled_from(SEPARATORS)), max_size=25).map(
    lambda parts: "".join(w + s for w, s in parts))
field_name = st.sampled_from(["Received", "received", "RECEIVED", "Subject", "X-Authenticated-User", "X-AuthUser",
                              "x-auth-user", "X-Authenticated-Sender", "X-Get-Message-Sender-Via", "X-Sender-Id",
                              "X-MS-Exchange-Organization-AuthAs", "X-MS-Exchange-Organization-AuthSource",
                              "X-MS-Exchange-Organization-AuthSOURCE", "Receıved", "From"])
field_value = st.one_of(received_value, st.sampled_from(["Internal", "internal ", "Anonymous", "", " ", "bob",
                                                         "host: carol@example.com", "<ceo>",
                                                         "mail.example.com: authenticated_id: erin/from_h",
                                                         "EXCH01.corp.local", "mail.example.com"] + REAL_RECEIVED))
server_names = st.lists(st.sampled_from(["", "mail.example.com", "MAIL.EXAMPLE.COM.", "EX16.example.com",
                                         "mx.other.example"] + REAL_BY), max_size=3)


def same_auth(headers, names=()) -> None:
    """Fast and reference agree: same answer, or the same exception."""
    def outcome(auth):
        try:
            return asdict(auth(headers, names))
        except Exception as exc:  # noqa: BLE001 - compared, not hidden
            return type(exc)
    assert outcome(header_auth) == outcome(ref_header_auth), headers


def test_real_headers_match_the_reference():
    assert len(REAL_HEADERS) > 700 and len(REAL_RECEIVED) > 100
    for headers in REAL_HEADERS:
        same_auth(headers)
        for name in REAL_BY[:8]:
            same_auth(headers, [name])
    for value in REAL_RECEIVED:
        assert parse_received(value, 3) == ref_parse_received(value, 3)


@settings(max_examples=1500)
@given(received_value)
@example("from x ([10.1.1.1]) (uſer=dave mech=LOGIN) by mx.example.com wıth ESMTPA; Mon")
@example("by mail.example.com with esmtp with ESMTPA (AUTH: LOGIN carol)")
def test_parse_received_matches_the_reference(value):
    assert parse_received(value, 1) == ref_parse_received(value, 1)


@settings(max_examples=1500)
@given(st.lists(st.tuples(field_name, field_value), max_size=14), server_names)
@example([("X-Authenticated-Sender", "(Authenticated sender: ")], [])
def test_header_auth_matches_the_reference(headers, names):
    same_auth(headers, names)


@settings(max_examples=400)
@given(st.sampled_from(REAL_HEADERS), st.lists(st.tuples(st.integers(0, 40), field_name, field_value), max_size=4),
       server_names)
def test_mutated_real_headers_match_the_reference(headers, inserts, names):
    headers = list(headers)
    for pos, name, value in inserts:
        headers.insert(pos % (len(headers) + 1), (name, value))
    same_auth(headers, names)


def test_hops_beyond_the_cap_and_markers_far_below():
    spoof = "from x ([198.51.100.7]) (Authenticated sender: mallory) by smtp.elsewhere.example with ESMTPSA"
    headers = [("Received", "from a ([10.0.0.1]) by mail.example.com with ESMTP; x")]
    headers += [("Received", f"from r{i} by relay{i}.example with ESMTP; x") for i in range(MAX_HOPS + 20)]
    headers.insert(60, ("Received", spoof))
    headers.insert(99, ("Received", spoof))
    headers.append(("X-Authenticated-User", "ceo"))
    found = header_auth(headers)
    assert found.spoofed_markers == ref_header_auth(headers).spoofed_markers
    assert [m.split(" by ")[0] for m in found.spoofed_markers] == ["Received #61", "Received #100",
                                                                   "X-Authenticated-User below a foreign hop: ceo"]
