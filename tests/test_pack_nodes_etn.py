"""Acly's comfyui-tooling-nodes (nodes/pack_nodes_etn.py): the base64 loaders against Pillow's
own decoding, the tile layout against the pack's formula written out, the blended tile mask against
kornia's box_blur, the merge against image x (1 - mask) + tile x mask; errors by input name; an API
prompt under the pack's class names through the executor; and a ComfyUI websocket client getting
ETN_SendImageWebSocket's frames (event 1, format 2 = PNG / 1 = JPEG) that decode to the pixels sent."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import math
import struct

import numpy as np
import pytest
import torch
from aiohttp import WSMsgType
from PIL import Image

import nodes.pack_nodes_etn as etn
from graphflow.comfy_format import LEFT_OUT, custom_pack
from graphflow.context import NodeInputError
from graphflow.registry import Registry
from tests.test_nodes_image_mask import call
from tests.test_pack_nodes import run_graph
from tests.test_pack_nodes_easyuse_samplers import run_with_limits  # noqa: F401
from tests.test_server import home, start  # noqa: F401

ETN_NODES = [cls for cls in vars(etn).values() if isinstance(cls, type) and cls.__module__ == etn.__name__
             and hasattr(cls, "comfy")]


@pytest.fixture(scope="module")
def etn_registry():
    registry = Registry()
    for cls in ETN_NODES:
        registry.add(cls, source="tests")
    return registry


@pytest.fixture
def registry(etn_registry):  # the server fixture's registry: the pack's nodes alone
    return etn_registry


def _base64(array: np.ndarray, mode: str, format: str = "PNG") -> str:
    buffer = io.BytesIO()
    Image.fromarray(array, mode).save(buffer, format=format)
    return base64.b64encode(buffer.getvalue()).decode()


def _pixels(seed: int, shape) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


# -- base64 loaders --------------------------------------------------------------------------------


def test_load_image_base64_gives_pillows_pixels_and_the_alpha_as_mask(etn_registry):
    rgba = _pixels(1, (5, 7, 4))
    image, mask = call(etn_registry, "EtnLoadImageBase64", image=_base64(rgba, "RGBA"))
    assert image.shape == (1, 5, 7, 3) and mask.shape == (1, 5, 7)
    assert torch.equal(image[0], torch.from_numpy(rgba[..., :3].astype(np.float32) / 255.0))
    assert torch.equal(mask[0], torch.from_numpy(rgba[..., 3].astype(np.float32) / 255.0))
    # a data URL's head is skipped; a JPEG (no alpha) gives a mask of ones of its size
    rgb = _pixels(2, (6, 4, 3))
    jpeg = _base64(rgb, "RGB", "JPEG")
    image, mask = call(etn_registry, "EtnLoadImageBase64", image="data:image/jpeg;base64," + jpeg)
    decoded = np.asarray(Image.open(io.BytesIO(base64.b64decode(jpeg))).convert("RGB"), dtype=np.float32) / 255.0
    assert torch.equal(image[0], torch.from_numpy(decoded)) and torch.equal(mask, torch.ones(1, 6, 4))


def test_load_mask_base64_reads_grey_or_the_red_channel(etn_registry):
    grey = _pixels(3, (4, 5))
    assert torch.equal(call(etn_registry, "EtnLoadMaskBase64", mask=_base64(grey, "L"))[0],
                       torch.from_numpy(grey.astype(np.float32) / 255.0))
    rgb = _pixels(4, (4, 5, 3))
    assert torch.equal(call(etn_registry, "EtnLoadMaskBase64", mask=_base64(rgb, "RGB"))[0],
                       torch.from_numpy(rgb[..., 0].astype(np.float32) / 255.0))


def test_base64_loaders_name_bad_input_and_hold_to_max_pixels(etn_registry, run_with_limits):  # noqa: F811
    from graphflow.resource_limits import RunLimits
    for node, name in (("EtnLoadImageBase64", "image"), ("EtnLoadMaskBase64", "mask")):
        for text in ("", "aGVsbG8=", "not base64 at all!"):
            with pytest.raises(NodeInputError) as e:
                call(etn_registry, node, **{name: text})
            assert e.value.input == name
        picture = _base64(np.zeros((5, 4), dtype=np.uint8), "L")
        run_with_limits(RunLimits(max_pixels=19))
        with pytest.raises(NodeInputError, match="4x5, over the 19 pixels") as e:
            call(etn_registry, node, **{name: picture})
        assert e.value.input == name
        run_with_limits(RunLimits(max_pixels=None))


EPS = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 4 4\n%%EndComments\nshowpage\n"


def test_picture_loaders_read_no_format_pillow_hands_to_another_program(etn_registry, exchange):
    """An EPS (Pillow would run Ghostscript on it) is refused by input before anything decodes it,
    as is a BMP for the ETN loaders (the pack's client sends PNG, JPEG or WebP)."""
    import time

    from PIL import EpsImagePlugin

    from graphflow.image_exchange import Entry
    from nodes.pack_nodes_easyuse import checked_picture_bytes

    assert EpsImagePlugin._accept(EPS)  # Pillow would open it
    with pytest.raises(NodeInputError, match="BMP, TIFF") as e:
        checked_picture_bytes(EPS, "base64_data")
    assert e.value.input == "base64_data"
    bmp = io.BytesIO()
    Image.fromarray(_pixels(1, (2, 2, 3)), "RGB").save(bmp, format="BMP")
    for data in (EPS, bmp.getvalue()):
        for node, name in (("EtnLoadImageBase64", "image"), ("EtnLoadMaskBase64", "mask")):
            with pytest.raises(NodeInputError, match="PNG, JPEG, WEBP$") as e:
                call(etn_registry, node, **{name: base64.b64encode(data).decode()})
            assert e.value.input == name
        exchange.entries["sent"] = Entry(data, "image/png", time.monotonic())  # as another part of the code might
        with pytest.raises(NodeInputError, match="PNG, JPEG, WEBP$") as e:
            call(etn_registry, "EtnLoadImageCache", id="sent")
        assert e.value.input == "id"


# -- crop and alpha --------------------------------------------------------------------------------


def test_crop_and_apply_mask(etn_registry):
    image = torch.rand(2, 10, 12, 3, generator=torch.Generator().manual_seed(0))
    out = call(etn_registry, "EtnCropImage", image=image, x=3, y=4, width=20, height=2)
    assert torch.equal(out, image[:, 4:6, 3:12])
    with pytest.raises(NodeInputError) as e:
        call(etn_registry, "EtnCropImage", image=image, x=12, y=0)
    assert e.value.input == "x"
    masks = torch.rand(2, 10, 12)
    out = call(etn_registry, "EtnApplyMaskToImage", image=image, mask=masks)
    assert out.shape == (2, 10, 12, 4) and torch.equal(out[..., :3], image) and torch.equal(out[..., 3], masks)
    out = call(etn_registry, "EtnApplyMaskToImage", image=image, mask=masks[0])  # one mask for every image
    assert torch.equal(out[1, ..., 3], masks[0])
    with pytest.raises(NodeInputError, match="expected the image's size") as e:
        call(etn_registry, "EtnApplyMaskToImage", image=image, mask=torch.ones(1, 5, 5))
    assert e.value.input == "mask"


# -- tiles -----------------------------------------------------------------------------------------


def _expected_layout(h, w, min_tile, padding, multiple):
    """The pack's formula, per side: count = max(1, side // (min_tile - 2p)); tile = ceil(ceil((side +
    (count - 1) 2p) / count) / multiple) x multiple; tile i starts at i (tile - 2p) and ends at
    min(start + tile, side)."""
    sides = []
    for side in (h, w):
        count = max(1, side // (min_tile - 2 * padding))
        tile = math.ceil(math.ceil((side + (count - 1) * 2 * padding) / count) / multiple) * multiple
        sides.append([(i * (tile - 2 * padding), min(i * (tile - 2 * padding) + tile, side)) for i in range(count)])
    return sides


@pytest.mark.parametrize("h, w, min_tile, padding, blending, multiple", [(96, 160, 64, 8, 8, 8), (72, 48, 64, 16, 0, 8),
                                                                         (40, 40, 64, 8, 8, 4)])
def test_tile_layout_and_extraction_follow_the_packs_formula(etn_registry, h, w, min_tile, padding, blending, multiple):
    image = torch.rand(1, h, w, 3, generator=torch.Generator().manual_seed(1))
    layout = call(etn_registry, "EtnTileLayout", image=image, min_tile_size=min_tile, padding=padding,
                  blending=blending, multiple=multiple)
    rows, cols = _expected_layout(h, w, min_tile, padding, multiple)
    assert layout.total_count == len(rows) * len(cols)
    for index in range(layout.total_count):
        (y0, y1), (x0, x1) = rows[index % len(rows)], cols[index // len(rows)]  # down the first column first
        tile = call(etn_registry, "EtnExtractImageTile", image=image, layout=layout, index=index)
        assert torch.equal(tile, image[:, y0:y1, x0:x1])
        mask_tile = call(etn_registry, "EtnExtractMaskTile", mask=image[..., 0], layout=layout, index=index)
        assert torch.equal(mask_tile, image[:, y0:y1, x0:x1, 0])
    with pytest.raises(NodeInputError) as e:
        call(etn_registry, "EtnExtractImageTile", image=image, layout=layout, index=layout.total_count)
    assert e.value.input == "index"


def test_tile_masks_and_merge(etn_registry):
    from kornia.filters import box_blur

    h, w, padding, blending = 96, 160, 8, 8
    image = torch.rand(1, h, w, 3, generator=torch.Generator().manual_seed(2))
    layout = call(etn_registry, "EtnTileLayout", image=image, min_tile_size=64, padding=padding, blending=blending,
                  multiple=8)
    rows, cols = _expected_layout(h, w, 64, padding, 8)
    merged = torch.zeros_like(image)
    for index in range(layout.total_count):
        r, c = index % len(rows), index // len(rows)
        (y0, y1), (x0, x1) = rows[r], cols[c]
        # the tile's own area: its inner sides shrunk by pad (padding - blending unblended, padding blended)
        def area(pad):
            mask = torch.zeros(1, 1, y1 - y0, x1 - x0)
            top, left = (0 if r == 0 else pad), (0 if c == 0 else pad)
            bottom = (y1 - y0) - (0 if r == len(rows) - 1 else pad)
            right = (x1 - x0) - (0 if c == len(cols) - 1 else pad)
            mask[..., top:bottom, left:right] = 1
            return mask
        plain = call(etn_registry, "EtnGenerateTileMask", layout=layout, index=index, blend=False)
        assert torch.equal(plain, area(padding - blending)[0])
        blended = call(etn_registry, "EtnGenerateTileMask", layout=layout, index=index, blend=True)
        assert torch.allclose(blended, box_blur(area(padding), (blending, blending))[0], atol=1e-6)
        tile = torch.rand(1, y1 - y0, x1 - x0, 3, generator=torch.Generator().manual_seed(10 + index))
        before = merged.clone()
        merged = call(etn_registry, "EtnMergeImageTile", image=merged, layout=layout, index=index, tile=tile)
        weight = blended[..., None]
        expected = before.clone()
        expected[:, y0:y1, x0:x1] = (1 - weight) * before[:, y0:y1, x0:x1] + weight * tile
        assert torch.allclose(merged, expected, atol=1e-6)
    with pytest.raises(NodeInputError) as e:
        call(etn_registry, "EtnMergeImageTile", image=merged, layout=layout, index=0, tile=torch.zeros(1, 8, 8, 3))
    assert e.value.input == "tile"


def test_tile_layout_refuses_what_the_pack_asserts(etn_registry):
    image = torch.zeros(1, 64, 60, 3)
    for inputs, name in (({}, "image"), ({"blending": 16, "padding": 8}, "blending"),
                         ({"padding": 32, "min_tile_size": 64}, "padding")):
        picture = image if name == "image" else torch.zeros(1, 64, 64, 3)
        with pytest.raises(NodeInputError) as e:
            call(etn_registry, "EtnTileLayout", image=picture, **{"min_tile_size": 64, **inputs})
        assert e.value.input == name


# -- Krita's nodes outside Krita -------------------------------------------------------------------


def test_parameter_gives_its_default_by_type(etn_registry):
    assert call(etn_registry, "EtnParameter", type="number", default="2.5") == 2.5
    assert call(etn_registry, "EtnParameter", type="number (integer)", default="7") == 7
    assert call(etn_registry, "EtnParameter", type="text", default="a cat") == "a cat"
    with pytest.raises(NodeInputError) as e:
        call(etn_registry, "EtnParameter", type="number (integer)", default="seven")
    assert e.value.input == "default"


def test_translate_passes_english_as_the_pack_does_without_its_translator(etn_registry):
    """The pack's Chunk.parse and translate without argostranslate, worked by hand: pieces between
    directives stripped, empty ones dropped, joined by one space; another language refused."""
    cases = {"  a red fox  ": "a red fox", "a cat lang:en  on a mat ": "a cat on a mat", "lang:en x": "x",
             "lang:en": "", "embedding:style, a cat": "embedding:style, a cat"}
    for text, expected in cases.items():
        assert call(etn_registry, "EtnTranslate", text=text) == expected
    with pytest.raises(NodeInputError, match="lang:de") as e:
        call(etn_registry, "EtnTranslate", text="a lang:de Katze")
    assert e.value.input == "text"


def test_unbuilt_classes_are_named_as_the_packs():
    assert custom_pack("ETN_KritaCanvasResize") == "comfyui-tooling-nodes"
    assert "model" in LEFT_OUT["ETN_NSFWFilter"] and "not built yet" in LEFT_OUT["ETN_KritaCanvasResize"]


# -- the image cache -------------------------------------------------------------------------------


def _png_bytes(array: np.ndarray, mode: str) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array, mode).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
def exchange():
    """The process's image cache, empty before and after the test."""
    from graphflow.image_exchange import image_exchange

    image_exchange.clear()
    yield image_exchange
    image_exchange.clear()


def test_load_image_cache_reads_channels_as_the_pack(etn_registry, exchange):
    grey, rgb = _pixels(8, (3, 5)), _pixels(9, (3, 5, 3))
    exchange.put("etn-test-grey", _png_bytes(grey, "L"), "image/png")
    exchange.put("etn-test-rgb", _png_bytes(rgb, "RGB"), "image/png")
    image, mask = call(etn_registry, "EtnLoadImageCache", id="etn-test-grey")
    expected = torch.from_numpy(grey.astype(np.float32) / 255.0)
    assert torch.equal(image[0], expected[..., None].expand(-1, -1, 3)) and torch.equal(mask[0], expected)
    image, mask = call(etn_registry, "EtnLoadImageCache", id="etn-test-rgb")  # the red channel as the mask
    expected = torch.from_numpy(rgb.astype(np.float32) / 255.0)
    assert torch.equal(image[0], expected) and torch.equal(mask[0], expected[..., 0])
    with pytest.raises(NodeInputError, match="no picture is stored") as e:
        call(etn_registry, "EtnLoadImageCache", id="etn-test-missing")
    assert e.value.input == "id"


def test_load_image_cache_reads_a_new_picture_put_under_an_id_again(etn_registry, exchange):
    """The executor's output cache spans runs: once the first picture under an id has gone, a new
    one PUT under it is what the next run loads."""
    from graphflow.executor import Executor
    from graphflow.workflow import parse_workflow

    executor = Executor(etn_registry)
    prompt = {"1": {"class_type": "ETN_LoadImageCache", "inputs": {"id": "fixed"}}}
    loaded = []
    for value in (10, 200):
        exchange.clear()  # the first picture expired
        exchange.put("fixed", _png_bytes(np.full((4, 4, 3), value, np.uint8), "RGB"), "image/png")
        result = executor.run(parse_workflow(prompt, etn_registry), outputs=["1"])
        assert result.ok, (result.problems, result.error)
        loaded.append(round(result.values["1"][0][0, 0, 0, 0].item() * 255))
    assert loaded == [10, 200]


@pytest.fixture
def clock(monkeypatch):
    """graphflow.image_exchange's time.monotonic, set by hand."""
    import graphflow.image_exchange as module

    now = [1000.0]
    monkeypatch.setattr(module.time, "monotonic", lambda: now[0])
    return now


def test_image_exchange_keeps_pictures_as_the_pack(clock):
    """600 s after they were stored or last loaded by a node; 60 s once fetched twice."""
    from graphflow.image_exchange import ImageExchange

    exchange = ImageExchange()
    exchange.put("kept", b"1", "x")
    exchange.put("loaded", b"2", "x")
    exchange.put("fetched", b"3", "x")
    exchange.get("fetched"), exchange.get("fetched")
    clock[0] += 59
    assert exchange.holds("fetched")
    clock[0] += 2
    assert not exchange.holds("fetched") and exchange.holds("kept")
    clock[0] += 500
    assert exchange.get("loaded", loading=True) is not None  # at 561 s: 600 s more from now
    clock[0] += 40
    assert not exchange.holds("kept") and exchange.holds("loaded")
    clock[0] += 559
    assert exchange.holds("loaded")
    clock[0] += 2
    assert not exchange.holds("loaded") and exchange.total == 0


def test_image_exchange_drops_the_oldest_over_its_limits_but_never_a_nodes_own_batch():
    from graphflow.image_exchange import ImageExchange, TooLarge

    exchange = ImageExchange(max_bytes=10, max_entries=3)
    assert exchange.put("a", b"1234", "x") and exchange.put("b", b"5678", "x")
    assert not exchange.put("a", b"other", "x") and exchange.get("a").data == b"1234"  # kept, as "cached"
    exchange.put("c", b"9012", "x")
    assert not exchange.holds("a") and exchange.get("b").data == b"5678" and exchange.holds("c")
    with pytest.raises(TooLarge):
        exchange.put("big", b"x" * 11, "x")
    assert not exchange.holds("big") and exchange.holds("b")
    keys = exchange.add_all([(b"123", "x"), (b"456", "x"), (b"789", "x")])
    assert all(exchange.holds(key) for key in keys) and not exchange.holds("b") and exchange.total == 9
    with pytest.raises(TooLarge):  # 12 bytes together: storing the last would drop the first
        exchange.add_all([(b"123456", "x"), (b"123456", "x")])
    exchange.add_all([(b"1", "x")])
    assert len(exchange.entries) == 3 and exchange.total == 7  # at most 3 entries


def test_save_image_cache_refuses_a_batch_over_the_cap_by_input(etn_registry, exchange, monkeypatch):
    monkeypatch.setattr(exchange, "max_bytes", 100)
    with pytest.raises(NodeInputError, match="over the 100") as e:
        call(etn_registry, "EtnSaveImageCache", images=torch.rand(2, 16, 16, 3), format="PNG")
    assert e.value.input == "images" and not exchange.entries


async def test_image_routes_store_and_serve_only_pictures_by_their_own_type(start, exchange):  # noqa: F811
    """A page PUT as text/html is refused (served back it would run as the server's own); a picture
    is served under the type its bytes show, with nosniff, whatever Content-Type it was sent with."""
    client = await start(max_upload_bytes=4096)
    page = await client.put("/api/etn/image/page", data=b"<script>alert(1)</script>",
                            headers={"Content-Type": "text/html"})
    assert page.status == 415 and "PNG, JPEG or WebP" in (await page.json())["error"]
    assert (await client.get("/api/etn/image/page")).status == 404
    empty = await client.put("/api/etn/image/empty", data=b"", headers={"Content-Type": "image/png"})
    assert empty.status == 400 and "empty" in (await empty.json())["error"]
    buffer = io.BytesIO()
    Image.fromarray(_pixels(11, (4, 4, 3)), "RGB").save(buffer, format="WEBP", lossless=True)
    for key, data, sent_as, served_as in (("p", _png_bytes(_pixels(12, (4, 4, 3)), "RGB"), "text/html", "image/png"),
                                          ("w", buffer.getvalue(), "image/png; charset=utf-8", "image/webp")):
        assert (await client.put(f"/api/etn/image/{key}", data=data, headers={"Content-Type": sent_as})).status == 201
        answer = await client.get(f"/api/etn/image/{key}")
        assert answer.status == 200 and answer.content_type == served_as
        assert answer.headers["X-Content-Type-Options"] == "nosniff" and await answer.read() == data
    # an id already held is answered before the body is read: over the upload limit, still "cached"
    again = await client.put("/api/etn/image/p", data=b"x" * 5000)
    assert again.status == 200 and await again.json() == {"status": "cached"}


class _IdleDispatcher:
    """Stands for graphflow.cluster.RayDispatcher: the queue runs elsewhere (here: nowhere)."""

    async def loop(self, server):
        while not server.stopping:
            await asyncio.sleep(0.02)


async def test_image_routes_are_refused_where_nodes_run_on_ray_workers(start, exchange):  # noqa: F811
    client = await start(dispatcher=_IdleDispatcher())
    for method in ("get", "put"):
        answer = await getattr(client, method)("/api/etn/image/x", data=_png_bytes(_pixels(1, (2, 2, 3)), "RGB"))
        assert answer.status == 501 and "Ray workers" in (await answer.json())["error"]
    assert not exchange.entries


async def test_a_client_round_trips_pictures_through_the_image_routes(start, exchange):  # noqa: F811
    """As the Krita plugin: PUT a picture, queue LoadImageCache -> ApplyMaskToImage -> SaveImageCache,
    read the id from "executed", GET the picture: the pixels sent, alpha and all."""
    rgba = _pixels(10, (6, 8, 4))
    client = await start(max_upload_bytes=4096)
    url = "/api/etn/image/krita-input-1"
    answer = await client.put(url, data=_png_bytes(rgba, "RGBA"), headers={"Content-Type": "image/png"})
    assert answer.status == 201 and await answer.json() == {"status": "success"}
    answer = await client.put(url, data=b"other", headers={"Content-Type": "image/png"})
    assert answer.status == 200 and await answer.json() == {"status": "cached"}
    assert (await client.put("/api/etn/image/big", data=b"x" * 5000)).status == 413
    missing = await client.get("/api/etn/image/nothing-here")
    assert missing.status == 404 and await missing.json() == {"error": "Image not found"}

    ws = await client.ws_connect("/ws?clientId=krita")
    assert (await ws.receive_json())["type"] == "status"
    prompt = {"1": {"class_type": "ETN_LoadImageCache", "inputs": {"id": "krita-input-1"}},
              "2": {"class_type": "ETN_ApplyMaskToImage", "inputs": {"image": ["1", 0], "mask": ["1", 1]}},
              "3": {"class_type": "ETN_SaveImageCache", "inputs": {"images": ["2", 0], "format": "PNG"}}}
    queued = await (await client.post("/prompt", json={"prompt": prompt, "client_id": "krita"})).json()
    executed = None
    while True:
        message = await asyncio.wait_for(ws.receive_json(), 30)
        if message["type"] == "executed" and message["data"]["node"] == "3":
            executed = message["data"]["output"]
        if message["type"] == "executing" and message["data"]["node"] is None \
                and message["data"]["prompt_id"] == queued["prompt_id"]:
            break
    await ws.close()
    (entry,) = executed["images"]
    assert {k: entry[k] for k in ("source", "content-type", "type")} == {"source": "http", "content-type": "image/png",
                                                                          "type": "output"}
    answer = await client.get(f"/api/etn/image/{entry['id']}")
    assert answer.status == 200 and answer.content_type == "image/png"
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(await answer.read()))), rgba)


