"""The ETN pack's model info, upload, workflow exchange and translation routes
(graphflow/server/etn_routes.py, graphflow/models/base_model_info.py), against the answers the
pack's api.py gives (its model_names table and inspect rules, written out per file below), on small
files in the real layouts (graphflow.testing)."""

import asyncio
import os
from types import SimpleNamespace

import pytest
import torch
from safetensors.torch import save_file

import graphflow.models.base_model_info as bmi
import graphflow.server.etn_routes as routes
from graphflow import testing
from graphflow.folders import folders
from graphflow.models.weight_files import config_metadata
from graphflow.server.server import SERVER
from graphflow.server import uploads
from graphflow.server.etn_routes import EXCHANGE, MODEL_UPLOADS
from tests.test_server import home, start  # noqa: F401

# file -> the pack's answer (model_names: SD15 sd15, SD20 sd20, SDXL sdxl + ModelType, SDXLRefiner
# sdxl-refiner, SD3 sd3, Flux flux, FluxSchnell flux-schnell, FluxInpaint flux + is_inpaint, Chroma chroma)
EXPECTED = {
    "sd15.safetensors": {"base_model": "sd15", "is_inpaint": False},
    "sd15_inpaint.safetensors": {"base_model": "sd15", "is_inpaint": True},
    "sd2.safetensors": {"base_model": "sd20", "is_inpaint": False},
    "sdxl.safetensors": {"base_model": "sdxl", "is_inpaint": False, "type": "eps"},
    # ComfyUI's SDXL.model_type markers, as the pack reads them: v_pred, CosXL's edm_vpred, Playground's edm
    "sdxl_v.safetensors": {"base_model": "sdxl", "is_inpaint": False, "type": "v-prediction"},
    "cosxl.safetensors": {"base_model": "sdxl", "is_inpaint": False, "type": "v-prediction-edm"},
    "playground.safetensors": {"base_model": "sdxl", "is_inpaint": False, "type": "edm"},
    # beyond the pack (its eps): v-prediction stated in graphflow.config, which graphflow samples as v
    "sdxl_v_config.safetensors": {"base_model": "sdxl", "is_inpaint": False, "type": "v-prediction"},
    "sdxl_refiner.safetensors": {"base_model": "sdxl-refiner", "is_inpaint": False},
    "sd3.safetensors": {"base_model": "sd3", "is_inpaint": False},
    "flux_dev.safetensors": {"base_model": "flux", "is_inpaint": False},
    "flux_schnell.safetensors": {"base_model": "flux-schnell", "is_inpaint": False},
    "flux_fill.safetensors": {"base_model": "flux", "is_inpaint": True},
    "chroma.safetensors": {"base_model": "chroma", "is_inpaint": False},
    "lora.safetensors": {"base_model": "unknown"},  # no diffusion model in it: the pack's plain unknown
    "esrgan.safetensors": {"base_model": "unknown"},
    "graphflow-demo.safetensors": {"base_model": "sd15", "is_inpaint": False},  # the bundled demo: SD1's layout
}
BROKEN = ("corrupt.safetensors", "huge_header.safetensors", "old.ckpt", "odd_metadata.safetensors")
# a header whose __metadata__ is no object of strings
ODD_HEADER = b'{"__metadata__": [1], "x": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}'
ODD_METADATA = len(ODD_HEADER).to_bytes(8, "little") + ODD_HEADER + bytes(4)


