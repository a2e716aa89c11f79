"""The README's demo command: one incident summary per bundled corpus."""
from __future__ import annotations

import io
import re

from queuetool.demo import demo_incidents, run_demo

from corpus import CORPORA


def test_demo_reports_every_corpus_and_names_the_compromised_account():
    names = [name for name, _spool, _logs in demo_incidents(CORPORA)]
    assert {"postfix", "exim", "sendmail"} <= set(names)
    out = io.StringIO()
    run_demo(CORPORA, out, jobs=1)
    text = out.getvalue()
    sections = re.split(r"\n== ", text)[1:]
    assert len(sections) == len(names)
    for section in sections:
        first_account = re.search(r"^   (compromised|suspicious)\s+(\S+)", section, re.M)
        assert first_account and first_account.groups() == ("compromised", "scanner:"), section