# -- a ComfyUI prompt, and the websocket -----------------------------------------------------------


def _tiled_prompt(picture: str, format: str = "PNG") -> dict:
    """API format: load, cut into tiles, merge them back, send over the websocket."""
    prompt = {"1": {"class_type": "ETN_LoadImageBase64", "inputs": {"image": picture}},
              "2": {"class_type": "ETN_TileLayout", "inputs": {"image": ["1", 0], "min_tile_size": 64, "padding": 8,
                                                               "blending": 8, "multiple": 8}}}
    previous = ["1", 0]
    for index in range(2):
        prompt[f"t{index}"] = {"class_type": "ETN_ExtractImageTile",
                               "inputs": {"image": ["1", 0], "layout": ["2", 0], "index": index}}
        prompt[f"m{index}"] = {"class_type": "ETN_MergeImageTile",
                               "inputs": {"image": previous, "layout": ["2", 0], "index": index,
                                          "tile": [f"t{index}", 0]}}
        previous = [f"m{index}", 0]
    prompt["9"] = {"class_type": "ETN_SendImageWebSocket", "inputs": {"images": previous, "format": format}}
    return prompt


def test_api_prompt_runs_through_the_executor(etn_registry):
    rgb = _pixels(5, (64, 96, 3))
    result = run_graph(etn_registry, _tiled_prompt(_base64(rgb, "RGB")))
    assert result.outputs["9"]["images"] == [{"source": "websocket", "content-type": "image/png", "type": "output"}]


