"""Body facts for the content rules, read only with --full (mail-parser is ~30x slower
than the header path, so the default scan never parses bodies)."""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field

from ..headers import parse_header_block, split_header_block

# Bound the work per message: content rules look at this much decoded text.
TEXT_LIMIT = 256 * 1024
URL_PATTERN = re.compile(r"""(?i)\bhttps?://([a-z0-9.-]+)[^\s"'<>]*""")
_TAG = re.compile(r"<[^>]{0,2000}>")


@dataclass
class BodyFacts:
    """What the content rules need from a whole message (picklable, JSON-free)."""

    text: str = ""
    url_hosts: list[str] = field(default_factory=list)
    url_count: int = 0
    html_only: bool = False
    base64_text: bool = False
    defects: list[str] = field(default_factory=list)
    # Header fields of the returned original in a DSN (message/rfc822 or text/rfc822-headers).
    returned_headers: list[tuple[str, str]] = field(default_factory=list)
    content_types: list[str] = field(default_factory=list)


def _payload_text(part) -> str:
    try:
        payload = part.get_payload(decode=True)
    except Exception:  # noqa: BLE001 - a broken part is a fact, not a crash
        return ""
    if not isinstance(payload, bytes):
        return ""
    charset = part.get_content_charset() or "utf-8"
    try:
        return payload[:TEXT_LIMIT].decode(charset, "replace")
    except LookupError:
        return payload[:TEXT_LIMIT].decode("utf-8", "replace")


def body_facts(raw: bytes) -> BodyFacts:
    """Parse a whole message with mail-parser and keep the facts the rules use."""
    import mailparser

    logging.getLogger("mailparser").setLevel(logging.CRITICAL)  # its warnings are facts, kept below
    facts = BodyFacts()
    parsed = mailparser.parse_from_bytes(raw)
    facts.defects = sorted({str(d) for d in (parsed.defects_categories or [])})
    texts: list[str] = []
    hosts: list[str] = []
    has_plain = has_html = False
    message = parsed.message
    for part in message.walk():
        ctype = part.get_content_type()
        facts.content_types.append(ctype)
        if ctype in ("message/rfc822", "message/global") and not facts.returned_headers:
            inner = part.get_payload()
            if isinstance(inner, list) and inner:
                facts.returned_headers = [(k, str(v)) for k, v in inner[0].items()]
        elif ctype in ("text/rfc822-headers", "text/rfc822-header") and not facts.returned_headers:
            block, _ = split_header_block(_payload_text(part).encode("utf-8", "replace"))
            facts.returned_headers = parse_header_block(block)
        if part.get_content_maintype() != "text":
            continue
        if str(part.get("Content-Transfer-Encoding", "")).strip().lower() == "base64":
            facts.base64_text = True
        text = _payload_text(part)
        hosts.extend(m.group(1).lower().rstrip(".") for m in URL_PATTERN.finditer(text))
        if ctype == "text/html":
            has_html = True
            text = _TAG.sub(" ", text)
        elif ctype == "text/plain":
            has_plain = True
        texts.append(text)
    facts.html_only = has_html and not has_plain
    facts.text = "\n".join(texts)[:TEXT_LIMIT]
    facts.url_count = len(hosts)
    facts.url_hosts = sorted(set(hosts))
    return facts
