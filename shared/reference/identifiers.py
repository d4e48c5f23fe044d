"""Syntax checks for the identifiers CalHub exchanges: Medi-Cal CIN and BIC, NPI, PAVE provider number.

Each `*_problem` function returns None for a valid value, else a short reason naming the rule broken (no PHI:
the value itself is never echoed, so a reason is safe in logs and problem+json).
"""

from __future__ import annotations

import re

# [rule] CIN: 9 characters, 8 digits then a capital letter. [0-9], not \d: \d matches other scripts' digits.
_CIN = re.compile(r"[0-9]{8}[A-Z]")
# [rule] BIC card id: CIN + check character + 4-digit issue date; only its first 9 characters name a person.
_BIC = re.compile(r"[0-9]{8}[A-Z][0-9A-Z][0-9]{4}")
_TEN_DIGITS = re.compile(r"[0-9]{10}")
_NINE_DIGITS = re.compile(r"[0-9]{9}")

CIN_LENGTH = 9
BIC_LENGTH = 14
NPI_LENGTH = 10
# [rule] NPI check digit: Luhn over "80840" (ISO 7812 issuer prefix for US health identifiers) + 9 digits.
NPI_LUHN_PREFIX = "80840"
# Provider taxonomy code of a Community Health Worker (NUCC).
CHW_TAXONOMY = "172V00000X"


def cin_problem(value: str) -> str | None:
    """Why `value` is not a Medi-Cal CIN (`^[0-9]{8}[A-Z]$`), or None when it is one."""
    if len(value) != CIN_LENGTH:
        return "must be 9 characters"
    if not _CIN.fullmatch(value):
        return "must be 8 digits then a capital letter"
    return None


def is_valid_cin(value: str) -> bool:
    """True when `value` is a syntactically valid Medi-Cal CIN."""
    return cin_problem(value) is None


def bic_problem(value: str) -> str | None:
    """Why `value` is not a 14-character Benefits Identification Card id, or None when it is one."""
    if len(value) != BIC_LENGTH:
        return "must be 14 characters"
    if cin_problem(value[:CIN_LENGTH]) is not None:
        return "first 9 characters must be a CIN (8 digits then a capital letter)"
    if not _BIC.fullmatch(value):
        return "must end with a check character and a 4-digit issue date"
    return None


def cin_from_bic(bic: str) -> str:
    """The CIN carried by a BIC card id (its first 9 characters). Raises ValueError on a malformed BIC id."""
    problem = bic_problem(bic)
    if problem is not None:
        raise ValueError(f"not a BIC id: {problem}")
    return bic[:CIN_LENGTH]


def npi_check_digit(first9: str) -> int:
    """The Luhn check digit of an NPI from its first 9 digits. Raises ValueError unless given 9 digits."""
    if not _NINE_DIGITS.fullmatch(first9):
        raise ValueError("an NPI check digit is computed from exactly 9 digits")
    total = 0
    # Double every second digit counting from the right of the payload, as the check digit will be appended.
    for position, char in enumerate(reversed(NPI_LUHN_PREFIX + first9)):
        digit = int(char)
        if position % 2 == 0:
            digit *= 2
            if digit > 9:
                digit -= 9
        total += digit
    return (10 - total % 10) % 10


def npi_problem(value: str) -> str | None:
    """Why `value` is not a National Provider Identifier, or None when it is one."""
    if not _TEN_DIGITS.fullmatch(value):
        return "must be 10 digits"
    if npi_check_digit(value[:9]) != int(value[9]):
        return "check digit does not match"
    return None


def is_valid_npi(value: str) -> bool:
    """True when `value` is 10 digits with a correct Luhn check digit."""
    return npi_problem(value) is None


def pave_provider_number_problem(value: str) -> str | None:
    """Why `value` is not a Medi-Cal (PAVE) provider number, or None when it is one."""
    if not _NINE_DIGITS.fullmatch(value):
        return "must be 9 digits"
    return None


def is_valid_pave_provider_number(value: str) -> bool:
    """True when `value` is a 9-digit Medi-Cal provider number as issued through PAVE."""
    return pave_provider_number_problem(value) is None
