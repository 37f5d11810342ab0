"""Server safety: uploads, paths that try to leave their folder, size limits, foreign origins,
slow websocket clients, and `graphflow serve` itself on loopback."""

import asyncio
import io
import json
import os
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from aiohttp import FormData
from PIL import Image

import server_nodes
from graphflow import folders as folders_module
from graphflow.registry import Registry
from graphflow.server.app import SERVER, create_app
from graphflow.server.events import KEEP, PREVIEW, PROGRESS, Client, Outgoing

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def home(tmp_path):
    saved = dict(folders_module.folders.__dict__)
    folders_module.configure(home=tmp_path / "home")
    yield tmp_path / "home"
    folders_module.folders.__dict__.update(saved)


@pytest.fixture
def start(aiohttp_client, home):
    async def start(**options):
        registry = Registry()
        for cls in server_nodes.SERVER_NODES:
            registry.add(cls, source="tests")
        return await aiohttp_client(create_app(registry, home / "runs.db", web_dir=None, **options))
    return start


def png(size=(8, 6), color=(0, 128, 255), mode="RGB", fmt="PNG") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size, color).save(buffer, format=fmt)
    return buffer.getvalue()


def form(data: bytes, filename="cat.png", content_type="image/png", **fields) -> FormData:
    body = FormData()
    for key, value in fields.items():
        body.add_field(key, value)
    body.add_field("image", data, filename=filename, content_type=content_type)
    return body


