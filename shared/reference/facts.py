"""How sure a reference fact is, when it is in force, and how the packaged data files are read."""

from __future__ import annotations

import csv
import io
from datetime import date
from enum import StrEnum
from importlib import resources

from pydantic import BaseModel, ConfigDict, model_validator


class Marker(StrEnum):
    """How a fact is known, as marked in the CalAIM domain notes (docs/decisions/0003-reference-data.md)."""

    RULE = "rule"  # stated in DHCS policy as summarized by CalAIM guides
    PRACTICE = "practice"  # seen in an MCP's or vendor's published material (or seed guidance); varies by MCP
    UNCONFIRMED = "unconfirmed"  # believed but not confirmed: callers must be able to override it


class Effective(BaseModel):
    """An effective period: `effective_from` and `effective_to` are both inclusive.

    `effective_from=None` means "in force since before the earliest date we track" (no start in the source);
    `effective_to=None` means "still in force".
    """

    model_config = ConfigDict(frozen=True)

    effective_from: date | None = None
    effective_to: date | None = None

    @model_validator(mode="after")
    def _period_is_ordered(self) -> Effective:
        if self.effective_from and self.effective_to and self.effective_to < self.effective_from:
            raise ValueError(
                f"effective_to {self.effective_to} is before effective_from {self.effective_from}"
            )
        return self

    def in_force_on(self, on: date) -> bool:
        """True when `on` falls inside the effective period."""
        if self.effective_from is not None and on < self.effective_from:
            return False
        return self.effective_to is None or on <= self.effective_to

    def overlaps(self, other: Effective) -> bool:
        """True when the two periods share at least one day."""
        starts_before_other_ends = (
            self.effective_from is None
            or other.effective_to is None
            or self.effective_from <= other.effective_to
        )
        other_starts_before_self_ends = (
            other.effective_from is None
            or self.effective_to is None
            or other.effective_from <= self.effective_to
        )
        return starts_before_other_ends and other_starts_before_self_ends


def optional_date(text: str) -> date | None:
    """Parse an ISO date from a data file cell; an empty cell is None. Raises ValueError on a bad date."""
    text = text.strip()
    return date.fromisoformat(text) if text else None


def packaged_text(filename: str) -> str:
    """Read one of this package's own data files (shared/reference/data/). Raises FileNotFoundError."""
    return (resources.files("shared.reference") / "data" / filename).read_text(encoding="utf-8")


def packaged_csv_rows(filename: str) -> list[dict[str, str]]:
    """Read a packaged CSV data file as rows keyed by its header. Raises FileNotFoundError."""
    return list(csv.DictReader(io.StringIO(packaged_text(filename))))
