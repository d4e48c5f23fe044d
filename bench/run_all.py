"""Run every benchmark in bench/ (each prints one JSON object) with a timeout each; print one combined JSON object.

    eval "$(scripts/dev-services.sh env)"; python bench/run_all.py [--timeout 900] [--only claims,bus] [--quick]

Each benchmark runs in its own process, one after another (they would compete for the same 2 cores otherwise),
with the environment of this process (CALHUB_TEST_DATABASE_URL and CALHUB_TEST_KAFKA for those that need real
infrastructure). A benchmark that fails, times out or prints no JSON is reported with its exit code and the tail
of its stderr instead of a result; the run goes on. `--quick` passes each benchmark smaller sizes (a smoke run,
not figures for docs/performance.md). The machine's CPU count, load average and Python version are recorded
beside the results, since every figure depends on them.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
# Smaller sizes for a smoke run; the defaults of each benchmark are the documented figures.
QUICK_ARGS: dict[str, list[str]] = {
    "authorizations": ["--rows", "20000", "--due", "300"],
    "bus": ["--n", "5000"],
    "claims": ["--claims", "5000", "--skip-guide"],
    "eligibility": ["--members", "10000"],
    "gateway": ["--rows", "10000", "--uploads", "4", "--upload-mb", "1"],
    "ops_journal": ["--lineages", "300"],
    "referrals": ["--seconds", "5", "--warmup", "1"],
    "remittances": ["--claims", "5000", "--repeat", "1"],
}


def benchmarks() -> list[str]:
    """Names of the benchmark scripts next to this one (every bench/*.py but this runner)."""
    return sorted(p.stem for p in BENCH.glob("*.py") if p.stem != Path(__file__).stem and not p.stem.startswith("_"))


def last_json_object(stdout: str) -> dict[str, Any] | None:
    """The benchmark's JSON object: the whole output, else the last line that parses as an object."""
    text = stdout.strip()
    candidates = [text, *reversed(text.splitlines())]
    for candidate in candidates:
        try:
            value = json.loads(candidate)
        except ValueError:
            continue
        if isinstance(value, dict):
            return value
    return None


def run_one(name: str, *, timeout: float, quick: bool) -> dict[str, Any]:
    """Run one benchmark; its JSON result, or what went wrong."""
    command = [sys.executable, str(BENCH / f"{name}.py"), *(QUICK_ARGS.get(name, []) if quick else [])]
    started = time.monotonic()
    try:
        completed = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False,  # noqa: S603
                                   cwd=BENCH.parent, env=os.environ.copy())
    except subprocess.TimeoutExpired as exc:
        return {"status": "timeout", "timeout_seconds": timeout,
                "stderr_tail": _tail(exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes)
                                     else exc.stderr or "")}
    elapsed = round(time.monotonic() - started, 1)
    result = last_json_object(completed.stdout)
    if completed.returncode != 0 or result is None:
        return {"status": "failed", "exit_code": completed.returncode, "wall_seconds": elapsed,
                "stderr_tail": _tail(completed.stderr), "stdout_tail": _tail(completed.stdout)}
    return {"status": "ok", "wall_seconds": elapsed, "result": result}


def _tail(text: str, lines: int = 15) -> str:
    return "\n".join((text or "").splitlines()[-lines:])


def machine() -> dict[str, Any]:
    """What the figures depend on."""
    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        load = []
    return {"cpus": os.cpu_count(), "load_average": load, "python": platform.python_version(),
            "platform": platform.platform(), "date": datetime.now(UTC).isoformat(timespec="seconds")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per benchmark")
    parser.add_argument("--only", default="", help="comma-separated benchmark names")
    parser.add_argument("--quick", action="store_true", help="smaller sizes: a smoke run")
    args = parser.parse_args(argv)
    names = benchmarks()
    if args.only:
        wanted = [n.strip() for n in args.only.split(",") if n.strip()]
        unknown = sorted(set(wanted) - set(names))
        if unknown:
            parser.error(f"unknown benchmark(s) {unknown}; choose from {names}")
        names = [n for n in names if n in wanted]
    report: dict[str, Any] = {"machine_before": machine(), "quick": args.quick, "benchmarks": {}}
    for name in names:
        report["benchmarks"][name] = run_one(name, timeout=args.timeout, quick=args.quick)
    report["machine_after"] = machine()
    report["failed"] = sorted(n for n, r in report["benchmarks"].items() if r["status"] != "ok")
    sys.stdout.write(json.dumps(report, default=str) + "\n")
    return 0 if not report["failed"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
