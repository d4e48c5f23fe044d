"""Import boundaries: services never import each other, shared imports no service, domain/ and x12/ stay pure."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SERVICE_PACKAGES = {
    "referrals": ROOT / "services/referrals/referrals",
    "authorizations": ROOT / "services/authorizations/authorizations",
    "claims": ROOT / "services/claims/claims",
    "eligibility": ROOT / "services/eligibility/eligibility",
    "sftp_gateway": ROOT / "services/sftp-gateway/sftp_gateway",
    "ops": ROOT / "services/ops/ops",
}
IO_FRAMEWORKS = {"fastapi", "starlette", "sqlalchemy", "aiokafka", "httpx", "opentelemetry", "asyncpg",
                 "aiosqlite", "asyncssh", "alembic", "uvicorn"}


def imported_roots(path: Path) -> set[str]:
    """Top-level module names a Python file imports (absolute imports only)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    roots: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


def python_files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*.py") if "tests" not in p.relative_to(folder).parts]


@pytest.mark.parametrize("service", sorted(SERVICE_PACKAGES))
def test_service_imports_no_other_service(service: str) -> None:
    others = set(SERVICE_PACKAGES) - {service}
    offenders = {str(p.relative_to(ROOT)): sorted(imported_roots(p) & others)
                 for p in python_files(SERVICE_PACKAGES[service]) if imported_roots(p) & others}
    assert offenders == {}


def test_shared_imports_no_service() -> None:
    offenders = {str(p.relative_to(ROOT)): sorted(imported_roots(p) & (set(SERVICE_PACKAGES) | {"calhub"}))
                 for p in python_files(ROOT / "shared")
                 if imported_roots(p) & (set(SERVICE_PACKAGES) | {"calhub"})}
    assert offenders == {}


def test_domain_and_x12_do_no_io() -> None:
    pure = [p for pkg in SERVICE_PACKAGES.values() for sub in ("domain", "x12") if (pkg / sub).exists()
            for p in (pkg / sub).rglob("*.py")]
    pure += list((ROOT / "shared/reference").rglob("*.py")) if (ROOT / "shared/reference").exists() else []
    offenders = {str(p.relative_to(ROOT)): sorted(imported_roots(p) & IO_FRAMEWORKS)
                 for p in pure if imported_roots(p) & IO_FRAMEWORKS}
    assert offenders == {}


def test_boundary_check_sees_a_violation(tmp_path: Path) -> None:
    # Guard against a check that cannot fail: a file importing fastapi is reported.
    sample = tmp_path / "rule.py"
    sample.write_text("from fastapi import APIRouter\nimport claims.models\n")
    assert imported_roots(sample) >= {"fastapi", "claims"}


def test_no_utils_or_manager_modules() -> None:
    banned = {"utils", "helpers", "manager", "misc", "common"}
    offenders = [str(p.relative_to(ROOT)) for folder in [ROOT / "shared", *SERVICE_PACKAGES.values()]
                 for p in folder.rglob("*.py") if p.stem in banned]
    assert offenders == []
