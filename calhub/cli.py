"""`calhub`: run CalHub embedded, serve one service, migrate, administer organizations and keys, tools."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Sequence
from importlib import import_module
from pathlib import Path
from typing import Any

from calhub.services import SERVICES, definition_of


def _print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, default=str) + "\n")


def cmd_run(args: argparse.Namespace) -> int:
    """Embedded mode: all services, one port, SQLite in the data directory."""
    import uvicorn

    from calhub.demo import seed_demo
    from calhub.embedded import create_embedded_app
    from shared.logs import configure_logging
    from shared.settings import PlatformSettings
    from shared.telemetry import configure_tracing

    os.environ["CALHUB_MODE"] = "embedded"
    os.environ["CALHUB_DATA_DIR"] = str(args.data_dir)
    os.environ["SFTP_GATEWAY_SFTP_PORT"] = str(args.sftp_port)
    # A laptop demo registers http:// callbacks on localhost; distributed deployments keep HTTPS-only.
    os.environ.setdefault("REFERRALS_WEBHOOK_ALLOW_HTTP", "true")
    platform = PlatformSettings()
    configure_logging(platform.log_level, "text" if sys.stderr.isatty() else platform.log_format)
    configure_tracing("calhub", platform.otel_exporter_otlp_endpoint)
    hooks = [seed_demo(platform, base_url=f"http://{args.host}:{args.port}")] if args.demo else []
    app = create_embedded_app(platform, on_started=hooks)
    uvicorn.run(app, host=args.host, port=args.port, log_config=None, access_log=False)
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    """Distributed mode: one service on Kafka and PostgreSQL (settings from the environment)."""
    import uvicorn

    from shared.distributed import create_service_app
    from shared.settings import PlatformSettings

    definition = definition_of(args.service)
    settings = definition.settings()
    app = create_service_app(definition, PlatformSettings(), settings)
    uvicorn.run(app, host=args.host or settings.host, port=args.port or settings.port, log_config=None,
                access_log=False)
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    """Bring each named service's schema (default: all) and the auth schema to the newest migration."""
    from shared.auth import create_auth_schema
    from shared.bus.inprocess import InProcessBus
    from shared.runtime import ServiceRuntime
    from shared.settings import PlatformSettings

    platform = PlatformSettings()
    names = args.services or list(SERVICES)
    unknown = sorted(set(names) - set(SERVICES))
    if unknown:
        raise SystemExit(f"unknown service(s): {', '.join(unknown)}; choose from {', '.join(SERVICES)}")

    async def migrate() -> list[dict[str, Any]]:
        await create_auth_schema(platform.auth_url())
        done = []
        for name in names:
            definition = definition_of(name)
            runtime = ServiceRuntime(definition=definition, platform=platform, settings=definition.settings(),
                                     bus=InProcessBus())
            try:
                await runtime.migrate()
                report = await runtime.readiness()
                done.append({"service": name, "revision": report.get("schema_revision")})
            finally:
                await runtime.engine.dispose()
        return done

    _print_json(asyncio.run(migrate()))
    return 0


def cmd_admin(args: argparse.Namespace) -> int:
    """Organizations and API keys; keys are printed once and stored hashed."""
    from shared.auth import AuthStore, create_auth_schema
    from shared.settings import PlatformSettings

    platform = PlatformSettings()

    async def run() -> Any:
        await create_auth_schema(platform.auth_url())
        store = AuthStore.from_url(platform.auth_url())
        try:
            if args.admin_command == "create-org":
                org = await store.create_organization(kind=args.kind, name=args.name, code=args.code, npi=args.npi)
                return org.as_dict()
            if args.admin_command == "create-key":
                key_id, plaintext = await store.create_api_key(args.org, scopes=args.scope or [])
                return {"key_id": key_id, "organization_id": args.org, "scopes": args.scope or [],
                        "api_key": plaintext, "note": "shown once; store it in your secret manager"}
            if args.admin_command == "revoke-key":
                await store.revoke_key(args.key_id)
                return {"key_id": args.key_id, "revoked": True}
            if args.admin_command == "list-orgs":
                return [o.as_dict() for o in await store.list_organizations()]
            raise SystemExit(f"unknown admin command {args.admin_command}")
        finally:
            await store.close()

    _print_json(asyncio.run(run()))
    return 0


