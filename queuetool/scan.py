"""The scan engine: stream records out of one or many spools, on all cores.

Units are enumerated lazily and handed to worker processes in small batches with a
bounded number in flight, so memory stays flat however large the queue is. Each
worker reads, then runs the per-record `process` step (e.g. scoring) itself, and
returns records without their header list unless asked, to keep pickling cheap.
"""
from __future__ import annotations

import collections
import multiprocessing
import os
import sys
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Callable, Iterator

from .model import QueuedMessage, QueueUnit
from .spools import MultiSpool, Spool, open_spool, read_unit_safely, reader_for

BATCH_SIZE = 128
BATCHES_IN_FLIGHT_PER_JOB = 4

RecordStep = Callable[[QueuedMessage], None]


def _read_batch(
    mta: str,
    root: str,
    label: str,
    units: list[QueueUnit],
    full: bool,
    keep_headers: bool,
    process: RecordStep | None,
) -> list[QueuedMessage]:
    reader = reader_for(mta)
    out = []
    for unit in units:
        record = read_unit_safely(reader, Path(root), unit, full=full)
        record.spool = label
        if process is not None:
            try:
                process(record)
            except Exception as exc:  # noqa: BLE001 - a step bug must not stop a scan
                record.add_error(f"processing failed: {type(exc).__name__}: {exc}")
        if not keep_headers:
            record.headers = []
        out.append(record)
    return out


def _batches(spools: list[Spool]) -> Iterator[tuple[Spool, list[QueueUnit]]]:
    for spool in spools:
        batch: list[QueueUnit] = []
        for unit in spool.units():
            batch.append(unit)
            if len(batch) >= BATCH_SIZE:
                yield spool, batch
                batch = []
        if batch:
            yield spool, batch


def _pool_context() -> multiprocessing.context.BaseContext:
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("fork" if "fork" in methods else "spawn")


def default_jobs() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1))


def spools_of(source: str | Path | Spool | MultiSpool, mta: str | None = None) -> list[Spool]:
    if isinstance(source, Spool):
        return [source]
    if isinstance(source, MultiSpool):
        return list(source.spools)
    opened = open_spool(source, mta=mta)
    return [opened] if isinstance(opened, Spool) else list(opened.spools)


def scan(
    source: str | Path | Spool | MultiSpool,
    *,
    mta: str | None = None,
    full: bool = False,
    jobs: int = 1,
    ordered: bool = True,
    keep_headers: bool = False,
    process: RecordStep | None = None,
    progress: bool = False,
) -> Iterator[QueuedMessage]:
    """Yield one record per queued message unit below `source`.

    `jobs` > 1 uses worker processes; `ordered=False` yields as batches finish.
    `process` runs on each record inside the worker (must be a top-level function).
    `progress` shows a tqdm bar on stderr.
    """
    spools = spools_of(source, mta)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(unit="msg", file=sys.stderr, dynamic_ncols=True, mininterval=0.5)
    try:
        if jobs <= 1:
            for spool, units in _batches(spools):
                records = _read_batch(
                    spool.mta, str(spool.root), spool.label, units, full, keep_headers, process
                )
                if bar is not None:
                    bar.update(len(records))
                yield from records
            return
        yield from _scan_parallel(spools, full, jobs, ordered, keep_headers, process, bar)
    finally:
        if bar is not None:
            bar.close()


def _scan_parallel(
    spools: list[Spool],
    full: bool,
    jobs: int,
    ordered: bool,
    keep_headers: bool,
    process: RecordStep | None,
    bar,
) -> Iterator[QueuedMessage]:
    limit = jobs * BATCHES_IN_FLIGHT_PER_JOB
    batches = _batches(spools)
    pending: collections.deque[Future] = collections.deque()
    with ProcessPoolExecutor(max_workers=jobs, mp_context=_pool_context()) as pool:

        def submit_more() -> None:
            while len(pending) < limit:
                item = next(batches, None)
                if item is None:
                    return
                spool, units = item
                pending.append(
                    pool.submit(
                        _read_batch, spool.mta, str(spool.root), spool.label, units,
                        full, keep_headers, process,
                    )
                )

        submit_more()
        while pending:
            if ordered:
                done = pending.popleft()
                records = done.result()
            else:
                finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                done = next(iter(finished))
                pending.remove(done)
                records = done.result()
            submit_more()
            if bar is not None:
                bar.update(len(records))
            yield from records
