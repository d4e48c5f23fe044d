"""Effective-dated HCPCS/CPT codes and modifier sets allowed per CalAIM service, and the claim-line check.

The table (data/billing_codes.csv) is [practice]: MCP materials citing the DHCS HCPCS coding options v1.3
(2026-01). MCPs may neither require nor allow codes or modifiers beyond the DHCS list [rule], so anything not
in the table is refused. Rows without effective_from were in force before we started tracking the list.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import date
from functools import cache

from shared.reference.facts import Effective, Marker, optional_date, packaged_csv_rows
from shared.reference.services import community_supports

BILLING_CODES_FILE = "billing_codes.csv"
# 837P SV1-1 carries a procedure code with up to 4 modifiers (005010X222A1).
MAX_MODIFIERS = 4

CODE_NOT_ALLOWED = "code not allowed for service"
CODE_NOT_ACTIVE = "code not active on date"
MODIFIERS_NOT_ALLOWED = "modifier set not allowed for service"
TOO_MANY_MODIFIERS = f"at most {MAX_MODIFIERS} modifiers"
MODIFIER_REPEATED = "modifier repeated"

_PROCEDURE_CODE = re.compile(r"[A-Z0-9]{5}")
_MODIFIER = re.compile(r"[A-Z0-9]{2}")


class CodeRule(Effective):
    """One billable combination for a service: a procedure code with one allowed modifier set."""

    service_code: str
    hcpcs: str
    modifiers: frozenset[str]  # empty when the code is billed without modifiers
    marker: Marker
    # What a claim line needs besides the code (e.g. 'initiating_em_visit', 'care_plan'); checked by claims.
    prerequisites: frozenset[str] = frozenset()
    add_on_to: str | None = None  # an add-on code is billed only with this primary code
    notes: str = ""


def _split(cell: str) -> frozenset[str]:
    return frozenset(part.strip() for part in cell.split("+") if part.strip())


@cache
def _rules() -> tuple[CodeRule, ...]:
    rules: list[CodeRule] = []
    for line, row in enumerate(packaged_csv_rows(BILLING_CODES_FILE), start=2):
        rule = CodeRule(
            service_code=row["service_code"],
            hcpcs=row["hcpcs"],
            modifiers=_split(row["modifiers"]),
            effective_from=optional_date(row["effective_from"]),
            effective_to=optional_date(row["effective_to"]),
            marker=Marker(row["marker"]),
            prerequisites=_split(row["prerequisites"]),
            add_on_to=row["add_on_to"] or None,
            notes=row["notes"],
        )
        where = f"{BILLING_CODES_FILE} line {line}"
        if not _PROCEDURE_CODE.fullmatch(rule.hcpcs) or not all(
            _MODIFIER.fullmatch(m) for m in rule.modifiers
        ):
            raise ValueError(f"{where}: malformed procedure code or modifier")
        for earlier in rules:
            same = (earlier.service_code, earlier.hcpcs, earlier.modifiers)
            if same == (rule.service_code, rule.hcpcs, rule.modifiers) and earlier.overlaps(rule):
                raise ValueError(f"{where}: overlaps an earlier row for the same service, code and modifiers")
        rules.append(rule)
    return tuple(rules)


@cache
def service_codes() -> frozenset[str]:
    """Every service code the table knows: billing services plus Community Supports that have no codes yet."""
    return frozenset(rule.service_code for rule in _rules()) | {cs.code for cs in community_supports()}


def _require_service(service_code: str) -> None:
    if service_code not in service_codes():
        raise ValueError(f"unknown service code: {service_code!r}")


def allowed_codes(service_code: str, on: date) -> list[CodeRule]:
    """The code and modifier-set combinations allowed for a service on a date of service.

    Raises ValueError for an unknown service code.
    """
    _require_service(service_code)
    return [rule for rule in _rules() if rule.service_code == service_code and rule.in_force_on(on)]


def check_code(service_code: str, hcpcs: str, modifiers: Iterable[str], on: date) -> str | None:
    """Why a procedure code with these modifiers may not be billed for a service on a date, or None if it may.

    Modifier order does not matter. Prerequisites (e.g. a care plan) are the caller's to check.
    Raises ValueError for an unknown service code.
    """
    _require_service(service_code)
    code = hcpcs.strip().upper()
    given = [modifier.strip().upper() for modifier in modifiers]
    if len(given) > MAX_MODIFIERS:
        return TOO_MANY_MODIFIERS
    if len(set(given)) != len(given):
        return MODIFIER_REPEATED
    for_code = [rule for rule in _rules() if rule.service_code == service_code and rule.hcpcs == code]
    if not for_code:
        return CODE_NOT_ALLOWED
    active = [rule for rule in for_code if rule.in_force_on(on)]
    if not active:
        return CODE_NOT_ACTIVE
    if frozenset(given) not in {rule.modifiers for rule in active}:
        return MODIFIERS_NOT_ALLOWED
    return None
