"""Campaign clustering that streams: per-message feature keys, joined across the spool.

Each message yields a few feature keys (normalized subject, body simhash halves, URL
host set, sender pattern + mailer template). Two messages sharing any key belong to one
campaign (connected components over keys). Keys are hashes of the features, and a
campaign's id is the smallest key of its component, so ids depend only on the spool's
content: the same on every run and in any scan order.

Memory: a count-min sketch (fixed size) counts keys in the first pass; only keys seen
at least twice enter the union-find, so the unique subjects of a 10^6-message queue
never fill memory.
"""
from __future__ import annotations

import array
import functools
import hashlib
import re
from typing import Iterable

from ..config import address_domain
from ..model import QueuedMessage
from .content import BodyFacts

KEY_BYTES = 8
_PREFIX = re.compile(r"^\s*(?:(?:re|fwd?|aw|wg|sv|tr)\s*(?:\[\d+\])?\s*:\s*)+", re.I)
_DIGITS = re.compile(r"\d+")
# The words of a normalized text: runs of \w and "#". No whitespace character is \w,
# so this is " ".join(re.sub(r"[^\w#]+", " ", text).split()) in one pass.
_TOKEN = re.compile(r"[\w#]+")
# A run of digits and "#": what _DIGITS -> "#" and then "#+" -> "#" leave of it.
_DIGITS_AND_HASHES = re.compile(r"[\d#]+")
_WORD = re.compile(r"[a-z0-9']{2,}")
_LETTERS = re.compile(r"[a-z]+")
# Subjects too generic to say two messages are one campaign.
GENERIC_SUBJECTS = frozenset({"", "test", "hello", "hi", "#", "no subject", "(no subject)"})
MIN_SUBJECT_CHARS = 8


@functools.lru_cache(maxsize=4096)
def feature_key(kind: str, value: str) -> str:
    """Stable hex key of one feature (sha1 prefix; no per-process hash seed).

    Cached: members of a campaign share their features, which is the point of them.
    """
    return hashlib.sha1(f"{kind}\0{value}".encode("utf-8", "surrogatepass")).hexdigest()[: KEY_BYTES * 2]


def subject_skeleton(subject: str | None, recipients: Iterable[str] = ()) -> str:
    """Subject with reply prefixes, digits, punctuation and recipient names taken out."""
    text = subject or ""
    prefix = _PREFIX.match(text)  # anchored: match + slice is sub() without trying every position
    if prefix:
        text = text[prefix.end():]
    text = text.lower()
    for rcpt in recipients:
        local = rcpt.partition("@")[0].lower()
        if len(local) >= 3 and local in text:
            text = text.replace(local, " ")
    return " ".join(_TOKEN.findall(_DIGITS_AND_HASHES.sub("#", text)))


def sender_pattern(sender: str | None) -> str:
    """Shape of the envelope sender: letters -> a, digits -> 9, runs collapsed."""
    if sender is None:
        return "?"
    if sender == "":
        return "<>"
    local, _, domain = sender.lower().rpartition("@")
    shape = _LETTERS.sub("a", _DIGITS.sub("9", local))
    return f"{shape}@{'*' if domain else ''}"


def simhash(text: str) -> int:
    """64-bit simhash of word 3-shingles (near-identical texts differ in few bits)."""
    words = _WORD.findall(text.lower())[:5000]
    if len(words) < 3:
        return 0
    weights = [0] * 64
    for i in range(len(words) - 2):
        digest = int.from_bytes(hashlib.blake2b(" ".join(words[i:i + 3]).encode(), digest_size=8).digest(), "big")
        for bit in range(64):
            weights[bit] += 1 if digest >> bit & 1 else -1
    return sum(1 << bit for bit in range(64) if weights[bit] > 0)


def _display_name(value: str | None) -> str:
    """Normalized display name of a From value ('' when there is none)."""
    if not value or "<" not in value:
        return ""
    name = value.split("<", 1)[0].strip().strip('"').lower()
    return " ".join(_TOKEN.findall(_DIGITS.sub("#", name)))


def campaign_keys(record: QueuedMessage, body: BodyFacts | None = None) -> list[str]:
    """The feature keys of one message (sorted, deduplicated)."""
    keys: set[str] = set()
    skeleton = subject_skeleton(record.subject, record.recipients)
    if skeleton not in GENERIC_SUBJECTS and len(skeleton) >= MIN_SUBJECT_CHARS:
        keys.add(feature_key("subject", skeleton))
    name = _display_name(record.header_from)
    if len(name) >= 4:
        mid = (record.message_id or "").strip().strip("<>").rpartition("@")[2].lower()
        keys.add(feature_key("template", f"{name}|{mid}|{sender_pattern(record.sender)}"))
    if body is not None:
        value = simhash(body.text)
        if value:
            keys.add(feature_key("simhash-hi", f"{value >> 32:08x}"))
            keys.add(feature_key("simhash-lo", f"{value & 0xFFFFFFFF:08x}"))
        hosts = [h for h in body.url_hosts if address_domain("x@" + h) not in (None, "")]
        if hosts:
            keys.add(feature_key("urls", " ".join(hosts)))
    return sorted(keys)


_GOLDEN = 0x9E3779B97F4A7C15


class CountMinSketch:
    """Approximate counts of keys in fixed memory (never undercounts)."""

    def __init__(self, width: int = 1 << 20, depth: int = 4) -> None:
        self.width, self.depth = width, depth
        self.rows = [array.array("I", bytes(4 * width)) for _ in range(depth)]

    def _slots(self, key: str) -> list[int]:
        # keys are sha1 prefixes (uniform bits): the first three rows take disjoint 20-bit
        # windows of the key, further rows a multiplicative mix (cheap, and independent)
        value = int(key, 16)
        return [((value >> (20 * row)) if row < 3 else (value * _GOLDEN >> (64 + row))) % self.width
                for row in range(self.depth)]

    def add(self, key: str, count: int = 1) -> None:
        for row, slot in zip(self.rows, self._slots(key)):
            row[slot] = min(row[slot] + count, 0xFFFFFFFF)

    def count(self, key: str) -> int:
        return min(row[slot] for row, slot in zip(self.rows, self._slots(key)))


class KeyUnion:
    """Union-find over feature keys; the root of a component is its smallest key."""

    def __init__(self) -> None:
        self.parent: dict[str, str] = {}

    def find(self, key: str) -> str:
        parent = self.parent.setdefault(key, key)
        root = key
        while parent != root:
            root, parent = parent, self.parent[parent]
        while self.parent[key] != root:  # path compression
            self.parent[key], key = root, self.parent[key]
        return root

    def union(self, keys: list[str]) -> None:
        if len(keys) < 2:
            if keys:
                self.find(keys[0])
            return
        roots = sorted({self.find(k) for k in keys})
        for other in roots[1:]:
            self.parent[other] = roots[0]


def campaign_id(root_key: str) -> str:
    return f"c{root_key[:10]}"
