"""Remittance benchmark (issue 7): parse a generated 835 of 50,000 claim payments, plan its reconciliation in
memory, and reconcile it against 50,000 claims in PostgreSQL; read the same file with pyx12's segment readers for
comparison. Prints one JSON object.

Run: python bench/remittances.py [--claims 50000] [--repeat 3] [--database-url URL | env CALHUB_TEST_DATABASE_URL]

Measured:
- our parser (claims.x12.x835.parse_835: envelope checks + typed values for every segment);
- pyx12 4.0 `X12Reader` (segment reader with envelope checks: the reader the issue's trial measured at ~20,000
  claims/s) and `RawX12File` (its raw string splitter: no element parsing at all), on the same text;
- oxedi (Rust, 835 only), only when it is importable: it is not a dependency (docs/decisions/0070);
- the pure reconciliation (claims.domain.remittance.plan_remittance_file) against 50,000 in-memory claims.

- the PostgreSQL reconciliation (target ≤ 10 s on 2 cores): 50,000 claims (100,000 lines) seeded in a throwaway
  schema migrated like production, then `claims.service.take_remittance` — the one function behind POST
  /v1/remittances and the gateway's file.received — in one transaction: load the claims in chunks, plan, bulk
  insert postings, line postings, denials and history, bulk update claims and lines, write 50,000+ outbox events,
  commit. Reports wall and CPU seconds, claims/s and the process's peak RSS; checks what it posted.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import io
import json
import os
import resource
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "services" / "claims"))

from claims.domain.remittance import ClaimLine, ClaimRecord, file_sha256, plan_remittance_file  # noqa: E402
from claims.x12.x835 import parse_835  # noqa: E402

from shared.x12.envelope import EnvelopeSpec, Party, build_interchange  # noqa: E402

MCP = "testplan"
SERVICE_DATE = date(2026, 9, 15)


def generate(claims: int) -> str:
    """An 835 with `claims` claim payments: 80% paid (two lines), 15% paid with CO-45, 5% denied CO-16/N290."""
    body: list[list[str]] = []
    total = Decimal(0)
    for i in range(claims):
        claim_id = f"CLM-{i:07d}"
        kind = i % 20
        if kind == 0:
            body += [["CLP", claim_id, "4", "350", "0", "", "MC", f"PCN{i:07d}", "11", "1"],
                     ["NM1", "QC", "1", "TESTPERSON", "ALEX", "", "", "", "MI", f"{90000000 + i % 9999999:08d}A"],
                     ["MOA", "", "", "N290"],
                     ["SVC", "HC:G9008:U1", "350", "0", "", "1"], ["DTM", "472", "20260915"],
                     ["CAS", "CO", "16", "350"], ["REF", "6R", f"{claim_id}-1"]]
            continue
        if kind in (1, 2, 3):
            paid_line, adjustment = Decimal("150"), [["CAS", "CO", "45", "25"]]
        else:
            paid_line, adjustment = Decimal("175"), []
        paid = paid_line * 2
        total += paid
        body += [["CLP", claim_id, "1", "350", str(paid), "", "MC", f"PCN{i:07d}", "11", "1"],
                 ["NM1", "QC", "1", "TESTPERSON", "ALEX", "", "", "", "MI", f"{90000000 + i % 9999999:08d}A"],
                 ["DTM", "050", "20260920"]]
        for line in (1, 2):
            body += [["SVC", "HC:G9008:U1", "175", str(paid_line), "", "1"], ["DTM", "472", "20260915"],
                     *adjustment, ["REF", "6R", f"{claim_id}-{line}"], ["AMT", "B6", str(paid_line)]]
    header = [
        ["BPR", "I", str(total), "C", "ACH", "CCP", "01", "999999992", "DA", "123456", "1123456789", "", "01",
         "999988880", "DA", "98765", "20261015"],
        ["TRN", "1", "EFT-BENCH", "1123456789"], ["DTM", "405", "20261015"],
        ["N1", "PR", "TESTPLAN HEALTH"], ["N3", "100 TEST PLAZA"], ["N4", "SACRAMENTO", "CA", "95814"],
        ["PER", "BL", "PROVIDER SERVICES", "TE", "9165550100"],
        ["N1", "PE", "TESTHUB CBO NETWORK", "XX", "1234567893"], ["LX", "1"],
    ]
    spec = EnvelopeSpec(sender=Party("ZZ", "TESTPLAN", "TESTPLAN"), receiver=Party("ZZ", "CALHUBHUB", "CALHUB"),
                        interchange_control_number=1, group_control_number=1, functional_code="HP",
                        version="005010X221A1", created=datetime(2026, 10, 15, 9, 30))
    return build_interchange(spec, [header + body])


def our_claims(claims: int) -> dict[str, ClaimRecord]:
    """The claims the file pays, as the repository would hand them to the planner."""
    out = {}
    for i in range(claims):
        claim_id = f"CLM-{i:07d}"
        lines = (ClaimLine(f"{claim_id}-1", "G9008", ("U1",), SERVICE_DATE, Decimal(175)),
                 ClaimLine(f"{claim_id}-2", "G9008", ("U1",), SERVICE_DATE, Decimal(175)))
        out[claim_id] = ClaimRecord(claim_id, MCP, f"cbo_{i % 40}", f"mbr_{i}", Decimal(350), lines)
    return out


SEED_CLAIMS = """
INSERT INTO {s}.claim (id, mcp_code, cbo_organization_id, member_id, cin, member, program, service_code,
  prior_authorization_number, rendering_npi, billing_provider, billing_npi, claim_format, place_of_service,
  diagnosis_codes, service_month, service_from, service_to, frequency_code, status, expected_amount,
  rejection_reasons, batch_id, transaction_set, created_at, updated_at, submitted_at, acknowledged_at, version)