@pytest.fixture
def registry(builtin_registry):  # the server's: LoraLoader's file list shows an upload
    return builtin_registry


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    base = tmp_path_factory.mktemp("etn_models")
    checkpoints = base / "checkpoints"
    checkpoints.mkdir()
    for arch, name in (("sd1", "sd15"), ("sd1_inpaint", "sd15_inpaint"), ("sd2", "sd2"), ("sdxl", "sdxl"),
                       ("sdxl_refiner", "sdxl_refiner")):
        testing.write_checkpoint(checkpoints / f"{name}.safetensors", arch)
    for name, markers in (("sdxl_v", {"v_pred": torch.zeros(1)}), ("cosxl", {"edm_vpred.sigma_max": torch.ones(1)}),
                          ("playground", {"edm_mean": torch.zeros(1, 4, 1, 1), "edm_std": torch.ones(1, 4, 1, 1)})):
        testing.write_checkpoint(checkpoints / f"{name}.safetensors", "sdxl", extra=markers)
    testing.write_checkpoint(checkpoints / "sdxl_v_config.safetensors", "sdxl",
                             metadata=config_metadata(prediction="v"))
    testing.write_esrgan(checkpoints / "esrgan.safetensors")
    for family, name in (("sd3_medium", "sd3"), ("flux_dev", "flux_dev"), ("flux_schnell", "flux_schnell"),
                         ("flux_fill", "flux_fill")):
        testing.write_flow_checkpoint(checkpoints / f"{name}.safetensors", family)
    testing.write_chroma(checkpoints / "chroma.safetensors", prefixed=True)
    testing.write_lora(checkpoints / "lora.safetensors", "sd1")
    (checkpoints / "corrupt.safetensors").write_bytes(b"\x40\x00\x00\x00\x00\x00\x00\x00{\"a\": [1, 2")
    with open(checkpoints / "huge_header.safetensors", "wb") as fh:  # sparse: the claimed header fits the file
        fh.write((200_000_000).to_bytes(8, "little") + b"{}")
        fh.truncate(8 + 200_000_000 + 16)
    torch.save({"state_dict": {}}, checkpoints / "old.ckpt")
    (checkpoints / "odd_metadata.safetensors").write_bytes(ODD_METADATA)

    diffusion = base / "diffusion_models"
    diffusion.mkdir()
    # bare UNets (ComfyUI's UNETLoader layout); their architecture in graphflow.config, as scaled down
    # they match no real family's widths
    for arch, name in (("sdxl", "xl_unet"), ("sd1_inpaint", "sd15_inpaint_unet")):
        state = testing.unet_state(testing.unet_config(arch))
        save_file(state, str(diffusion / f"{name}.safetensors"),
                  metadata=config_metadata(arch=testing.base_arch(arch)))
    testing.write_wan(diffusion / "wan_t2v.safetensors")
    testing.write_wan(diffusion / "wan_i2v.safetensors", i2v=True)
    testing.write_lumina2(diffusion / "lumina2.safetensors")
    for family in ("flux_dev", "flux_schnell"):  # ComfyUI-GGUF's layout: the bare diffusion model's keys
        shapes = testing.flow_file_shapes(family, components=("model",), prefixed=False)
        testing.write_gguf(diffusion / f"{family}.gguf", testing.random_state(shapes, 0, torch.float32), "flux", "Q8_0")
    # stable-diffusion.cpp's: no general.architecture (the pack: flux), told by its tensors here
    testing.write_gguf(diffusion / "sdcpp.gguf", testing.random_state(shapes, 0, torch.float32), None, "Q8_0")
    for arch, name in (("sdxl", "sdxl"), ("sd1_inpaint", "sd15_inpaint")):  # no graphflow.config: named by the arch
        testing.write_gguf(diffusion / f"{name}.gguf", testing.unet_state(testing.unet_config(arch), 0, torch.float32),
                           testing.base_arch(arch), "Q8_0")
    # the tensors the pack's inspect_gguf looks at, alone (stored dims: ggml's first is torch's last)
    for name, arch, state, metadata in (
            ("chroma", "flux", {"distilled_guidance_layer.in_proj.weight": torch.zeros(4, 32)}, {}),
            ("klein", "flux", {"double_stream_modulation_img.lin.weight": torch.zeros(2, 3072)},
             {"general.file_type": "Q8_0"}),
            ("flux2", "flux", {"double_stream_modulation_img.lin.weight": torch.zeros(2, 5120)}, {}),
            ("zimage", "lumina2", {"cap_embedder.1.bias": torch.zeros(3840)}, {}),
            ("wan", "wan", {"x.weight": torch.zeros(4, 32)}, {"general.file_type": 7})):
        testing.write_gguf(diffusion / f"{name}.gguf", state, arch, qtype={}, metadata=metadata)
    testing.write_gguf(diffusion / "t5.gguf", {"enc.blk.0.attn_q.weight": torch.zeros(4, 32)}, "t5", qtype={})
    testing.write_gguf(diffusion / "audio.gguf", {"x.weight": torch.zeros(4, 32)}, "stable_audio", qtype={})
    (diffusion / "cut.gguf").write_bytes(b"GGUF\x03\x00\x00\x00" + b"\x07" * 20)
    return base