def test_headless_run_sends_and_saves_nothing(etn_registry, monkeypatch, tmp_path, capsys):
    """`graphflow run` of a prompt ending in ETN_SendImageWebSocket: it succeeds, names no file (the
    node's "executed" entries have none) and writes none."""
    from graphflow import cli, registry as registry_module

    monkeypatch.setattr(registry_module, "_default", etn_registry)
    path = tmp_path / "prompt.json"
    path.write_text(json.dumps(_tiled_prompt(_base64(_pixels(7, (64, 96, 3)), "RGB"))))
    outputs = tmp_path / "outputs"
    assert cli.main(["run", str(path), "--output-dir", str(outputs)]) == 0
    assert "Traceback" not in capsys.readouterr().err
    assert not outputs.exists() or not any(outputs.rglob("*.*"))


def test_headless_run_prints_sent_text_as_its_text(etn_registry, monkeypatch, tmp_path, capsys):
    """KritaSendText's "executed" entry is a dict (name, text, content-type): `graphflow run` prints
    its name and text, not the dict."""
    from graphflow import cli, registry as registry_module

    monkeypatch.setattr(registry_module, "_default", etn_registry)
    prompt = {"1": {"class_type": "ETN_Parameter", "inputs": {"name": "steps", "type": "number (integer)",
                                                             "default": 7, "min": 0, "max": 100}},
              "2": {"class_type": "ETN_KritaSendText", "inputs": {"value": ["1", 0], "name": "Steps", "type": "text"}}}
    path = tmp_path / "prompt.json"
    path.write_text(json.dumps(prompt))
    assert cli.main(["run", str(path), "--output-dir", str(tmp_path / "outputs"), "--quiet"]) == 0
    assert capsys.readouterr().out.splitlines() == ["Steps: 7"]


