"""The closed loop ends the same whatever order an authorization's events arrive in (decision 0127): an end that
arrives before the request linking the authorization to its referral still closes the loop (the end names the
referral), and the referral's current authorization is the newest of its chain, not the last one linked."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from referrals.domain.succession import AuthorizationLink, current_authorization
from referrals.testkit import (
    NOW,
    approved,
    closed,
    deliver,
    denied,
    encounter,
    expired,
    make_referral,
    reauthorized,
    requested,
)

from shared.testing.app import ServiceHarness

T0 = datetime(2026, 11, 20, 17, 0, tzinfo=UTC)


def link(authorization_id: str, previous: str | None, days: int, *, denied: bool = False) -> AuthorizationLink:
    return AuthorizationLink(authorization_id, previous, T0 + timedelta(days=days), denied=denied)


@pytest.mark.parametrize(("links", "current"), [
    ([], None),
    ([link("a1", None, 0)], "a1"),
    ([link("a1", None, 0), link("a2", "a1", 300), link("a3", "a2", 500)], "a3"),
    # The reauthorization was linked first (its request replayed before the initial one's): still the newest.
    ([link("a2", "a1", 0), link("a1", None, 5)], "a2"),
    # Linked by its end, predecessor not known yet: the latest linked of the unchained ones.
    ([link("a1", None, 0), link("a2", None, 400)], "a2"),
    # The initial one linked only by its end, after its reauthorization named it: the reauthorization stays.
    ([link("a2", "a1", 300), link("a1", None, 360)], "a2"),
    # A denied reauthorization continues nothing: the member is still served under the one it would have.
    ([link("a1", None, 0), link("a2", "a1", 300, denied=True)], "a1"),
    ([link("a1", None, 0), link("a2", None, 300, denied=True)], "a1"),  # its predecessor not known yet
    ([link("a1", None, 0), link("a2", "a1", 300, denied=True), link("a3", "a1", 320)], "a3"),
    # An initial authorization denied, and nothing else: it stays the referral's (declined) authorization.
    ([link("a1", None, 0, denied=True)], "a1"),
])
def test_the_current_authorization_is_the_newest_of_the_chain(links: list[AuthorizationLink],
                                                               current: str | None) -> None:
    for order in itertools.permutations(links):
        assert current_authorization(order) == current, order


async def submitted(h: ServiceHarness, cin: str) -> str:
    response = await h.client.post("/v1/referrals", json=make_referral(cin=cin), headers=h.headers("cbo_a"))
    assert response.status_code == 201, response.text
    referral_id: str = response.json()["id"]
    return referral_id




async def loop_of(h: ServiceHarness, referral_id: str) -> tuple[Any, ...]:
    body = (await h.client.get(f"/v1/referrals/{referral_id}", headers=h.headers("hub"))).json()
    return body["status"], body["closure_reason_code"], body["status_reason"], body["authorization_id"]


async def test_an_end_before_the_request_closes_the_loop_as_told_in_order(harness: ServiceHarness) -> None:
    in_order, backwards = await submitted(harness, "90000011A"), await submitted(harness, "90000012B")
    story = {r: [requested(r, f"auth_{r}"), approved(r, f"auth_{r}"),
                 closed(f"auth_{r}", reason="member moved out of county", referral_id=r)]
             for r in (in_order, backwards)}
    await deliver(harness, *story[in_order])
    await deliver(harness, *reversed(story[backwards]))
    told = await loop_of(harness, in_order)
    assert told == ("closed", "authorization_closed", "member moved out of county", f"auth_{in_order}")
    assert await loop_of(harness, backwards) == (*told[:3], f"auth_{backwards}")


async def test_an_expiry_before_the_request_closes_the_loop(harness: ServiceHarness) -> None:
    rid = await submitted(harness, "90000013C")
    await deliver(harness, expired("auth_e", referral_id=rid), requested(rid, "auth_e"))
    assert await loop_of(harness, rid) == ("closed", "authorization_expired", "authorization period ended",
                                           "auth_e")


async def test_a_reauthorization_ended_before_its_links_closes_the_loop(harness: ServiceHarness) -> None:
    """Approved (auth_1), reauthorized (auth_2) and auth_2 closed: with auth_2's request and approval replayed
    after its closure, the loop still ends closed on auth_2, as when told in order."""
    in_order, backwards = await submitted(harness, "90000014D"), await submitted(harness, "90000015E")
    for r in (in_order, backwards):
        await deliver(harness, requested(r, f"a1_{r}"), approved(r, f"a1_{r}"))
    story = {r: [requested(r, f"a2_{r}", previous_authorization_id=f"a1_{r}"),
                 approved(r, f"a2_{r}", previous_authorization_id=f"a1_{r}"),
                 closed(f"a2_{r}", reason="discontinued_by_mcp", referral_id=r)] for r in (in_order, backwards)}
    await deliver(harness, *story[in_order])
    await deliver(harness, *reversed(story[backwards]))
    told = await loop_of(harness, in_order)
    assert told == ("closed", "authorization_closed", "discontinued_by_mcp", f"a2_{in_order}")
    assert await loop_of(harness, backwards) == (*told[:3], f"a2_{backwards}")


async def test_the_replaced_authorization_ends_without_closing_whatever_order_the_links_came_in(
        harness: ServiceHarness) -> None:
    """The reauthorization's request arrives before the initial one's (a replayed dead letter): the initial
    authorization's expiry is still the end of a replaced authorization, and the loop stays open."""
    rid = await submitted(harness, "90000016F")
    await deliver(harness, requested(rid, "a2", previous_authorization_id="a1"), requested(rid, "a1"),
                  approved(rid, "a1"), expired("a1", referral_id=rid))
    assert await loop_of(harness, rid) == ("accepted", None, None, "a2")


