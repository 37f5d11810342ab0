"""GET /api/nodes and /object_info are kept between requests (graphflow.server.json_api's
RegistryReply) but stay current: a model file dropped into its folder, an uploaded picture or a node
added to the registry shows at the next request, and the reply is the catalogue made afresh."""

import gc
import json
import weakref

import pytest

import graphflow.folders as folders_module
from graphflow.folders import walks_remembered
from graphflow.registry import Registry
from graphflow.server.app import SERVER, create_app
from graphflow.server.comfyui_object_info import object_info
from graphflow.server.events import dumps
from graphflow.types import SOCKET_TYPES, SocketType

COMFY_CLASSES = ("CheckpointLoaderSimple", "LoadImage", "LoraLoader")  # LoadCheckpoint, LoadImage, LoadLoRA


@pytest.fixture
def registry(builtin_registry):
    registry = Registry()
    for class_type in COMFY_CLASSES:
        registry.add(builtin_registry.comfy_node(class_type))
    return registry


@pytest.fixture
async def client(aiohttp_client, registry, tmp_folders):
    return await aiohttp_client(create_app(registry, tmp_folders.home / "runs.db", web_dir=None))


def _options(catalogue: dict, node_type: str, name: str) -> list:
    return next(i["options"] for i in catalogue["nodes"][node_type]["inputs"] if i["name"] == name)


async def _get(client, path: str) -> dict:
    response = await client.get(path)
    assert response.status == 200 and response.content_type == "application/json"
    return json.loads(await response.read())


async def test_a_model_file_dropped_into_its_folder_is_offered_at_the_next_request(client, tmp_folders):
    first = await _get(client, "/api/nodes")
    assert "mine.safetensors" not in _options(first, "LoadCheckpoint", "checkpoint")
    assert await _get(client, "/api/nodes") == first

    (tmp_folders.models / "checkpoints" / "deep").mkdir(parents=True)
    (tmp_folders.models / "checkpoints" / "deep" / "mine.safetensors").write_bytes(b"{}")
    catalogue = await _get(client, "/api/nodes")
    assert "deep/mine.safetensors" in _options(catalogue, "LoadCheckpoint", "checkpoint")
    assert "deep/mine.safetensors" not in _options(catalogue, "LoadLoRA", "lora_name")
    info = await _get(client, "/object_info")
    assert "deep/mine.safetensors" in info["CheckpointLoaderSimple"]["input"]["required"]["ckpt_name"][0]
    one = await _get(client, "/object_info/CheckpointLoaderSimple")
    assert one == {"CheckpointLoaderSimple": info["CheckpointLoaderSimple"]}

    (tmp_folders.models / "checkpoints" / "deep" / "mine.safetensors").unlink()
    catalogue = await _get(client, "/api/nodes")
    assert "deep/mine.safetensors" not in _options(catalogue, "LoadCheckpoint", "checkpoint")
    assert catalogue == first


async def test_an_input_picture_and_an_added_node_show_at_the_next_request(client, registry, builtin_registry,
                                                                          tmp_folders):
    await _get(client, "/api/nodes")
    (tmp_folders.inputs / "dropped.png").write_bytes(b"not read for the list")
    assert "dropped.png" in _options(await _get(client, "/api/nodes"), "LoadImage", "image")
    await _get(client, "/object_info")
    registry.add(builtin_registry.comfy_node("VAELoader"))
    assert "LoadVAE" in (await _get(client, "/api/nodes"))["nodes"]
    assert "VAELoader" in await _get(client, "/object_info")


async def test_the_kept_replies_are_the_catalogue_and_object_info_made_afresh(client, registry, tmp_folders):
    (tmp_folders.models / "loras").mkdir(parents=True)
    (tmp_folders.models / "loras" / "style.safetensors").write_bytes(b"{}")
    for _ in range(2):
        assert await _get(client, "/api/nodes") == json.loads(json.dumps(registry.catalogue()))
        assert await _get(client, "/object_info") == json.loads(json.dumps(object_info(registry)))