async def test_a_comfyui_client_gets_the_sent_images(start):  # noqa: F811
    rgb = _pixels(6, (64, 96, 3))
    client = await start()
    ws = await client.ws_connect("/ws?clientId=krita")  # no &previews=1: sent images are results, not previews
    assert (await ws.receive_json())["type"] == "status"
    frames = {}
    for format in ("PNG", "JPEG"):
        queued = await (await client.post("/prompt", json={"prompt": _tiled_prompt(_base64(rgb, "RGB"), format),
                                                            "client_id": "krita"})).json()
        frames[format], executed = [], None
        while True:
            msg = await asyncio.wait_for(ws.receive(), 30)
            if msg.type == WSMsgType.BINARY:
                frames[format].append(msg.data)
                continue
            message = json.loads(msg.data)
            if message["type"] == "executed" and message["data"]["node"] == "9":
                executed = message["data"]["output"]
            if message["type"] == "executing" and message["data"]["node"] is None \
                    and message["data"]["prompt_id"] == queued["prompt_id"]:
                break
        assert executed == {"images": [{"source": "websocket", "content-type": f"image/{format.lower()}",
                                        "type": "output"}]}
    await ws.close()
    (png,), (jpeg,) = frames["PNG"], frames["JPEG"]
    assert struct.unpack_from(">II", png) == (1, 2) and struct.unpack_from(">II", jpeg) == (1, 1)
    # the tiles merged back over the image they were cut from are that image (to float rounding:
    # 255 x value is truncated to 8 bits, so a blend a hair under a level drops one)
    sent = np.asarray(Image.open(io.BytesIO(png[8:])).convert("RGB"), dtype=int)
    assert sent.shape == rgb.shape and np.abs(sent - rgb).max() <= 1
    # the JPEG is the same pixels as Pillow encodes them at the pack's quality, 95
    reference = io.BytesIO()
    Image.open(io.BytesIO(png[8:])).save(reference, format="JPEG", quality=95)
    decoded = Image.open(io.BytesIO(jpeg[8:]))
    assert decoded.format == "JPEG"
    assert np.array_equal(np.asarray(decoded), np.asarray(Image.open(reference)))