def raw_form(data: bytes, filename: str, **fields) -> tuple[bytes, dict]:
    """A multipart body with the file name exactly as given (aiohttp's FormData would %-encode it)."""
    boundary = "graphflowboundary"
    body = b""
    for key, value in fields.items():
        body += f'--{boundary}\r\nContent-Disposition: form-data; name="{key}"\r\n\r\n{value}\r\n'.encode()
    body += (f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="{filename}"\r\n'
             f"Content-Type: image/png\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
    return body, {"Content-Type": f"multipart/form-data; boundary={boundary}"}


def files_under(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()} if root.exists() else set()


async def test_upload_is_usable_by_loadimage_and_deduplicated(start, home):
    client = await start()
    data = png()
    response = await client.post("/api/upload", data=form(data, subfolder="pets"))
    assert response.status == 200
    body = await response.json()
    assert body == {"name": "cat.png", "subfolder": "pets", "type": "input", "path": "pets/cat.png",
                    "format": "PNG", "width": 8, "height": 6}
    assert (home / "inputs" / "pets" / "cat.png").read_bytes() == data  # stored bit-exact
    assert "pets/cat.png" in folders_module.folders.list_inputs()  # what LoadImage's choices list

    again = await (await client.post("/api/upload", data=form(data, subfolder="pets"))).json()
    assert again["name"] == "cat.png"  # the same file: reused
    other = await (await client.post("/api/upload", data=form(png(color=(1, 2, 3)), subfolder="pets"))).json()
    assert other["name"] == "cat (1).png"  # a different file never replaces one silently
    replaced = await (await client.post("/api/upload", data=form(png(color=(9, 9, 9)), subfolder="pets",
                                                                   overwrite="true"))).json()
    assert replaced["name"] == "cat.png"
    assert Image.open(home / "inputs" / "pets" / "cat.png").getpixel((0, 0)) == (9, 9, 9)

    # The extension follows the content: a JPEG named .png is stored as .jpg.
    jpeg = await (await client.post("/api/upload", data=form(png(fmt="JPEG"), filename="photo.png",
                                                               content_type="image/jpeg"))).json()
    assert jpeg["name"] == "photo.jpg" and jpeg["format"] == "JPEG"
    view = await client.get("/api/view", params={"filename": "cat.png", "subfolder": "pets", "type": "input"})
    assert view.status == 200 and view.headers["X-Content-Type-Options"] == "nosniff"


async def test_mask_upload_puts_the_mask_into_the_alpha_channel(start, home):
    client = await start()
    await client.post("/api/upload", data=form(png((4, 4), (10, 20, 30)), filename="base.png"))
    mask = Image.new("L", (4, 4), 0)
    mask.putpixel((1, 2), 255)  # white = painted
    buffer = io.BytesIO()
    mask.save(buffer, format="PNG")
    original = json.dumps({"filename": "base.png", "subfolder": "", "type": "input"})
    response = await client.post("/api/upload/mask", data=form(buffer.getvalue(), filename="base_mask.png",
                                                                  original=original))
    body = await response.json()
    assert response.status == 200, body
    result = Image.open(home / "inputs" / body["name"])
    assert result.mode == "RGBA" and result.getpixel((1, 2)) == (10, 20, 30, 0)
    assert result.getpixel((0, 0)) == (10, 20, 30, 255)
    escape = json.dumps({"filename": "x.png", "subfolder": "../..", "type": "input"})
    assert (await client.post("/api/upload/mask", data=form(buffer.getvalue(), original=escape))).status == 400


async def test_upload_type_picks_the_folder_as_comfyui(start, home):
    """ComfyUI's `type` field: input (the default), output or temp, under `subfolder`; the
    response says where it went, and `path` is LoadImage's value for it (annotated outside inputs)."""
    client = await start()
    folders = folders_module.folders
    for kind, base in (("output", folders.outputs), ("temp", folders.temp), ("", folders.inputs)):
        response = await client.post("/upload/image", data=form(png(), subfolder="shots", type=kind))
        body = await response.json()
        assert response.status == 200, body
        want = kind or "input"
        assert (body["type"], body["subfolder"], body["name"]) == (want, "shots", "cat.png")
        assert body["path"] == ("shots/cat.png" if want == "input" else f"shots/cat.png [{want}]")
        assert (base / "shots" / "cat.png").read_bytes() == png()
    view = await client.get("/view", params={"filename": "cat.png", "subfolder": "shots", "type": "output"})
    assert view.status == 200
    bogus = await client.post("/upload/image", data=form(png(), filename="odd.png", type="models"))
    assert bogus.status == 400 and "type" in (await bogus.json())["error"]
    # the same rules in every folder: no escape, real images only
    for filename, subfolder in (("evil.png", "../inputs"), ("evil.png", "a/../../x"), ("../evil.png", "")):
        fields = {"type": "output", **({"subfolder": subfolder} if subfolder else {})}
        body, headers = raw_form(png(), filename, **fields)
        response = await client.post("/upload/image", data=body, headers=headers)
        assert response.status == 400, (filename, subfolder, await response.text())
    not_image = await client.post("/upload/image", data=form(b"<html>", filename="evil.png", type="output"))
    assert not_image.status == 415
    assert not any("evil" in name or "odd" in name for name in files_under(home.parent))


async def test_mask_upload_reads_the_original_from_its_type_as_comfyui(start, home):
    """/upload/mask: original_ref's folder is its annotation ("x.png [input]"), else its type,
    else the outputs (ComfyUI's default); the masked copy goes where the form's `type` says."""
    client = await start()
    folders = folders_module.folders
    (folders.outputs / "runs").mkdir(parents=True)
    Image.new("RGB", (4, 4), (50, 60, 70)).save(folders.outputs / "runs" / "pic.png")
    folders.inputs.mkdir(parents=True)
    Image.new("RGB", (4, 4), (1, 2, 3)).save(folders.inputs / "pic.png")
    mask = Image.new("L", (4, 4), 0)
    mask.putpixel((2, 1), 255)
    buffer = io.BytesIO()
    mask.save(buffer, format="PNG")

    async def masked(ref: dict, **fields):
        response = await client.post("/upload/mask", data=form(buffer.getvalue(), filename="m.png",
                                                               original_ref=json.dumps(ref), **fields))
        body = await response.json()
        assert response.status == 200, body
        base = {"input": folders.inputs, "output": folders.outputs, "temp": folders.temp}[body["type"]]
        return body, Image.open(base / body["subfolder"] / body["name"])

    body, picture = await masked({"filename": "pic.png", "subfolder": "runs"})  # no type: the outputs
    assert body["type"] == "input" and picture.getpixel((2, 1)) == (50, 60, 70, 0)
    assert picture.getpixel((0, 0)) == (50, 60, 70, 255)
    body, picture = await masked({"filename": "pic.png [input]", "subfolder": "", "type": "output"},
                                 type="temp", overwrite="true")
    assert body["type"] == "temp" and picture.getpixel((2, 1)) == (1, 2, 3, 0)
    assert (folders.temp / "m.png").is_file()
    escape = json.dumps({"filename": "pic.png", "subfolder": "../inputs", "type": "output"})
    response = await client.post("/upload/mask", data=form(buffer.getvalue(), original_ref=escape))
    assert response.status == 400


@pytest.mark.parametrize("filename, subfolder", [
    ("../evil.png", ""), ("..\\evil.png", ""), ("/tmp/evil.png", ""), (".hidden.png", ""),
    ("evil.png", "../outside"), ("evil.png", "/abs"), ("evil.png", "a/../../b"), ("evil.png", ".."),
])
async def test_upload_names_cannot_leave_inputs(start, home, filename, subfolder):
    client = await start()
    fields = {"subfolder": subfolder} if subfolder else {}
    body, headers = raw_form(png(), filename, **fields)
    response = await client.post("/api/upload", data=body, headers=headers)
    assert response.status == 400, await response.text()
    assert "error" in await response.json()
    assert not any("evil" in name for name in files_under(home.parent))


async def test_upload_through_a_symlinked_subfolder_is_refused(start, home, tmp_path):
    client = await start()
    outside = tmp_path / "outside"
    outside.mkdir()
    (home / "inputs").mkdir(parents=True)
    os.symlink(outside, home / "inputs" / "link")
    response = await client.post("/api/upload", data=form(png(), subfolder="link"))
    assert response.status == 400
    assert list(outside.iterdir()) == []


async def test_oversized_uploads_are_refused(start, home):
    client = await start(max_upload_bytes=4000)
    big = os.urandom(6000)
    response = await client.post("/api/upload", data=form(big))  # declared length: refused up front
    assert response.status == 413

    body, headers = raw_form(big, "big.png")

    async def chunked():  # no Content-Length: refused while streaming, past the limit
        for i in range(0, len(body), 1000):
            yield body[i:i + 1000]

    response = await client.post("/api/upload", data=chunked(), headers=headers)
    assert response.status == 413
    assert files_under(home / "inputs") == set()


async def test_uploads_must_be_real_images_within_limits(start, home):
    client = await start(max_image_side=64)
    not_image = await client.post("/api/upload", data=form(b"<script>alert(1)</script>", filename="x.png"))
    assert not_image.status == 415
    message = (await not_image.json())["error"]
    assert "PNG, JPEG, WebP, BMP, GIF or TIFF" in message and "object at 0x" not in message and "BytesIO" not in message
    wrong_type = await client.post("/api/upload", data=form(png(), content_type="text/html"))
    assert wrong_type.status == 415
    ppm = await client.post("/api/upload", data=form(png(fmt="PPM"), filename="a.ppm",
                                                     content_type="application/octet-stream"))
    assert ppm.status == 415 and "format PPM is not accepted" in (await ppm.json())["error"]
    truncated = await client.post("/api/upload", data=form(png((40, 40))[:-30]))
    assert truncated.status == 415
    too_wide = await client.post("/api/upload", data=form(png((65, 10))))
    assert too_wide.status == 400 and "65x10" in (await too_wide.json())["error"]
    no_file = await client.post("/api/upload", data={"subfolder": "x"})
    assert no_file.status == 400
    assert files_under(home / "inputs") == set()
    assert (await client.post("/api/upload", data=form(png((64, 64))))).status == 200


def gif(frames: int, size=(8, 6)) -> bytes:
    buffer = io.BytesIO()
    pictures = [Image.new("RGB", size, (40 * i, 128, 255 - 40 * i)) for i in range(frames)]
    pictures[0].save(buffer, format="GIF", save_all=True, append_images=pictures[1:], duration=100)
    return buffer.getvalue()


async def test_gif_uploads_are_accepted_whole_and_within_the_animation_limit(start, home):
    """GIFs upload as LoadImage reads them in ComfyUI (frames as a batch): every frame must decode,
    and all frames together stay within the animation limit."""
    from graphflow.server.uploads import UploadLimits
    client = await start(max_image_side=64)
    ok = await client.post("/api/upload", data=form(gif(3), filename="a.gif", content_type="image/gif"))
    assert ok.status == 200, await ok.text()
    stored = await ok.json()
    assert stored["path"] == "a.gif" and stored["format"] == "GIF"
    assert (home / "inputs" / "a.gif").read_bytes() == gif(3)
    renamed = await client.post("/api/upload", data=form(gif(2), filename="b.png", content_type="image/gif"))
    assert (await renamed.json())["path"] == "b.gif"  # the extension follows the content
    cut = gif(3)
    truncated = await client.post("/api/upload", data=form(cut[:len(cut) * 2 // 3], filename="c.gif",
                                                            content_type="image/gif"))
    assert truncated.status == 415
    import graphflow.server.uploads as uploads
    with pytest.raises(uploads.RequestError) as e:  # too many frames in all (the route's check, small limit)
        uploads.check_image(gif(3), "image/gif", UploadLimits(max_side=64, max_animation_pixels=2 * 8 * 6))
    assert e.value.status == 400 and "3 frames of 8x6" in str(e.value)
    assert files_under(home / "inputs") == {"a.gif", "b.gif"}


async def test_tiff_uploads_are_listed_and_load_as_in_comfyui(start, home):
    """TIFF, which ComfyUI's LoadImage lists and loads, uploads and loads too: a multi-page TIFF is a
    batch, alpha becomes the mask, and a name saying another format is corrected."""
    import numpy as np
    from tests.test_nodes_image_mask import call
    client = await start()
    pages = [Image.new("RGBA", (8, 6), (10 * i, 200, 30, 255 if i else 0)) for i in range(2)]
    buffer = io.BytesIO()
    pages[0].save(buffer, format="TIFF", save_all=True, append_images=pages[1:])
    data = buffer.getvalue()
    response = await client.post("/api/upload", data=form(data, filename="scan.png", content_type="image/tiff"))
    assert response.status == 200, await response.text()
    stored = await response.json()
    assert stored["path"] == "scan.tif" and stored["format"] == "TIFF"
    assert "scan.tif" in folders_module.folders.list_inputs()
    image, mask = call(Registry().load_builtin(), "LoadImage", image="scan.tif")
    assert image.shape == (2, 6, 8, 3) and mask.shape == (2, 6, 8)
    expected = np.stack([np.asarray(p.convert("RGB"), dtype=np.float32) / 255 for p in pages])
    assert np.allclose(image.numpy(), expected)
    assert mask[0].min() == 1 and mask[1].max() == 0  # transparent page → 1, opaque → 0
    view = await client.get("/api/view", params={"filename": "scan.tif", "type": "input"})
    assert view.status == 200 and view.content_type == "image/tiff"
    as_png = await client.get("/api/view", params={"filename": "scan.tif", "type": "input", "preview": "png"})
    assert as_png.status == 200 and as_png.content_type == "image/png"
    shown = Image.open(io.BytesIO(await as_png.read()))
    assert shown.mode == "RGBA" and shown.getpixel((0, 0)) == (0, 200, 30, 0)  # lossless, alpha kept


async def test_view_serves_only_images_inside_their_folder(start, home, tmp_path):
    client = await start()
    (home / "outputs" / "sub").mkdir(parents=True)
    (home / "outputs" / "sub" / "ok.png").write_bytes(png())
    (home / "outputs" / "notes.txt").write_text("secret")
    secret = tmp_path / "secret.png"
    secret.write_bytes(png())
    os.symlink(secret, home / "outputs" / "link.png")

    ok = await client.get("/api/view", params={"filename": "ok.png", "subfolder": "sub"})
    assert ok.status == 200 and ok.content_type == "image/png"
    refused = [
        {"filename": "../secret.png"}, {"filename": "secret.png", "subfolder": ".."},
        {"filename": str(secret)}, {"filename": "link.png"}, {"filename": "notes.txt"},
        {"filename": "ok.png", "subfolder": "sub", "type": "models"}, {"filename": ""},
        {"filename": "secret.png", "subfolder": "sub/../.."},
    ]
    for params in refused:
        response = await client.get("/api/view", params=params)
        assert response.status == 400, (params, response.status)
    assert (await client.get("/api/view", params={"filename": "missing.png"})).status == 404
    assert (await client.get("/view", params={"filename": "../secret.png"})).status == 400


async def test_foreign_origins_and_hosts_are_refused(start):
    client = await start()
    assert (await client.get("/api/queue")).status == 200
    own = f"http://{client.server.host}:{client.server.port}"
    assert (await client.get("/api/queue", headers={"Origin": own})).status == 200
    evil = await client.post("/api/runs", json={"workflow": {}}, headers={"Origin": "http://evil.example"})
    assert evil.status == 403
    assert (await client.post("/api/interrupt", headers={"Origin": "null"})).status == 403
    rebinding = await client.get("/api/history", headers={"Host": f"evil.example:{client.server.port}"})
    assert rebinding.status == 403
    assert (await client.get("/api/queue", headers={"Host": f"localhost:{client.server.port}"})).status == 200
    with pytest.raises(Exception):
        await client.ws_connect("/ws", headers={"Origin": "http://evil.example"})


async def test_an_allowed_origin_may_call_from_a_browser(start):
    """serve --enable-cors-header ORIGIN (ComfyUI's flag): that origin's preflight is answered, and every
    answer to it, errors too, carries the headers a browser needs to let the page read it; other
    origins stay refused and get no CORS headers; without the flag a preflight is refused."""
    app_origin, evil = "http://app.example:3000", "http://evil.example"
    plain = await start()
    assert (await plain.options("/prompt", headers={"Origin": app_origin})).status == 403
    client = await start(allowed_origins=(app_origin,))
    preflight = await client.options("/prompt", headers={"Origin": app_origin,
                                                         "Access-Control-Request-Method": "POST",
                                                         "Access-Control-Request-Headers": "content-type"})
    assert preflight.status == 200
    assert preflight.headers["Access-Control-Allow-Origin"] == app_origin
    assert "POST" in preflight.headers["Access-Control-Allow-Methods"]
    assert "Content-Type" in preflight.headers["Access-Control-Allow-Headers"]
    queue = await client.get("/api/queue", headers={"Origin": app_origin})
    assert queue.status == 200 and queue.headers["Access-Control-Allow-Origin"] == app_origin
    missing = await client.get("/view", params={"filename": "missing.png"}, headers={"Origin": app_origin})
    assert missing.status == 404 and missing.headers["Access-Control-Allow-Origin"] == app_origin
    refused = await client.get("/api/queue", headers={"Origin": evil})
    assert refused.status == 403 and "Access-Control-Allow-Origin" not in refused.headers
    assert "Access-Control-Allow-Origin" not in (await client.get("/api/queue")).headers  # scripts: as before
    anyone = await start(allowed_origins=("*",))
    answer = await anyone.get("/api/queue", headers={"Origin": evil})
    assert answer.status == 200 and answer.headers["Access-Control-Allow-Origin"] == evil
    assert (await anyone.get("/api/queue", headers={"Origin": "null"})).status == 403


def test_serve_takes_comfyuis_cors_flag(monkeypatch):
    """`graphflow serve --enable-cors-header [ORIGIN]` passes the origin ("*" without a value) to the server."""
    from graphflow import cli
    from graphflow.server import app

    seen = []
    monkeypatch.setattr(app, "serve", lambda **options: seen.append(options["allowed_origins"]) or 0)
    assert cli.main(["serve", "--enable-cors-header", "http://app.example:3000"]) == 0
    assert cli.main(["serve", "--enable-cors-header"]) == 0
    assert cli.main(["serve"]) == 0
    assert seen == [("http://app.example:3000",), ("*",), ()]


async def test_loopback_names_of_the_same_port_are_one_origin(start):
    """A page opened at 127.0.0.1:P may call localhost:P (and the reverse): the same machine and
    server. Another port, another host, or a name rebound to 127.0.0.1 stays out."""
    client = await start()
    port = client.server.port

    async def status(origin, host):
        return (await client.get("/api/queue", headers={"Origin": origin, "Host": host})).status

    assert await status(f"http://127.0.0.1:{port}", f"localhost:{port}") == 200
    assert await status(f"http://localhost:{port}", f"127.0.0.1:{port}") == 200
    assert await status(f"http://[::1]:{port}", f"localhost:{port}") == 200
    assert await status(f"http://LOCALHOST:{port}", f"localhost:{port}") == 200
    assert await status(f"http://127.0.0.1:{port + 1}", f"localhost:{port}") == 403  # another local server
    assert await status("http://127.0.0.1", f"localhost:{port}") == 403  # port 80
    assert await status(f"http://evil.example:{port}", f"localhost:{port}") == 403
    assert await status(f"http://127.0.0.1:{port}", f"evil.example:{port}") == 403  # DNS rebinding
    assert await status(f"http://127.0.0.1:{port}x", f"localhost:{port}") == 403  # malformed
    assert await status("null", f"localhost:{port}") == 403


async def test_slow_clients_lose_previews_first_and_never_block():
    class NeverSends:
        closed = False

    client = Client(NeverSends(), "slow", limit=4, send_timeout=1)
    client.push(Outgoing("status", KEEP))
    client.push(Outgoing("progress-1", PROGRESS))
    client.push(Outgoing(b"frame-1", PREVIEW))
    client.push(Outgoing(b"frame-2", PREVIEW))
    client.push(Outgoing("node_finished", KEEP))  # full: the oldest frame goes
    assert [o.payload for o in client.outbox] == ["status", "progress-1", b"frame-2", "node_finished"]
    client.push(Outgoing("run_finished", KEEP))
    client.push(Outgoing("queue", KEEP))  # no frames left: the oldest progress goes
    assert [o.payload for o in client.outbox] == ["status", "node_finished", "run_finished", "queue"]
    assert client.dropped == 3 and not client.overflowed
    client.push(Outgoing("more", KEEP))  # only messages that matter: the client is cut off
    assert client.overflowed and len(client.outbox) == 4


async def test_stuck_websocket_client_is_cut_off_without_holding_up_runs(start):
    """A client that never reads fills its socket; the runs go on and the other client gets all."""
    client = await start(send_timeout=0.5)
    server = client.server.app[SERVER]
    loop = asyncio.get_running_loop()
    stuck = socket.socket()
    stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stuck.setblocking(False)
    await loop.sock_connect(stuck, (client.server.host, client.server.port))
    await loop.sock_sendall(stuck, (
        f"GET /ws?client_id=stuck HTTP/1.1\r\nHost: 127.0.0.1:{client.server.port}\r\n"
        "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n").encode())
    assert await loop.sock_recv(stuck, 12) == b"HTTP/1.1 101"  # then it never reads again
    ws = await client.ws_connect("/ws")
    run_ids = []
    for red in (1, 2):
        workflow = {"version": 1, "nodes": {
            "1": {"type": "Canvas", "inputs": {"width": 512, "height": 512, "steps": 25, "noise": True, "red": red}},
            "2": {"type": "SaveTestImage", "inputs": {"image": ["1", 0]}}}}
        run_ids.append((await (await client.post("/api/runs", json={"workflow": workflow})).json())["run_id"])

    frames, finished = 0, set()

    async def until_done():
        nonlocal frames
        while len(finished) < 2:
            msg = await ws.receive()
            if msg.type.name == "BINARY":
                frames += 1
            elif json.loads(msg.data)["type"] == "run_finished":
                finished.add(json.loads(msg.data)["data"]["run_id"])

    await asyncio.wait_for(until_done(), 60)
    assert finished == set(run_ids) and frames == 50  # the reading client lost nothing

    async def stuck_gone():
        while len(server.hub.clients) > 1:
            await asyncio.sleep(0.01)

    await asyncio.wait_for(stuck_gone(), 10)
    stuck.close()


def test_serve_prints_url_answers_on_loopback_and_stops_cleanly(tmp_path):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
               GRAPHFLOW_HOME=str(tmp_path))
    process = subprocess.Popen(
        [sys.executable, "-m", "graphflow.cli", "serve", "--port", "0", "--output-dir", str(tmp_path / "out"),
         "--db", str(tmp_path / "q.db")],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = process.stdout.readline()
        assert line.startswith("graphflow server running at http://127.0.0.1:"), (line, process.stderr.read())
        url = line.split()[4]
        with urllib.request.urlopen(url + "api/system", timeout=30) as response:
            system = json.load(response)
        assert system["limits"]["max_upload_bytes"] == 50 * 2**20
        with urllib.request.urlopen(url + "api/queue", timeout=30) as response:
            assert json.load(response) == {"running": [], "pending": [], "pending_total": 0}
    finally:
        process.send_signal(signal.SIGINT)
        code = process.wait(timeout=30)
    assert code == 0
    assert (tmp_path / "q.db").is_file()


def test_serve_reports_a_port_in_use(capsys):
    from graphflow.server.app import serve

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        code = serve("127.0.0.1", taken.getsockname()[1], registry=Registry())
    assert code == 1 and "cannot listen on 127.0.0.1" in capsys.readouterr().err


@pytest.mark.parametrize("host_header, allowed", [
    ("127.0.0.1:8188", True), ("localhost:8188", True), ("[::1]:8188", True), ("localhost", True),
    ("evil.example:8188", False), ("127.0.0.1.evil.example", False), ("[::ffff:10.0.0.1]:80", False),
])
def test_loopback_host_check(host_header, allowed):
    from graphflow.server.app import _host_name, is_loopback

    assert is_loopback(_host_name(host_header)) is allowed
