"""CIN, BIC, NPI and PAVE provider number syntax."""

from __future__ import annotations

import pytest

from shared.reference.identifiers import (
    bic_problem,
    cin_from_bic,
    cin_problem,
    is_valid_cin,
    is_valid_npi,
    is_valid_pave_provider_number,
    npi_check_digit,
    npi_problem,
    pave_provider_number_problem,
)


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("12345678A", None),
        ("00000000Z", None),
        ("12345678a", "must be 8 digits then a capital letter"),
        ("1234567AB", "must be 8 digits then a capital letter"),
        ("123456789", "must be 8 digits then a capital letter"),
        (
            "１２３４５６７８A",
            "must be 8 digits then a capital letter",
        ),  # full-width digits are not ASCII digits
        ("12345678", "must be 9 characters"),
        ("12345678AB", "must be 9 characters"),
        ("12345678A\n", "must be 9 characters"),
        ("", "must be 9 characters"),
    ],
)
def test_cin_must_be_eight_digits_then_a_capital_letter(value: str, problem: str | None) -> None:
    assert cin_problem(value) == problem
    assert is_valid_cin(value) is (problem is None)


@pytest.mark.parametrize(
    ("bic", "cin"),
    [("12345678A91234", "12345678A"), ("90000001Z00101", "90000001Z")],
)
def test_cin_from_bic_is_its_first_nine_characters(bic: str, cin: str) -> None:
    assert bic_problem(bic) is None
    assert cin_from_bic(bic) == cin


@pytest.mark.parametrize(
    ("bic", "problem"),
    [
        ("12345678A9123", "must be 14 characters"),
        ("1234567AB91234", "first 9 characters must be a CIN (8 digits then a capital letter)"),
        ("12345678A912X4", "must end with a check character and a 4-digit issue date"),
    ],
)
def test_malformed_bic_is_refused(bic: str, problem: str) -> None:
    assert bic_problem(bic) == problem
    with pytest.raises(ValueError, match=problem.split(" (")[0]):
        cin_from_bic(bic)


@pytest.mark.parametrize(
    ("npi", "problem"),
    [
        ("1234567893", None),  # the CMS example
        ("9000000007", None),  # 80840 900000000: Luhn sum 33 → 7
        ("1234567890", "check digit does not match"),
        ("1234567894", "check digit does not match"),
        ("123456789", "must be 10 digits"),
        ("12345678931", "must be 10 digits"),
        ("123456789X", "must be 10 digits"),
        (" 1234567893", "must be 10 digits"),
        ("", "must be 10 digits"),
    ],
)
def test_npi_is_ten_digits_with_a_luhn_check_digit(npi: str, problem: str | None) -> None:
    assert npi_problem(npi) == problem
    assert is_valid_npi(npi) is (problem is None)


def test_npi_check_digit_uses_the_80840_prefix() -> None:
    assert npi_check_digit("123456789") == 3
    # Equivalent rule: plain Luhn over the 9 digits, plus 24.
    for first9 in ("123456789", "124531959", "100300012", "987654321", "000000000"):
        doubled = [int(c) * 2 - 9 if int(c) * 2 > 9 else int(c) * 2 for c in first9[::2]]
        plain = sum(doubled) + sum(int(c) for c in first9[1::2]) + 24
        assert npi_check_digit(first9) == (10 - plain % 10) % 10


@pytest.mark.parametrize("first9", ["12345678", "1234567890", "12345678X"])
def test_npi_check_digit_needs_nine_digits(first9: str) -> None:
    with pytest.raises(ValueError):
        npi_check_digit(first9)


@pytest.mark.parametrize(
    ("value", "problem"),
    [("123456789", None), ("12345678", "must be 9 digits"), ("12345678A", "must be 9 digits")],
)
def test_pave_provider_number_is_nine_digits(value: str, problem: str | None) -> None:
    assert pave_provider_number_problem(value) == problem
    assert is_valid_pave_provider_number(value) is (problem is None)