async def test_an_end_without_a_referral_for_an_unlinked_authorization_is_not_ours(harness: ServiceHarness) -> None:
    # Written before decision 0127 (or an MCP assignment): nothing to find the referral by.
    rid = await submitted(harness, "90000017G")
    await deliver(harness, closed("a_unlinked"), requested(rid, "a_unlinked"))
    assert await loop_of(harness, rid) == ("requested", None, None, "a_unlinked")


@pytest.mark.parametrize("denial_first", [True, False])
async def test_a_denied_reauthorization_leaves_the_loop_to_the_authorization_it_would_have_continued(
        harness: ServiceHarness, denial_first: bool) -> None:
    """In service under a1, reauthorization a2 denied, a1 expires: the loop closes on a1's expiry, whichever of
    the denial and the expiry arrives first (before, it stayed in service for ever)."""
    rid = await submitted(harness, "90000018H")
    await deliver(harness, requested(rid, "a1"), approved(rid, "a1"), encounter("a1"), reauthorized("a1", "a2"))
    ends = [denied(None, "a2", reason="no longer meets POF criteria"), expired("a1", referral_id=rid)]
    await deliver(harness, *(ends if denial_first else reversed(ends)))
    assert await loop_of(harness, rid) == ("closed", "authorization_expired", "authorization period ended", "a1")
    timeline = (await harness.client.get(f"/v1/referrals/{rid}", headers=harness.headers("hub"))).json()["timeline"]
    assert [t["status"] for t in timeline if t["kind"] == "status_changed"] == [
        "routed", "requested", "accepted", "in_service", "closed"]
    assert any(t["detail"].get("ignored_because") == "reauthorization_denied" for t in timeline)


async def test_an_overturned_reauthorization_denial_makes_it_current_again(harness: ServiceHarness) -> None:
    rid = await submitted(harness, "90000019J")
    await deliver(harness, requested(rid, "a1"), approved(rid, "a1"), reauthorized("a1", "a2"),
                  denied(None, "a2"), approved(None, "a2", decided_at=NOW + timedelta(days=20)),
                  expired("a1", referral_id=rid))
    assert await loop_of(harness, rid) == ("accepted", None, None, "a2")


async def test_a_denial_older_than_the_approval_does_not_overturn_it(harness: ServiceHarness) -> None:
    rid = await submitted(harness, "90000020K")
    await deliver(harness, requested(rid, "a1"), approved(rid, "a1"), reauthorized("a1", "a2"),
                  approved(None, "a2", decided_at=NOW + timedelta(days=20)), denied(None, "a2"),
                  expired("a1", referral_id=rid))
    assert await loop_of(harness, rid) == ("accepted", None, None, "a2")


APPEAL = NOW + timedelta(days=20)  # an appeal is decided long after the denial, often after the period ended


@pytest.mark.parametrize(("served", "encounter_for_a2", "end"), [
    (True, True, ("in_service", "member_connected_to_services", None)),
    (True, False, ("in_service", "member_connected_to_services", None)),
    (False, True, ("in_service", "member_connected_to_services", None)),
    (False, False, ("accepted", None, None)),
])
async def test_an_appeal_approving_a_denied_reauthorization_reopens_the_loop_its_denial_closed(
        harness: ServiceHarness, served: bool, encounter_for_a2: bool, end: tuple[Any, ...]) -> None:
    """a1 approved (and served), reauthorization a2 denied, a1 expires, a2 approved on appeal (20 days later):
    every arrival order of the denial, the expiry and the appeal (and a2's encounter after them) ends alike. A
    loop the expiry closed reopens, with the reason on the timeline."""
    for n, order in enumerate(itertools.permutations(range(3))):
        rid = await submitted(harness, f"9000004{n}{'LMNPQR'[n]}")
        a1, a2 = f"a1_{n}", f"a2_{n}"
        start = [requested(rid, a1), approved(rid, a1), *([encounter(a1, f"enc_1_{n}")] if served else []),
                 reauthorized(a1, a2)]
        story = [denied(None, a2, reason="no longer meets POF criteria"), expired(a1, referral_id=rid),
                 approved(None, a2, decided_at=APPEAL)]
        events = [story[i] for i in order]
        await deliver(harness, *start, *events, *([encounter(a2, f"enc_2_{n}")] if encounter_for_a2 else []))
        assert await loop_of(harness, rid) == (*end[:3], a2), order
        timeline = (await harness.client.get(f"/v1/referrals/{rid}", headers=harness.headers("hub"))).json()[
            "timeline"]
        reopened = [t for t in timeline if t["kind"] == "reopened"]
        closed_first = order.index(2) == 2  # the appeal came after both the denial and the expiry
        assert [t["reason"] for t in reopened] == (["reauthorization_approved"] if closed_first else []), order