@pytest.fixture
def models(home, model_dir):  # noqa: F811
    (home / "models").mkdir()
    for folder in ("checkpoints", "diffusion_models"):
        os.symlink(model_dir / folder, home / "models" / folder)
    return home / "models"


@pytest.fixture(autouse=True)
def fresh_cache(monkeypatch):
    monkeypatch.setattr(bmi, "info_cache", bmi.InfoCache())
    monkeypatch.setattr(routes, "info_cache", bmi.info_cache)


async def test_model_info_names_each_checkpoint_as_the_pack(start, models):  # noqa: F811
    client = await start()
    answer = await client.get("/api/etn/model_info")
    assert answer.status == 200
    info = await answer.json()
    assert set(info) == set(EXPECTED) | set(BROKEN)  # every file, no _meta without limit
    for name, expected in EXPECTED.items():
        assert info[name] == expected, name
    for name in BROKEN:
        assert info[name]["base_model"] == "unknown" and info[name]["error"].startswith("Failed to detect"), name
    assert "100000000" in info["huge_header.safetensors"]["error"]
    assert "__metadata__" in info["odd_metadata.safetensors"]["error"]
    assert await (await client.get("/api/etn/model_info/checkpoints")).json() == info


async def test_diffusion_models_and_gguf_folders(start, models):  # noqa: F811
    client = await start()
    info = await (await client.get("/api/etn/model_info/diffusion_models")).json()
    assert info == {"xl_unet.safetensors": {"base_model": "sdxl", "is_inpaint": False, "type": "eps"},
                    "sd15_inpaint_unet.safetensors": {"base_model": "sd15", "is_inpaint": True},
                    # ComfyUI's WAN21_T2V / WAN21_I2V and Lumina2 classes, in the pack's model_names
                    "wan_t2v.safetensors": {"base_model": "wan21", "is_inpaint": False, "type": "t2v"},
                    "wan_i2v.safetensors": {"base_model": "wan21", "is_inpaint": False, "type": "i2v"},
                    "lumina2.safetensors": {"base_model": "lumina2", "is_inpaint": False}}
    assert await (await client.get("/api/etn/model_info/unet")).json() == info  # ComfyUI's legacy name
    gguf = await (await client.get("/api/etn/model_info/unet_gguf")).json()
    # the pack's inspect_gguf: general.architecture through gguf_architectures (sd1 -> sd15), is_inpaint
    # False, the tensors it looks for, quant general.file_type lower-cased (a number fails into "gguf")
    plain = {"is_inpaint": False}
    assert {name: gguf.pop(name) for name in ("flux_dev.gguf", "flux_schnell.gguf", "sdxl.gguf", "sd15_inpaint.gguf",
                                              "chroma.gguf", "klein.gguf", "flux2.gguf", "zimage.gguf", "wan.gguf",
                                              "sdcpp.gguf")} \
        == {"flux_dev.gguf": {"base_model": "flux", **plain}, "flux_schnell.gguf": {"base_model": "flux", **plain},
            "sdxl.gguf": {"base_model": "sdxl", **plain}, "sd15_inpaint.gguf": {"base_model": "sd15", **plain},
            "chroma.gguf": {"base_model": "chroma", **plain},
            "klein.gguf": {"base_model": "flux2", **plain, "type": "klein-4b", "quant": "q8_0"},
            "flux2.gguf": {"base_model": "flux2", **plain}, "zimage.gguf": {"base_model": "z-image", **plain},
            "wan.gguf": {"base_model": "wan", **plain, "quant": "gguf"},
            "sdcpp.gguf": {"base_model": "flux-schnell", **plain}}
    # a text encoder, an architecture ComfyUI-GGUF refuses, a cut file: each its own error
    assert sorted(gguf) == ["audio.gguf", "cut.gguf", "t5.gguf"]
    assert all(entry["base_model"] == "unknown" for entry in gguf.values())
    assert "text encoder" in gguf["t5.gguf"]["error"] and "stable_audio" in gguf["audio.gguf"]["error"]
    assert gguf["cut.gguf"]["error"].startswith("Failed to detect base model")


