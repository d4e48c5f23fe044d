"""shared.testing.polling.eventually: sync and async probes, the first truthy value, and what a timeout reports."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from shared.testing.polling import eventually


async def test_returns_the_first_truthy_value_of_a_sync_probe() -> None:
    answers: Iterator[object] = iter([None, [], {"id": "ref_1"}, {"id": "ref_2"}])
    assert await eventually(lambda: next(answers), within=5, interval=0) == {"id": "ref_1"}


async def test_awaits_an_async_probe() -> None:
    calls: list[int] = []

    async def probe() -> bool:
        calls.append(1)
        return len(calls) == 3

    assert await eventually(probe, within=5, interval=0) is True
    assert len(calls) == 3


async def test_a_timeout_names_what_and_the_last_value() -> None:
    async def empty_topic() -> list[str]:
        return []

    with pytest.raises(AssertionError, match=r"^two events not reached within 0s; last: \[\]$"):
        await eventually(empty_topic, within=0, what="two events")
    with pytest.raises(AssertionError, match=r"empty_topic not reached"):  # the probe's name without `what`
        await eventually(empty_topic, within=0)


async def test_retry_on_counts_those_errors_as_not_yet_and_reports_the_last() -> None:
    answers = iter([KeyError("status"), None, "done"])

    def probe() -> str | None:
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    assert await eventually(probe, within=5, interval=0, retry_on=(KeyError,)) == "done"

    def failing() -> None:
        raise KeyError("status")

    with pytest.raises(AssertionError, match=r"last: KeyError\('status'\)") as raised:
        await eventually(failing, within=0, retry_on=(KeyError,))
    assert isinstance(raised.value.__cause__, KeyError)
    with pytest.raises(KeyError):  # not listed: a bug in the probe, not "not yet"
        await eventually(failing, within=5)
