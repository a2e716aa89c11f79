"""Explainable scoring: rules (rules.py), the engine that applies them (engine.py) and
campaign clustering (campaigns.py). The pipeline that ties them to a scan is
queuetool.analysis.analyze()."""
from .engine import score_record, verdict_for
from .rules import RULES, RULES_BY_NAME, Rule

__all__ = ["RULES", "RULES_BY_NAME", "Rule", "score_record", "verdict_for"]