async def test_paging_and_errors_as_the_pack(start, models):  # noqa: F811
    client = await start()
    names = sorted([*EXPECTED, *BROKEN])
    seen = {}
    for offset in range(0, len(names), 8):  # the plugin's try_inspect
        page = await (await client.get(f"/api/etn/model_info/checkpoints?offset={offset}&limit=8")).json()
        meta = page.pop("_meta")
        assert meta == {"offset": offset, "count": len(names[offset:offset + 8]), "total": len(names)}
        assert list(page) == names[offset:offset + 8]
        seen.update(page)
    assert set(seen) == set(names)
    past = await (await client.get("/api/etn/model_info/checkpoints?offset=100&limit=8")).json()
    assert past == {"_meta": {"offset": 100, "count": 0, "total": len(names)}}
    unknown = await client.get("/api/etn/model_info/nowhere")
    assert unknown.status == 400
    error = (await unknown.json())["error"]
    assert error.startswith("Invalid folder path, must be one of ") and "checkpoints" in error and "unet_gguf" in error
    for query in ("limit=-1", "offset=x", "limit=1.5"):
        bad = await client.get(f"/api/etn/model_info/checkpoints?{query}")
        assert bad.status == 400 and query.split("=")[0] in (await bad.json())["error"]


async def test_the_folder_walk_runs_off_the_event_loop(start, models, monkeypatch):  # noqa: F811
    walks = []
    list_models = folders.list_models

    def walk(*args):
        try:
            asyncio.get_running_loop()
            walks.append("on the event loop")
        except RuntimeError:
            walks.append("in a thread")
        return list_models(*args)

    monkeypatch.setattr(folders, "list_models", walk)
    client = await start()
    assert (await client.get("/api/etn/model_info/checkpoints?limit=2")).status == 200
    assert walks == ["in a thread"]


async def test_headers_are_read_once_per_file_state(start, models, model_dir, monkeypatch):  # noqa: F811
    calls = []
    inspect = bmi.inspect_file
    monkeypatch.setattr(bmi, "inspect_file", lambda path: calls.append(path.name) or inspect(path))
    client = await start()
    first = await (await client.get("/api/etn/model_info/checkpoints")).json()
    assert sorted(calls) == sorted(first)
    calls.clear()
    assert await (await client.get("/api/etn/model_info/checkpoints")).json() == first
    assert calls == []
    corrupt = model_dir / "checkpoints" / "corrupt.safetensors"
    saved = corrupt.read_bytes()
    try:
        testing.write_lora(corrupt, "sd1")  # another file under the same name: read again
        again = await (await client.get("/api/etn/model_info/checkpoints")).json()
        assert calls == ["corrupt.safetensors"] and again["corrupt.safetensors"] == {"base_model": "unknown"}
    finally:
        corrupt.write_bytes(saved)


def test_the_cache_sees_same_size_same_mtime_replacements_and_replaced_shards(tmp_path, monkeypatch):
    calls = []
    inspect = bmi.inspect_file
    monkeypatch.setattr(bmi, "inspect_file", lambda path: calls.append(path.name) or inspect(path))
    cache = bmi.InfoCache()

    def replace_keeping_times(path, data: bytes):  # as `cp -p` or a sync tool does
        times = path.stat()
        temp = path.with_name("temp")
        temp.write_bytes(data)
        os.replace(temp, path)
        os.utime(path, ns=(times.st_atime_ns, times.st_mtime_ns))

    lora = testing.write_lora(tmp_path / "a.safetensors", "sd1")
    assert cache.get(lora) == {"base_model": "unknown"} and cache.get(lora) == {"base_model": "unknown"}
    assert calls == ["a.safetensors"]
    replace_keeping_times(lora, b"x" * lora.stat().st_size)
    assert "error" in cache.get(lora) and calls == ["a.safetensors"] * 2

    index = testing.shard_file(testing.write_checkpoint(tmp_path / "sd15.safetensors", "sd1"))
    assert cache.get(index) == {"base_model": "sd15", "is_inpaint": False}
    shard = tmp_path / "sd15-00001-of-00003.safetensors"
    replace_keeping_times(shard, b"y" * shard.stat().st_size)
    assert "error" in cache.get(index) and calls[-2:] == [index.name] * 2