def test_a_folder_is_walked_once_while_walks_are_remembered(tmp_folders, monkeypatch):
    (tmp_folders.models / "loras").mkdir(parents=True)
    (tmp_folders.models / "loras" / "a.safetensors").write_bytes(b"{}")
    walked = []
    walk = folders_module._walk
    monkeypatch.setattr(folders_module, "_walk", lambda base: walked.append(base) or walk(base))
    with walks_remembered():
        first = tmp_folders.list_models("loras")
        first.append("changed by its caller")
        assert "a.safetensors" in first and tmp_folders.list_models("loras") == first[:-1]
    assert walked == tmp_folders.model_dirs("loras")
    (tmp_folders.models / "loras" / "b.safetensors").write_bytes(b"{}")
    assert "b.safetensors" in tmp_folders.list_models("loras")  # no longer remembered


class _Made(dict):
    """A reply as its maker made it, which a weak reference can watch."""


def _watch_making(server, monkeypatch) -> list[weakref.ref]:
    """A weak reference to each reply the server's kept replies make from now on."""
    made = []
    for reply in (server.nodes_reply, server.object_info_reply):
        def make(registry, make=reply.make):
            data = _Made(make(registry))
            made.append(weakref.ref(data))
            return data
        monkeypatch.setattr(reply, "make", make)
    return made


async def test_an_unchanged_registry_is_not_made_again(client, monkeypatch):
    made = _watch_making(client.app[SERVER], monkeypatch)
    for _ in range(3):
        await _get(client, "/api/nodes")
        await _get(client, "/object_info")
        await _get(client, "/object_info/LoadImage")
    assert len(made) == 2


async def test_a_node_without_a_choice_shows_at_the_next_request(client, registry, builtin_registry):
    await _get(client, "/api/nodes")
    await _get(client, "/object_info")
    empty_latent = builtin_registry.comfy_node("EmptyLatentImage")
    assert not any(spec.widget and spec.widget.kind == "CHOICE" for spec in empty_latent.input_specs.values())
    registry.add(empty_latent)  # no choice's options change: only the registry's nodes do
    assert "EmptyLatent" in (await _get(client, "/api/nodes"))["nodes"]
    assert "EmptyLatentImage" in await _get(client, "/object_info")


async def test_a_socket_type_and_a_load_problem_show_at_the_next_request(client, registry, monkeypatch):
    await _get(client, "/api/nodes")
    monkeypatch.setitem(SOCKET_TYPES, "REPLY_TEST", SocketType("REPLY_TEST", "#123456", "declared after a reply"))
    assert (await _get(client, "/api/nodes"))["sockets"]["REPLY_TEST"]["color"] == "#123456"
    problem = {"kind": "error", "message": "a plugin failed after a reply was made"}
    registry.problems.append(problem)
    assert problem in (await _get(client, "/api/nodes"))["problems"]


async def test_a_load_problem_changed_in_place_shows_at_the_next_request(client, registry):
    problem = {"kind": "error", "message": "a plugin failed"}
    registry.problems.append(problem)
    assert (await _get(client, "/api/nodes"))["problems"] == [problem]
    problem["file"] = "plugins/broken.py"  # as a plugin's load completes its problem
    assert (await _get(client, "/api/nodes"))["problems"] == [
        {"kind": "error", "message": "a plugin failed", "file": "plugins/broken.py"}]


async def test_a_kept_reply_keeps_its_body_not_the_reply_decoded(client, registry, monkeypatch):
    made = _watch_making(client.app[SERVER], monkeypatch)
    body = await (await client.get("/object_info")).read()
    assert body == dumps(object_info(registry)).encode()  # joined from its entries, as one dumps writes it
    info = json.loads(body)
    assert await _get(client, "/object_info/LoadImage") == {"LoadImage": info["LoadImage"]}
    assert await _get(client, "/object_info/NoSuchClass") == {}
    await _get(client, "/api/nodes")
    gc.collect()
    assert len(made) == 2 and [ref() for ref in made] == [None, None]


async def test_a_registry_that_makes_its_own_catalogue_is_served_it(aiohttp_client, registry, tmp_folders):
    class Marked(Registry):
        def catalogue(self):
            return {**super().catalogue(), "marked": True}

    marked = Marked()
    for cls in registry:
        marked.add(cls)
    client = await aiohttp_client(create_app(marked, tmp_folders.home / "runs.db", web_dir=None))
    assert (await _get(client, "/api/nodes"))["marked"] is True
