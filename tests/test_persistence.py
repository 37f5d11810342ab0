"""kill -9 while the queue is worked: after restarts on the same folders no queue item, history
entry or output is lost and the database is intact. bench/soak.py runs the long version."""

import threading

import pytest

import persistence


def test_sigkill_mid_queue_loses_nothing(tmp_path):
    """Three kills at random moments (inside a run, mostly; sometimes during a submission),
    restarts on the same folders: every run that was acknowledged or stored ends in success
    with its own output, finished records never change, and SQLite finds the database intact."""
    report = persistence.kill_cycle(tmp_path, kills=3, runs_per_kill=5, seed=1, trickle=0.2)
    assert report.kills == 3 and len(report.submitted) >= 15
    assert report.hit_running >= 1, "no kill landed inside a run; the test tested nothing"
    assert report.integrity == ["ok"] * 4
    assert report.lost == [] and report.changed == []
    assert report.bad_outputs == [] and report.unreadable_files == []
    assert report.exit_code == 0 and report.ok


# --- SaveImage under crashes and concurrency (what the kill test found) -------------------------

def save_image(prefix: str, seed: int) -> None:
    from nodes.image import SaveImage

    node = SaveImage.__new__(SaveImage)
    node.images, node.filename_prefix = persistence.pattern(seed, 16, 1), prefix
    node.run()


def test_save_image_killed_mid_write_leaves_no_half_file(tmp_folders, monkeypatch):
    from PIL import Image

    real_save = Image.Image.save

    def dies_halfway(self, fp, *args, **kwargs):  # what a SIGKILL during the write leaves behind
        real_save(self, fp, *args, **kwargs)
        with open(fp, "r+b") as f:
            f.truncate(40)
        raise KeyboardInterrupt("killed")

    monkeypatch.setattr(Image.Image, "save", dies_halfway)
    with pytest.raises(KeyboardInterrupt):
        save_image("shots/x", 1)
    monkeypatch.setattr(Image.Image, "save", real_save)
    assert list((tmp_folders.outputs / "shots").glob("*.png")) == []
    save_image("shots/x", 2)
    assert [p.name for p in (tmp_folders.outputs / "shots").glob("*.png")] == ["x_00001_.png"]
    persistence.read_png(tmp_folders.outputs / "shots" / "x_00001_.png")


def test_two_runs_saving_at_once_never_share_a_file(tmp_folders, monkeypatch):
    import nodes.image

    both_counted = threading.Barrier(2)
    real_counter = nodes.image._next_counter

    def counter_then_wait(folder, stem):  # both runs pick their number before either writes
        number = real_counter(folder, stem)
        both_counted.wait(10)
        return number

    monkeypatch.setattr(nodes.image, "_next_counter", counter_then_wait)
    threads = [threading.Thread(target=save_image, args=("same", seed)) for seed in (1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    saved = sorted(tmp_folders.outputs.glob("*.png"))
    assert [p.name for p in saved] == ["same_00001_.png", "same_00002_.png"]
    pixels = {persistence.read_png(p)[0].tobytes() for p in saved}
    assert len(pixels) == 2  # two different images, neither overwritten by the other


def test_save_image_without_hard_links_still_takes_free_names(tmp_folders, monkeypatch):
    import errno
    import os

    def no_links(src, dst):
        raise OSError(errno.EPERM, "hard links not supported")

    monkeypatch.setattr(os, "link", no_links)
    (tmp_folders.outputs / "x_00002_.png").write_bytes(b"taken")  # claimed by someone else meanwhile
    monkeypatch.setattr("nodes.image._next_counter", lambda folder, stem: 1)
    save_image("x", 1)
    save_image("x", 2)
    names = sorted(p.name for p in tmp_folders.outputs.iterdir())
    assert names == ["x_00001_.png", "x_00002_.png", "x_00003_.png"]
    assert (tmp_folders.outputs / "x_00002_.png").read_bytes() == b"taken"
    persistence.read_png(tmp_folders.outputs / "x_00003_.png")


# --- clean stops are not crashes ---------------------------------------------------------------

async def test_clean_stops_do_not_count_towards_giving_up_on_a_run(tmp_path, aiohttp_client):
    """A run interrupted by two clean restarts and then one crash still runs: only the crash
    counts towards MAX_ATTEMPTS (which is there for runs that take the server down)."""
    import asyncio

    import server_nodes
    from graphflow import folders as folders_module
    from graphflow.registry import Registry
    from graphflow.server.app import create_app
    from graphflow.server.store import RunStore

    saved = dict(folders_module.folders.__dict__)
    folders_module.configure(home=tmp_path)
    server_nodes.Hold.gate = threading.Event()
    registry = Registry()
    for cls in server_nodes.SERVER_NODES:
        registry.add(cls, source="tests")
    db = tmp_path / "runs.db"
    workflow = {"nodes": {"1": {"type": "Canvas"}, "2": {"type": "Hold", "inputs": {"image": ["1", 0]}},
                          "3": {"type": "SaveTestImage", "inputs": {"image": ["2", 0]}}}}

    async def status(client, run_id):
        return (await (await client.get(f"/api/history/{run_id}")).json())["status"]

    async def wait_for(client, run_id, wanted):
        for _ in range(2000):
            if await status(client, run_id) == wanted:
                return
            await asyncio.sleep(0.01)
        raise AssertionError(f"run {run_id} never became {wanted}")

    try:
        run_id = None
        for _ in range(2):  # two clean stops while the run is held
            client = await aiohttp_client(create_app(registry, db, web_dir=None))
            if run_id is None:
                run_id = (await (await client.post("/api/runs", json={"workflow": workflow})).json())["run_id"]
            await wait_for(client, run_id, "running")
            await client.close()
            store = RunStore(db)
            assert store.get(run_id)["status"] == "pending"
            store.close()

        store = RunStore(db)  # now the server dies with the run running
        assert store.claim_next()["run_id"] == run_id
        store.close()
        server_nodes.Hold.gate.set()
        client = await aiohttp_client(create_app(registry, db, web_dir=None))
        await wait_for(client, run_id, "success")
        await client.close()
    finally:
        server_nodes.Hold.gate.set()
        folders_module.folders.__dict__.update(saved)


def test_runs_left_running_by_a_crash_keep_their_order(tmp_path):
    from graphflow.server.store import RunStore

    store = RunStore(tmp_path / "runs.db")
    for run_id in ("a", "b", "c", "d"):
        store.add(run_id, {"nodes": {}})
    store.claim_next(), store.claim_next()  # two workers were running a and b when the server died
    store.close()
    store = RunStore(tmp_path / "runs.db")
    assert store.recover() == ["a", "b"]
    assert [p["run_id"] for p in store.pending()] == ["a", "b", "c", "d"]
    store.close()
