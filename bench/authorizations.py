"""Benchmark: 1,000,000 authorizations in PostgreSQL; find and emit the ~3,000 expiring today.

Seeds a throwaway schema (migrated like production) with `--rows` authorizations of which `--due` have their
expiring notice due today (2/3 of those members engaged, all eligible), the rest spread over every status and
period; then fires the day's expiry sweep through the service's real Scheduler and handlers: claim the due
rows, raise authorization.expiring, open the reauthorization requests or care-team tasks, write the outbox,
commit. Prints one JSON object: seconds and peak Python memory (tracemalloc) for the sweep in one chunk and in
chunks of 1,000, and for the bare "find" query. Needs CALHUB_TEST_DATABASE_URL (or --database-url).

    python bench/authorizations.py [--rows 1000000] [--due 3000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
import tracemalloc
import uuid
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

# Run as a script, this file's folder comes first on sys.path and its name would hide the service package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

from authorizations.bootstrap import definition  # noqa: E402
from authorizations.models import Authorization  # noqa: E402
from authorizations.repository import AuthorizationsUnitOfWork  # noqa: E402
from authorizations.service import EXPIRY_SWEEP, REAUTHORIZATION_STEP, SWEEP_SUBJECT  # noqa: E402
from authorizations.settings import AuthorizationsSettings  # noqa: E402
from authorizations.timers import AuthorizationScheduler  # noqa: E402
from sqlalchemy import func, select, text  # noqa: E402

from shared.bus.inprocess import InProcessBus  # noqa: E402
from shared.runtime import ServiceRuntime  # noqa: E402
from shared.scheduler import FixedClock, schedule  # noqa: E402
from shared.settings import PlatformSettings  # noqa: E402

NOW = datetime(2027, 2, 2, 8, 0, 1, tzinfo=UTC)  # 2027-02-02 00:00:01 Pacific
TODAY = date(2027, 2, 2)

SEED = """
INSERT INTO {s}."authorization" (
  id, referral_id, correlation_id, member_id, member, mcp_code, cbo_organization_id, referring_organization_id,
  program, service_key, service, urgency, requested_urgency, origin, status, requested_at, decision_due,
  original_decision_due, calendar, deadline_basis, expedited_by_rule, clock_stopped, decided_at, decision,
  decided_within_deadline, mcp_authorization_number, period_start, period_end, presumptive, review_flags,
  expiring_due_on, expiry_due_on, created_at, updated_at)
SELECT 'auth_' || lpad(to_hex(n), 32, '0'), 'ref_' || n, gen_random_uuid(), 'mbr_' || lpad(to_hex(n), 24, '0'),
  json_build_object('cin', (90000000 + n % 9999999)::text || 'A', 'last_name', 'Testperson',
                    'first_name', 'Alex', 'birth_date', '1980-01-01'),
  (ARRAY['lacare', 'healthnet', 'molina', 'anthem'])[1 + n % 4], 'org_cbo_' || (n % 50), 'org_referrer',
  'ecm', 'ecm', CAST('{{"program": "ecm", "pof_codes": ["1a"]}}' AS json), 'standard', 'standard', 'referral',
  CASE WHEN n <= CAST(:due AS integer) OR k < 6 THEN 'approved' WHEN k < 8 THEN 'expired' WHEN k = 8 THEN 'requested'
       ELSE 'denied' END,
  t0 - interval '200 days', t0 - interval '190 days', t0 - interval '190 days', 'us-ca-state',
  'standard_business_days', false, false, t0 - interval '195 days', 'approved', true, 'MCP-' || n,
  p_end - 364, p_end, false, CAST('[]' AS json),
  CASE WHEN n <= CAST(:due AS integer) THEN today WHEN k < 3 THEN p_end - 30 ELSE NULL END,
  CASE WHEN n <= CAST(:due AS integer) OR k < 6 THEN p_end + 1 ELSE NULL END,
  t0 - interval '200 days', t0 - interval '195 days'
FROM (
  SELECT n, n % 10 AS k, CAST(:today AS date) AS today, CAST(:t0 AS timestamptz) AS t0,
         CASE WHEN n <= CAST(:due AS integer) THEN CAST(:today AS date) + 30
              WHEN n % 10 < 3 THEN CAST(:today AS date) + 31 + (n % 400)
              WHEN n % 10 < 6 THEN CAST(:today AS date) + 1 + (n % 29)
              ELSE CAST(:today AS date) - 1 - (n % 700) END AS p_end
  FROM generate_series(CAST(:first AS integer), CAST(:last AS integer)) AS n) AS seed
