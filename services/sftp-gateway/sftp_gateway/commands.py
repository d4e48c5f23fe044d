"""`calhub files inspect --profile FILE --kind KIND FILE`: an EDI analyst's look at how a file parses.

Prints JSON: the recognized kind for the name, every good row in canonical form and every problem with its
row number, column and rule. Exit status 0 when the file would be accepted whole, 1 when it has problems,
2 when the profile or kind is unusable. Rows are member data: the output is for the analyst's terminal.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from sftp_gateway.domain.profile import ProfileError, parse_profile
from sftp_gateway.domain.records import RECORDS
from sftp_gateway.domain.tabular import parse_table
from shared.contracts.gateway import FileKind


def inspect_file(profile_path: Path, kind_name: str, file_path: Path) -> tuple[int, dict[str, Any]]:
    """(exit status, report) for one file parsed with one profile's layout of a kind."""
    try:
        profile = parse_profile(profile_path.read_text(encoding="utf-8"), profile_path.name)
    except (OSError, ProfileError) as exc:
        return 2, {"error": "profile", "message": str(exc)}
    try:
        kind = FileKind(kind_name.lower())
    except ValueError:
        return 2, {"error": "kind", "message": f"unknown kind; one of {', '.join(k.value for k in FileKind)}"}
    layout = profile.layouts.get(kind)
    if layout is None or kind not in RECORDS:
        return 2, {"error": "kind", "message": f"the profile has no {kind.value} layout"}
    content = file_path.read_bytes()
    recognition = profile.recognize(file_path.name)
    parsed = parse_table(content, layout, RECORDS[kind])
    report = {"profile": profile.mcp_code, "kind": kind.value, "file": file_path.name, "size": len(content),
              "recognized_as": recognition.model_dump(mode="json") if recognition else None,
              "row_policy": profile.row_policy.value, **parsed.as_dict()}
    return (1 if parsed.problems else 0), report


def cmd_inspect(args: argparse.Namespace) -> int:
    """Run `calhub files inspect`."""
    status, report = inspect_file(Path(args.profile), args.kind, Path(args.file))
    sys.stdout.write(json.dumps(report, indent=2, default=str) + "\n")
    return status


def register(subparsers: Any) -> None:
    """Add `calhub files ...`."""
    files = subparsers.add_parser("files", help="MCP file tools (sftp-gateway)")
    sub = files.add_subparsers(dest="files_command", required=True)
    inspect = sub.add_parser("inspect", help="parse a tabular MCP file with a profile; rows and errors as JSON")
    inspect.add_argument("--profile", required=True, help="the MCP's profile YAML")
    inspect.add_argument("--kind", required=True, help="mif, referral, rtf or otf")
    inspect.add_argument("file", help="the file to parse")
    inspect.set_defaults(func=cmd_inspect)
