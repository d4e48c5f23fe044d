"""Benchmark of the eligibility X12 paths: 270s for 100,000 members, and a 100,000-subscriber 271 read and
interpreted. Prints one JSON object: seconds, members/s and peak memory (RSS of a fresh process) per phase.

    python bench/eligibility.py [--members 100000]

Target (issue 5): each phase ≤ 10 s on 2 cores. Synthetic members only (CIN 9xxxxxxxA, surname Testperson).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import resource
import sys
import time
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

# Run as a script, this file's folder comes first on sys.path and its name would hide the service package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

CREATED = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def _peak_mib() -> float:
    # ru_maxrss is KiB on Linux, bytes on macOS.
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / (1024 * 1024 if sys.platform == "darwin" else 1024), 1)


def _inquiry(members: int) -> Any:
    from eligibility.x12.x270 import Entity, InquiryBatch, SubscriberInquiry

    return InquiryBatch(
        reference="eb_bench", created=CREATED, source=Entity("L.A. Care Health Plan", "PI", "LACARE"),
        receiver=Entity("CalHub Hub", "XX", "1234567893"), originator_id="9CALHUB000",
        subscribers=[SubscriberInquiry(trace=f"chk_{i:032x}", cin=f"9{i:07d}A", last_name="Testperson",
                                       first_name="Ana", birth_date=date(1980, 1, 2), gender="F",
                                       service_date=date(2026, 3, 1)) for i in range(members)])


def _envelope(functional_code: str) -> Any:
    from shared.x12.envelope import EnvelopeSpec, Party

    return EnvelopeSpec(sender=Party("ZZ", "CALHUB", "CALHUB"), receiver=Party("ZZ", "LACARE", "LACARE"),
                        interchange_control_number=1, group_control_number=1, functional_code=functional_code,
                        version="005010X279A1", created=CREATED)


def generate_270(members: int) -> dict[str, Any]:
    """Build (and check) the 270 for `members` members, as the monthly batch does."""
    from eligibility.x12.x270 import build_270

    inquiry = _inquiry(members)
    started = time.perf_counter()
    text = build_270(_envelope("HS"), inquiry, line_breaks=True)
    payload = text.encode("ascii")
    seconds = time.perf_counter() - started
    return {"members": members, "seconds": round(seconds, 3), "members_per_second": round(members / seconds),
            "bytes": len(payload), "peak_rss_mib": _peak_mib()}


def _response_text(members: int) -> str:
    from shared.x12.envelope import build_interchange

    body: list[list[str]] = [["BHT", "0022", "11", "eb_bench", "20260302", "0900"], ["HL", "1", "", "20", "1"],
                             ["NM1", "PR", "2", "L.A. CARE HEALTH PLAN", "", "", "", "", "PI", "LACARE"],
                             ["HL", "2", "1", "21", "1"],
                             ["NM1", "1P", "2", "CALHUB HUB", "", "", "", "", "XX", "1234567893"]]
    for i in range(members):
        body += [["HL", str(i + 3), "2", "22", "0"], ["TRN", "2", f"chk_{i:032x}", "9CALHUB000"],
                 ["NM1", "IL", "1", "TESTPERSON", "ANA", "", "", "", "MI", f"9{i:07d}A"],
                 ["DMG", "D8", "19800102", "F"]]
        if i % 10 == 9:  # one in ten lost coverage at the end of February
            body += [["EB", "6", "IND", "30", "MC"], ["DTP", "357", "D8", "20260228"]]
        else:
            body += [["EB", "1", "IND", "30", "MC", "MEDI-CAL MANAGED CARE"], ["DTP", "346", "D8", "20250101"]]
    return build_interchange(_envelope("HB"), [body], line_breaks=True)


def parse_271(members: int) -> dict[str, Any]:
    """Validate, read and interpret a 271 answering `members` members, as a 271 file is applied."""
    from eligibility.domain.responses import interpret
    from eligibility.x12.x271 import read_271

    text = _response_text(members)
    started = time.perf_counter()
    response = read_271(text)
    answers = [interpret(s, mcp_code="lacare", as_of=date(2026, 3, 2), observed_at=CREATED, plan_of=lambda _: None)
               for s in response.subscribers()]
    seconds = time.perf_counter() - started
    lost = sum(1 for a in answers if a.observations and not a.observations[0].active)
    assert len(answers) == members and lost == members // 10
    return {"members": members, "seconds": round(seconds, 3), "members_per_second": round(members / seconds),
            "bytes": len(text), "peak_rss_mib": _peak_mib()}


def _run(phase: str, members: int) -> dict[str, Any]:
    return generate_270(members) if phase == "generate_270" else parse_271(members)


def main(argv: list[str] | None = None) -> int:
    """Run each phase in a fresh process (so peak memory is the phase's own) and print the JSON result."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--members", type=int, default=100_000)
    args = parser.parse_args(argv)
    context = multiprocessing.get_context("spawn")
    result: dict[str, Any] = {"benchmark": "eligibility", "target_seconds": 10}
    for phase in ("generate_270", "parse_271"):
        with context.Pool(1) as pool:
            result[phase] = pool.apply(_run, (phase, args.members))
    result["within_target"] = all(result[p]["seconds"] <= 10 for p in ("generate_270", "parse_271"))
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
