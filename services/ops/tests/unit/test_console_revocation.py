"""A console session ends with its key: revoking the API key a session was opened with sends the next page to
the login form instead of keeping the session until it expires."""

from __future__ import annotations

import re

from ops.testkit import HUB_KEY, callers

from shared.auth import StaticAuthenticator
from shared.testing.app import ServiceHarness


class RevocableKeys(StaticAuthenticator):
    """The test keys, with revocation as the auth store does it."""

    def __init__(self) -> None:
        super().__init__(callers())
        self.revoked: set[str] = set()

    async def key_active(self, key_id: str) -> bool:
        return key_id not in self.revoked and await super().key_active(key_id)


async def log_in(harness: ServiceHarness) -> None:
    form = await harness.client.get("/ops/login")
    match = re.search(r'name="nonce" value="([^"]+)"', form.text)
    assert match is not None
    response = await harness.client.post("/ops/login", data={"api_key": HUB_KEY, "nonce": match.group(1),
                                                              "next": "/ops/"})
    assert response.status_code == 303, response.text[:300]


async def test_revoking_the_key_ends_an_open_console_session(harness: ServiceHarness) -> None:
    keys = RevocableKeys()
    harness.app.state.authenticator = keys
    await log_in(harness)
    assert (await harness.client.get("/ops/")).status_code == 200

    keys.revoked.add(callers()[HUB_KEY].key_id)

    page = await harness.client.get("/ops/")
    assert page.status_code == 303 and page.headers["location"].startswith("/ops/login")
    form = await harness.client.post("/ops/alerts/evaluate", data={"csrf": "anything"})
    assert form.status_code == 303 and form.headers["location"].startswith("/ops/login")