def test_a_reader_failure_is_that_file_entry(tmp_path, monkeypatch):
    """inspect_file never raises: whatever a reader trips on is the file's error entry."""
    path = testing.write_lora(tmp_path / "x.safetensors", "sd1")
    monkeypatch.setattr(bmi, "_detected", lambda f: f.not_an_attribute)  # an AttributeError, as a reader bug gives
    answer = bmi.inspect_file(path)
    assert answer["base_model"] == "unknown" and answer["error"].startswith("Failed to detect base model")


def test_ssd1b_and_variants_the_pack_does_not_name():
    """SSD-1B is SDXL with ComfyUI's SSD1B transformer depths; unCLIP is sd21; a family the pack's
    table lacks (Chroma Radiance, Wan 2.2 TI2V) is unknown, without an error; Wan and Lumina 2 as
    ComfyUI's classes tell them apart."""
    unet = SimpleNamespace(transformer_depth_input=(0, 0, 2, 2, 4, 4), in_channels=4)
    sdxl = SimpleNamespace(arch="sdxl", unet=unet, prediction="eps", unclip=False)
    assert bmi.base_model(sdxl) == {"base_model": "ssd1b", "is_inpaint": False}
    assert bmi.base_model(replace_ns(sdxl, unet=SimpleNamespace(transformer_depth_input=None, in_channels=9))) == \
        {"base_model": "sdxl", "is_inpaint": True, "type": "eps"}
    sd2 = SimpleNamespace(arch="sd2", unet=SimpleNamespace(in_channels=4), prediction="v", unclip=True)
    assert bmi.base_model(sd2) == {"base_model": "sd21", "is_inpaint": False}
    for family in ("chroma_radiance", "wan22_ti2v", "hunyuan_image"):
        assert bmi.base_model(SimpleNamespace(arch="x", family=family, config=None)) == {"base_model": "unknown"}
    lumina = SimpleNamespace(arch="lumina2", family="lumina2", config=SimpleNamespace(dim=2304))
    assert bmi.base_model(lumina) == {"base_model": "lumina2", "is_inpaint": False}
    lumina.config.dim = 3840  # the pack's Z-Image width: graphflow does not run it, so not offered
    assert bmi.base_model(lumina)["base_model"] == "unknown" and "Z-Image" in bmi.base_model(lumina)["error"]
    wan = SimpleNamespace(arch="wan", family="wan_i2v", config=None)
    assert bmi.base_model(wan) == {"base_model": "wan21", "is_inpaint": False, "type": "i2v"}
    # ComfyUI's WAN21_FunControl2V needs img_emb (model_type i2v), else WAN21_T2V takes the file;
    # WAN21_Camera is in_dim 32, WAN22_Camera (36) is not in the pack's table
    fun = SimpleNamespace(arch="wan", family="wan_fun_control", config=SimpleNamespace(i2v=True, in_channels=48))
    assert bmi.base_model(fun) == {"base_model": "wan21-fun", "is_inpaint": False, "type": "control2v"}
    fun.config.i2v = False
    assert bmi.base_model(fun) == {"base_model": "wan21", "is_inpaint": False, "type": "t2v"}
    camera = SimpleNamespace(arch="wan", family="wan_camera", config=SimpleNamespace(i2v=False, in_channels=32))
    assert bmi.base_model(camera) == {"base_model": "wan21-camera", "is_inpaint": False}
    camera.config.in_channels = 36
    assert bmi.base_model(camera) == {"base_model": "unknown"}


def replace_ns(ns, **changes):
    return SimpleNamespace(**{**vars(ns), **changes})


# -- upload -----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def lora_bytes(tmp_path_factory):
    return testing.write_lora(tmp_path_factory.mktemp("lora") / "l.safetensors", "sd1").read_bytes()


