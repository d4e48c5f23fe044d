"""Claim lifecycle transitions, claim identifiers, diagnosis merging, and the billing configuration's rules."""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest
from claims.domain.claims import (
    ClaimStatus,
    InvalidTransition,
    check_transition,
    merge_diagnoses,
    new_batch_id,
    new_claim_id,
    new_encounter_id,
)
from claims.domain.configuration import load_configuration
from claims.testkit import billing_data
from pydantic import ValidationError

S = ClaimStatus


@pytest.mark.parametrize(("current", "target", "allowed"), [
    (S.DRAFT, S.BATCHED, True),
    (S.DRAFT, S.SUBMITTED, False),
    (S.DRAFT, S.REJECTED, True),  # the 837P cannot carry it: rejected at batching, alone
    (S.BATCHED, S.SUBMITTED, True),
    (S.BATCHED, S.REJECTED, True),  # a 999 R before the delivery report
    (S.SUBMITTED, S.ACCEPTED, True),
    (S.SUBMITTED, S.REJECTED, True),
    (S.SUBMITTED, S.PAID, True),  # an MCP without 277CA pays straight away
    (S.ACCEPTED, S.PAID, True),
    (S.ACCEPTED, S.DENIED, True),
    (S.ACCEPTED, S.DRAFT, False),
    (S.REJECTED, S.DRAFT, True),  # corrected
    (S.REJECTED, S.BATCHED, False),
    (S.PAID, S.REVERSED, True),
    (S.PAID, S.DRAFT, False),
    (S.DENIED, S.PAID, True),  # re-adjudicated after an appeal
])
def test_transitions(current: ClaimStatus, target: ClaimStatus, allowed: bool) -> None:
    if allowed:
        check_transition(current, target)
    else:
        with pytest.raises(InvalidTransition):
            check_transition(current, target)


def test_claim_ids_fit_clm01_and_the_basic_character_set() -> None:
    ids = {new_claim_id() for _ in range(2000)}
    assert len(ids) == 2000
    assert all(re.fullmatch(r"C[A-Z2-7]{19}", i) for i in ids)
    assert re.fullmatch(r"E[A-Z2-7]{25}", new_encounter_id()) and re.fullmatch(r"B[A-Z2-7]{19}", new_batch_id())


@pytest.mark.parametrize(("existing", "new", "codes", "pointers"), [
    ((), ("Z5900",), ("Z5900",), (1,)),
    (("Z5900",), ("Z5900", "Z5941"), ("Z5900", "Z5941"), (1, 2)),
    (("A", "B", "C"), ("C", "D", "E", "F", "G"), ("A", "B", "C", "D", "E", "F", "G"), (3, 4, 5, 6)),  # 4 pointers max
])
def test_merge_diagnoses(existing: tuple[str, ...], new: tuple[str, ...], codes: tuple[str, ...],
                         pointers: tuple[int, ...]) -> None:
    assert merge_diagnoses(existing, new) == (codes, pointers)


def test_merge_refuses_a_thirteenth_code() -> None:
    assert merge_diagnoses(tuple(f"Z{i:04d}" for i in range(12)), ("Y0000",)) is None


def _with(path: list[Any], value: Any) -> dict[str, Any]:
    data = copy.deepcopy(billing_data())
    node = data
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return data


@pytest.mark.parametrize(("label", "data"), [
    ("hub NPI with a bad check digit", _with(["hub", "npi"], "1234567890")),
    ("hub ZIP of 5 digits", _with(["hub", "address", "zip"], "95814")),
    ("unknown MCP code", _with(["mcps", "nosuchplan"], billing_data()["mcps"]["healthnet"])),
    ("timely filing under 90 days", _with(["mcps", "healthnet", "profile", "timely_filing_days"], 60)),
    ("overlapping fee schedules", _with(["mcps", "healthnet", "fee_schedules", 1, "effective_from"], "2025-06-01")),
    ("negative rate", _with(["mcps", "lacare", "fee_schedules", 0, "rates", 0, "amount"], "-1")),
    ("unknown setting", _with(["mcps", "lacare", "profile", "bill_everything"], True)),
])
def test_configuration_rejects(label: str, data: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        load_configuration(data)


def test_example_configuration_loads() -> None:
    from claims.bootstrap import read_configuration

    config = read_configuration(None)
    assert {"healthnet", "lacare", "partnership"} <= set(config.mcps)
