"""Benchmark of referral intake in distributed mode: one uvicorn worker on PostgreSQL and Kafka, load from a
separate process; a bare FastAPI endpoint is measured in the same run for the ratio. Prints one JSON object.

    eval "$(scripts/dev-services.sh env)"; python bench/referrals.py [--seconds 20] [--concurrency 32]

Each request is a valid ECM referral for a distinct synthetic member (so none is a 409 duplicate); success is
201. The service's schema (a unique suffix), its topics (a unique prefix) and its API key are throwaway.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from starlette.requests import Request

ROOT = Path(__file__).resolve().parents[1]
TARGET = {"referrals_per_second": 500, "p99_ms": 100, "cores": 2}


def _body(n: int) -> dict[str, Any]:
    cin = f"{90000000 + n % 10_000_000:08d}{chr(ord('A') + (n // 10_000_000) % 26)}"
    return {
        "member": {"cin": cin, "last_name": "Testperson", "first_name": "Bench", "birth_date": "1970-01-01",
                   "address": {"line1": "1 Bench Way", "city": "Los Angeles", "zip": "90012",
                               "county": "Los Angeles"}},
        "mcp_code": "lacare", "service": {"program": "ecm", "pof_codes": ["2"]},
        "referring": {"npi": "1234567893", "contact": {"name": "Bench Contact", "phone": "2135550100"}},
    }


# ------------------------------------------------------------------------------------------ bare app

def bare_app() -> Any:
    """A FastAPI app doing the minimum per request: parse the JSON body, answer 201 with a small body."""
    from fastapi import FastAPI
    from fastapi.responses import JSONResponse

    app = FastAPI()

    @app.post("/v1/referrals")
    async def accept(request: "Request") -> JSONResponse:  # noqa: UP037 - resolved from module globals
        body = await request.json()
        return JSONResponse({"id": uuid.uuid4().hex, "cin": body["member"]["cin"]}, status_code=201)

    @app.get("/ready")
    async def ready() -> dict[str, bool]:
        return {"ready": True}

    return app


# ------------------------------------------------------------------------------------------ load

class _Connection:
    """A minimal HTTP/1.1 keep-alive client connection for the load generator.

    httpx spends about a millisecond of CPU per request; on 2 shared cores that made the load generator, not the
    server, the bottleneck of both measurements. This one writes pre-built request bytes and parses only the
    status line, Content-Length (or chunked framing) and the body.
    """

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, raw: bytes) -> int:
        """Send one request (bytes) and return the response status; reconnects when the server closed."""
        if self.writer is None or self.reader is None or self.reader.at_eof():
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        self.writer.write(raw)
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split(b" ", 2)[1])
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(b":") for line in lines[1:] if line)}
        if headers.get(b"transfer-encoding", b"").lower() == b"chunked":
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
                await self.reader.readexactly(size + 2)
                if size == 0:
                    break
        else:
            await self.reader.readexactly(int(headers.get(b"content-length", b"0")))
        if headers.get(b"connection", b"").lower() == b"close":
            self.writer.close()
            self.reader = self.writer = None
        return status

    def close(self) -> None:
        """Close the socket."""
        if self.writer is not None:
            self.writer.close()


def _post_bytes(host: str, port: int, key: str, body: dict[str, Any]) -> bytes:
    payload = json.dumps(body, separators=(",", ":")).encode()
    return (f"POST /v1/referrals HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Bearer {key}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n").encode() + payload


async def _load(url: str, key: str, seconds: float, warmup: float, concurrency: int, offset: int) -> dict[str, Any]:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", int(parts.port or 80)
    latencies: list[float] = []
    statuses: dict[str, int] = {}
    counter = offset
    connections = [_Connection(host, port) for _ in range(concurrency)]
    start = time.perf_counter()
    measure_from = start + warmup
    stop_at = measure_from + seconds

    async def worker(connection: _Connection) -> None:
        nonlocal counter
        while True:
            now = time.perf_counter()
            if now >= stop_at:
                return
            counter += 1
            raw = _post_bytes(host, port, key, _body(counter))
            sent = time.perf_counter()
            status = await connection.request(raw)
            done = time.perf_counter()
            if sent >= measure_from:
                latencies.append(done - sent)
                statuses[str(status)] = statuses.get(str(status), 0) + 1

    try:
        await asyncio.gather(*(worker(c) for c in connections))
    finally:
        for connection in connections:
            connection.close()
    ok = statuses.get("201", 0)
    ordered = sorted(latencies)

    def pct(p: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(p * len(ordered)))] * 1000, 2) if ordered else 0.0

    return {"requests": len(latencies), "created": ok, "per_second": round(ok / seconds, 1),
            "p50_ms": pct(0.50), "p99_ms": pct(0.99), "mean_ms": round(statistics.fmean(ordered) * 1000, 2)
            if ordered else 0.0, "statuses": statuses}


def _run_load(url: str, key: str, seconds: float, warmup: float, concurrency: int, offset: int) -> dict[str, Any]:
    """The load generator in its own process (so it does not share the server's event loop or GIL)."""
    out = subprocess.run(  # noqa: S603 - our own interpreter and script
        [sys.executable, __file__, "--load", url, "--key", key, "--seconds", str(seconds), "--warmup", str(warmup),
         "--concurrency", str(concurrency), "--offset", str(offset)],
        check=True, capture_output=True, text=True, cwd=ROOT)
    result: dict[str, Any] = json.loads(out.stdout)
    return result


# ------------------------------------------------------------------------------------------ servers

def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_ready(url: str, process: subprocess.Popen[bytes], timeout: float = 90.0) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            if httpx.get(f"{url}/ready", timeout=2.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError("server did not become ready")


async def _make_key(database_url: str) -> str:
    from shared.auth import AuthStore, create_auth_schema

    await create_auth_schema(database_url)
    store = AuthStore.from_url(database_url)
    try:
        org = await store.create_organization("cbo", "Bench CBO (synthetic)", code=f"bench-{uuid.uuid4().hex[:8]}")
        return (await store.create_api_key(org.id, ["referrals:read", "referrals:write"])).plaintext
    finally:
        await store.close()


async def _drop_schema(database_url: str, schema: str) -> None:
    from sqlalchemy import text

    from shared.db import create_engine

    engine = create_engine(database_url, schema=None)
    async with engine.begin() as conn:
        await conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    await engine.dispose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--load")
    parser.add_argument("--key", default="")
    parser.add_argument("--offset", type=int, default=0)
    parser.add_argument("--serve-bare", type=int)
    args = parser.parse_args()

    if args.serve_bare:
        import uvicorn

        uvicorn.run(bare_app(), host="127.0.0.1", port=args.serve_bare, log_level="warning", access_log=False,
                    loop="uvloop", http="httptools")
        return 0
    if args.load:
        import uvloop

        uvloop.install()  # the load generator must cost the shared cores as little as possible
        result = asyncio.run(_load(args.load, args.key, args.seconds, args.warmup, args.concurrency, args.offset))
        sys.stdout.write(json.dumps(result) + "\n")
        return 0

    database_url = os.environ.get("CALHUB_TEST_DATABASE_URL")
    kafka = os.environ.get("CALHUB_TEST_KAFKA")
    if not database_url or not kafka:
        sys.stderr.write("run `eval \"$(scripts/dev-services.sh env)\"` first\n")
        return 2
    suffix = f"_b{uuid.uuid4().hex[:8]}"
    key = asyncio.run(_make_key(database_url))
    env = {**os.environ, "CALHUB_MODE": "distributed", "CALHUB_DATABASE_URL": database_url,
           "CALHUB_KAFKA_BOOTSTRAP_SERVERS": kafka, "CALHUB_TOPIC_PREFIX": f"bench{suffix}.",
           "CALHUB_SCHEMA_SUFFIX": suffix, "CALHUB_LOG_LEVEL": "WARNING", "PYTHONPATH": str(ROOT),
           "CALHUB_MEMBER_ID_SECRET": os.environ.get("CALHUB_MEMBER_ID_SECRET", f"bench-secret{suffix}")}
    service_port, bare_port = _free_port(), _free_port()
    service = subprocess.Popen(  # noqa: S603
        [sys.executable, "-m", "uvicorn", "--factory", "referrals.main:create_app", "--host", "127.0.0.1",
         "--port", str(service_port), "--workers", "1", "--no-access-log", "--log-level", "warning",
         "--loop", "uvloop", "--http", "httptools"],
        env=env, cwd=ROOT)
    bare = subprocess.Popen([sys.executable, __file__, "--serve-bare", str(bare_port)], cwd=ROOT)  # noqa: S603
    try:
        service_url, bare_url = f"http://127.0.0.1:{service_port}", f"http://127.0.0.1:{bare_port}"
        _wait_ready(service_url, service)
        _wait_ready(bare_url, bare)
        # The machine may be shared: the 1-minute load average around each phase says how much it was.
        load_before = os.getloadavg()[0]
        referrals = _run_load(service_url, key, args.seconds, args.warmup, args.concurrency, offset=1)
        referrals["load_average_1m"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
        load_before = os.getloadavg()[0]
        baseline = _run_load(bare_url, key, args.seconds, args.warmup, args.concurrency, offset=5_000_000)
        baseline["load_average_1m"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
    finally:
        for process in (service, bare):
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
        asyncio.run(_drop_schema(database_url, "referrals" + suffix))
    result = {
        "benchmark": "referrals.intake",
        "mode": "distributed (1 uvicorn worker, uvloop + httptools, PostgreSQL, Kafka); load from a separate "
                "process (raw HTTP/1.1 keep-alive client on uvloop)",
        "cores": os.cpu_count(),
        "seconds": args.seconds,
        "concurrency": args.concurrency,
        "referrals": referrals,
        "bare_fastapi": baseline,
        "ratio_to_bare": round(referrals["per_second"] / baseline["per_second"], 3) if baseline["per_second"] else None,
        "target": TARGET,
        "meets_target": referrals["per_second"] >= TARGET["referrals_per_second"]
        and referrals["p99_ms"] <= TARGET["p99_ms"],
    }
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    raise SystemExit(main())
