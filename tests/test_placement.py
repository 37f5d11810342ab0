"""History says where and when each run ran, also on the server's own worker."""

import asyncio

import server_nodes
from graphflow import folders as folders_module
from graphflow.registry import Registry
from graphflow.server.app import create_app


async def test_local_runs_record_their_worker_and_times(aiohttp_client, tmp_path):
    saved = dict(folders_module.folders.__dict__)
    folders_module.configure(home=tmp_path)
    try:
        registry = Registry()
        for cls in server_nodes.SERVER_NODES:
            registry.add(cls, source="tests")
        client = await aiohttp_client(create_app(registry, tmp_path / "runs.db", web_dir=None))
        workflow = {"version": 1, "nodes": {"1": {"type": "Canvas", "inputs": {"red": 10, "steps": 2}},
                                            "2": {"type": "SaveTestImage", "inputs": {"image": ["1", 0], "prefix": "p"}}}}
        run_id = (await (await client.post("/api/runs", json={"workflow": workflow})).json())["run_id"]
        for _ in range(2000):
            record = await (await client.get(f"/api/history/{run_id}")).json()
            if record["status"] not in ("pending", "running"):
                break
            await asyncio.sleep(0.01)
        assert record["status"] == "success"
        placement = record["placement"]
        assert placement["worker"] == "local-0"
        assert placement["queue_wait"] >= 0 and placement["run_seconds"] == record["elapsed"]
        listed = (await (await client.get("/api/history")).json())["items"][0]
        assert listed["placement"] == placement
        system = await (await client.get("/api/system")).json()
        assert system["workers"] == 1 and system["cluster"] is None
    finally:
        folders_module.folders.__dict__.update(saved)