@pytest.mark.parametrize("story", ["withdrawn", "a1_closed_by_plan_change", "a2_ended"])
async def test_an_appeal_does_not_reopen_a_loop_closed_for_another_reason(harness: ServiceHarness,
                                                                          story: str) -> None:
    """Only a loop closed by the expiry of the authorization a denied reauthorization continues reopens: not a
    withdrawal, not a closure of that authorization (a plan change ends it for its own reason), not a loop whose
    reauthorization has ended itself."""
    cin = {"withdrawn": "90000050S", "a1_closed_by_plan_change": "90000052U", "a2_ended": "90000053V"}[story]
    rid = await submitted(harness, cin)
    a2_denied = denied(None, "a2", reason="no longer meets POF criteria")
    appeal = approved(None, "a2", decided_at=APPEAL)
    if story == "withdrawn":
        await deliver(harness, requested(rid, "a1"), approved(rid, "a1"), reauthorized("a1", "a2"), a2_denied)
        response = await harness.client.post(f"/v1/referrals/{rid}/withdraw", json={"reason": "member moved"},
                                             headers=harness.headers("cbo_a"))
        assert response.status_code == 200, response.text
        await deliver(harness, expired("a1", referral_id=rid), appeal)
        expected: tuple[Any, ...] = ("withdrawn", "withdrawn_by_referrer", "member moved")
    elif story == "a1_closed_by_plan_change":
        await deliver(harness, requested(rid, "a1"), approved(rid, "a1"),
                      requested(rid, "a2", "healthnet", previous_authorization_id="a1"), a2_denied,
                      closed("a1", reason="plan_changed", referral_id=rid), appeal)
        expected = ("closed", "authorization_closed", "plan_changed")
    else:
        await deliver(harness, requested(rid, "a1"), approved(rid, "a1"), reauthorized("a1", "a2"), a2_denied,
                      closed("a2", reason="discontinued_by_mcp", referral_id=rid), expired("a1", referral_id=rid),
                      appeal)
        expected = ("closed", "authorization_expired", "authorization period ended")
    assert (await loop_of(harness, rid))[:3] == expected
    timeline = (await harness.client.get(f"/v1/referrals/{rid}", headers=harness.headers("hub"))).json()["timeline"]
    assert not any(t["kind"] == "reopened" for t in timeline)


@pytest.mark.parametrize(("served", "end"), [
    (False, ("accepted", None, None)),
    (True, ("in_service", "member_connected_to_services", None)),
])
async def test_every_order_of_link_denial_expiry_and_appeal_ends_alike(
        harness: ServiceHarness, served: bool, end: tuple[Any, ...]) -> None:
    """a1 approved (and served); then, in each of the 24 arrival orders, the request of reauthorization a2
    continuing a1 (the link), a2's denial, a1's expiry and a2's approval on appeal (20 days later), carrying
    referral_id and previous_authorization_id as the authorizations service sends them. The referral ends on a2,
    approved and running, with its loop open, whatever the order (decision 0125): the reopen depends on the state
    (the current authorization is an approved, running successor of the one whose expiry closed the loop), not on
    seeing the denial flip to an approval. A loop that closed reopens once."""
    outcomes: dict[tuple[int, ...], tuple[Any, ...]] = {}
    for n, order in enumerate(itertools.permutations(range(4))):
        rid = await submitted(harness, f"7{int(served)}{n:06d}{'ABCDEFGHJKLMNPQRSTUVWXYZ'[n]}")
        a1, a2 = f"a1_{n}", f"a2_{n}"
        story = [requested(rid, a2, previous_authorization_id=a1),
                 denied(rid, a2, reason="no longer meets POF criteria"), expired(a1, referral_id=rid),
                 approved(rid, a2, previous_authorization_id=a1, decided_at=APPEAL)]
        await deliver(harness, requested(rid, a1), approved(rid, a1),
                      *([encounter(a1, f"enc_{int(served)}_{n}")] if served else []), *[story[i] for i in order])
        body = (await harness.client.get(f"/v1/referrals/{rid}", headers=harness.headers("hub"))).json()
        outcomes[order] = (body["status"], body["closure_reason_code"], body["status_reason"],
                           body["authorization_id"] == a2)
        reopened = [t for t in body["timeline"] if t["kind"] == "reopened"]
        assert len(reopened) <= 1, order
        assert all(t["reason"] == "reauthorization_approved" for t in reopened), order
    assert outcomes == dict.fromkeys(outcomes, (*end, True))
