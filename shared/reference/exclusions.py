"""Which other programs rule out ECM, exclude it while they last, or may run beside it (effective-dated)."""

from __future__ import annotations

from collections.abc import Set
from datetime import date
from enum import StrEnum
from functools import cache

from pydantic import BaseModel, ConfigDict

from shared.reference.facts import Effective, Marker, optional_date, packaged_csv_rows

ECM_EXCLUSIONS_FILE = "ecm_exclusions.csv"


class EcmRelation(StrEnum):
    """How a program a member is in bears on ECM for that member."""

    NOT_ELIGIBLE = "not_eligible"  # the member cannot receive ECM while in the program
    ECM_OR_PROGRAM = "ecm_or_program"  # ECM or the other program, not both at once
    ECM_AND_PROGRAM = "ecm_and_program"  # both allowed, without duplicated services
    NOT_SAME_PERIOD = "not_same_period"  # ECM and CHW: never for the same member in the same period


class Program(Effective):
    """Another program a member may be in, under its stable code, and its relation to ECM."""

    code: str
    name: str
    relation: EcmRelation
    marker: Marker
    source: str
    notes: str = ""


class Reason(BaseModel):
    """Why ECM conflicts with a program a member is in. `code` is stable; `message` is for people."""

    model_config = ConfigDict(frozen=True)

    code: str
    program: str
    message: str
    marker: Marker


_REASON_CODES = {
    EcmRelation.NOT_ELIGIBLE: "ecm_not_eligible",
    EcmRelation.ECM_OR_PROGRAM: "ecm_or_program",
    EcmRelation.NOT_SAME_PERIOD: "ecm_not_same_period",
}


@cache
def _programs() -> tuple[Program, ...]:
    programs: list[Program] = []
    for line, row in enumerate(packaged_csv_rows(ECM_EXCLUSIONS_FILE), start=2):
        program = Program(
            code=row["program_code"],
            name=row["name"],
            relation=EcmRelation(row["relation"]),
            effective_from=optional_date(row["effective_from"]),
            effective_to=optional_date(row["effective_to"]),
            marker=Marker(row["marker"]),
            source=row["source"],
            notes=row["notes"],
        )
        if any(p.code == program.code and p.overlaps(program) for p in programs):
            raise ValueError(
                f"{ECM_EXCLUSIONS_FILE} line {line}: overlaps an earlier row for {program.code!r}"
            )
        programs.append(program)
    return tuple(programs)


@cache
def program_codes() -> frozenset[str]:
    """Every program code the exclusion table knows, whatever the date."""
    return frozenset(program.code for program in _programs())


def programs_on(on: date) -> list[Program]:
    """The program table in force on a date."""
    return [program for program in _programs() if program.in_force_on(on)]


def ecm_relation(program_code: str, on: date) -> EcmRelation | None:
    """How a program bears on ECM on a date (None if no row is in force). Raises ValueError if unknown."""
    if program_code not in program_codes():
        raise ValueError(f"unknown program code: {program_code!r}")
    for program in programs_on(on):
        if program.code == program_code:
            return program.relation
    return None


def _message(program: Program) -> str:
    if program.relation is EcmRelation.NOT_ELIGIBLE:
        return f"members in {program.name} are not eligible for ECM"
    if program.relation is EcmRelation.ECM_OR_PROGRAM:
        return f"ECM or {program.name}, not both at once"
    return f"ECM and {program.name} are never given to the same member in the same period"


def ecm_conflicts(programs: Set[str], *, on: date) -> list[Reason]:
    """Why ECM conflicts with the programs a member is in on a date; empty when ECM may go ahead.

    Programs that may run beside ECM give no reason. Raises ValueError naming any unknown program code.
    """
    unknown = sorted(set(programs) - program_codes())
    if unknown:
        raise ValueError(f"unknown program codes: {unknown}")
    return [
        Reason(code=_REASON_CODES[p.relation], program=p.code, message=_message(p), marker=p.marker)
        for p in sorted(programs_on(on), key=lambda p: p.code)
        if p.code in programs and p.relation is not EcmRelation.ECM_AND_PROGRAM
    ]