def cmd_asyncapi(args: argparse.Namespace) -> int:
    """Write the AsyncAPI document of every event (JSON; YAML when the file name ends in .yaml)."""
    import yaml

    import calhub
    from calhub.services import all_definitions
    from shared.asyncapi import asyncapi_document
    from shared.contracts import EVENT_TYPES

    consumers = {d.consumer_group: d.handlers.event_types() for d in all_definitions()}
    document = asyncapi_document(EVENT_TYPES, version=_version(calhub), consumers=consumers)
    if args.output and str(args.output).endswith((".yaml", ".yml")):
        text = yaml.safe_dump(document, sort_keys=False)
    else:
        text = json.dumps(document, indent=2) + "\n"
    if args.output:
        Path(args.output).write_text(text)
    else:
        sys.stdout.write(text)
    return 0


def cmd_settings(_args: argparse.Namespace) -> int:
    """Print the settings table (Markdown) of the platform and every service."""
    from calhub.configuration import settings_markdown

    sys.stdout.write(settings_markdown())
    return 0


def _version(module: Any) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("calhub")
    except PackageNotFoundError:
        return "0.0.0"


def build_parser() -> argparse.ArgumentParser:
    """The command-line grammar."""
    parser = argparse.ArgumentParser(prog="calhub", description="CalHub, the CalAIM hub integration platform.")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run every service in one process (embedded mode)")
    run.add_argument("--data-dir", type=Path, default=Path("data"), help="SQLite files and stored files")
    run.add_argument("--host", default="127.0.0.1")
    run.add_argument("--port", type=int, default=8080)
    run.add_argument("--sftp-port", type=int, default=2222)
    run.add_argument("--demo", action="store_true", help="create demo organizations, keys and data")
    run.set_defaults(func=cmd_run)

    serve = sub.add_parser("serve", help="run one service (distributed mode: Kafka + PostgreSQL)")
    serve.add_argument("service", choices=sorted(SERVICES))
    serve.add_argument("--host", default=None)
    serve.add_argument("--port", type=int, default=None)
    serve.set_defaults(func=cmd_serve)

    migrate = sub.add_parser("migrate", help="apply database migrations")
    migrate.add_argument("services", nargs="*", metavar="SERVICE", help=f"any of {', '.join(SERVICES)}")
    migrate.set_defaults(func=cmd_migrate)

    admin = sub.add_parser("admin", help="organizations and API keys")
    admin_sub = admin.add_subparsers(dest="admin_command", required=True)
    org = admin_sub.add_parser("create-org", help="create an organization (prints JSON)")
    org.add_argument("--kind", choices=["hub", "cbo", "mcp"], required=True)
    org.add_argument("--name", required=True)
    org.add_argument("--code", help="short code, e.g. the MCP's plan code")
    org.add_argument("--npi")
    key = admin_sub.add_parser("create-key", help="create an API key (prints it once)")
    key.add_argument("--org", required=True, help="organization id")
    key.add_argument("--scope", action="append", help="repeatable, e.g. referrals:write")
    revoke = admin_sub.add_parser("revoke-key", help="revoke an API key")
    revoke.add_argument("key_id")
    admin_sub.add_parser("list-orgs", help="list organizations")
    admin.set_defaults(func=cmd_admin)

    asyncapi = sub.add_parser("asyncapi", help="write the AsyncAPI document of CalHub's events")
    asyncapi.add_argument("-o", "--output", help="file to write (default: stdout)")
    asyncapi.set_defaults(func=cmd_asyncapi)

    settings = sub.add_parser("settings", help="print the configuration table (Markdown)")
    settings.set_defaults(func=cmd_settings)

    from calhub import x12_tool

    x12_tool.register(sub)

    # Services add their own tools (e.g. `calhub x12`, `calhub files`) in `<package>/commands.py`:
    # `register(subparsers)` adds parsers whose `func(args) -> int` runs the command.
    for package in SERVICES.values():
        try:
            commands = import_module(f"{package}.commands")
        except ModuleNotFoundError as exc:
            if exc.name != f"{package}.commands":
                raise
            continue
        commands.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `calhub` command."""
    args = build_parser().parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    raise SystemExit(main())