"""
ENGAGEMENT = """
INSERT INTO {s}.member_engagement (member_id, program, last_encounter_on, updated_at)
SELECT 'mbr_' || lpad(to_hex(n), 24, '0'), 'ecm', CAST(:today AS date) - (n % 50), CAST(:t0 AS timestamptz)
FROM generate_series(CAST(:first AS integer), CAST(:last AS integer)) AS n WHERE n % 3 <> 0
"""
ELIGIBILITY = """
INSERT INTO {s}.member_eligibility (member_id, eligible, mcp_code, as_of, updated_at)
SELECT 'mbr_' || lpad(to_hex(n), 24, '0'), true, (ARRAY['lacare', 'healthnet', 'molina', 'anthem'])[1 + n % 4],
       CAST(:today AS date) - 20, CAST(:t0 AS timestamptz)
FROM generate_series(CAST(:first AS integer), CAST(:last AS integer)) AS n
"""


async def seed(runtime: ServiceRuntime, rows: int, due: int) -> float:
    started = time.perf_counter()
    schema = f'"{runtime.physical_schema}"'
    step = 200_000
    async with runtime.engine.begin() as conn:
        for first in range(1, rows + 1, step):
            params = {"first": first, "last": min(rows, first + step - 1), "due": due, "today": TODAY, "t0": NOW}
            await conn.execute(text(SEED.format(s=schema)), params)
            await conn.execute(text(ENGAGEMENT.format(s=schema)), params)
            await conn.execute(text(ELIGIBILITY.format(s=schema)), params)
        for table in ("authorization", "member_engagement", "member_eligibility"):
            await conn.execute(text(f'ANALYZE {schema}."{table}"'))
    return time.perf_counter() - started


async def arm_sweep(runtime: ServiceRuntime) -> None:
    async with runtime.uow() as uow:
        await schedule(uow.session, uow.tables, kind=EXPIRY_SWEEP, subject=SWEEP_SUBJECT, due_at=NOW,
                       payload={"day": TODAY.isoformat()})
        await uow.commit()


async def timed(coroutine: Any) -> tuple[Any, float]:
    """(result, seconds) of one awaited call."""
    started = time.perf_counter()
    result = await coroutine
    return result, time.perf_counter() - started


async def peak_memory(coroutine: Any) -> tuple[Any, float]:
    """(result, peak MiB of Python allocations) of one awaited call (tracemalloc slows it: not timed)."""
    tracemalloc.start()
    tracemalloc.reset_peak()
    try:
        result = await coroutine
        return result, tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()


async def reset(runtime: ServiceRuntime) -> None:
    """Undo a previous run: its reauthorization requests, tasks, timers, outbox, history and marks."""
    schema = f'"{runtime.physical_schema}"'
    async with runtime.engine.begin() as conn:
        await conn.execute(text(f"DELETE FROM {schema}.\"authorization\" WHERE origin = 'reauthorization'"))
        for table in ("care_team_task", "timer", "outbox", "authorization_history"):
            await conn.execute(text(f'DELETE FROM {schema}."{table}"'))
        await conn.execute(text(f"UPDATE {schema}.\"authorization\" SET expiring_due_on = :today, "
                                "expiring_raised_at = NULL, reauthorization = NULL "
                                "WHERE expiring_raised_at IS NOT NULL"), {"today": TODAY})


async def fire(part: AuthorizationScheduler, kind: str) -> int:
    """Fire due timers of one kind until none is left; returns the transactions that ran."""
    fired = 0
    while True:
        async with part.runtime.uow() as uow:
            timer = uow.tables.timer
            due = await uow.session.scalar(select(func.count()).select_from(timer).where(
                timer.c.kind == kind, timer.c.status == "pending", timer.c.due_at <= NOW))
        if not due:
            return fired
        fired += await part.scheduler.fire_due()


async def chunked_run(runtime: ServiceRuntime, chunk: int, *, memory: bool) -> dict[str, Any]:
    """Sweep and reauthorization in chunks: continuations interleave, so only their total is measured."""
    await reset(runtime)
    runtime.ports["settings"] = AuthorizationsSettings(sweep_chunk=chunk, run_consumers=False, run_relay=False)
    await arm_sweep(runtime)
    part = AuthorizationScheduler(runtime)

    async def everything() -> int:
        return await fire(part, EXPIRY_SWEEP) + await fire(part, REAUTHORIZATION_STEP)

    fired, value = await (peak_memory if memory else timed)(everything())
    async with runtime.sessions() as session:
        events = await session.scalar(select(func.count()).select_from(runtime.definition.tables.outbox))
    unit = "peak_python_mib" if memory else "seconds"
    return {"chunk": chunk, "sweep_and_reauthorization": {unit: round(value, 3), "transactions": fired,
                                                          "events": events}}


async def sweep_run(runtime: ServiceRuntime, chunk: int, *, memory: bool) -> dict[str, Any]:
    """Arm the day's sweep on freshly reset rows and fire it, then the reauthorization step it arms."""
    await reset(runtime)
    runtime.ports["settings"] = AuthorizationsSettings(sweep_chunk=chunk, run_consumers=False, run_relay=False)
    await arm_sweep(runtime)
    part = AuthorizationScheduler(runtime)
    measure = peak_memory if memory else timed
    # The reauthorization step is armed by the sweep; it must wait until the sweep is measured.
    sweep_fired, sweep_value = await measure(fire(part, EXPIRY_SWEEP))
    async with runtime.sessions() as session:
        expiring = await session.scalar(select(func.count()).select_from(runtime.definition.tables.outbox))
    reauth_fired, reauth_value = await measure(fire(part, REAUTHORIZATION_STEP))
    async with runtime.sessions() as session:
        events = await session.scalar(select(func.count()).select_from(runtime.definition.tables.outbox))
        requested = await session.scalar(select(func.count()).select_from(Authorization)
                                         .where(Authorization.origin == "reauthorization"))
    unit = "peak_python_mib" if memory else "seconds"
    return {"chunk": chunk,
            "expiring_sweep": {unit: round(sweep_value, 3), "transactions": sweep_fired,
                               "expiring_events": expiring},
            "reauthorization_step": {unit: round(reauth_value, 3), "transactions": reauth_fired,
                                     "requests_opened": requested, "events": (events or 0) - (expiring or 0)}}


