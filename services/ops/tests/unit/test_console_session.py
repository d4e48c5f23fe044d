"""Console session cookies: signed, expiring, tamper-evident; CSRF comparison; the embedded secret file."""

from __future__ import annotations

import stat
from pathlib import Path

from ops.console.session import (
    csrf_matches,
    decode_session,
    encode_session,
    new_session,
    session_secret,
    sign,
    unsign,
)
from ops.testkit import callers

SECRET = b"s" * 32


def test_a_session_round_trips_and_expires() -> None:
    session = new_session(callers()["ops-hub-key"], now=1000.0, hours=1)
    cookie = encode_session(SECRET, session)
    assert decode_session(SECRET, cookie, 1001.0) == session
    assert decode_session(SECRET, cookie, 1000.0 + 3601) is None
    assert decode_session(b"other" * 8, cookie, 1001.0) is None
    assert "ops-hub-key" not in cookie  # the API key never rides in the cookie


def test_a_tampered_cookie_is_refused() -> None:
    cookie = encode_session(SECRET, new_session(callers()["ops-hub-key"], now=1000.0, hours=1))
    body, mac = cookie.split(".")
    assert decode_session(SECRET, body[:-2] + "AA." + mac, 1001.0) is None
    assert unsign(SECRET, "no-dot") is None and unsign(SECRET, None) is None
    assert unsign(SECRET, sign(SECRET, {"a": 1})) == {"a": 1}


def test_csrf_tokens_compare_in_constant_time_and_reject_missing() -> None:
    assert csrf_matches("abc", "abc") and not csrf_matches("abc", "abd") and not csrf_matches("abc", None)


def test_embedded_mode_keeps_one_secret_per_data_dir(tmp_path: Path) -> None:
    first = session_secret(None, mode="embedded", data_dir=tmp_path)
    assert session_secret(None, mode="embedded", data_dir=tmp_path) == first
    assert stat.S_IMODE((tmp_path / "ops-session-secret").stat().st_mode) == 0o600
    assert session_secret("configured", mode="embedded", data_dir=tmp_path) == b"configured"
    assert session_secret(None, mode="distributed", data_dir=tmp_path) != session_secret(
        None, mode="distributed", data_dir=tmp_path)
