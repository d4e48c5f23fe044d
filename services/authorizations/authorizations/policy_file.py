"""Reading the per-MCP policy file (YAML or JSON) named in the settings; errors stop the service at start."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from authorizations.domain.policy import AuthorizationPolicy


class PolicyFileError(ValueError):
    """The policy file is missing, unreadable or invalid; the message names the file and the fields."""


def load_policy(path: Path | None) -> AuthorizationPolicy:
    """The policy in the file (defaults when `path` is None). Raises PolicyFileError."""
    if path is None:
        return AuthorizationPolicy()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PolicyFileError(f"cannot read authorization policy file {path}: {type(exc).__name__}") from exc
    try:
        raw: Any = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise PolicyFileError(f"authorization policy file {path} is not valid "
                              f"{'JSON' if path.suffix.lower() == '.json' else 'YAML'}") from exc
    try:
        return AuthorizationPolicy.model_validate(raw or {})
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'file'}: {e['msg']}" for e in exc.errors())
        raise PolicyFileError(f"authorization policy file {path} is invalid: {problems}") from exc
