"""Demo data for `calhub run --demo`: a hub, two CBOs and two MCPs with API keys (synthetic, no real PHI)."""

from __future__ import annotations

import json
import logging
import os
import sys
from importlib import import_module
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from calhub.services import SERVICES
from shared.app import Hook
from shared.auth import AuthStore
from shared.settings import PlatformSettings

log = logging.getLogger("calhub.demo")

ALL_SCOPES = [f"{s}:{a}" for s in SERVICES for a in ("read", "write")] + ["ops", "admin"]
DEMO_ORGANIZATIONS: list[dict[str, Any]] = [
    {"kind": "hub", "name": "Golden State Care Hub (demo)", "code": "demo-hub", "npi": "1234567893",
     "scopes": ALL_SCOPES},
    {"kind": "cbo", "name": "Harbor Community Services (demo)", "code": "demo-cbo-harbor", "npi": "1245319599",
     "scopes": ["referrals:read", "referrals:write", "claims:read", "claims:write", "authorizations:read",
                "eligibility:read"]},
    {"kind": "cbo", "name": "Valley Care Partners (demo)", "code": "demo-cbo-valley", "npi": "1679576722",
     "scopes": ["referrals:read", "referrals:write", "claims:read", "claims:write", "authorizations:read",
                "eligibility:read"]},
    {"kind": "mcp", "name": "Health Net (demo account)", "code": "healthnet",
     "scopes": ["authorizations:read", "authorizations:write", "sftp-gateway:read", "referrals:read"]},
    {"kind": "mcp", "name": "L.A. Care (demo account)", "code": "lacare",
     "scopes": ["authorizations:read", "authorizations:write", "sftp-gateway:read", "referrals:read"]},
]


def credentials_path(platform: PlatformSettings) -> Path:
    """Where the demo keys are written."""
    return platform.data_dir / "demo-credentials.json"


async def create_demo_organizations(platform: PlatformSettings) -> list[dict[str, Any]]:
    """Create the demo organizations and keys once; later runs read them back from the credentials file."""
    path = credentials_path(platform)
    if path.exists():
        loaded: list[dict[str, Any]] = json.loads(path.read_text())
        return loaded
    store = AuthStore.from_url(platform.auth_url())
    created = []
    try:
        for spec in DEMO_ORGANIZATIONS:
            org = await store.create_organization(kind=spec["kind"], name=spec["name"], code=spec["code"],
                                                  npi=spec.get("npi"))
            issued = await store.create_api_key(org.id, spec["scopes"])
            created.append({"organization_id": org.id, "kind": org.kind, "name": org.name, "code": org.code,
                            "api_key": issued.plaintext, "scopes": spec["scopes"]})
    finally:
        await store.close()
    # Created owner-only from the first byte: the file holds API keys.
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(json.dumps(created, indent=2) + "\n")
    return created


def seed_demo(platform: PlatformSettings, *, base_url: str) -> Hook:
    """A startup hook that creates the demo organizations and prints how to call the API."""

    async def hook(app: FastAPI) -> None:
        await app.state.authenticator.verify("chk_warmup")  # creates the auth tables on an empty data dir
        organizations = await create_demo_organizations(platform)
        # Each service may seed its own demo data through its public paths: `<package>/demo.py` with
        # `async def seed(runtime, organizations) -> None` (idempotent: it runs at every demo start).
        for name, runtime in app.state.runtimes.items():
            try:
                module = import_module(f"{SERVICES[name]}.demo")
            except ModuleNotFoundError as exc:
                if exc.name != f"{SERVICES[name]}.demo":
                    raise
                continue
            await module.seed(runtime, organizations)
        lines = [f"CalHub demo is up: {base_url}/docs  (keys in {credentials_path(platform)})"]
        for org in organizations:
            lines.append(f"  {org['kind']:<4} {org['name']:<36} Authorization: Bearer {org['api_key']}")
        sys.stdout.write("\n".join(lines) + "\n")
        sys.stdout.flush()

    return hook