SELECT 'CLM-' || lpad(i::text, 7, '0'), 'healthnet', 'cbo_' || (i % 40), 'mbr_' || i,
  lpad((90000000 + i % 9999999)::text, 8, '0') || 'A', '{{}}', 'ecm', 'ecm_clinical', 'AUTH0001', '1245319599', 'hub',
  '1234567893', '837p', '11', '["Z5900"]', DATE '2026-09-01', DATE '2026-09-15', DATE '2026-09-15', '1', 'accepted',
  350, '[]', 'BBENCH', '0001', now(), now(), now(), now(), 1
FROM generate_series(0, :n - 1) AS i
"""
SEED_LINES = """
INSERT INTO {s}.claim_line (claim_id, line_number, encounter_id, hcpcs, modifiers, units, charge, service_from,
  service_to, place_of_service, diagnosis_pointers)
SELECT 'CLM-' || lpad(i::text, 7, '0'), l, 'CLM-' || lpad(i::text, 7, '0') || '-' || l, 'G9008', '["U1"]', 1, 175,
  DATE '2026-09-15', DATE '2026-09-15', '11', '[1]'
FROM generate_series(0, :n - 1) AS i, generate_series(1, 2) AS l
"""


async def postgres_reconcile(text: str, claims: int, url: str) -> dict[str, Any]:
    """Seed `claims` claims in a throwaway schema and post the 835 against them through take_remittance."""
    from claims import service
    from claims.bootstrap import definition
    from claims.settings import ClaimsSettings
    from claims.testkit import make_billing
    from sqlalchemy import text as sql

    from shared.bus.inprocess import InProcessBus
    from shared.runtime import ServiceRuntime
    from shared.scheduler import FixedClock
    from shared.settings import PlatformSettings

    platform = PlatformSettings(mode="distributed", data_dir=Path("/tmp"), database_url=url,
                                schema_suffix=f"_bench{uuid.uuid4().hex[:8]}")
    settings = ClaimsSettings(run_consumers=False, run_relay=False, run_batch_schedule=False)
    now = datetime(2026, 10, 20, 17, 0, tzinfo=UTC)
    runtime = ServiceRuntime(definition=definition(clock=FixedClock(now), billing=make_billing()),
                             platform=platform, settings=settings, bus=InProcessBus())
    schema = f'"{runtime.physical_schema}"'
    try:
        await runtime.migrate()
        started = time.perf_counter()
        async with runtime.engine.begin() as conn:
            await conn.execute(sql(SEED_CLAIMS.format(s=schema)), {"n": claims})
            await conn.execute(sql(SEED_LINES.format(s=schema)), {"n": claims})
            for table in ("claim", "claim_line"):
                await conn.execute(sql(f"ANALYZE {schema}.{table}"))
        seeded = time.perf_counter() - started
        content = text.encode()
        gc.collect()
        cpu, wall = time.process_time(), time.perf_counter()
        async with runtime.uow() as uow:
            intake = await service.take_remittance(uow, content, mcp_code="healthnet", source="api",
                                                   actor=service.Actor(system="bench"), received_at=now)
            await uow.commit()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        async with runtime.engine.connect() as conn:
            statuses = dict((await conn.execute(sql(
                f"SELECT status, count(*) FROM {schema}.claim GROUP BY status"))).all())
            outbox = await conn.scalar(sql(f"SELECT count(*) FROM {schema}.outbox"))
            denials = await conn.scalar(sql(f"SELECT count(*) FROM {schema}.denial"))
            lines = await conn.scalar(sql(f"SELECT count(*) FROM {schema}.line_payment"))
        assert intake.status == "accepted" and statuses.get("paid", 0) + statuses.get("denied", 0) == claims, \
            (intake.as_dict()["remittances"], statuses)
        return {"postgres_seed_seconds": round(seeded, 1), "postgres_reconcile_seconds": round(wall, 3),
                "postgres_reconcile_cpu_seconds": round(cpu, 3),
                "postgres_claims_per_second": round(claims / wall),
                "postgres_target": "<= 10 s on 2 cores", "postgres_claims_paid": statuses.get("paid", 0),
                "postgres_claims_denied": statuses.get("denied", 0), "postgres_line_postings": lines,
                "postgres_denials": denials, "postgres_outbox_events": outbox}
    finally:
        async with runtime.engine.begin() as conn:
            await conn.execute(sql(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
        await runtime.engine.dispose()


def best_of(repeat: int, run: Callable[[], object]) -> float:
    """The fastest of `repeat` timed runs (seconds), with a full collection between runs."""
    times = []
    for _ in range(repeat):
        gc.collect()
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    """Run the benchmark and print one JSON object."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--claims", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--database-url", default=None, help="PostgreSQL (default: CALHUB_TEST_DATABASE_URL)")
    args = parser.parse_args()

    import pyx12.rawx12file
    import pyx12.x12file

    text = generate(args.claims)
    parsed = parse_835(text)
    assert parsed.claim_count == args.claims

    ours = best_of(args.repeat, lambda: parse_835(text))
    reader = best_of(args.repeat, lambda: sum(1 for _ in pyx12.x12file.X12Reader(io.StringIO(text))))
    raw = best_of(args.repeat, lambda: sum(1 for _ in pyx12.rawx12file.RawX12File(io.StringIO(text))))
    result: dict[str, object] = {
        "benchmark": "remittances",
        "claims": args.claims,
        "segments": text.count("~"),
        "file_bytes": len(text),
        "parse_seconds": round(ours, 3),
        "parse_claims_per_second": round(args.claims / ours),
        "pyx12_x12reader_seconds": round(reader, 3),
        "pyx12_x12reader_claims_per_second": round(args.claims / reader),
        "parse_speed_vs_pyx12_x12reader": round(reader / ours, 2),
        "pyx12_rawx12file_seconds": round(raw, 3),
        "pyx12_rawx12file_claims_per_second": round(args.claims / raw),
        "parse_speed_vs_pyx12_rawx12file": round(raw / ours, 2),
    }
    try:
        import oxedi
    except ImportError:
        result["oxedi"] = "not installed (optional)"
    else:
        data = text.encode()
        seconds = best_of(args.repeat, lambda: oxedi.parse(data))
        result["oxedi_seconds"] = round(seconds, 3)
        result["oxedi_claims_per_second"] = round(args.claims / seconds)

    claims = our_claims(args.claims)
    sha = file_sha256(text.encode())
    plan = plan_remittance_file(parsed, claims, sha256=sha, mcp_code=MCP)
    assert plan.remittances[0].balance.balanced and not plan.remittances[0].exceptions
    reconcile = best_of(args.repeat, lambda: plan_remittance_file(parsed, claims, sha256=sha, mcp_code=MCP))
    result.update({
        "reconcile_seconds": round(reconcile, 3),
        "reconcile_claims_per_second": round(args.claims / reconcile),
        "parse_and_reconcile_claims_per_second": round(args.claims / (ours + reconcile)),
        "peak_rss_mb_pure": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    })
    del plan  # the lambdas keep `claims` and `parsed` alive; the pure stage's memory stays in the peak
    url = args.database_url or os.environ.get("CALHUB_TEST_DATABASE_URL")
    if url:
        result.update(asyncio.run(postgres_reconcile(text, args.claims, url)))
    else:
        result["postgres_reconcile_seconds"] = "skipped: no --database-url or CALHUB_TEST_DATABASE_URL"
    result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