async def test_sent_images_go_only_to_the_client_that_queued_the_run(start):  # noqa: F811
    """As ComfyUI's send_sync(..., client_id): another client, on either protocol, gets no frame of it."""
    from tests.test_server import finished, receive_until

    client = await start()
    owner = await client.ws_connect("/ws?client_id=krita")
    others = [await client.ws_connect("/ws?client_id=editor"), await client.ws_connect("/ws?clientId=script")]
    for ws in (owner, *others):
        assert (await ws.receive_json())["type"] == "status"
    prompt = {"1": {"class_type": "ETN_LoadImageBase64", "inputs": {"image": _base64(_pixels(2, (4, 4, 3)), "RGB")}},
              "2": {"class_type": "ETN_SendImageWebSocket", "inputs": {"images": ["1", 0], "format": "PNG"}}}
    queued = await (await client.post("/prompt", json={"prompt": prompt, "client_id": "krita"})).json()
    got = await receive_until(owner, finished(queued["prompt_id"]))
    assert [m["data"]["node"] for m in got if m["type"] == "frame"] == ["2"]
    editor_got = await receive_until(others[0], finished(queued["prompt_id"]))
    assert not [m for m in editor_got if m["type"] == "frame"]
    # a ComfyUI client hears nothing of another's run; what it has by now (the frame was queued to
    # every client before the run ended) has no binary frame
    script_got = []
    with pytest.raises(asyncio.TimeoutError):
        while True:
            script_got.append(await asyncio.wait_for(others[1].receive(), 0.5))
    assert not [msg for msg in script_got if msg.type == WSMsgType.BINARY]
    for ws in (owner, *others):
        await ws.close()


