"""The files API: tenancy (an MCP sees only its own files), filters and cursors, content with audit, errors."""

from __future__ import annotations

from gateway_testing import HUB, Gateway, hn_mif
from sftp_gateway.models import audit_event
from sqlalchemy import select


async def test_an_mcp_sees_only_its_own_files(gateway: Gateway) -> None:
    await gateway.upload("healthnet", "HN_ECM_MIF_202610.csv", hn_mif(1))
    lac = b"CIN|LAST_NAME\n"  # quarantined (missing columns), still a lacare file
    await gateway.upload("lacare", "LAC_MIF_202610.txt", lac)
    files = {f["mcp_code"]: f for f in await gateway.files(direction="inbound")}
    as_healthnet = await gateway.client.get("/v1/files", headers=gateway.headers("healthnet-key"))
    assert {f["mcp_code"] for f in as_healthnet.json()["items"]} == {"healthnet"}
    other = await gateway.client.get(f"/v1/files/{files['lacare']['id']}",
                                     headers=gateway.headers("healthnet-key"))
    assert other.status_code == 404 and other.headers["content-type"] == "application/problem+json"
    content = await gateway.client.get(f"/v1/files/{files['lacare']['id']}/content",
                                       headers=gateway.headers("healthnet-key"))
    assert content.status_code == 404
    assert (await gateway.client.get("/v1/files", headers=gateway.headers("cbo-key"))).json()["items"] == []
    own = await gateway.client.get(f"/v1/files/{files['healthnet']['id']}/content",
                                   headers=gateway.headers("healthnet-key"))
    assert own.status_code == 200 and own.content == hn_mif(1)
    async with gateway.runtime.uow() as uow:
        audits = (await uow.session.execute(select(audit_event))).all()
    assert [(a.action, a.resource_id, a.organization_id) for a in audits] == [
        ("file.content_read", files["healthnet"]["id"], "org_healthnet")]
    profiles = await gateway.client.get("/v1/profiles", headers=gateway.headers("lacare-key"))
    assert [p["mcp_code"] for p in profiles.json()["items"]] == ["lacare"]
    hidden = await gateway.client.get("/v1/profiles/healthnet", headers=gateway.headers("lacare-key"))
    assert hidden.status_code == 404


async def test_filters_and_cursor_pagination(gateway: Gateway) -> None:
    for rows, period in enumerate(("202608", "202609", "202610"), start=1):
        await gateway.upload("healthnet", f"HN_ECM_MIF_{period}.csv", hn_mif(rows))
    first = await gateway.client.get("/v1/files", params={"limit": 2, "mcp_code": "healthnet", "kind": "mif"},
                                     headers=gateway.headers())
    body = first.json()
    assert len(body["items"]) == 2 and body["next_cursor"] == body["items"][-1]["id"]
    second = await gateway.client.get("/v1/files", params={"limit": 2, "cursor": body["next_cursor"], "kind": "mif"},
                                      headers=gateway.headers())
    assert len(second.json()["items"]) == 1 and second.json()["next_cursor"] is None
    ids = [f["id"] for f in body["items"] + second.json()["items"]]
    assert ids == sorted(ids, reverse=True)
    none = await gateway.client.get("/v1/files", params={"status": "quarantined"}, headers=gateway.headers())
    assert none.json()["items"] == []
    dated = await gateway.client.get("/v1/files", params={"received_from": "2000-01-01", "received_to": "2000-01-02"},
                                     headers=gateway.headers())
    assert dated.json()["items"] == []


async def test_bad_input_answers_problem_json_naming_field_and_rule(gateway: Gateway) -> None:
    cases = [
        ("get", "/v1/files", {"params": {"limit": 0}}, 422, "query.limit"),
        ("get", "/v1/files", {"params": {"kind": "pdf"}}, 422, "query.kind"),
        ("get", "/v1/files", {"params": {"received_from": "2026-02-01", "received_to": "2026-01-01"}}, 422,
         "query.received_to"),
        ("get", "/v1/files/not-an-id", {}, 422, "path.file_id"),
        ("post", "/v1/files/generate",
         {"json": {"mcp_code": "healthnet", "kind": "mif", "reporting_period": "2026-10"}}, 422, "kind"),
        ("post", "/v1/files/generate",
         {"json": {"mcp_code": "healthnet", "kind": "rtf", "reporting_period": "2026-13"}}, 422, "reporting_period"),
    ]
    for method, path, kwargs, status, field in cases:
        response = await getattr(gateway.client, method)(path, headers=gateway.headers(), **kwargs)
        assert response.status_code == status, (path, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        assert field in [e["field"] for e in response.json()["errors"]], response.json()
    missing = await gateway.client.get("/v1/files/fil_" + "0" * 32, headers=gateway.headers())
    assert missing.status_code == 404
    unknown_mcp = await gateway.client.post("/v1/files/generate", headers=gateway.headers(),
                                            json={"mcp_code": "nosuch", "kind": "rtf", "reporting_period": "2026-10"})
    assert unknown_mcp.status_code == 404 and unknown_mcp.json()["type"].endswith("profile-not-found")


async def test_scopes_and_hub_only_operations(gateway: Gateway) -> None:
    assert (await gateway.client.get("/v1/files")).status_code == 401
    assert (await gateway.client.get("/v1/files", headers=gateway.headers("nosope-key"))).status_code == 403
    as_mcp = await gateway.client.post("/v1/profiles/reload", headers=gateway.headers("healthnet-key"))
    assert as_mcp.status_code == 403
    assert (await gateway.client.post("/v1/profiles/reload", headers=gateway.headers(HUB))).status_code == 200


async def test_invalid_profile_reload_keeps_profiles_and_lists_errors(gateway: Gateway) -> None:
    (gateway.ports.profiles.folder / "broken.yaml").write_text("mcp_code: x\nname: y\n")
    response = await gateway.client.post("/v1/profiles/reload", headers=gateway.headers())
    assert response.status_code == 422 and response.json()["errors"][0]["rule"] == "profile"
    assert [p.mcp_code for p in gateway.ports.profiles.all()] == ["healthnet", "lacare", "molina"]
