"""The scan engine: stream records out of one or many spools, on all cores.

Units are enumerated lazily and handed to worker processes in small batches with a
bounded number in flight, so memory stays flat however large the queue is. Each
worker reads, then runs the per-record `process` step (e.g. scoring) itself, and
returns records without their header list unless asked, to keep pickling cheap.

`WorkerPool` is the piece the analysis pipeline reuses: a process pool whose workers
hold one read-only context (settings, log index...) given once at start-up, so tasks
carry only their own small arguments.
"""
from __future__ import annotations

import collections
import gc
import multiprocessing
import os
import sys
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from . import fsutil
from .model import QueuedMessage, QueueUnit
from .spools import MultiSpool, Spool, open_spool, read_unit_safely, reader_for

BATCH_SIZE = 128          # the first batches; later ones double up to MAX_BATCH_SIZE
MAX_BATCH_SIZE = 512      # fewer, larger tasks cut the parent's per-task cost (~9% at 10^5)
BATCHES_IN_FLIGHT_PER_JOB = 4

RecordStep = Callable[[QueuedMessage], None]


def read_batch(
    mta: str,
    root: str,
    label: str,
    units: list[QueueUnit],
    full: bool,
    keep_headers: bool,
    process: RecordStep | None,
) -> list[QueuedMessage]:
    """Read a batch of units of one spool into records, running `process` on each."""
    reader = reader_for(mta)
    root_path = Path(root)
    out = []
    for unit in units:
        record = read_unit_safely(reader, root_path, unit, full=full)
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


def unit_batches(spools: list[Spool], size: int = BATCH_SIZE, max_size: int = MAX_BATCH_SIZE,
                 prefetch: bool = True) -> Iterator[tuple[Spool, list[QueueUnit]]]:
    """(spool, a batch of units) in listing order, lazily; batches grow from `size` to
    `max_size`, so a small spool still spreads over every worker.

    `prefetch`: as a batch is handed out, the kernel is asked to start reading the
    first bytes of each unit's main file (fsutil.prefetch). Batches are handed out
    several ahead of the one being read, so with a cold page cache the disk works
    while the workers parse (when the spool is already cached: one more open and
    fadvise per file, a few us).
    """
    for spool, batch in _batches(spools, size, max_size):
        if prefetch:
            fsutil.prefetch(spool.root, [unit.paths[0] for unit in batch if unit.paths])
        yield spool, batch


def _batches(spools: list[Spool], size: int, max_size: int) -> Iterator[tuple[Spool, list[QueueUnit]]]:
    for spool in spools:
        batch: list[QueueUnit] = []
        for unit in spool.units():
            batch.append(unit)
            if len(batch) >= size:
                yield spool, batch
                batch = []
                size = min(size * 2, max_size)
        if batch:
            yield spool, batch


def _pool_context() -> multiprocessing.context.BaseContext:
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("fork" if "fork" in methods else "spawn")


def default_jobs() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1))


_WORKER_CONTEXT: Any = None


def _set_worker_context(context: Any) -> None:
    global _WORKER_CONTEXT
    _WORKER_CONTEXT = context
    tune_gc_for_scanning()


def tune_gc_for_scanning() -> None:
    """Collect cycles less often, in processes queuetool owns (workers, the CLI).

    Records hold no reference cycles and die with their batch, yet the default
    collector (every 700 net allocations) walks a batch's ~25,000 containers again
    and again as they age, plus everything start-up made: ~3% of a scan. Start-up
    objects are frozen out of collections and a collection waits for 10,000 net
    allocations. Not for library callers' processes: their settings are theirs.
    """
    gc.freeze()
    gc.set_threshold(10_000, 10, 10)


def _call_with_worker_context(fn: Callable[..., Any], args: tuple) -> Any:
    return fn(_WORKER_CONTEXT, *args)


class WorkerPool:
    """`jobs` worker processes sharing one read-only `context`; jobs <= 1 runs inline.

    `map(fn, arg_tuples)` calls fn(context, *args) for each tuple, with at most
    jobs x BATCHES_IN_FLIGHT_PER_JOB tasks in flight, and yields the results in
    submission order (`ordered`) or as they finish. With the fork start method the
    context is inherited, not pickled, so it may be large (a log index).
    """

    def __init__(self, jobs: int, context: Any = None) -> None:
        self.jobs, self.context = max(1, jobs), context
        self.executor: ProcessPoolExecutor | None = None

    def __enter__(self) -> "WorkerPool":
        if self.jobs > 1:
            # what discovery left behind (a listing of 10^5 names) would otherwise be
            # inherited by every worker: measured +22 MiB per process on an Exim spool
            gc.collect()
            self.executor = ProcessPoolExecutor(
                max_workers=self.jobs, mp_context=_pool_context(),
                initializer=_set_worker_context, initargs=(self.context,))
            # start the workers now, before the parent lists the spool: under fork they
            # would otherwise inherit (and be charged for) a large listing
            self.executor.submit(int).result()
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.executor is not None:
            self.executor.shutdown(wait=True, cancel_futures=True)
            self.executor = None

    def map(self, fn: Callable[..., Any], arg_tuples: Iterable[tuple], ordered: bool = True) -> Iterator[Any]:
        if self.executor is None:
            for args in arg_tuples:
                yield fn(self.context, *args)
            return
        limit = self.jobs * BATCHES_IN_FLIGHT_PER_JOB
        todo = iter(arg_tuples)
        pending: collections.deque[Future] = collections.deque()

        def submit_more() -> None:
            while len(pending) < limit:
                args = next(todo, None)
                if args is None:
                    return
                pending.append(self.executor.submit(_call_with_worker_context, fn, args))

        submit_more()
        while pending:
            if ordered:
                done = pending.popleft()
            else:
                finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                done = next(iter(finished))
                pending.remove(done)
            result = done.result()
            submit_more()
            yield result


def spools_of(source: str | Path | Spool | MultiSpool, mta: str | None = None) -> list[Spool]:
    if isinstance(source, Spool):
        return [source]
    if isinstance(source, MultiSpool):
        return list(source.spools)
    opened = open_spool(source, mta=mta)
    return [opened] if isinstance(opened, Spool) else list(opened.spools)


def progress_bar(progress: bool, desc: str | None = None, unit: str = "msg", total: int | None = None):
    """A tqdm bar on stderr when asked for, else None."""
    if not progress:
        return None
    from tqdm import tqdm

    return tqdm(unit=unit, total=total, file=sys.stderr, dynamic_ncols=True, mininterval=0.5, desc=desc)


def _read_batch_task(_context: Any, *args: Any) -> list[QueuedMessage]:
    return read_batch(*args)


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
    bar = progress_bar(progress)
    tasks = ((spool.mta, str(spool.root), spool.label, units, full, keep_headers, process)
             for spool, units in unit_batches(spools))
    try:
        with WorkerPool(jobs) as pool:
            for records in pool.map(_read_batch_task, tasks, ordered=ordered):
                if bar is not None:
                    bar.update(len(records))
                yield from records
    finally:
        if bar is not None:
            bar.close()
