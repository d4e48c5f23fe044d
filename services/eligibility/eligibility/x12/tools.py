"""`calhub x12 validate|parse` for 270 and 271 files (see calhub/x12_tool.py)."""

from __future__ import annotations

from typing import Any

from eligibility.x12.loops import X279Invalid
from eligibility.x12.x270 import parse_270, validate_270
from eligibility.x12.x271 import read_271, response_json, validate_271
from shared.x12.segments import X12SyntaxError


class Inquiry270Tool:
    """The analyst's view of a 270 eligibility inquiry."""

    def validate(self, text: str) -> list[dict[str, Any]]:
        """Implementation-guide violations as {position, segment, loop, rule, message}; empty when valid."""
        return [issue.as_dict() for issue in validate_270(text)]

    def parse(self, text: str) -> dict[str, Any]:
        """The inquiry as JSON-ready data."""
        return parse_270(text)


class Response271Tool:
    """The analyst's view of a 271 eligibility response."""

    def validate(self, text: str) -> list[dict[str, Any]]:
        """Implementation-guide violations as {position, segment, loop, rule, message}; empty when valid."""
        return [issue.as_dict() for issue in validate_271(text)]

    def parse(self, text: str) -> dict[str, Any]:
        """The response as JSON-ready data; raises X12SyntaxError naming the first broken rule (and the count)."""
        try:
            return response_json(read_271(text))
        except X279Invalid as exc:
            first = exc.issues[0]
            raise X12SyntaxError(f"{first.rule}: {first.message} ({len(exc.issues)} issue(s); run validate)",
                                 position=first.position, segment_id=first.segment) from None


TOOLS: dict[str, Any] = {"270": Inquiry270Tool(), "271": Response271Tool()}
