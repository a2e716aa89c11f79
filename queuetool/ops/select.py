"""Choosing which queued messages an operation touches.

Two ways, combinable (all given criteria must hold): selection flags (`--id`,
`--verdict`, `--sender GLOB` ...) and `--where EXPR`, a small expression language over
record keys, read by a tokenizer and a recursive-descent parser — never `eval` — so a
typo is an error that points at its column, not code that runs.

    expr       := or_expr
    or_expr    := and_expr ("or" and_expr)*
    and_expr   := not_expr ("and" not_expr)*
    not_expr   := "not" not_expr | comparison
    comparison := operand [OP operand]        OP: == != < <= > >= ~ !~ =~ in, not in
    operand    := "(" expr ")" | KEY | STRING | NUMBER | DURATION | true | false | null
                | "[" [operand ("," operand)*] "]"

A list-valued key (`recipients`, `files`, `rules`) matches when any element does.
`~` is a case-insensitive shell glob (`!~` its negation), `=~` a Python regex search. `age` is the seconds
since `arrival`, so `age > 2h` reads naturally; durations are `s m h d w` suffixed.
"""
from __future__ import annotations

import datetime as _dt
import fnmatch
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator

from ..model import RECORD_KEYS, EXTENSION_KEYS, QueuedMessage

DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
DERIVED_KEYS = ("age", "recipient_count", "rule_names")
KNOWN_KEYS = tuple(k for k in RECORD_KEYS + EXTENSION_KEYS) + DERIVED_KEYS
MAX_EXPRESSION_LENGTH = 10_000
MAX_NESTING = 100


class SelectionError(ValueError):
    """A bad --where expression or selection flag; `column` is 1-based (0 = no column)."""

    def __init__(self, message: str, column: int = 0, text: str = "") -> None:
        self.column = column
        self.text = text
        self.reason = message
        where = f"column {column}: " if column else ""
        super().__init__(f"{where}{message}")

    def pointer(self) -> str:
        """The expression with a caret under the bad column (for terminals)."""
        if not self.column or not self.text:
            return ""
        return f"{self.text}\n{' ' * (self.column - 1)}^"


# ---------------------------------------------------------------- tokenizer

@dataclass(frozen=True)
class Token:
    kind: str   # name, string, number, duration, op, lparen, rparen, lbrack, rbrack, comma, end
    value: Any
    column: int  # 1-based


_OPERATORS = ("==", "!=", "<=", ">=", "=~", "!~", "<", ">", "~")
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*")
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?([smhdw])?(?![A-Za-z0-9_])")


