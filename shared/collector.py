"""The cyclic garbage collector: tuned for a long-running service, and held off while a file-sized batch is
turned into objects and rows.

A service's requests and messages allocate many short-lived containers (models, rows, dicts): with CPython's
default thresholds (700, 10, 10) a young collection runs every few requests and an old one every few hundred,
each rescanning whatever outlived startup. `tune_for_serving` moves what startup built out of the collector's
sight and collects less often (decision 0130: 15-20 % less CPU per referral at intake).

Reading and posting a month-end file allocates millions of small acyclic objects (segments, plans, rows,
envelopes); every generation-2 pass rescans all of them, so the collector's work grows with the square of the
file (a third of the CPU of a 50,000-claim 835). Reference counting still frees everything that is not a
cycle; collection resumes, if it was on, when the block ends.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

# Young collections every 20,000 net container allocations instead of 700: most objects of a request are freed
# by reference counting long before that, so they are never scanned at all. Older generations keep CPython's
# ratios of two tens, so cycles that survive still get collected within a few hundred requests.
SERVING_THRESHOLDS = (20_000, 20, 20)


def tune_for_serving() -> None:
    """Freeze what exists now (built at startup, lives as long as the process) and set `SERVING_THRESHOLDS`.

    Call once, when startup is done."""
    gc.collect()  # startup's own cyclic garbage goes now, not into the frozen generation for good
    gc.freeze()
    gc.set_threshold(*SERVING_THRESHOLDS)


@contextmanager
def collector_paused() -> Iterator[None]:
    """Disable the cyclic collector for the block; re-enable it afterwards only if it was enabled before.

    Nested and concurrent blocks are safe: an inner block (or a coroutine that started while another held it
    off) finds the collector disabled and leaves it so. Other coroutines of the process run without cyclic
    collection meanwhile, which only delays freeing their cycles; keep blocks to one file or batch.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
