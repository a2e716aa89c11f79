"""The Postfix reader's two ways to hold a file (one read vs 64 KiB blocks) and its
inline walk vs the general one (after a pointer goes backwards) give the same records."""
from __future__ import annotations

import pytest

from queuetool.spools import postfix

from spools.test_postfix import build_queue_file, ptr, rec, write_unit  # tests/ is on the path


def milter_edited() -> bytes:
    """Subject, then a pointer to a heap header after E that points back (a milter's
    added header, as cleanup writes it), then the blank line, body and recipients."""
    probe = build_queue_file([rec(b"N", b"Subject: edited"), ptr(0), rec(b"N", b""), rec(b"N", b"body")],
                             extracted=[rec(b"R", b"r@example.org"), rec(b"R", b"s@example.org")])
    placeholder = probe.index(ptr(0))
    back = placeholder + len(ptr(0))
    heap = rec(b"N", b"X-Added: yes") + ptr(back)
    return probe.replace(ptr(0), ptr(len(probe)), 1) + heap


@pytest.mark.parametrize("full", [False, True])
def test_backward_pointer_in_a_header_only_read(tmp_path, full):
    root, unit = write_unit(tmp_path, milter_edited())
    got = postfix.read_unit(root, unit, full=full)
    assert got.error is None, got.error
    assert [name for name, _ in got.headers] == ["Subject", "X-Added"]
    assert got.recipients == ["r@example.org", "s@example.org"]
    assert "residue" not in got.details  # the heap header was reached by the pointer
    # C T A S M, N p N p N, then (full: N X) R R E; the X found by seeking is not counted
    assert got.details["records"] == (15 if full else 13)


def test_pointer_back_into_read_records_is_a_loop(tmp_path):
    data = milter_edited()
    # aim the heap's pointer back at the Subject line, already read
    subject_at = data.index(rec(b"N", b"Subject: edited"))
    heap_ptr_at = data.rindex(b"p")
    looped = data[:heap_ptr_at] + ptr(subject_at)
    root, unit = write_unit(tmp_path, looped)
    got = postfix.read_unit(root, unit)
    assert "pointer loop" in got.error and got.subject == "edited"


@pytest.mark.parametrize("full", [False, True])
def test_block_reads_give_the_same_record(tmp_path, monkeypatch, full):
    body = [rec(b"N", b"line %d " % i + b"x" * 150) for i in range(3000)]  # > WHOLE_READ_MAX
    data = build_queue_file([rec(b"N", b"Subject: big"), rec(b"L", b"X-Long: " + b"y" * 300), rec(b"N", b"z"),
                             rec(b"N", b"")] + body, extracted=[rec(b"R", b"r@example.org")])
    assert len(data) > postfix.WHOLE_READ_MAX
    root, unit = write_unit(tmp_path, data)
    blocks = postfix.read_unit(root, unit, full=full).to_dict(with_headers=True)
    monkeypatch.setattr(postfix, "WHOLE_READ_MAX", len(data))
    whole = postfix.read_unit(root, unit, full=full).to_dict(with_headers=True)
    assert blocks == whole and blocks["error"] is None
    assert blocks["headers"][1] == ["X-Long", "y" * 300 + "z"]
    monkeypatch.setattr(postfix, "WHOLE_READ_MAX", 0)
    assert postfix.read_message_bytes(root, unit).endswith(b"x" * 150 + b"\n")


def test_truncated_large_file_ends_with_a_framing_error(tmp_path):
    data = build_queue_file([rec(b"N", b"Subject: cut"), rec(b"N", b"")] + [rec(b"N", b"b" * 120)] * 3000)
    cut = data[: len(data) - 3]  # inside the end
    root, unit = write_unit(tmp_path, cut)
    got = postfix.read_unit(root, unit, full=True)
    assert got.error and "corrupt queue file" in got.error and got.subject == "cut"
