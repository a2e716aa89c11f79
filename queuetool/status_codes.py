"""SMTP reply codes, RFC 3463 enhanced status codes and block-list rejections, explained.

Delivery failures reach a responder as text: a BadMail `.BDR` line, a Postfix defer
log `reason=`, an Exim msglog line, a DSN `Diagnostic-Code:`. This module finds the
codes in such text (`parse_status`), says what they mean (`describe_code`) and
recognises rejections that cite a DNS block list (`find_blocklist`), with a delisting
checklist, so that `diagnose` can group and explain them. Nothing here raises on
odd text; unknown codes are described from their class and subject, never dropped.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

# RFC 3463 section 3.1: the class digit.
CLASS_MEANINGS: dict[str, str] = {
    "2": "Success",
    "4": "Persistent transient failure (the sender keeps retrying)",
    "5": "Permanent failure (the message is returned)",
}

# RFC 3463 section 3.2: the subject digit.
SUBJECT_MEANINGS: dict[str, str] = {
    "0": "Other or undefined status",
    "1": "Addressing status",
    "2": "Mailbox status",
    "3": "Mail system status",
    "4": "Network and routing status",
    "5": "Mail delivery protocol status",
    "6": "Message content or media status",
    "7": "Security or policy status",
}

# Subject.detail meanings: RFC 3463 section 3.3 unless noted (IANA "SMTP Enhanced
# Status Codes" registry for the later additions).
DETAIL_MEANINGS: dict[str, str] = {
    "0.0": "Other undefined status",
    "1.0": "Other address status",
    "1.1": "Bad destination mailbox address (no such user)",
    "1.2": "Bad destination system address (no such domain/host)",
    "1.3": "Bad destination mailbox address syntax",
    "1.4": "Destination mailbox address ambiguous",
    "1.5": "Destination address valid",
    "1.6": "Destination mailbox has moved, no forwarding address",
    "1.7": "Bad sender's mailbox address syntax",
    "1.8": "Bad sender's system address",
    "1.9": "Message relayed to non-compliant mailer (RFC 3886)",
    "1.10": "Recipient address has null MX (RFC 7505)",
    "2.0": "Other or undefined mailbox status",
    "2.1": "Mailbox disabled, not accepting messages",
    "2.2": "Mailbox full",
    "2.3": "Message length exceeds administrative limit",
    "2.4": "Mailing list expansion problem",
    "3.0": "Other or undefined mail system status",
    "3.1": "Mail system full",
    "3.2": "System not accepting network messages",
    "3.3": "System not capable of selected features",
    "3.4": "Message too big for system",
    "3.5": "System incorrectly configured",
    "3.6": "Requested priority was changed (RFC 6710)",
    "4.0": "Other or undefined network or routing status",
    "4.1": "No answer from host",
    "4.2": "Bad connection",
    "4.3": "Directory server failure (e.g. DNS lookup failed)",
    "4.4": "Unable to route",
    "4.5": "Mail system congestion",
    "4.6": "Routing loop detected",
    "4.7": "Delivery time expired",
    "5.0": "Other or undefined protocol status",
    "5.1": "Invalid command",
    "5.2": "Syntax error",
    "5.3": "Too many recipients",
    "5.4": "Invalid command arguments",
    "5.5": "Wrong protocol version",
    "5.6": "Authentication exchange line is too long (RFC 4954)",
    "6.0": "Other or undefined media error",
    "6.1": "Media not supported",
    "6.2": "Conversion required and prohibited",
    "6.3": "Conversion required but not supported",
    "6.4": "Conversion with loss performed",
    "6.5": "Conversion failed",
    "6.6": "Message content not available (RFC 4468)",
    "6.7": "Non-ASCII addresses not permitted for that sender/recipient (RFC 6531)",
    "6.8": "UTF-8 string reply is required, but not permitted by the client (RFC 6531)",
    "6.9": "UTF-8 header message cannot be transferred to one or more recipients (RFC 6531)",
    "7.0": "Other or undefined security status",
    "7.1": "Delivery not authorized, message refused (e.g. relaying denied, policy or block list)",
    "7.2": "Mailing list expansion prohibited",
    "7.3": "Security conversion required but not possible",
    "7.4": "Security features not supported",
    "7.5": "Cryptographic failure",
    "7.6": "Cryptographic algorithm not supported",
    "7.7": "Message integrity failure",
    "7.8": "Authentication credentials invalid (RFC 4954)",
    "7.9": "Authentication mechanism is too weak (RFC 4954)",
    "7.10": "Encryption needed (RFC 5248)",
    "7.11": "Encryption required for requested authentication mechanism (RFC 4954)",
    "7.12": "A password transition is needed (RFC 4954)",
    "7.13": "User account disabled (RFC 5248)",
    "7.14": "Trust relationship required (RFC 5248)",
    "7.15": "Priority level is too low (RFC 6710)",
    "7.16": "Message is too big for the specified priority (RFC 6710)",
    "7.17": "Mailbox owner has changed (RFC 7293)",
    "7.18": "Domain owner has changed (RFC 7293)",
    "7.19": "RRVS test cannot be completed (RFC 7293)",
    "7.20": "No passing DKIM signature found (RFC 7372)",
    "7.21": "No acceptable DKIM signature found (RFC 7372)",
    "7.22": "No valid author-matched DKIM signature found (RFC 7372)",
    "7.23": "SPF validation failed (RFC 7372)",
    "7.24": "SPF validation error (RFC 7372)",
    "7.25": "Reverse DNS validation failed (RFC 7372)",
    "7.26": "Multiple authentication checks failed (RFC 7372)",
    "7.27": "Sender address has null MX (RFC 7505)",
}

# What Exchange 2000/2003 means by a code, where KB 895853 and its neighbours say so.
EXCHANGE_NOTES: dict[str, str] = {
    "5.0.0": "Exchange 2000/2003: generic failure, often no route to the destination "
             "(no SMTP connector or MX); KB 895853 lists it as a relay-abuse symptom",
    "5.7.1": "Exchange: 'Unable to relay' / 'Delivery not authorized' / 'Client was not "
             "authenticated'; the NDR wording 'the sender does not have permission' is "
             "misleading: the remote side refused to relay (KB 262354, KB 895853)",
    "5.7.3": "Exchange: not authorized / security problem; the destination may require "
             "authentication, or could not find the recipient (KB 895853 scenario 5); "
             "Exchange 2007+ also answers a failed SMTP AUTH with '535 5.7.3 Authentication "
             "unsuccessful' (a wrong password: brute-force evidence)",
}

# Enhanced codes outside RFC 3463/IANA that Exchange 2013+ and Exchange Online use
# (Microsoft's "Email non-delivery reports in Exchange Online" pages); x.7.606-649 is a range.
MICROSOFT_DETAILS: dict[str, str] = {
    "7.54": "Microsoft: unable to relay recipient in non-accepted domain (the receiving server "
            "does not accept the domain and will not relay for this client)",
    "7.57": "Microsoft: client was not authenticated to send anonymous mail during MAIL FROM "
            "(the submission endpoint requires SMTP AUTH)",
    "7.64": "Microsoft: TenantAttribution; relay access denied (connector/tenant not recognised)",
    "7.606-649": "Microsoft: access denied, banned sending IP (the IP is on Microsoft's block list)",
    "7.708": "Microsoft: access denied, traffic not accepted from this IP (poor IP reputation)",
    "7.750": "Microsoft: client blocked from sending from unregistered domains",
}

# Exchange/IIS SMTP error numbers seen in BadMail .BDR files, with documented texts only.
EXCHANGE_HEX_CODES: dict[str, str] = {
    "0xC00402C7": "This message is a delivery status notification that cannot be delivered "
                  "(an NDR whose own recipient failed: typically backscatter for forged senders)",
}

# RFC 5321 section 4.2 basic reply codes (+ RFC 4954 for 530/535, RFC 3463 use of 5xx).
BASIC_REPLY_MEANINGS: dict[int, str] = {
    211: "System status", 214: "Help message", 220: "Service ready",
    221: "Service closing transmission channel", 235: "Authentication succeeded (RFC 4954)",
    250: "Requested mail action okay, completed", 251: "User not local; will forward",
    252: "Cannot verify user, but will accept message", 334: "Authentication challenge (RFC 4954)",
    354: "Start mail input",
    421: "Service not available, closing transmission channel",
    432: "A password transition is needed (RFC 4954)",
    450: "Mailbox unavailable (busy or temporarily blocked)",
    451: "Local error in processing",
    452: "Insufficient system storage",
    454: "Temporary authentication failure (RFC 4954)",
    455: "Server unable to accommodate parameters",
    500: "Syntax error, command unrecognized",
    501: "Syntax error in parameters or arguments",
    502: "Command not implemented",
    503: "Bad sequence of commands",
    504: "Command parameter not implemented",
    530: "Authentication required (RFC 4954)",
    534: "Authentication mechanism is too weak (RFC 4954)",
    535: "Authentication credentials invalid (RFC 4954)",
    538: "Encryption required for requested authentication mechanism (RFC 4954)",
    550: "Mailbox unavailable or policy rejection (not found, no access, relaying denied)",
    551: "User not local",
    552: "Exceeded storage allocation",
    553: "Mailbox name not allowed",
    554: "Transaction failed (or no SMTP service here)",
    555: "MAIL FROM/RCPT TO parameters not recognized or not implemented",
}

# An enhanced code: not part of a longer dotted number (an IP address, a version).
_ENHANCED = re.compile(r"(?<![\d.])([245])\.(\d{1,3})\.(\d{1,3})(?![\d]|\.\d)")
# A basic reply code at a reply's start, or after "said:" / "with" / "responded".
_BASIC = re.compile(r"(?<![^\s(\"':=\[])([245][0-5]\d)(?=[\s-]|$)")
_HEX_CODE = re.compile(r"0x[0-9A-Fa-f]{8}")
# Where a reply came from: Postfix "host H[ip] said:", Exim "H=host [ip]", DSN Remote-MTA,
# Sendmail "by host.", Exchange event 7004 'remote host "h"'.
_REMOTE_HOST = (
    re.compile(r"\bhost\s+([A-Za-z0-9._-]+)\[([0-9A-Fa-f.:]+)\]"),
    re.compile(r"\bH=([A-Za-z0-9._-]+)\s+\[([0-9A-Fa-f.:]+)\]"),
    re.compile(r"\bremote host\s+\"?([A-Za-z0-9._:\[\]-]+)\"?", re.I),
    re.compile(r"\bRemote-MTA:\s*dns;\s*([A-Za-z0-9._-]+)", re.I),
    re.compile(r"\b(?:refused|reset|timed out)\s+by\s+([A-Za-z0-9._-]+[A-Za-z0-9])", re.I),
    re.compile(r"\bconnect to\s+([A-Za-z0-9._-]+)\[([0-9A-Fa-f.:]+)\]"),
)
TEXT_LIMIT = 500


@dataclass
class StatusInfo:
    """The codes found in one piece of delivery-status text, and what they mean."""

    text: str
    basic: int | None = None
    enhanced: str | None = None
    exchange_code: str | None = None
    remote_host: str | None = None

    @property
    def code(self) -> str:
        """The most specific code: enhanced, else basic, else Exchange hex, else '?'."""
        if self.enhanced:
            return self.enhanced
        if self.basic is not None:
            return str(self.basic)
        return self.exchange_code or "?"

    @property
    def klass(self) -> str | None:
        if self.enhanced:
            return self.enhanced[0]
        if self.basic is not None:
            return str(self.basic)[0]
        return None

    @property
    def meaning(self) -> str:
        return describe_code(self.code)

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "basic": self.basic, "enhanced": self.enhanced,
                "exchange_code": self.exchange_code, "remote_host": self.remote_host,
                "meaning": self.meaning, "text": self.text}


def describe_code(code: str | int | None) -> str:
    """Meaning of an enhanced ("5.7.1"), basic ("550") or Exchange hex code; never empty."""
    if code is None:
        return "no status code"
    code = str(code).strip()
    if code.lower().startswith("0x"):
        for known, text in EXCHANGE_HEX_CODES.items():
            if known.lower() == code.lower():
                return text
        return f"Exchange/Windows error number {code} (not in queuetool's table)"
    parts = code.split(".")
    if len(parts) == 3 and all(p.isdigit() for p in parts):
        klass, subject, detail = parts[0], str(int(parts[1])), str(int(parts[2]))
        class_text = CLASS_MEANINGS.get(klass, f"unknown class {klass}")
        detail_text = DETAIL_MEANINGS.get(f"{subject}.{detail}") or _microsoft_detail(subject, detail)
        if detail_text is None:
            subject_text = SUBJECT_MEANINGS.get(subject, f"unknown subject {subject}")
            detail_text = f"{subject_text}, detail {detail} not in RFC 3463 or the IANA registry"
        out = f"{class_text}: {detail_text}"
        note = EXCHANGE_NOTES.get(code)
        return f"{out}. {note}" if note else out
    if code.isdigit() and len(code) == 3:
        text = BASIC_REPLY_MEANINGS.get(int(code))
        if text:
            return text
        return f"{CLASS_MEANINGS.get(code[0], 'unknown class ' + code[0])}: reply {code} not in RFC 5321"
    return f"unrecognised code {code!r}"


def _microsoft_detail(subject: str, detail: str) -> str | None:
    if subject == "7" and detail.isdigit() and 606 <= int(detail) <= 649:
        return MICROSOFT_DETAILS["7.606-649"]
    return MICROSOFT_DETAILS.get(f"{subject}.{detail}")


def parse_status(text: Any) -> StatusInfo | None:
    """Codes and remote host in a status text; None when no code is there at all."""
    if text is None:
        return None
    if not isinstance(text, str):
        text = str(text)
    text = " ".join(text.split())[:TEXT_LIMIT * 4]
    enhanced = _ENHANCED.search(text)
    basic = _BASIC.search(text)
    hex_code = _HEX_CODE.search(text)
    if not (enhanced or basic or hex_code):
        return None
    info = StatusInfo(
        text=text[:TEXT_LIMIT],
        basic=int(basic.group(1)) if basic else None,
        enhanced=(f"{enhanced.group(1)}.{int(enhanced.group(2))}.{int(enhanced.group(3))}"
                  if enhanced else None),
        exchange_code=hex_code.group(0).upper().replace("0X", "0x") if hex_code else None,
    )
    info.remote_host = find_remote_host(text)
    return info


def find_remote_host(text: str) -> str | None:
    """The remote server a reply came from, as the MTA wrote it (host or host[ip])."""
    for pattern in _REMOTE_HOST:
        match = pattern.search(text)
        if match:
            host = match.group(1).strip("[]\"").rstrip(".")
            if match.lastindex and match.lastindex >= 2:
                return f"{host}[{match.group(2)}]"
            return host or None
    return None


# ---------------------------------------------------------------------------------
# Block lists

GENERIC_DELISTING: tuple[str, ...] = (
    "Stop the source first: close the open relay / disable the compromised account / "
    "stop the script, and quarantine the queued spam (queuetool quarantine) so it is not retried.",
    "Confirm nothing more leaves: watch the queue and the outbound log for an hour; "
    "block outbound port 25 from everything but the mail server.",
    "Look the sending IP (and domain, for domain lists) up on the operator's site to see "
    "the exact listing and its reason.",
    "Request removal through the operator's own form only after the cause is fixed "
    "(repeat listings get longer); never pay a removal fee.",
    "Check reverse DNS (PTR) and HELO name match, SPF/DKIM/DMARC are published, then "
    "re-test delivery to the refusing domain and re-check the list after the stated delay.",
)


@dataclass(frozen=True)
class Blocklist:
    """One DNS block list (or a provider's own list) and how to get off it."""

    name: str
    operator: str
    patterns: tuple[str, ...]          # regexes (case-insensitive) seen in rejection texts
    lookup: str                        # where to check the listing
    delisting: tuple[str, ...]         # operator-specific steps, after GENERIC_DELISTING
    kind: str = "ip"                   # ip, domain, provider


BLOCKLISTS: tuple[Blocklist, ...] = (
    Blocklist("Spamhaus SBL", "Spamhaus", (r"\bsbl(?:-xbl)?\.spamhaus\.org", r"spamhaus\.org/sbl",
                                            r"\bSBL\d+"),
              "https://check.spamhaus.org/",
              ("SBL listings are made by hand for spam sources/spam services; the SBL record "
               "names the reason; the network owner (ISP) usually has to request removal.",)),
    Blocklist("Spamhaus XBL", "Spamhaus", (r"\bxbl\.spamhaus\.org", r"spamhaus\.org/xbl",
                                           r"\bcbl\.abuseat\.org", r"abuseat\.org"),
              "https://check.spamhaus.org/",
              ("XBL/CBL lists hosts showing infection or proxy/bot behaviour: find and clean "
               "the infected host or script (not only the account), then self-remove on the "
               "lookup page.",)),
    Blocklist("Spamhaus PBL", "Spamhaus", (r"\bpbl\.spamhaus\.org", r"spamhaus\.org/pbl"),
              "https://check.spamhaus.org/",
              ("PBL lists address ranges that should not send directly to the internet "
               "(dynamic/end-user). Send through your provider's smarthost, or, for a static "
               "address of a real mail server, self-remove on the lookup page.",)),
    Blocklist("Spamhaus DBL", "Spamhaus", (r"\bdbl\.spamhaus\.org", r"spamhaus\.org/dbl"),
              "https://check.spamhaus.org/",
              ("DBL lists domains (in links or senders), not IPs: remove the listed domain "
               "from the spam (it was probably forged) or clean the compromised site.",),
              kind="domain"),
    Blocklist("Spamhaus ZEN", "Spamhaus", (r"\bzen\.spamhaus\.org", r"spamhaus\.org/query",
                                           r"spamhaus\.org/lookup", r"\bspamhaus\b"),
              "https://check.spamhaus.org/",
              ("ZEN combines SBL, XBL and PBL: the lookup page says which one lists the IP; "
               "follow that list's steps.",)),
    Blocklist("SpamCop", "SpamCop (Cisco)", (r"\bbl\.spamcop\.net", r"spamcop\.net"),
              "https://www.spamcop.net/bl.shtml",
              ("SpamCop listings are driven by user reports and expire automatically about "
               "24 hours after the reports stop; fixing the source is the removal.",)),
    Blocklist("Barracuda BRBL", "Barracuda Networks",
              (r"\bb\.barracudacentral\.org", r"barracudacentral", r"barracuda reputation"),
              "https://www.barracudacentral.org/lookups",
              ("Submit the removal request form on barracudacentral.org (valid contact "
               "address needed); reviews take a day or more.",)),
    Blocklist("SORBS", "SORBS", (r"\bsorbs\.net", r"\bdnsbl\.sorbs", r"\bsorbs\b"),
              "http://www.sorbs.net/lookup.shtml",
              ("SORBS has several zones (spam, dul, http/socks proxies); the lookup names "
               "the zone; dynamic-range (DUL) listings are removed by the address owner.",)),
    Blocklist("UCEPROTECT", "UCEPROTECT", (r"uceprotect\.net", r"\buceprotect\b"),
              "https://www.uceprotect.net/en/rblcheck.php",
              ("Level 1 (single IP) listings expire on their own after the spam stops; "
               "levels 2/3 list whole ranges/ASNs and are the provider's matter. Paid "
               "express delisting is never required.",)),
    Blocklist("Microsoft (Outlook.com / Exchange Online)", "Microsoft",
              (r"\bS3150\b", r"\bS3140\b", r"\bS3114\b", r"\bS775\b", r"\bS844\b",
               r"\bAS\(\d+\)", r"outlook\.com.*block ?list", r"block ?list.*outlook",
               r"messaging\.microsoft\.com", r"protection\.outlook\.com.*(?:block|banned)",
               r"banned sender", r"part of their network is on our block list",
               r"banned sending IP", r"\b5\.7\.(?:6[0-4]\d|708|750)\b",
               r"traffic not accepted from this IP"),
              "https://sender.office.com/ (Exchange Online); Outlook.com sender support form",
              ("Use the Microsoft delist portal (sender.office.com) for Exchange Online "
               "rejections; for Outlook.com/Hotmail (S3150/S3140) open a sender support "
               "request and consider joining SNDS/JMRP to watch your IP.",), kind="provider"),
    Blocklist("Proofpoint", "Proofpoint", (r"proofpoint", r"\bpphosted\.com.*(?:block|reject)"),
              "https://ipcheck.proofpoint.com/",
              ("Use the Proofpoint IP check/dispute form with the rejection text; Proofpoint "
               "protects many recipient organisations, so one listing blocks many domains.",),
              kind="provider"),
    Blocklist("Cloudmark CSI", "Cloudmark (Proofpoint)", (r"cloudmark", r"\bcsi\.cloudmark"),
              "https://csi.cloudmark.com/en/reset/",
              ("Request a reputation reset on csi.cloudmark.com after the cause is fixed.",),
              kind="provider"),
    Blocklist("Passive Spam Block List (PSBL)", "Surriel", (r"psbl\.surriel\.com", r"\bpsbl\b"),
              "https://psbl.org/",
              ("PSBL removal is self-service on psbl.org.",)),
    Blocklist("SpamRATS", "SpamRATS", (r"spamrats",), "https://www.spamrats.com/lookup.php",
              ("SpamRATS RATS-Dyna/NoPtr/Spam: fix PTR/HELO first, then use the removal form.",)),
    Blocklist("Mailspike", "Mailspike", (r"mailspike",), "https://mailspike.org/",
              ("Mailspike reputation recovers as clean mail flows; removal form on its site.",)),
    Blocklist("Abusix Mail Intelligence", "Abusix", (r"abusix",), "https://lookup.abusix.com/",
              ("Use the Abusix lookup page for delisting.",)),
)
_BLOCKLIST_RE = tuple((bl, tuple(re.compile(p, re.I) for p in bl.patterns)) for bl in BLOCKLISTS)
# Block-list wording without a named list: still a listing, just not one we can name.
_GENERIC_BLOCK = re.compile(
    r"\b(?:block ?list(?:ed)?|black ?list(?:ed)?|blocklisted|\bRBL\b|\bDNSBL\b|listed (?:at|in|on|by)\b"
    r"|poor reputation|bad reputation|reputation of)", re.I)


@dataclass
class BlocklistHit:
    """A rejection that cites a block list: which one, and how to get delisted."""

    name: str
    operator: str
    lookup: str
    kind: str
    delisting: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "operator": self.operator, "lookup": self.lookup,
                "kind": self.kind, "delisting": list(self.delisting)}


