"""The cyclic garbage collector held off while a file-sized batch is turned into objects and rows.

Reading and posting a month-end file allocates millions of small acyclic objects (segments, plans, rows,
envelopes); every generation-2 pass rescans all of them, so the collector's work grows with the square of the
file (a third of the CPU of a 50,000-claim 835). Reference counting still frees everything that is not a
cycle; collection resumes, if it was on, when the block ends.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


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
