"""The time-ordered ids (UUIDv7) of every row and event CalHub makes, from one generator per process.

RFC 9562 section 6.2, method 1: the 48-bit Unix millisecond stamp, then a 12-bit counter in `rand_a` that
starts at 0 in each new millisecond, then 62 random bits in `rand_b`. Ids made by one process are strictly
increasing, and their stamp is the wall clock (it only steps ahead of it after 4,096 ids in one millisecond,
or when the clock steps back), so the time in an id is the time it was made.

Why not `uuid6.uuid7()`: it draws its random bits with one `getrandbits` system call per id (a referral makes
eight ids; that was 4 % of the intake's CPU), and it moves the stamp a millisecond ahead for every id made
within the same millisecond, so under load the stamps run ahead of the clock. The random bits here come from
the OS's CSPRNG too, read 2 KiB at a time.
"""

from __future__ import annotations

import os
import struct
import threading
import time
from uuid import UUID

_COUNTER_LIMIT = 1 << 12  # rand_a: 12 bits
_VERSION_AND_VARIANT = 0x7 << 76 | 0b10 << 62
_RAND_B = (1 << 62) - 1
_POOL = 256  # random 64-bit values read from the OS at a time
_UNPACK = struct.Struct(f"<{_POOL}Q").unpack


class Uuid7Generator:
    """Strictly increasing UUIDv7s (thread-safe). The process shares one: `uuid7()`."""

    __slots__ = ("_counter", "_lock", "_millisecond", "_randoms")

    def __init__(self) -> None:
        self._millisecond = 0
        self._counter = 0
        self._randoms: list[int] = []
        self._lock = threading.Lock()

    def next(self) -> UUID:
        """The next id."""
        now = time.time_ns() // 1_000_000
        with self._lock:
            if now > self._millisecond:
                self._millisecond, self._counter = now, 0
            else:  # the same millisecond (or the clock stepped back): count on under the last stamp
                self._counter += 1
                if self._counter == _COUNTER_LIMIT:
                    self._millisecond, self._counter = self._millisecond + 1, 0
            if not self._randoms:
                self._randoms = list(_UNPACK(os.urandom(8 * _POOL)))
            value = (self._millisecond << 80 | _VERSION_AND_VARIANT | self._counter << 64
                     | self._randoms.pop() & _RAND_B)
        return UUID(int=value)


    def _after_fork(self) -> None:
        # A forked child inherits the pool of random values and the counter: drawing from them would give the
        # parent's ids again.
        self._randoms = []
        self._lock = threading.Lock()


_GENERATOR = Uuid7Generator()
os.register_at_fork(after_in_child=_GENERATOR._after_fork)


def uuid7() -> UUID:
    """A new UUIDv7, greater than every id this process made before."""
    return _GENERATOR.next()