def parse_duration(text: str) -> float:
    """'90', '2h', '1.5d' -> seconds. ValueError on anything else."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*", text or "")
    if not match:
        raise ValueError(f"bad duration {text!r}; use a number with s, m, h, d or w (e.g. 2h)")
    return float(match.group(1)) * DURATION_UNITS.get(match.group(2) or "s", 1)


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        col = i + 1
        if ch.isspace():
            i += 1
            continue
        if ch in "\"'":
            value, i = _read_string(text, i)
            tokens.append(Token("string", value, col))
            continue
        if ch == "(":
            tokens.append(Token("lparen", ch, col))
        elif ch == ")":
            tokens.append(Token("rparen", ch, col))
        elif ch == "[":
            tokens.append(Token("lbrack", ch, col))
        elif ch == "]":
            tokens.append(Token("rbrack", ch, col))
        elif ch == ",":
            tokens.append(Token("comma", ch, col))
        else:
            op = next((o for o in _OPERATORS if text.startswith(o, i)), None)
            number = _NUMBER.match(text, i) if (ch.isdigit() or (ch == "-" and i + 1 < n and text[i + 1].isdigit())) else None
            if number:
                raw = number.group(0)
                if number.group(1):
                    tokens.append(Token("duration", parse_duration(raw), col))
                else:
                    tokens.append(Token("number", float(raw) if "." in raw else int(raw), col))
                i = number.end()
                continue
            if ch.isdigit():
                raise SelectionError("bad number or duration; write e.g. 90, 2.5 or 2h", col, text)
            if op:
                tokens.append(Token("op", op, col))
                i += len(op)
                continue
            word = _WORD.match(text, i)
            if word:
                tokens.append(Token("name", word.group(0), col))
                i = word.end()
                continue
            raise SelectionError(f"unexpected character {ch!r}", col, text)
        i += 1
    tokens.append(Token("end", None, n + 1))
    return tokens


def _read_string(text: str, start: int) -> tuple[str, int]:
    quote = text[start]
    out = []
    i = start + 1
    escapes = {"n": "\n", "t": "\t", "\\": "\\", "'": "'", '"': '"'}
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            nxt = text[i + 1]
            out.append(escapes.get(nxt, "\\" + nxt))
            i += 2
            continue
        if ch == quote:
            return "".join(out), i + 1
        out.append(ch)
        i += 1
    raise SelectionError("string is not closed", start + 1, text)


# ------------------------------------------------------------------ parser
# The tree is made of small tuples: ("or", [items]) ("and", [items]) ("not", a) ("truth", a)
# ("cmp", op, left, right, column) ("key", name) ("lit", value) ("list", [nodes]).

Node = tuple


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = tokenize(text)
        self.pos = 0
        self.depth = 0

    def peek(self) -> Token:
        return self.tokens[self.pos]

    def take(self) -> Token:
        token = self.tokens[self.pos]
        if token.kind != "end":
            self.pos += 1
        return token

    def error(self, message: str, token: Token | None = None) -> SelectionError:
        token = token or self.peek()
        return SelectionError(message, token.column, self.text)

    def is_word(self, word: str, offset: int = 0) -> bool:
        token = self.tokens[min(self.pos + offset, len(self.tokens) - 1)]
        return token.kind == "name" and token.value.lower() == word

    def parse(self) -> Node:
        if self.peek().kind == "end":
            raise self.error("empty expression")
        node = self.or_expr()
        if self.peek().kind != "end":
            raise self.error(f"unexpected {self.describe(self.peek())}; expected and, or or the end")
        return node

    def nest(self) -> None:
        self.depth += 1
        if self.depth > MAX_NESTING:
            raise self.error(f"expression nested deeper than {MAX_NESTING} levels")

    def or_expr(self) -> Node:
        items = [self.and_expr()]
        while self.is_word("or"):
            self.take()
            items.append(self.and_expr())
        return items[0] if len(items) == 1 else ("or", items)

    def and_expr(self) -> Node:
        items = [self.not_expr()]
        while self.is_word("and"):
            self.take()
            items.append(self.not_expr())
        return items[0] if len(items) == 1 else ("and", items)

    def not_expr(self) -> Node:
        if self.is_word("not") and not self.is_word("in", 1):
            self.take()
            self.nest()
            node = ("not", self.not_expr())
            self.depth -= 1
            return node
        return self.comparison()

    def comparison(self) -> Node:
        left = self.operand()
        token = self.peek()
        op = None
        if token.kind == "op":
            op = self.take().value
        elif self.is_word("in"):
            self.take()
            op = "in"
        elif self.is_word("not") and self.is_word("in", 1):
            self.take()
            self.take()
            op = "not in"
        if op is None:
            return ("truth", left)
        right = self.operand()
        if op == "=~":
            if right[0] != "lit" or not isinstance(right[1], str):
                raise self.error(f"{op} needs a quoted regular expression on its right", token)
            try:
                right = ("lit", re.compile(right[1]))
            except re.error as exc:
                raise self.error(f"bad regular expression: {exc}", token) from None
        if op in ("~", "!~") and (right[0] != "lit" or not isinstance(right[1], str)):
            raise self.error(f"{op} needs a quoted glob pattern on its right", token)
        return ("cmp", op, left, right, token.column)

    def operand(self) -> Node:
        token = self.take()
        if token.kind == "lparen":
            self.nest()
            node = self.or_expr()
            self.depth -= 1
            if self.peek().kind != "rparen":
                raise self.error(f"expected ')' to close the '(' at column {token.column}")
            self.take()
            return node
        if token.kind == "lbrack":
            items: list[Node] = []
            if self.peek().kind == "rbrack":
                self.take()
                return ("list", items)
            while True:
                item = self.take()
                if item.kind not in ("string", "number", "duration") and not (
                    item.kind == "name" and item.value.lower() in ("true", "false", "null", "none")
                ):
                    raise self.error("a list holds only quoted strings, numbers and durations", item)
                items.append(self.literal(item))
                sep = self.take()
                if sep.kind == "rbrack":
                    return ("list", items)
                if sep.kind != "comma":
                    raise self.error("expected ',' or ']' in the list", sep)
        if token.kind in ("string", "number", "duration"):
            return self.literal(token)
        if token.kind == "name":
            low = token.value.lower()
            if low in ("true", "false", "null", "none"):
                return self.literal(token)
            if low in ("and", "or", "not", "in"):
                raise self.error(f"expected a key or a value, found '{token.value}'", token)
            key = token.value
            head, dot, rest = key.partition(".")
            if dot and (head != "details" or not rest or "." in rest or rest.startswith("_")):
                raise self.error(f"{key!r}: only details.NAME has a dot (one level, no leading _)", token)
            if head not in KNOWN_KEYS:
                raise self.error(
                    f"unknown key {key!r}; known keys: {', '.join(KNOWN_KEYS)} (details.NAME for reader facts)",
                    token,
                )
            return ("key", key)
        raise self.error(f"expected a key or a value, found {self.describe(token)}", token)

    @staticmethod
    def literal(token: Token) -> Node:
        if token.kind == "name":
            return ("lit", {"true": True, "false": False}.get(token.value.lower()))
        return ("lit", token.value)

    @staticmethod
    def describe(token: Token) -> str:
        return "the end of the expression" if token.kind == "end" else f"{token.value!r}"


@dataclass(frozen=True)
class Expression:
    """A parsed --where expression; `matches(record)` evaluates it."""

    text: str
    tree: Node

    def matches(self, record: QueuedMessage, now: float | None = None) -> bool:
        return bool(_evaluate(self.tree, record, _now(now)))


def parse_where(text: str) -> Expression:
    """Parse a --where expression; raises SelectionError with the column on mistakes."""
    if len(text) > MAX_EXPRESSION_LENGTH:
        raise SelectionError(f"expression longer than {MAX_EXPRESSION_LENGTH} characters", 0, "")
    return Expression(text, _Parser(text).parse())


# --------------------------------------------------------------- evaluation

def _now(now: float | None) -> float:
    return _dt.datetime.now(_dt.timezone.utc).timestamp() if now is None else now


def arrival_epoch(record: QueuedMessage) -> float | None:
    if not record.arrival:
        return None
    try:
        when = _dt.datetime.fromisoformat(record.arrival.replace("Z", "+00:00"))
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=_dt.timezone.utc)
    return when.timestamp()


def key_value(record: QueuedMessage, key: str, now: float) -> Any:
    """The value of `key` (a record key, `details.NAME`, or a derived key) for a record."""
    if key == "age":
        epoch = arrival_epoch(record)
        return None if epoch is None else now - epoch
    if key == "recipient_count":
        return len(record.recipients)
    if key in ("rules", "rule_names"):
        return [getattr(hit, "rule", hit.get("rule") if isinstance(hit, dict) else hit) for hit in record.rules]
    head, _, rest = key.partition(".")
    value = getattr(record, head, None)
    for part in rest.split(".") if rest else ():
        value = value.get(part) if isinstance(value, dict) else None
    return value


def _evaluate(node: Node, record: QueuedMessage, now: float) -> Any:
    kind = node[0]
    if kind == "or":
        return any(_evaluate(item, record, now) for item in node[1])
    if kind == "and":
        return all(_evaluate(item, record, now) for item in node[1])
    if kind == "not":
        return not _evaluate(node[1], record, now)
    if kind == "truth":
        return bool(_value(node[1], record, now))
    if kind == "cmp":
        _, op, left, right, _col = node
        return _compare(op, _value(left, record, now), _value(right, record, now), left[0] == "key")
    return bool(_value(node, record, now))


def _value(node: Node, record: QueuedMessage, now: float) -> Any:
    kind = node[0]
    if kind == "key":
        return key_value(record, node[1], now)
    if kind == "lit":
        return node[1]
    if kind == "list":
        return [item[1] for item in node[1]]
    return _evaluate(node, record, now)


def _compare(op: str, left: Any, right: Any, left_is_key: bool) -> bool:
    if op == "in":
        if isinstance(right, list):
            items = left if isinstance(left, list) else [left]
            return any(_equal(item, r) for item in items for r in right)
        if isinstance(right, str) and isinstance(left, str):
            return left.lower() in right.lower()
        return False
    if op == "not in":
        return not _compare("in", left, right, left_is_key)
    if op in ("!=", "!~"):
        return not _compare({"!=": "==", "!~": "~"}[op], left, right, left_is_key)
    if isinstance(left, list) and left_is_key:
        return any(_compare_one(op, item, right) for item in left)
    return _compare_one(op, left, right)


def _equal(left: Any, right: Any) -> bool:
    if isinstance(left, str) and isinstance(right, str):
        return left.lower() == right.lower()
    if isinstance(left, bool) or isinstance(right, bool):
        return left is right
    return left == right


def _compare_one(op: str, left: Any, right: Any) -> bool:
    if op == "==":
        return _equal(left, right)
    if op == "~":
        return isinstance(left, str) and fnmatch.fnmatchcase(left.lower(), str(right).lower())
    if op == "=~":
        return isinstance(left, str) and right.search(left) is not None
    if left is None or right is None or isinstance(left, bool) or isinstance(right, bool):
        return False
    numeric = (int, float)
    if isinstance(left, numeric) != isinstance(right, numeric):
        return False
    try:
        if op == "<":
            return left < right
        if op == "<=":
            return left <= right
        if op == ">":
            return left > right
        if op == ">=":
            return left >= right
    except TypeError:
        return False
    return False


# ---------------------------------------------------------------- selection

@dataclass
class Selection:
    """Every selection criterion of one command; all given criteria must hold.

    Within one flag, several values are alternatives (`--id a --id b`).
    """

    ids: list[str] = field(default_factory=list)
    verdicts: list[str] = field(default_factory=list)
    auth_users: list[str] = field(default_factory=list)
    senders: list[str] = field(default_factory=list)      # globs
    recipients: list[str] = field(default_factory=list)   # globs
    campaigns: list[str] = field(default_factory=list)
    queues: list[str] = field(default_factory=list)
    min_score: float | None = None
    older_than: float | None = None                        # seconds
    where: Expression | None = None

    def is_empty(self) -> bool:
        return not (self.ids or self.verdicts or self.auth_users or self.senders or self.recipients
                    or self.campaigns or self.queues or self.where is not None
                    or self.min_score is not None or self.older_than is not None)

    def needs_scoring(self) -> bool:
        """Whether a criterion reads score/verdict/campaign/rules (which only analysis fills)."""
        if self.verdicts or self.campaigns or self.min_score is not None:
            return True
        if self.where is None:
            return False
        return bool(re.search(r"\b(score|verdict|campaign|rules|rule_names)\b", self.where.text))

    def describe(self) -> str:
        """The selection as it would be typed (for manifests and the audit log)."""
        parts = [f"--id {v}" for v in self.ids]
        parts += [f"--verdict {v}" for v in self.verdicts]
        parts += [f"--auth-user {v}" for v in self.auth_users]
        parts += [f"--sender {v!r}" for v in self.senders]
        parts += [f"--recipient {v!r}" for v in self.recipients]
        parts += [f"--campaign {v}" for v in self.campaigns]
        parts += [f"--queue {v}" for v in self.queues]
        if self.min_score is not None:
            parts.append(f"--min-score {self.min_score:g}")
        if self.older_than is not None:
            parts.append(f"--older-than {self.older_than:g}s")
        if self.where is not None:
            parts.append(f"--where {self.where.text!r}")
        return " ".join(parts)

    def reasons(self, record: QueuedMessage, now: float | None = None) -> list[str] | None:
        """Why `record` is selected (one reason per criterion), or None if it is not."""
        now = _now(now)
        why: list[str] = []
        checks: list[tuple[bool, Callable[[], bool], Callable[[], str]]] = [
            (bool(self.ids), lambda: record.id in self.ids, lambda: f"id {record.id}"),
            (bool(self.verdicts), lambda: (record.verdict or "") in self.verdicts,
             lambda: f"verdict {record.verdict}" + (f" (score {record.score:g})" if record.score is not None else "")),
            (bool(self.auth_users), lambda: _equal_any(record.auth_user, self.auth_users),
             lambda: f"auth_user {record.auth_user}"),
            (bool(self.senders), lambda: _glob_any(record.sender, self.senders),
             lambda: f"sender {'<>' if record.sender == '' else record.sender} matches {_first_glob(record.sender, self.senders)}"),
            (bool(self.recipients), lambda: any(_glob_any(r, self.recipients) for r in record.recipients),
             lambda: f"recipient matches {', '.join(self.recipients)}"),
            (bool(self.campaigns), lambda: (record.campaign or "") in self.campaigns,
             lambda: f"campaign {record.campaign}"),
            (bool(self.queues), lambda: (record.queue or "") in self.queues, lambda: f"queue {record.queue}"),
            (self.min_score is not None,
             lambda: record.score is not None and record.score >= self.min_score,
             lambda: f"score {record.score:g} >= {self.min_score:g}"),
            (self.older_than is not None, lambda: _older(record, self.older_than, now),
             lambda: f"older than {_duration_text(self.older_than)}"),
            (self.where is not None, lambda: self.where.matches(record, now),
             lambda: f"where {self.where.text}"),
        ]
        for given, test, reason in checks:
            if not given:
                continue
            if not test():
                return None
            why.append(reason())
        return why


def _equal_any(value: str | None, options: list[str]) -> bool:
    return value is not None and any(_equal(value, option) for option in options)


def _glob_any(value: str | None, globs: list[str]) -> bool:
    return value is not None and any(fnmatch.fnmatchcase(value.lower(), g.lower()) for g in globs)


def _first_glob(value: str | None, globs: list[str]) -> str:
    return next((g for g in globs if _glob_any(value, [g])), globs[0])


def _older(record: QueuedMessage, seconds: float | None, now: float) -> bool:
    epoch = arrival_epoch(record)
    return epoch is not None and seconds is not None and now - epoch > seconds


def _duration_text(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    for unit in ("w", "d", "h", "m"):
        if seconds >= DURATION_UNITS[unit] and seconds % DURATION_UNITS[unit] == 0:
            return f"{seconds / DURATION_UNITS[unit]:g}{unit}"
    return f"{seconds:g}s"


def make_selection(
    *,
    where: str | None = None,
    ids: Iterable[str] = (),
    verdicts: Iterable[str] = (),
    auth_users: Iterable[str] = (),
    senders: Iterable[str] = (),
    recipients: Iterable[str] = (),
    campaigns: Iterable[str] = (),
    queues: Iterable[str] = (),
    min_score: float | None = None,
    older_than: str | float | None = None,
) -> Selection:
    """Build a Selection from flag values; raises SelectionError on a bad value."""
    if isinstance(older_than, str):
        try:
            older_than = parse_duration(older_than)
        except ValueError as exc:
            raise SelectionError(f"--older-than: {exc}") from None
    return Selection(
        ids=list(ids), verdicts=list(verdicts), auth_users=list(auth_users), senders=list(senders),
        recipients=list(recipients), campaigns=list(campaigns), queues=list(queues),
        min_score=min_score, older_than=older_than,
        where=parse_where(where) if where is not None else None,
    )


def select(
    records: Iterable[QueuedMessage],
    where: str | Expression | None = None,
    *,
    selection: Selection | None = None,
    now: float | None = None,
    **flags: Any,
) -> Iterator[QueuedMessage]:
    """The records that match `where` and every selection flag given.

    `flags` are make_selection's keywords (ids=, verdicts=, senders= ...). An empty
    selection matches everything (operations refuse that separately).
    """
    if selection is None:
        if isinstance(where, Expression):
            selection = make_selection(**flags)
            selection.where = where
        else:
            selection = make_selection(where=where, **flags)
    now = _now(now)
    for record in records:
        if selection.reasons(record, now) is not None:
            yield record
