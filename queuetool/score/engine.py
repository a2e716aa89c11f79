"""Apply the rules to a record: rule hits, score, verdict. Pure and order-independent.

Verdict thresholds (docs/rules.md, overridable in [thresholds]):
  backscatter  backscatter-category points >= thresholds.backscatter
  relay        relay-category points >= thresholds.relay
  spam         total points >= thresholds.spam
  clean        otherwise
"""
from __future__ import annotations

import functools
from typing import Iterable

from ..config import Settings
from ..model import QueuedMessage, RuleHit
from .content import BodyFacts
from .rules import RULES, RULES_BY_NAME, Rule, RuleInput, SpoolFacts

RECORD_STAGES = ("record", "body")
SPOOL_STAGES = ("spool",)
INFERRED_RULE = "inferred_domains"
SKIPPED_RULE = "body_rules_skipped"
_NO_SPOOL = SpoolFacts()  # record-stage rules never read spool facts; one shared default


class _Plan:
    """The rules of each stage and the skipped-rules note, built once per RULES tuple
    instead of filtering all rules for every message (tests may swap RULES)."""

    def __init__(self, rules: tuple[Rule, ...]) -> None:
        self.rules = rules
        self.record = tuple(r for r in rules if r.stage == "record")
        self.record_and_body = tuple(r for r in rules if r.stage in RECORD_STAGES)
        self.spool = tuple(r for r in rules if r.stage in SPOOL_STAGES)
        skipped = ", ".join(r.name for r in rules if r.stage == "body")
        self.skipped_why = f"header-only scan; body rules skipped ({skipped}): use --full"


_plan = _Plan(RULES)


def _current_plan() -> _Plan:
    global _plan
    if _plan.rules is not RULES:
        _plan = _Plan(RULES)
    return _plan


@functools.lru_cache(maxsize=64)
def _inferred_why(local_domains: frozenset[str]) -> str:
    domains = ", ".join(sorted(local_domains)) or "none found"
    return f"verdict rests on inferred local domains ({domains}); confirm with --local-domain"


def run_rules(inp: RuleInput, rules: Iterable[Rule]) -> list[RuleHit]:
    """Hits of `rules` on one input; a rule that raises becomes a 0-point hit saying so."""
    hits = []
    points_of = inp.settings.points
    for rule in rules:
        try:
            finding = rule.check(inp)
        except Exception as exc:  # noqa: BLE001 - one odd message must not stop a scan
            why = " ".join(f"rule failed on this message: {type(exc).__name__}: {exc}".split())[:200]
            hits.append(RuleHit(rule.name, 0.0, why))
            inp.record.details.setdefault("rule_errors", []).append(rule.name)
            continue
        if finding is None:
            continue
        scale, why = (1.0, finding) if isinstance(finding, str) else finding
        points = round(points_of(rule.name, rule.points) * scale, 2)
        hits.append(RuleHit(rule.name, points + 0.0, why))
    return hits


def verdict_for(hits: Iterable[RuleHit], settings: Settings) -> tuple[float, str]:
    """(score, verdict) from rule hits by the documented thresholds."""
    total = 0.0
    by_category = {"spam": 0.0, "relay": 0.0, "backscatter": 0.0}
    for hit in hits:
        points = hit.points
        total += points
        if points:  # adding 0.0 changes no sum; most hits are informational
            rule = RULES_BY_NAME.get(hit.rule)
            if rule is not None and rule.category in by_category:
                by_category[rule.category] += points
    total = round(total, 2)
    if by_category["backscatter"] >= settings.threshold("backscatter"):
        return total, "backscatter"
    if by_category["relay"] >= settings.threshold("relay"):
        return total, "relay"
    if total >= settings.threshold("spam"):
        return total, "spam"
    return total, "clean"


def is_suspicious(record: QueuedMessage, settings: Settings) -> bool:
    """Flagged by the per-record rules: a verdict, or at least half the spam threshold.

    Campaign and account rules count suspicious members, so a campaign whose members
    each fall just short of a verdict is still recognised as one.
    """
    if record.verdict not in (None, "clean"):
        return True
    return (record.score or 0.0) >= settings.threshold("spam") / 2


def _finish(record: QueuedMessage, settings: Settings) -> None:
    record.score, record.verdict = verdict_for(record.rules, settings)


def score_record(record: QueuedMessage, settings: Settings, body: BodyFacts | None = None,
                 full: bool = False) -> QueuedMessage:
    """Run the per-record rules (header rules; body rules too when `body` is given).

    Sets `rules`, `score` and a preliminary `verdict`; spool rules add to them later.
    """
    plan = _current_plan()
    inp = RuleInput(record=record, settings=settings, body=body, full=full, spool=_NO_SPOOL)
    record.rules = run_rules(inp, plan.record_and_body if full else plan.record)
    if not full:
        record.rules.append(RuleHit(SKIPPED_RULE, 0.0, plan.skipped_why))
    if settings.domains_inferred:
        record.rules.append(RuleHit(INFERRED_RULE, 0.0, _inferred_why(settings.local_domains)))
    _finish(record, settings)
    return record


def spool_rule_hits(hits: list[RuleHit], record: QueuedMessage, settings: Settings,
                    facts: SpoolFacts) -> tuple[list[RuleHit], float, str]:
    """(hits, score, verdict) once the spool-wide rules have run on `facts`.

    `hits` are the record-stage hits; spool rules read only `facts` (`record` gets the
    `rule_errors` detail if one of them fails), so a caller that kept the hits but not
    the whole record can pass a blank record.
    """
    inp = RuleInput(record=record, settings=settings, spool=facts)
    by_name = RULES_BY_NAME
    hits = [hit for hit in hits if (rule := by_name.get(hit.rule)) is None or rule.stage not in SPOOL_STAGES]
    hits.extend(run_rules(inp, _current_plan().spool))
    return (hits, *verdict_for(hits, settings))


def apply_spool_rules(record: QueuedMessage, settings: Settings, facts: SpoolFacts) -> QueuedMessage:
    """Add the spool-wide rules (campaign size, account trace verdict) and re-decide."""
    record.rules, record.score, record.verdict = spool_rule_hits(record.rules, record, settings, facts)
    return record