# -- regions: attention masks ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_unet_model():
    from graphflow.models import DiffusionModel, UNet
    from graphflow.testing import unet_config, unet_state

    unet = UNet(unet_config("sd1"))
    unet.load_state_dict(unet_state(unet.config, dtype=torch.float32))
    return DiffusionModel(unet.eval(), "sd1")


def _conditioning(seed: int, tokens: int, width: int) -> list:
    return [(torch.randn(1, tokens, width, generator=torch.Generator().manual_seed(seed)), {})]


def _halves(h: int, w: int) -> torch.Tensor:
    """A mask of the picture's right half."""
    mask = torch.zeros(1, h, w)
    mask[..., w // 2:] = 1
    return mask


def test_region_masks_list_with_the_background_as_what_is_left(etn_registry):
    a, b = _conditioning(1, 3, 8), _conditioning(2, 5, 8)
    mask = torch.rand(1, 6, 4, generator=torch.Generator().manual_seed(3))
    regions = call(etn_registry, "EtnDefineRegion", mask=mask, conditioning=b,
                   regions=call(etn_registry, "EtnBackgroundRegion", conditioning=a))
    masks = call(etn_registry, "EtnListRegionMasks", regions=regions)
    assert torch.equal(masks, torch.cat([1 - mask, mask]))
    for inputs, name in (({"regions": call(etn_registry, "EtnBackgroundRegion", conditioning=a)}, "regions"),):
        with pytest.raises(NodeInputError) as e:
            call(etn_registry, "EtnListRegionMasks", **inputs)
        assert e.value.input == name
    with pytest.raises(NodeInputError) as e:
        call(etn_registry, "EtnDefineRegion", mask=torch.ones(1, 5, 5), conditioning=a, regions=regions)
    assert e.value.input == "mask"


def test_each_region_prompt_is_attended_to_only_inside_its_mask(etn_registry, tiny_unet_model):
    """One cross-attention of the patched UNet against the plain one: a positive row's tokens in the
    left half are the plain attention to the background's prompt, in the right half to the region's
    (so outside its mask a region's prompt has no influence); a negative row keeps its own text."""
    from graphflow.models.ip_adapter import cross_attentions
    from graphflow.models.unet import latent_size
    from graphflow.sampling.guidance import UNetRows, unet_rows

    width = tiny_unet_model.unet.config.context_dim
    background, region, own = _conditioning(4, 7, width), _conditioning(5, 3, width), _conditioning(6, 7, width)
    h, w = 4, 6  # the latent; the masks at the image's size (8 x)
    regions = call(etn_registry, "EtnDefineRegion", mask=_halves(8 * h, 8 * w), conditioning=region,
                   regions=call(etn_registry, "EtnBackgroundRegion", conditioning=background))
    patched = call(etn_registry, "EtnAttentionMask", model=tiny_unet_model, regions=regions)
    plain_modules, patched_modules = dict(tiny_unet_model.unet.named_modules()), dict(patched.unet.named_modules())
    checked = 0
    for path in cross_attentions(tiny_unet_model.unet):
        plain = plain_modules[path]
        for grid in ((h, w), (h // 2, w // 2)):
            seeded = torch.Generator().manual_seed(7)
            tokens = torch.randn(2, grid[0] * grid[1], plain.to_q.in_features, generator=seeded)
            context = own[0][0].expand(2, -1, -1)
            rows, size = unet_rows.set(UNetRows(torch.tensor([1.0, 1.0]), (False, True))), latent_size.set((h, w))
            try:
                with torch.no_grad():
                    out = patched_modules[path](tokens, context, grid)
                    to_background = plain(tokens, background[0][0].expand(2, -1, -1), grid)
                    to_region = plain(tokens, region[0][0].expand(2, -1, -1), grid)
                    to_own = plain(tokens, context, grid)
            finally:
                latent_size.reset(size)
                unet_rows.reset(rows)
            # nearest-neighbour: token column c reads mask column floor(c x 8w / grid w)
            right = (torch.arange(grid[0] * grid[1]) % grid[1]) * (8 * w) // grid[1] >= 4 * w
            torch.testing.assert_close(out[0, ~right], to_background[0, ~right], atol=1e-5, rtol=0)
            torch.testing.assert_close(out[0, right], to_region[0, right], atol=1e-5, rtol=0)
            torch.testing.assert_close(out[1], to_own[1], atol=1e-5, rtol=0)
            assert (to_region[0, ~right] - to_background[0, ~right]).abs().max() > 1e-3  # the prompts differ
            checked += 1
    assert checked >= 4


def test_a_lora_applied_after_the_attention_mask_changes_the_regions_keys(etn_registry, tiny_unet_model):
    """A patched copy of the regional model (a LoRA's: to_k x 3) shares its attention override; its
    region keys come from its own weights, as if the regions were applied after the LoRA, and the
    regional model before it keeps its own."""
    from graphflow.models.ip_adapter import cross_attentions
    from graphflow.models.lora import patched_copy
    from graphflow.models.unet import latent_size

    width = tiny_unet_model.unet.config.context_dim
    regions = call(etn_registry, "EtnDefineRegion", mask=_halves(4, 6), conditioning=_conditioning(2, 3, width),
                   regions=call(etn_registry, "EtnBackgroundRegion", conditioning=_conditioning(1, 5, width)))
    path = cross_attentions(tiny_unet_model.unet)[0]
    weight = dict(tiny_unet_model.unet.named_parameters())[path + ".to_k.weight"]
    lora = {path + ".to_k.weight": weight * 3}
    regional = call(etn_registry, "EtnAttentionMask", model=tiny_unet_model, regions=regions)
    lora_after = patched_copy(regional.unet, lora)
    lora_first = call(etn_registry, "EtnAttentionMask", regions=regions,
                      model=tiny_unet_model.with_unet(patched_copy(tiny_unet_model.unet, lora))).unet
    attn = dict(regional.unet.named_modules())[path]
    tokens = torch.randn(1, 24, attn.to_q.in_features, generator=torch.Generator().manual_seed(3))
    text = torch.zeros(1, 5, width)  # a positive row's own text: not attended to
    size = latent_size.set((4, 6))
    try:
        with torch.no_grad():
            before = attn(tokens, text, (4, 6))
            out, expected = (dict(unet.named_modules())[path](tokens, text, (4, 6)) for unet in (lora_after, lora_first))
            again = attn(tokens, text, (4, 6))
    finally:
        latent_size.reset(size)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=0)
    torch.testing.assert_close(again, before, atol=0, rtol=0)
    assert (out - before).abs().max() > 1e-2


def test_regions_on_an_sdxl_unet_of_an_odd_latent(etn_registry):
    """SDXL (two attention grids a level, a 5 x 7 latent the grids round down from): regions all of
    the positive prompt give the plain UNet's output; the negative row is untouched either way."""
    from graphflow.models import DiffusionModel, UNet
    from graphflow.sampling.guidance import UNetRows, unet_rows
    from graphflow.testing import unet_config, unet_state

    config = unet_config("sdxl")
    unet = UNet(config)
    unet.load_state_dict(unet_state(config, dtype=torch.float32))
    model = DiffusionModel(unet.eval(), "sdxl")
    seeded = torch.Generator().manual_seed(0)
    text = torch.randn(1, 7, config.context_dim, generator=seeded)
    regions = call(etn_registry, "EtnDefineRegion", mask=_halves(5, 7), conditioning=[(text, {})],
                   regions=call(etn_registry, "EtnBackgroundRegion", conditioning=[(text, {})]))
    patched = call(etn_registry, "EtnAttentionMask", model=model, regions=regions)
    x, t = torch.randn(2, 4, 5, 7, generator=seeded), torch.tensor([500.0, 500.0])
    y = torch.randn(2, config.adm_in_channels, generator=seeded)
    rows = unet_rows.set(UNetRows(t, (False, True)))
    try:
        with torch.no_grad():
            out = patched.unet(x, t, text.expand(2, -1, -1), y=y)
            expected = model.unet(x, t, text.expand(2, -1, -1), y=y)
    finally:
        unet_rows.reset(rows)
    torch.testing.assert_close(out, expected, atol=1e-4, rtol=0)


def test_attention_mask_refuses_masks_of_another_size_and_uncovered_pixels(etn_registry, tiny_unet_model):
    from graphflow.sampling.guidance import UNetRows, unet_rows

    width = tiny_unet_model.unet.config.context_dim
    a, b = _conditioning(1, 3, width), _conditioning(2, 3, width)
    regions = call(etn_registry, "EtnDefineRegion", mask=_halves(5, 5), conditioning=b,
                   regions=call(etn_registry, "EtnBackgroundRegion", conditioning=a))
    patched = call(etn_registry, "EtnAttentionMask", model=tiny_unet_model, regions=regions)
    rows = unet_rows.set(UNetRows(torch.tensor([1.0]), (False,)))
    try:
        with pytest.raises(NodeInputError, match="5x5: expected the latent's size, 8x8") as e, torch.no_grad():
            patched.unet(torch.zeros(1, 4, 8, 8), torch.tensor([500.0]), a[0][0])
    finally:
        unet_rows.reset(rows)
    assert e.value.input == "model"
    rows = unet_rows.set(UNetRows(torch.tensor([1.0, 1.0]), (False, True)))  # a batch of 1 for 2 rows
    try:
        with pytest.raises(NodeInputError, match="batch of 1 rows for the 2") as e, torch.no_grad():
            patched.unet(torch.zeros(1, 4, 5, 5), torch.tensor([500.0]), a[0][0])
    finally:
        unet_rows.reset(rows)
    assert e.value.input == "model"
    uncovered = call(etn_registry, "EtnDefineRegion", mask=_halves(8, 8), conditioning=b,
                     regions=call(etn_registry, "EtnDefineRegion", mask=_halves(8, 8), conditioning=a))
    with pytest.raises(NodeInputError, match="add up to 0") as e:
        call(etn_registry, "EtnAttentionMask", model=tiny_unet_model, regions=uncovered)
    assert e.value.input == "regions"
    prompts = [(torch.cat([a[0][0], b[0][0]]), {})]  # a batch of two prompts: the pack's repeat fails on it
    with pytest.raises(NodeInputError, match="batch of 2 prompts: expected one") as e:
        call(etn_registry, "EtnDefineRegion", mask=_halves(8, 8), conditioning=prompts)
    assert e.value.input == "conditioning"


def test_regions_prompt_runs_through_the_sampler(builtin_registry, tmp_folders):
    """An API prompt sampling with ETN_AttentionMask (a latent-sized region mask of 0.5, so the
    background weighs 0.5 too): background and region both the prompt "a" give the plain run's
    latent with positive "a" (the weights add up to 1); a region prompt "b" changes it."""
    from graphflow.testing import write_checkpoint

    (tmp_folders.models / "checkpoints").mkdir(exist_ok=True)
    write_checkpoint(tmp_folders.models / "checkpoints" / "tiny.safetensors", "sd1")

    def prompt(region_text: str | None) -> dict:
        nodes = {
            "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "tiny.safetensors"}},
            "2": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["1", 1], "text": "a"}},
            "3": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["1", 1], "text": "bad"}},
            "4": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
            "9": {"class_type": "KSampler", "inputs": {"model": ["1", 0], "positive": ["2", 0], "negative": ["3", 0],
                                                       "latent_image": ["4", 0], "seed": 3, "steps": 2, "cfg": 5.0,
                                                       "sampler_name": "euler", "scheduler": "normal", "denoise": 1.0}},
        }
        if region_text is not None:
            nodes.update({
                "5": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["1", 1], "text": region_text}},
                "6": {"class_type": "SolidMask", "inputs": {"value": 0.5, "width": 8, "height": 8}},
                "7": {"class_type": "ETN_BackgroundRegion", "inputs": {"conditioning": ["2", 0]}},
                "8": {"class_type": "ETN_DefineRegion", "inputs": {"mask": ["6", 0], "conditioning": ["5", 0],
                                                                   "regions": ["7", 0]}},
                "10": {"class_type": "ETN_AttentionMask", "inputs": {"model": ["1", 0], "regions": ["8", 0]}},
            })
            nodes["9"]["inputs"]["model"] = ["10", 0]
        return nodes

    def sampled(region_text):
        return run_graph(builtin_registry, prompt(region_text), outputs=["9"]).values["9"][0]["samples"]

    plain = sampled(None)
    torch.testing.assert_close(sampled("a"), plain, atol=1e-4, rtol=0)
    assert (sampled("b") - plain).abs().max() > 1e-3


