"""UUIDv7 ids (RFC 9562, method 1): unique, version 7 and RFC variant, strictly increasing within a process, and
stamped with the wall clock, also when made by the thousand in one millisecond."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest

from shared import ids
from shared.ids import Uuid7Generator, uuid7


def stamp(value: int) -> int:
    return value >> 80


def counter(value: int) -> int:
    return (value >> 64) & 0xFFF


def test_ids_are_unique_ordered_version_7_and_rfc_variant() -> None:
    made = [uuid7() for _ in range(10_000)]
    assert len(set(made)) == 10_000
    assert all(i.version == 7 and i.variant == "specified in RFC 4122" for i in made)
    assert made == sorted(made)


def test_the_stamp_is_the_wall_clock_in_milliseconds() -> None:
    before = int(datetime.now(UTC).timestamp() * 1000)
    made = uuid7()
    after = int(datetime.now(UTC).timestamp() * 1000)
    assert before - 1 <= stamp(made.int) <= after + 1


def test_ids_of_one_millisecond_count_up_from_zero_then_the_stamp_steps_ahead(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # A frozen clock: every id falls in the same millisecond.
    monkeypatch.setattr(ids.time, "time_ns", lambda: 1_795_000_000_123_456_789)
    generator = Uuid7Generator()
    made = [generator.next() for _ in range(4096 + 10)]
    assert [counter(i.int) for i in made[:4096]] == list(range(4096))
    assert {stamp(i.int) for i in made[:4096]} == {1_795_000_000_123}
    # The 12-bit counter is spent: the next ids take the next millisecond rather than repeat or wrap.
    assert stamp(made[4096].int) == 1_795_000_000_124 and counter(made[4096].int) == 0
    assert made == sorted(made) and len(set(made)) == len(made)


def test_a_clock_stepping_back_never_makes_an_id_smaller(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = iter([2_000_000_000_000_000_000, 1_999_999_999_000_000_000, 2_000_000_000_001_000_000])
    monkeypatch.setattr(ids.time, "time_ns", lambda: next(clock))
    generator = Uuid7Generator()
    first, after_step_back, later = generator.next(), generator.next(), generator.next()
    assert first < after_step_back < later
    assert stamp(after_step_back.int) == stamp(first.int) and counter(after_step_back.int) == 1
    assert stamp(later.int) == stamp(first.int) + 1 and counter(later.int) == 0


def test_the_random_bits_differ_between_ids() -> None:
    low = {uuid7().int & ((1 << 62) - 1) for _ in range(1000)}
    assert len(low) == 1000


def test_threads_drawing_at_once_get_distinct_ids() -> None:
    generator = Uuid7Generator()
    made: list[list[int]] = [[] for _ in range(4)]

    def draw(into: list[int]) -> None:
        into.extend(generator.next().int for _ in range(5000))

    threads = [threading.Thread(target=draw, args=(bucket,)) for bucket in made]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    everything = [value for bucket in made for value in bucket]
    assert len(set(everything)) == 20_000
    assert all(bucket == sorted(bucket) for bucket in made)
    # Distinct without their random bits too: no two threads took the same counter under the same stamp.
    assert len({value >> 64 for value in everything}) == 20_000


def test_a_forked_child_does_not_repeat_its_parents_ids() -> None:
    import os

    uuid7()  # the process's generator holds a pool of random values now
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the child
        os.close(read)
        os.write(write, uuid7().bytes)
        os._exit(0)
    os.close(write)
    from_child = os.read(read, 16)
    os.close(read)
    os.waitpid(child, 0)
    from_parent = uuid7().bytes
    # The same stamp and counter can happen in two processes; the 62 random bits must not repeat.
    assert from_child[8:] != from_parent[8:]
