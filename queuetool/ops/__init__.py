"""Safe operations: select, plan, quarantine/purge/restore, recover (see docs/operations.md).

    from queuetool.ops import make_selection, make_plan, apply_plan
    selection = make_selection(where='auth_user == "scanner" and age > 2h')
    plan = make_plan("/var/spool/postfix", selection, qdir="/root/quarantine")   # dry run
    result = apply_plan(plan)                                                   # --apply
"""
from .journal import RecoveryResult, RefusedError, held_units, recover
from .plan import Plan, PlannedUnit, make_plan, plan_rows
from .quarantine import (
    ApplyResult, OperationReport, UnitOutcome, apply_plan, apply_restore, discard, plan_restore, purge,
    quarantine, restore,
)
from .select import Expression, Selection, SelectionError, make_selection, parse_duration, parse_where, select

__all__ = [
    "RecoveryResult", "RefusedError", "held_units", "recover",
    "Plan", "PlannedUnit", "make_plan", "plan_rows",
    "ApplyResult", "OperationReport", "UnitOutcome", "apply_plan", "apply_restore", "discard", "plan_restore",
    "purge", "quarantine", "restore",
    "Expression", "Selection", "SelectionError", "make_selection", "parse_duration", "parse_where", "select",
]
