"""queuetool: mail-queue forensics and safe cleanup for compromised mail servers.

Library first: every CLI verb is a function here.

    import queuetool
    spool = queuetool.open_spool("/var/spool/postfix")
    for record in queuetool.scan(spool, jobs=2):
        print(record.id, record.sender, record.auth_user)
"""
from .model import RECORD_KEYS, QueuedMessage, QueueUnit, RuleHit
from .scan import scan
from .spools import MultiSpool, Spool, SpoolError, find_logs, find_spools, open_spool
from .ops import purge, quarantine, recover, restore, select
from . import diagnose  # callable: queuetool.diagnose(spool, logs=[...]) -> diagnose.DiagnoseResult
from . import trace  # callable: queuetool.trace(spool, logs=[...]) -> trace.TraceResult
from .analysis import analyze  # scan + rules + campaigns: every verb's records
from .config import Settings, load_settings
from .summary import summarize

__all__ = [
    "RECORD_KEYS", "QueuedMessage", "QueueUnit", "RuleHit", "scan",
    "MultiSpool", "Spool", "SpoolError", "find_logs", "find_spools", "open_spool",
    "purge", "quarantine", "recover", "restore", "select",
    "diagnose", "trace", "analyze", "Settings", "load_settings", "summarize",
]
__version__ = "0.1.0"
