"""A Member Information File of an older reporting period arriving after a newer one: the newer file's decisions
stand; the older rows are applied only where nothing newer was said about the member, and what is set aside is
kept as an exception a person can see (docs/decisions/0126-late-member-information-files.md)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest
from authorizations.domain.mif import MifException, MifMatch, MifOutcome, reporting_month, set_aside_if_older
from authorizations.testkit import HUB, envelope, mif_row, publish, routed

from shared.identity import member_id_for
from shared.testing.app import ServiceHarness
from shared.testing.polling import eventually

T0 = datetime(2026, 3, 2, 17, 0, tzinfo=UTC)


@pytest.mark.parametrize(("given", "month"), [("202602", "2026-02"), ("2026-02", "2026-02"), (" 2026/02 ", "2026-02"),
                                              ("202613", None), ("Feb 2026", None), (None, None), ("", None)])
def test_reporting_periods_are_read_in_the_layouts_mcps_use(given: str | None, month: str | None) -> None:
    assert reporting_month(given) == month


@pytest.mark.parametrize(("outcome", "row", "newest", "kept"), [
    (MifOutcome.PERIOD_CHANGED, "2026-02", "2026-03", False),
    (MifOutcome.ASSIGNMENT_CREATED, "2026-02", "2026-03", False),
    (MifOutcome.DISCONTINUED, "2026-02", "2026-03", False),
    (MifOutcome.DECISION_APPLIED, "2026-02", "2026-03", False),
    (MifOutcome.CONFIRMED, "2026-02", "2026-03", True),  # repeating what stands changes nothing
    (MifOutcome.PERIOD_CHANGED, "2026-03", "2026-03", True),  # a correction of the same period
    (MifOutcome.PERIOD_CHANGED, "2026-04", "2026-03", True),
    (MifOutcome.PERIOD_CHANGED, "2026-02", None, True),  # nothing newer known about the member
    (MifOutcome.PERIOD_CHANGED, None, "2026-03", True),  # the layout carries no period: nothing says it is older
])
def test_only_an_older_row_that_would_change_something_is_set_aside(outcome: MifOutcome, row: str | None,
                                                                     newest: str | None, kept: bool) -> None:
    match = MifMatch(outcome, "auth_1")
    decided = set_aside_if_older(match, row, newest)
    assert decided == (match if kept else MifMatch(MifOutcome.EXCEPTION, "auth_1",
                                                    MifException.OLDER_REPORTING_PERIOD))


def row(n: int, file_id: str, period: str, **fields: Any) -> Any:
    return envelope(mif_row(n, file_id=file_id, **fields).model_copy(update={"reporting_period": period}), at=T0,
                    source="sftp-gateway", subject=file_id)


async def authorization_of(h: ServiceHarness, n: int) -> list[dict[str, Any]]:
    r = await h.client.get("/v1/authorizations", headers=h.headers(HUB),
                           params={"member_id": member_id_for(f"9{n:07d}A")})
    items: list[dict[str, Any]] = r.json()["items"]
    return items


async def settled(h: ServiceHarness, file_id: str, rows: int) -> None:
    async def probe() -> bool:
        async with h.runtimes["authorizations"].uow() as uow:
            return all([await uow.mif.outcome_of(file_id, r) for r in range(1, rows + 1)])

    await eventually(probe, within=15.0)


async def test_a_late_older_file_never_undoes_the_newer_one(harness: ServiceHarness) -> None:
    for n in (1, 2, 3):
        await publish(harness.bus, envelope(routed(n), at=T0, subject=f"ref_{n}"))
    await eventually(lambda: _all_requested(harness), within=15.0)
    # March: member 1 approved (then corrected to a shorter period), member 2 approved then discontinued.
    await publish(harness.bus, row(1, "mif_mar", "202603", row=1, number="LAC-1", start=date(2026, 3, 1),
                                   end=date(2027, 2, 28)),
                  row(2, "mif_mar", "202603", row=2, number="LAC-2", start=date(2026, 3, 1), end=date(2027, 2, 28)))
    await settled(harness, "mif_mar", 2)
    await publish(harness.bus, row(1, "mif_mar_fix", "2026-03", row=1, number="LAC-1", start=date(2026, 3, 1),
                                   end=date(2026, 8, 31)),
                  row(2, "mif_mar_fix", "2026-03", row=2, status="discontinued", number="LAC-2"))
    await settled(harness, "mif_mar_fix", 2)
    # February's file arrives late: its rows for members 1 and 2 are older news; member 3 appears only there.
    await publish(harness.bus, row(1, "mif_feb", "202602", row=1, number="LAC-1", start=date(2026, 2, 1),
                                   end=date(2027, 1, 31)),
                  row(2, "mif_feb", "202602", row=2, number="LAC-2", start=date(2026, 2, 1), end=date(2027, 1, 31)),
                  row(3, "mif_feb", "202602", row=3, number="LAC-3", start=date(2026, 2, 1), end=date(2027, 1, 31)))
    await settled(harness, "mif_feb", 3)

    [one] = await authorization_of(harness, 1)
    assert (one["status"], one["period_start"], one["period_end"]) == ("approved", "2026-03-01", "2026-08-31")
    two = await authorization_of(harness, 2)
    assert [(a["status"], a["origin"]) for a in two] == [("closed", "referral")]  # no assignment reopened it
    [three] = await authorization_of(harness, 3)
    assert (three["status"], three["period_start"]) == ("approved", "2026-02-01")
    r = await harness.client.get("/v1/authorization-exceptions", headers=harness.headers(HUB))
    found = sorted((e["file_id"], e["row_number"], e["reason"]) for e in r.json()["items"])
    assert found == [("mif_feb", 1, "older_reporting_period"), ("mif_feb", 2, "older_reporting_period")]


async def _all_requested(h: ServiceHarness) -> bool:
    return all([[a for a in await authorization_of(h, n) if a["status"] == "requested"] for n in (1, 2, 3)])