def find_blocklist(text: Any) -> BlocklistHit | None:
    """The block list a rejection text names (most specific first), or a generic hit."""
    if not text:
        return None
    text = str(text)[:TEXT_LIMIT * 4]
    for bl, patterns in _BLOCKLIST_RE:
        if any(p.search(text) for p in patterns):
            return BlocklistHit(bl.name, bl.operator, bl.lookup, bl.kind,
                                list(GENERIC_DELISTING) + list(bl.delisting))
    if _GENERIC_BLOCK.search(text):
        return BlocklistHit("unnamed block list", "unknown", "the URL in the rejection text, if any",
                            "ip", list(GENERIC_DELISTING))
    return None


_RELAY_DENIED = re.compile(
    r"unable to relay|relay(?:ing)? (?:access )?(?:denied|not permitted|not allowed|prohibited)"
    r"|not permitted to relay|relay not permitted|we do not relay|no relaying", re.I)
_AUTH_REQUIRED = re.compile(
    r"client was not authenticated|authentication (?:is )?required|must (?:be )?authenticat|"
    r"requires? authentication|auth(?:entication)? needed|smtp auth(?:entication)? required", re.I)
_NO_PERMISSION = re.compile(r"does not have permission|do(?:es)? not have permission to send|"
                            r"heeft geen machtiging", re.I)


def is_relay_denied(text: str | None) -> bool:
    """The reply refuses to relay (the recipient's domain is not local to that server)."""
    return bool(text) and bool(_RELAY_DENIED.search(text))


def is_auth_required(text: str | None) -> bool:
    """The reply demands SMTP authentication from the client."""
    return bool(text) and bool(_AUTH_REQUIRED.search(text))


def is_misleading_permission_text(text: str | None) -> bool:
    """Exchange's 5.7.1 NDR wording "the sender does not have permission" (KB 262354)."""
    return bool(text) and bool(_NO_PERMISSION.search(text))
