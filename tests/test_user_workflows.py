"""The editor's named workflows on the server (graphflow/server/user_workflows.py): saved,
listed newest first, read back, replaced only when asked, deleted; names never leave the folder."""

import json

from graphflow.server.app import create_app

WORKFLOW = {"version": 1, "nodes": {"1": {"type": "EmptyLatent", "inputs": {"width": 64}}}, "ui": {"groups": []}}


async def test_save_list_read_overwrite_and_delete(aiohttp_client, tmp_folders, builtin_registry):
    client = await aiohttp_client(create_app(builtin_registry, tmp_folders.home / "runs.db", web_dir=None))
    assert (await (await client.get("/api/userdata/workflows")).json()) == {"workflows": []}
    reply = await client.put("/api/userdata/workflows/My portrait (v2)", json=WORKFLOW)
    assert reply.status == 200 and (await reply.json())["name"] == "My portrait (v2)"
    stored = tmp_folders.home / "user" / "workflows" / "My portrait (v2).json"
    assert json.loads(stored.read_text()) == WORKFLOW
    await client.put("/api/userdata/workflows/second", json={**WORKFLOW, "ui": {}})
    listed = (await (await client.get("/api/userdata/workflows")).json())["workflows"]
    assert [w["name"] for w in listed] == ["second", "My portrait (v2)"]  # newest first
    assert await (await client.get("/api/userdata/workflows/My portrait (v2)")).json() == WORKFLOW
    refused = await client.put("/api/userdata/workflows/second?overwrite=0", json=WORKFLOW)
    assert refused.status == 409 and "exists already" in (await refused.json())["error"]
    assert (await client.put("/api/userdata/workflows/second", json=WORKFLOW)).status == 200
    assert await (await client.get("/api/userdata/workflows/second")).json() == WORKFLOW
    assert (await client.delete("/api/userdata/workflows/second")).status == 200
    assert (await client.get("/api/userdata/workflows/second")).status == 404
    assert (await client.delete("/api/userdata/workflows/second")).status == 404


async def test_names_and_bodies_that_are_refused(aiohttp_client, tmp_folders, builtin_registry):
    client = await aiohttp_client(create_app(builtin_registry, tmp_folders.home / "runs.db", web_dir=None))
    secret = tmp_folders.home / "secret.json"
    secret.write_text("{}")
    for name in ("..%2Fsecret", ".hidden", "a%5Cb", "x" * 101, "trailing.", "%2Fetc%2Fpasswd", "semi;colon"):
        reply = await client.put(f"/api/userdata/workflows/{name}", json=WORKFLOW)
        assert reply.status in (400, 404), name
        if reply.status == 400:
            assert "invalid workflow name" in (await reply.json())["error"]
        assert (await client.get(f"/api/userdata/workflows/{name}")).status in (400, 404)
    assert secret.read_text() == "{}"
    assert not (tmp_folders.home / "user").exists() or not any((tmp_folders.home / "user").rglob("*.json"))
    reply = await client.put("/api/userdata/workflows/ok", json={"nodes": []})
    assert reply.status == 400 and "must be a workflow" in (await reply.json())["error"]
    reply = await client.put("/api/userdata/workflows/ok", data=b"{not json", headers={"Content-Type": "application/json"})
    assert reply.status == 400