# -- reference images ------------------------------------------------------------------------------


def test_reference_images_split_the_steps_and_thin_the_tokens_by_weight(etn_registry, tmp_path):
    """Against the pack's formula written out: the steps cut at every reference's start and end, each
    stretch the text tokens + the tokens of the references covering all of it; weight 1 keeps an
    image's 16 SigLIP tokens (a 4 x 4 grid), 0.7 averages 2 x 2 blocks (4 tokens), 0.4 averages to 1."""
    from graphflow.models.clip_vision import load_clip_vision
    from graphflow.models.redux import load_style_model
    from graphflow.testing import T5_TINY_WIDTH, write_clip_vision, write_redux

    vision = load_clip_vision(write_clip_vision(tmp_path / "siglip.safetensors", "siglip", dtype=torch.float32))
    redux = load_style_model(write_redux(tmp_path / "redux.safetensors", dtype=torch.float32))
    images = [torch.rand(1, 40, 48, 3, generator=torch.Generator().manual_seed(20 + i)) for i in range(3)]
    style = [redux.tokens(vision.encode_image(image)) for image in images]  # [1, 16, D] each
    base = torch.randn(1, 5, T5_TINY_WIDTH, generator=torch.Generator().manual_seed(30))
    references = None
    for image, weight, start, end in ((images[0], 1.0, 0.0, 0.5), (images[1], 0.7, 0.25, 1.0),
                                      (images[2], 0.4, 0.0, 1.0)):
        references = call(etn_registry, "EtnReferenceImage", image=image, weight=weight, range_start=start,
                          range_end=end, reference_images=references)
    out = call(etn_registry, "EtnApplyReferenceImages", conditioning=[(base, {"pooled_output": None})],
               clip_vision=vision, style_model=redux, references=references)
    grid = style[1].reshape(4, 4, -1)
    blocks = torch.stack([grid[r:r + 2, c:c + 2].mean((0, 1)) for r in (0, 2) for c in (0, 2)])[None]
    whole = style[2].mean(1, keepdim=True)
    expected = [(0.0, 0.25, [style[0], whole]), (0.25, 0.5, [style[0], blocks, whole]), (0.5, 1.0, [blocks, whole])]
    assert len(out) == len(expected)
    for (tokens, options), (start, end, parts) in zip(out, expected):
        assert (options["start_percent"], options["end_percent"]) == (start, end) and "pooled_output" in options
        torch.testing.assert_close(tokens, torch.cat([base, *parts], dim=1), atol=1e-5, rtol=0)
    with pytest.raises(NodeInputError) as e:
        call(etn_registry, "EtnApplyReferenceImages", conditioning=[(torch.zeros(1, 5, 7), {})], clip_vision=vision,
             style_model=redux, references=references)
    assert e.value.input == "style_model"
    with pytest.raises(NodeInputError, match="batch of 2 prompts") as e:
        call(etn_registry, "EtnApplyReferenceImages", conditioning=[(base.expand(2, -1, -1), {})], clip_vision=vision,
             style_model=redux, references=references)
    assert e.value.input == "conditioning"
    unbatched = (etn.Reference(images[0][0], 1.0, 0.0, 1.0),)  # [H, W, C]: the encoder refuses it
    with pytest.raises(NodeInputError, match="expected an IMAGE") as e:
        call(etn_registry, "EtnApplyReferenceImages", conditioning=[(base, {})], clip_vision=vision,
             style_model=redux, references=unbatched)
    assert e.value.input == "references"
