"""The catalogue of CalHub services, by the name used on the command line."""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module

from shared.runtime import ServiceDefinition

# command-line name -> Python package (the gateway's folder has a dash, its package an underscore)
SERVICES: dict[str, str] = {
    "referrals": "referrals",
    "authorizations": "authorizations",
    "claims": "claims",
    "eligibility": "eligibility",
    "sftp-gateway": "sftp_gateway",
    "ops": "ops",
}


def definition_of(name: str) -> ServiceDefinition:
    """Load a service's definition by its command-line name; raises KeyError for an unknown name."""
    package = SERVICES[name]
    bootstrap = import_module(f"{package}.bootstrap")
    make: Callable[[], ServiceDefinition] = bootstrap.definition
    return make()


def all_definitions() -> list[ServiceDefinition]:
    """Every service's definition, in the order they start."""
    return [definition_of(name) for name in SERVICES]