async def test_upload_stores_a_lora_the_lists_then_offer(start, home, lora_bytes):  # noqa: F811
    client = await start()
    url = "/api/etn/upload/loras/my style_v1.2-x.safetensors"
    answer = await client.put(url, data=lora_bytes)
    assert answer.status == 201 and await answer.json() == {"status": "success"}
    stored = home / "models" / "loras" / "my style_v1.2-x.safetensors"
    assert stored.read_bytes() == lora_bytes
    assert [p.name for p in stored.parent.iterdir()] == [stored.name]  # no temporary file left
    nodes = await (await client.get("/object_info/LoraLoader")).json()
    assert stored.name in nodes["LoraLoader"]["input"]["required"]["lora_name"][0]
    info = await (await client.get("/api/etn/model_info/loras")).json()
    assert info[stored.name] == {"base_model": "unknown"}  # a LoRA: no diffusion model in it
    again = await client.put(url, data=b"anything")
    assert again.status == 200 and await again.json() == {"status": "cached"}
    assert stored.read_bytes() == lora_bytes


async def test_upload_refuses_names_folders_and_bodies(start, home, lora_bytes):  # noqa: F811
    client = await start(max_model_upload_bytes=len(lora_bytes) + 10)
    for name, text in (("x.ckpt", "File extension must be .safetensors"), (".x.safetensors", "Invalid filename"),
                       ("a..b.safetensors", "Invalid filename"), ("a$b.safetensors", "Invalid filename"),
                       ("%E2%9C%93.safetensors", "Invalid filename")):
        answer = await client.put(f"/api/etn/upload/loras/{name}", data=lora_bytes)
        assert answer.status == 400 and text in (await answer.json())["error"], name
    folder = await client.put("/api/etn/upload/nowhere/x.safetensors", data=lora_bytes)
    assert folder.status == 400 and "Invalid folder path" in (await folder.json())["error"]
    for body in (b"not a model at all", ODD_METADATA):
        garbage = await client.put("/api/etn/upload/loras/g.safetensors", data=body)
        assert garbage.status == 400 and "safetensors" in (await garbage.json())["error"], body
    big = await client.put("/api/etn/upload/loras/big.safetensors", data=lora_bytes + b"x" * 11)
    assert big.status == 413

    async def chunks():  # no Content-Length: refused when the stream passes the limit
        for start_at in range(0, len(lora_bytes) + 100, 4096):
            yield (lora_bytes + b"y" * 100)[start_at:start_at + 4096]
    streamed = await client.put("/api/etn/upload/loras/streamed.safetensors", data=chunks())
    assert streamed.status == 413
    loras = home / "models" / "loras"
    assert not loras.exists() or list(loras.iterdir()) == []  # nothing half-written, no temporary file


async def test_upload_mode_space_concurrency_and_what_is_in_the_way(start, home, lora_bytes, monkeypatch):  # noqa: F811
    client = await start()
    assert (await client.put("/api/etn/upload/loras/a.safetensors", data=lora_bytes)).status == 201
    loras = home / "models" / "loras"
    # a new file's mode under the umask (mkstemp's own is 0600), as /upload/image's store_upload gives
    mode = 0o666 & ~uploads._UMASK
    assert mode != 0o600 and (loras / "a.safetensors").stat().st_mode & 0o777 == mode
    stored = uploads.store_upload(b"\x89PNG...", "p.png", "", "PNG", overwrite=False)
    assert (folders.inputs / stored["name"]).stat().st_mode & 0o777 == mode

    (loras / "d.safetensors").mkdir()  # a directory under the name: not "cached"
    in_the_way = await client.put("/api/etn/upload/loras/d.safetensors", data=lora_bytes)
    assert in_the_way.status == 409 and "not a file" in (await in_the_way.json())["error"]

    monkeypatch.setattr(routes.shutil, "disk_usage", lambda path: SimpleNamespace(free=len(lora_bytes) - 1))
    full = await client.put("/api/etn/upload/loras/b.safetensors", data=lora_bytes)
    assert full.status == 507 and "free" in (await full.json())["error"]
    monkeypatch.undo()

    running = client.app[MODEL_UPLOADS]
    for _ in range(routes.MAX_MODEL_UPLOADS):
        await running.acquire()
    busy = await client.put("/api/etn/upload/loras/b.safetensors", data=lora_bytes)
    assert busy.status == 503
    running.release()
    assert (await client.put("/api/etn/upload/loras/b.safetensors", data=lora_bytes)).status == 201
    assert sorted(p.name for p in loras.iterdir()) == ["a.safetensors", "b.safetensors", "d.safetensors"]


