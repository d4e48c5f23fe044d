"""ISA13 of the 837Ps: claims' half of the 9-digit space (eligibility's 270s use 500,000,000..999,999,999)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from claims.models import ControlNumber
from claims.repository import BatchRepository, ControlNumbersExhausted


def make_counter(interchange: int, group_number: int | None = None) -> ControlNumber:
    return ControlNumber(mcp_code="healthnet", interchange=interchange,
                         group_number=interchange if group_number is None else group_number,
                         updated_at=datetime(2026, 1, 1, tzinfo=UTC))


def test_first_837p_takes_isa13_and_gs06_one() -> None:
    assert BatchRepository.advance(make_counter(0)) == (1, 1)


def test_last_isa13_of_claims_range_is_499999999() -> None:
    counter = make_counter(499_999_998)
    assert BatchRepository.advance(counter) == (499_999_999, 499_999_999)
    assert counter.interchange == 499_999_999


@pytest.mark.parametrize("interchange", [499_999_999, 999_999_999])
def test_claims_refuses_to_pass_499999999_into_eligibilitys_range(interchange: int) -> None:
    counter = make_counter(interchange)
    with pytest.raises(ControlNumbersExhausted):
        BatchRepository.advance(counter)
    assert counter.interchange == interchange  # nothing taken


def test_gs06_keeps_its_own_nine_digits() -> None:
    # GS06 is unique within an interchange only; it never limits claims before ISA13 does.
    assert BatchRepository.advance(make_counter(41, group_number=900_000_000)) == (42, 900_000_001)
