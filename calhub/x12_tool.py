"""`calhub x12 validate FILE` and `calhub x12 parse FILE`: EDI analysts' tools for every X12 set CalHub handles.

The envelope is checked here (shared.x12); each transaction set is handed to the service that owns it, which
exposes `<package>/x12/tools.py` with `TOOLS: dict[str, X12Tool]` keyed by ST01 (e.g. "270", "835").
"""

from __future__ import annotations

import argparse
import json
import sys
from importlib import import_module
from pathlib import Path
from typing import Any, Protocol

from calhub.services import SERVICES
from shared.x12.envelope import parse_interchange
from shared.x12.segments import X12SyntaxError


class X12Tool(Protocol):
    """What a service offers for one transaction set."""

    def validate(self, text: str) -> list[dict[str, Any]]:
        """Errors as {position, segment, rule/message}; empty when valid."""
        ...

    def parse(self, text: str) -> dict[str, Any]:
        """The transaction as JSON-ready data."""
        ...


def available_tools() -> dict[str, X12Tool]:
    """Every service's X12 tools by ST01 code."""
    tools: dict[str, X12Tool] = {}
    for package in SERVICES.values():
        try:
            module = import_module(f"{package}.x12.tools")
        except ModuleNotFoundError as exc:
            if exc.name not in (f"{package}.x12", f"{package}.x12.tools"):
                raise
            continue
        tools.update(module.TOOLS)
    return tools


def _transaction_codes(text: str) -> list[str]:
    interchange = parse_interchange(text)
    return sorted({t.code for g in interchange.groups for t in g.transactions})


def validate_file(path: Path) -> list[dict[str, Any]]:
    """All errors of an X12 file: envelope first, then each transaction set's own rules."""
    text = path.read_text(encoding="utf-8", errors="replace")
    try:
        codes = _transaction_codes(text)
    except X12SyntaxError as exc:
        return [exc.as_dict()]
    tools = available_tools()
    errors: list[dict[str, Any]] = []
    for code in codes:
        if code not in tools:
            errors.append({"position": 0, "segment": "ST", "message": f"transaction set {code} is not supported"})
            continue
        errors.extend(tools[code].validate(text))
    return errors


def parse_file(path: Path) -> dict[str, Any]:
    """The file as JSON-ready data; raises X12SyntaxError or LookupError for an unsupported set."""
    text = path.read_text(encoding="utf-8", errors="replace")
    codes = _transaction_codes(text)
    tools = available_tools()
    missing = [c for c in codes if c not in tools]
    if missing:
        raise LookupError(f"transaction set(s) not supported: {', '.join(missing)}")
    if len(codes) == 1:
        return tools[codes[0]].parse(text)
    return {code: tools[code].parse(text) for code in codes}


def cmd_x12(args: argparse.Namespace) -> int:
    """validate: exit 0 when valid, 1 with a JSON list of errors; parse: JSON of the transaction."""
    if args.x12_command == "validate":
        errors = validate_file(args.file)
        sys.stdout.write(json.dumps({"valid": not errors, "errors": errors}, indent=2) + "\n")
        return 0 if not errors else 1
    try:
        result = parse_file(args.file)
    except (X12SyntaxError, LookupError, ValueError) as exc:
        detail = exc.as_dict() if isinstance(exc, X12SyntaxError) else {"message": str(exc)}
        sys.stdout.write(json.dumps({"error": detail}, indent=2) + "\n")
        return 1
    sys.stdout.write(json.dumps(result, indent=2, default=str) + "\n")
    return 0


def register(sub: Any) -> None:
    """Add `calhub x12 validate|parse FILE`."""
    x12 = sub.add_parser("x12", help="validate or parse X12 files (270/271, 837P, 835, 999, 277CA)")
    x12_sub = x12.add_subparsers(dest="x12_command", required=True)
    for name, help_text in (("validate", "check a file; exit 0 when valid"), ("parse", "print it as JSON")):
        command = x12_sub.add_parser(name, help=help_text)
        command.add_argument("file", type=Path)
    x12.set_defaults(func=cmd_x12)