def test_publish_never_replaces_a_name_taken_meanwhile(tmp_path):
    with uploads.staged_file(tmp_path) as (f, temp):
        f.write(b"new")
        f.close()
        (tmp_path / "x.safetensors").write_bytes(b"first")  # another upload finished first
        assert uploads.publish_file(temp, tmp_path / "x.safetensors", overwrite=False) is False
    assert (tmp_path / "x.safetensors").read_bytes() == b"first"
    assert [p.name for p in tmp_path.iterdir()] == ["x.safetensors"]  # the staged file removed


async def test_stale_staged_files_are_swept_at_start(start, home):  # noqa: F811
    loras = home / "models" / "loras"
    loras.mkdir(parents=True)
    stale, fresh = loras / ".upload-stale", loras / ".upload-fresh"
    stale.write_bytes(b"half")
    fresh.write_bytes(b"being written")
    old = stale.stat().st_mtime - uploads.STALE_AFTER - 10
    os.utime(stale, (old, old))
    await start()
    assert not stale.exists() and fresh.exists()


# -- workflow exchange ------------------------------------------------------------------------------

async def _next_message(ws, kind: str) -> dict:
    while True:
        message = await asyncio.wait_for(ws.receive_json(), 10)
        if message["type"] == kind:
            return message


async def test_published_workflows_reach_the_subscribed_clients_only(start):  # noqa: F811
    client = await start()
    krita = await client.ws_connect("/ws?clientId=krita")
    other = await client.ws_connect("/ws?clientId=other")
    for ws in (krita, other):
        assert (await ws.receive_json())["type"] == "status"
    assert await (await client.post("/api/etn/workflow/subscribe", json={"client_id": "krita"})).json() == \
        {"status": "success"}

    first = {"1": {"class_type": "KritaCanvas", "inputs": {}}}
    body = {"name": "ComfyUI", "client_id": "editor-1", "workflow": first}
    assert (await client.post("/api/etn/workflow/publish", json=body)).status == 200
    message = await _next_message(krita, "etn_workflow_published")
    assert message["data"] == {"publisher": {"name": "ComfyUI", "id": "editor-1"}, "workflow": first}
    # the other socket got nothing: its next message is the answer to its own ping
    await other.send_json({"type": "ping"})
    assert (await other.receive_json())["type"] == "pong"

    second = {"2": {"class_type": "KritaOutput", "inputs": {}}}
    await client.post("/api/etn/workflow/publish", json={**body, "workflow": second})
    assert (await _next_message(krita, "etn_workflow_published"))["data"]["workflow"] == second
    # a late subscriber gets each publisher's last workflow at once
    assert (await client.post("/api/etn/workflow/subscribe", json={"client_id": "other"})).status == 200
    assert (await _next_message(other, "etn_workflow_published"))["data"]["workflow"] == second
    # subscribing again (the plugin does after each reconnect) is no error, and sends them again
    assert (await client.post("/api/etn/workflow/subscribe", json={"client_id": "krita"})).status == 200
    assert (await _next_message(krita, "etn_workflow_published"))["data"]["workflow"] == second

    assert (await client.post("/api/etn/workflow/unsubscribe", json={"client_id": "krita"})).status == 200
    gone = await client.post("/api/etn/workflow/unsubscribe", json={"client_id": "krita"})
    assert gone.status == 400 and await gone.json() == {"error": "'No subscriber found with id krita'"}
    await client.post("/api/etn/workflow/publish", json={**body, "workflow": first})
    await krita.send_json({"type": "ping"})
    assert (await krita.receive_json())["type"] == "pong"
    for ws in (krita, other):
        await ws.close()