async def find_only(runtime: ServiceRuntime, due: int) -> dict[str, Any]:
    """The bare claim of the due rows (rolled back): time, memory and whether it reads the index."""

    async def find() -> int:
        async with runtime.uow() as uow:
            assert isinstance(uow, AuthorizationsUnitOfWork)
            rows = await uow.authorizations.claim_expiring(TODAY, due + 1000)
            await uow.rollback()
            return len(rows)

    found, seconds = await timed(find())
    _, peak = await peak_memory(find())
    async with runtime.engine.connect() as conn:
        await conn.execute(text(f'SET search_path TO "{runtime.physical_schema}"'))
        plan = (await conn.execute(text(
            "EXPLAIN SELECT id FROM \"authorization\" WHERE expiring_due_on <= :today "
            "AND status IN ('approved', 'suspended') ORDER BY expiring_due_on, id LIMIT 4000"),
            {"today": TODAY})).scalars().all()
    return {"rows_found": found, "seconds": round(seconds, 3), "peak_python_mib": round(peak, 1),
            "uses_index": any("ix_authorization_expiring_due_on" in line for line in plan)}


async def main(args: argparse.Namespace) -> dict[str, Any]:
    url = args.database_url or os.environ.get("CALHUB_TEST_DATABASE_URL")
    if not url:
        raise SystemExit("set CALHUB_TEST_DATABASE_URL (scripts/dev-services.sh env) or pass --database-url")
    platform = PlatformSettings(mode="distributed", data_dir=Path("/tmp"), database_url=url,
                                schema_suffix=f"_bench{uuid.uuid4().hex[:8]}")
    settings = AuthorizationsSettings(run_consumers=False, run_relay=False, run_scheduler=False)
    runtime = ServiceRuntime(definition=definition(clock=FixedClock(NOW)), platform=platform, settings=settings,
                             bus=InProcessBus())
    try:
        await runtime.migrate()
        seeded = await seed(runtime, args.rows, args.due)
        find = await find_only(runtime, args.due)
        whole = max(args.due + 1000, 5000)
        runs = {"one_chunk_time": await sweep_run(runtime, whole, memory=False),
                "one_chunk_memory": await sweep_run(runtime, whole, memory=True),
                "chunks_of_1000_time": await chunked_run(runtime, 1000, memory=False),
                "chunks_of_1000_memory": await chunked_run(runtime, 1000, memory=True)}
        return {"benchmark": "authorizations.expiring_today", "authorizations": args.rows, "due_today": args.due,
                "seed_seconds": round(seeded, 1), "find": find, **runs,
                "target": "find and emit the due notices <= 1 s, memory bounded by the chunk not the table"}
    finally:
        if not args.keep:
            async with runtime.engine.begin() as conn:
                await conn.execute(text(f'DROP SCHEMA IF EXISTS "{runtime.physical_schema}" CASCADE'))
        await runtime.engine.dispose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--due", type=int, default=3_000)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--keep", action="store_true", help="keep the seeded schema")
    sys.stdout.write(json.dumps(asyncio.run(main(parser.parse_args()))) + "\n")
