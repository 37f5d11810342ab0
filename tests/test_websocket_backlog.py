"""A websocket client that falls behind a busy queue loses only superseded messages (previews,
progress, node events, older queue snapshots), never a run's outcome, and is not cut off
while the outcomes still fit its outbox. bench/soak.py drives 50 real clients."""

import json

from graphflow.cache import OutputCache
from graphflow.registry import Registry
from graphflow.server.server import Server, ServerConfig
from graphflow.server.worker import RunState


class NeverSends:
    closed = False


async def test_a_client_behind_keeps_every_outcome_and_the_latest_queue(tmp_path):
    server = Server(Registry(), ServerConfig(db_path=tmp_path / "runs.db", outbox_limit=32), OutputCache())
    behind = server.hub.connect(NeverSends(), "behind", [])
    runs = 15  # 30 outcome messages and one queue snapshot fit an outbox of 32
    for n in range(runs):
        state = RunState(f"run{n}", n, None, 0.0, 0.0)
        server._send_queue()
        server.run_event(state, {"type": "run_started", "run_id": state.run_id, "nodes": ["1", "2"]}, None)
        for node in ("1", "2"):
            base = {"run_id": state.run_id, "node": node, "node_type": "T"}
            server.run_event(state, {"type": "node_started", **base}, None)
            for step in range(3):
                server.run_event(state, {"type": "progress", **base, "value": step, "max": 3}, b"frame")
            server.run_event(state, {"type": "node_finished", **base, "elapsed": 0.0, "ui": {}}, None)
        server.hub.send("run_finished", {"run_id": state.run_id, "status": "success"})
        server._send_queue()
    assert not behind.overflowed
    messages = [json.loads(o.payload) for o in behind.outbox]
    kinds = [m["type"] for m in messages]
    assert [m["data"]["run_id"] for m in messages if m["type"] == "run_finished"] == [f"run{n}" for n in range(runs)]
    assert kinds.count("run_started") == runs and kinds.count("queue") == 1 and kinds[-1] == "queue"
    assert "progress" not in kinds and behind.dropped > 0  # previews, progress and node events went first
    server.store.close()


async def test_a_client_too_far_behind_is_still_cut_off(tmp_path):
    server = Server(Registry(), ServerConfig(db_path=tmp_path / "runs.db", outbox_limit=8), OutputCache())
    behind = server.hub.connect(NeverSends(), "behind", [])
    for n in range(9):
        server.hub.send("run_finished", {"run_id": f"run{n}", "status": "success"})
    assert behind.overflowed  # it reconnects and catches up from the `status` snapshot
    server.store.close()