async def test_workflow_routes_refuse_bad_bodies(start):  # noqa: F811
    client = await start()
    missing = await client.post("/api/etn/workflow/publish", json={"name": "x", "client_id": "y"})
    assert missing.status == 400 and await missing.json() == {"error": "'workflow'"}
    for route, body, text in (("publish", [1], "JSON object"),
                              ("publish", {"name": "x", "client_id": "y", "workflow": "text"}, "workflow must be"),
                              ("subscribe", {"client_id": 5}, "client_id must be"),
                              ("subscribe", {"client_id": ""}, "client_id must be"),
                              ("subscribe", {"client_id": "x" * 129}, "client_id must be"),
                              ("publish", {"name": "x", "client_id": "a/b", "workflow": {}}, "client_id must be"),
                              ("subscribe", {"client_id": "nobody"}, "no open websocket")):
        answer = await client.post(f"/api/etn/workflow/{route}", json=body)
        assert answer.status == 400 and text in (await answer.json())["error"], body
    not_json = await client.post("/api/etn/workflow/subscribe", data=b"{nope")
    assert not_json.status == 400 and "not valid JSON" in (await not_json.json())["error"]
    for depth in (200, 5000):  # past graphflow's MAX_JSON_DEPTH, and past the decoder's recursion limit
        deep = b'{"name": "x", "client_id": "y", "workflow": ' + b'{"a": ' * depth + b"{}" + b"}" * (depth + 1)
        answer = await client.post("/api/etn/workflow/publish", data=deep)
        assert answer.status == 400 and "deeper than" in (await answer.json())["error"], depth
    big = {"name": "x", "client_id": "y", "workflow": {"1": "x" * routes.MAX_WORKFLOW_BYTES}}
    assert (await client.post("/api/etn/workflow/publish", json=big)).status == 413


async def test_subscribers_without_a_socket_are_dropped_and_publish_encodes_once(start, monkeypatch):  # noqa: F811
    import graphflow.server.events as events

    client = await start()
    sockets = [await client.ws_connect(f"/ws?clientId=k{i}") for i in range(3)]
    for i, ws in enumerate(sockets):
        await ws.receive_json()
        assert (await client.post("/api/etn/workflow/subscribe", json={"client_id": f"k{i}"})).status == 200
    await sockets[0].close()
    for _ in range(100):  # the server sees the close
        if "k0" not in client.app[SERVER].hub.client_ids():
            break
        await asyncio.sleep(0.01)
    encoded = []
    message = events.message
    monkeypatch.setattr(events, "message", lambda kind, data: encoded.append(kind) or message(kind, data))
    body = {"name": "ComfyUI", "client_id": "editor", "workflow": {"1": {}}}
    assert (await client.post("/api/etn/workflow/publish", json=body)).status == 200
    for ws in sockets[1:]:
        assert (await _next_message(ws, "etn_workflow_published"))["data"]["workflow"] == {"1": {}}
    assert encoded.count("etn_workflow_published") == 1
    assert client.app[EXCHANGE].subscribers == {"k1", "k2"}
    gone = await client.post("/api/etn/workflow/unsubscribe", json={"client_id": "k0"})
    assert gone.status == 400 and await gone.json() == {"error": "'No subscriber found with id k0'"}
    for ws in sockets[1:]:
        await ws.close()


async def test_translate_answers_as_the_pack_without_its_translator(start):  # noqa: F811
    client = await start()
    english = await client.get("/api/etn/translate/en/a red fox")
    assert english.status == 200 and await english.json() == "a red fox"
    mixed = await client.get("/api/etn/translate/en/a cat lang:en  on a mat ")
    assert await mixed.json() == "a cat on a mat"
    german = await client.get("/api/etn/translate/de/eine Katze")
    assert german.status == 500 and "lang:de" in (await german.json())["error"]


def test_published_workflows_are_kept_within_the_byte_cap(monkeypatch):
    hub = SimpleNamespace(client_ids=set, send_to=lambda *a: None)
    exchange = routes.WorkflowExchange(hub)
    monkeypatch.setattr(routes, "MAX_PUBLISHED_BYTES", 100)
    for i in range(3):
        exchange.publish("ComfyUI", f"editor-{i}", {}, 40)
    assert list(exchange.publishers) == ["editor-1", "editor-2"]  # the oldest dropped: 120 bytes > 100
    exchange.publish("ComfyUI", "editor-1", {}, 10)  # a publisher's new workflow replaces its last
    assert list(exchange.publishers) == ["editor-2", "editor-1"]
