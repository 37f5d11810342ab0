"""The ETN pack's image routes (Acly's comfyui-tooling-nodes, api.py), which the Krita AI Diffusion
plugin uses: PUT /api/etn/image/{id} stores a picture for ETN_LoadImageCache, GET
/api/etn/image/{id} returns one ETN_SaveImageCache stored (graphflow.image_exchange). Answers as the
pack's: 201 {"status": "success"} for a new picture, 200 {"status": "cached"} where one is stored
under the id already (answered before the body is read), 404 {"error": "Image not found"}. Beyond
the pack: the body must be a PNG, JPEG or WebP file, told by its first bytes (415 otherwise, 400
when empty), and is served back under that type, with nosniff, whatever Content-Type the PUT gave
(a page stored as text/html would run as the server's own); a picture over the server's upload
limit or the image cache's byte cap is refused (413); ids are plain names (1 to 128 letters, digits
or _ . : -). A server running nodes on Ray workers refuses both routes (501): the cache is this
process's, which the workers don't see. GET /api/etn/languages lists the languages ETN_Translate
can translate from, as the pack's [{"name", "code"}]: none, since graphflow carries no translator
(the pack's argostranslate); the plugin asks at connect and offers no prompt translation.

The pack's other routes, read in its api.py at 09759222de34d1492387b672a28ae373274b150a, krita.py's
WorkflowExchange and translation.py (the code index's newest copies), and the Krita AI Diffusion
plugin's calls in ai_diffusion/comfy_client.py at 75331532 (try_inspect's paging, _refresh_models'
parse_model_info, upload_loras, _subscribe_workflows, translate, the etn_workflow_published message)
and resources.py (Arch.from_string):

- GET /api/etn/model_info/{folder} (and /api/etn/model_info: checkpoints): each file of the folder,
  as the loaders list them, with the pack's {"base_model", "is_inpaint", "type"?, "quant"?}
  (graphflow.models.base_model_info: the file's header only, remembered per path and file state);
  `offset` / `limit` (default 1000) page the sorted list, and with `limit` given "_meta" {"offset",
  "count", "total"} is added, as the pack. Folders: ComfyUI's names graphflow keeps
  (comfyui_routes.MODEL_FOLDERS, the legacy "clip" / "unet" among them) and ComfyUI-GGUF's
  "unet_gguf" / "clip_gguf" (their .gguf files); another folder is the pack's 400 "Invalid folder
  path, must be one of ...". Beyond the pack, an offset or limit that is no whole number >= 0 is a
  400 (the pack's int() fails into a 500).
- PUT /api/etn/upload/{folder}/{filename}: the body stored as the folder's file (the plugin uploads
  a LoRA it has and the server lacks). The pack's rules: .safetensors / .sft only, a plain name of
  letters, digits, _ - . and spaces, at most 255 characters, no leading dot; a name the folder has
  (any of its directories) is 200 {"status": "cached"} before the body is read; the file goes into
  the folder's first directory. Beyond the pack: the body is bounded by the server's model upload
  limit (ServerConfig.model_upload_max_bytes, `graphflow serve --max-model-upload-mb`, 413) and by
  the directory's free space (a declared length over it, or a disk filled while writing: 507); at
  most MAX_MODEL_UPLOADS run at once (503 for another); it is written to a staged file
  (uploads.staged_file, as /upload/image's: hidden, the umask's mode; one a killed server left is
  swept at the next start) and given its name once whole and read as a safetensors file (400
  otherwise), so a broken upload leaves nothing a loader lists; the name is taken only where it is
  free (os.link: an upload of the same name finishing first makes this one 200 "cached"), and a
  directory or other non-file under it is a 409; 201 {"status": "success"}. The loaders' lists,
  /object_info's choices and model_info see it at the next request.
- POST /api/etn/workflow/publish {"name", "client_id", "workflow"}, /subscribe {"client_id"},
  /unsubscribe {"client_id"}: krita.py's WorkflowExchange. A publisher (a ComfyUI editor tab) is
  kept by its client_id, the last workflow it published replacing the one before; each subscriber
  (a Krita client) gets every publisher's workflow at subscribe, and each publish after, as the
  websocket message "etn_workflow_published" {"publisher": {"name", "id"}, "workflow"} sent to its
  client id alone (encoded once per publish). The pack's answers: 200 {"status": "success"}; 400
  {"error": "'name'"} for a missing field, "'No subscriber found with id ...'" (a KeyError's text,
  quotes and all). Different from the pack on purpose: subscribing again is no error (the pack's
  400 "'Already subscribed'") but sends the publishers' workflows again, since the plugin
  subscribes after each websocket reconnect under the same id and only logs a failure; a
  subscriber is a client id with a websocket open (400 otherwise), and one whose sockets have all
  closed is dropped at the next call (the pack keeps every id for the server's life). Beyond the
  pack: the body is read as graphflow's other JSON routes read theirs (400 for what is no JSON
  object or nests deeper than MAX_JSON_DEPTH), at most MAX_WORKFLOW_BYTES (413); a name that is no
  string, a workflow that is no object or a client_id that is no websocket id (1-128 letters,
  digits or _ . : -) is a 400; at most MAX_PUBLISHERS publishers holding MAX_PUBLISHED_BYTES
  together are kept (the oldest dropped) and MAX_SUBSCRIBERS subscribers (400).
- GET /api/etn/translate/{lang}/{text}: as the pack answers without its translator: the text cut
  at its "lang:xx" directives, English pieces joined (lang "en": the text back, as a JSON string);
  another language is a 500 {"error": ...} naming it (the pack's Invalid language directive).

Under Ray workers (a dispatcher): model_info and upload read and write this process's model
folders (workers on other machines see an upload only through shared storage); the workflow
exchange and translation live in this process and work as without Ray."""

import asyncio
import errno
import re
import shutil
from collections import OrderedDict
from pathlib import Path

from aiohttp import web

from graphflow.folders import COMFY_KINDS, GGUF_EXTENSIONS, UnsafePathError, folders, safe_join
from graphflow.image_exchange import TooLarge, image_exchange
from graphflow.models.base_model_info import info_cache
from graphflow.server.comfyui_routes import MODEL_FOLDERS
from graphflow.server.json_api import CLIENT_ID, json_body, json_response, valid_client_id
from graphflow.server.server import server_of
from graphflow.server.uploads import RequestError, publish_file, staged_file

# ComfyUI's folder names -> (graphflow's model kind, the extensions listed; None: the kind's own)
MODEL_INFO_FOLDERS = {**{name: (COMFY_KINDS.get(name, name), None) for name in MODEL_FOLDERS},
                      # ComfyUI-GGUF's folders: the .gguf files of the diffusion models' and text encoders'
                      "unet_gguf": ("diffusion_models", GGUF_EXTENSIONS),
                      "clip_gguf": ("text_encoders", GGUF_EXTENSIONS)}
DEFAULT_LIMIT = 1000  # the pack's, when the request names none
UPLOAD_NAME = re.compile(r"^[a-zA-Z0-9_\-. ]+$")  # the pack's has_invalid_filename
UPLOAD_EXTENSIONS = (".sft", ".safetensors")
UPLOAD_CHUNK = 2**20
MAX_PUBLISHERS = 64
MAX_SUBSCRIBERS = 1024
MAX_MODEL_UPLOADS = 2  # at once: each holds a connection and writes GBs
MAX_WORKFLOW_BYTES = 8 * 2**20  # a publish request's body (ComfyUI's largest workflows are a few MB)
MAX_PUBLISHED_BYTES = 64 * 2**20  # the publishers' kept workflows together

# a picture file's type by its first bytes: the formats ETN_LoadImageCache reads
SIGNATURES = ((b"\x89PNG\r\n\x1a\n", "image/png"), (b"\xff\xd8\xff", "image/jpeg"))


def picture_type(data: bytes) -> str | None:
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return next((kind for signature, kind in SIGNATURES if data.startswith(signature)), None)


def _key(request) -> str:
    if server_of(request).dispatcher is not None:
        raise RequestError(501, "this server runs nodes on Ray workers, which don't share the image cache: "
                                "send pictures as base64 (ETN_LoadImageBase64) and take results over the websocket")
    key = request.match_info["id"]
    if not CLIENT_ID.match(key):
        raise RequestError(400, "the image id must be 1 to 128 letters, digits or _ . : -")
    return key


async def get_image(request):
    entry = image_exchange.get(_key(request))
    if entry is None:
        return json_response({"error": "Image not found"}, 404)
    return web.Response(body=entry.data, content_type=entry.content_type, headers={"X-Content-Type-Options": "nosniff"})


async def put_image(request):
    key = _key(request)
    if image_exchange.holds(key):
        return json_response({"status": "cached"}, 200)
    limit = min(server_of(request).config.limits.max_bytes, image_exchange.max_bytes)
    if request.content_length is not None and request.content_length > limit:
        raise RequestError(413, f"the picture is {request.content_length} bytes, over the {limit} an upload may have")
    data = bytearray()
    async for chunk in request.content.iter_any():
        data.extend(chunk)
        if len(data) > limit:
            raise RequestError(413, f"the picture is over the {limit} bytes an upload may have")
    if not data:
        raise RequestError(400, "the body is empty: expected a PNG, JPEG or WebP file")
    content_type = picture_type(data)
    if content_type is None:
        raise RequestError(415, "the body is no PNG, JPEG or WebP file (told by its first bytes)")
    try:
        stored = image_exchange.put(key, data, content_type)
    except TooLarge as e:
        raise RequestError(413, str(e)) from None
    if stored:
        return json_response({"status": "success"}, 201)
    return json_response({"status": "cached"}, 200)


async def languages(request):
    return json_response([])


def _folder(name: str) -> tuple[str, tuple[str, ...] | None]:
    if name not in MODEL_INFO_FOLDERS:
        raise RequestError(400, f"Invalid folder path, must be one of {', '.join(MODEL_INFO_FOLDERS)}")
    return MODEL_INFO_FOLDERS[name]


def _whole_number(query, name: str, default: int) -> int:
    text = query.get(name, str(default))
    if not text.isdigit():
        raise RequestError(400, f"{name} must be a whole number >= 0, got {text!r}")
    return int(text)


def _page(kind: str, extensions, offset: int, limit: int) -> tuple[dict, int]:
    """Each file of the page with its answer, and how many files the folder has: the folder walk
    and the header reads both run off the event loop."""
    files = folders.list_models(kind, extensions)
    info = {}
    for name in files[offset:offset + limit]:
        try:
            path = folders.find_model(kind, name)
        except (FileNotFoundError, UnsafePathError) as e:  # gone since it was listed
            info[name] = {"base_model": "unknown", "error": f"Failed to detect base model: {e}"}
            continue
        info[name] = info_cache.get(path)
    return info, len(files)


async def model_info(request):
    kind, extensions = _folder(request.match_info.get("folder", "checkpoints"))
    query = request.rel_url.query
    limit, offset = _whole_number(query, "limit", DEFAULT_LIMIT), _whole_number(query, "offset", 0)
    info, total = await asyncio.to_thread(_page, kind, extensions, offset, limit)
    if "limit" in query:
        info["_meta"] = {"offset": offset, "count": len(info), "total": total}
    return json_response(info)


def _upload_name(name: str) -> str:
    if not name.lower().endswith(UPLOAD_EXTENSIONS):
        raise RequestError(400, "File extension must be .safetensors")
    if not name.strip() or len(name) > 255 or ".." in name or name.startswith(".") or not UPLOAD_NAME.match(name):
        raise RequestError(400, f"Invalid filename {name!r}: a plain name of letters, digits, _ - . and spaces "
                                "(at most 255, no leading dot, no '..')")
    return name


def _has_model(kind: str, name: str) -> bool:
    try:
        folders.find_model(kind, name)
        return True
    except FileNotFoundError:
        return False


def _check_weights(path: Path) -> None:
    from graphflow.models.weight_files import CheckpointError, WeightFile, head_kind

    try:
        if head_kind(path) != "safetensors":  # never unpickled, whatever the bytes
            raise CheckpointError("it does not start as a safetensors file does (a header length, then '{')")
        WeightFile(path).close()
    except Exception as e:  # whatever the bytes make the reader trip on is the upload's fault
        raise RequestError(400, f"the upload is no readable safetensors file: {e}") from None


async def upload(request):
    kind, _ = _folder(request.match_info["folder"])
    name = _upload_name(request.match_info["filename"])
    if _has_model(kind, name):
        return json_response({"status": "cached"}, 200)
    limit = server_of(request).config.model_upload_max_bytes
    declared = request.content_length
    if declared is not None and declared > limit:
        raise RequestError(413, f"the file is {declared} bytes, over the {limit} a model upload may have")
    directory = folders.model_dirs(kind)[0]
    try:
        target = safe_join(directory, name)
    except UnsafePathError as e:
        raise RequestError(400, str(e)) from None
    if target.exists() and not target.is_file():
        raise RequestError(409, f"{name!r} in {directory} is there already and is not a file")
    running = request.app[MODEL_UPLOADS]
    if running.locked():
        raise RequestError(503, f"{MAX_MODEL_UPLOADS} model uploads are running: try again when one has finished")
    async with running:
        await asyncio.to_thread(directory.mkdir, parents=True, exist_ok=True)
        free = (await asyncio.to_thread(shutil.disk_usage, directory)).free
        if declared is not None and declared > free:
            raise RequestError(507, f"the file is {declared} bytes and {directory} has {free} free")
        try:
            return await _receive(request, directory, target, limit)
        except OSError as e:
            if e.errno == errno.ENOSPC:
                raise RequestError(507, f"{directory} ran out of space while the file was written") from None
            raise


async def _receive(request, directory: Path, target: Path, limit: int):
    """The body written to a staged file, read as safetensors, then given its name."""
    with staged_file(directory) as (f, temp):
        size = 0
        async for chunk in request.content.iter_chunked(UPLOAD_CHUNK):
            size += len(chunk)
            if size > limit:
                raise RequestError(413, f"the file is over the {limit} bytes a model upload may have")
            await asyncio.to_thread(f.write, chunk)
        await asyncio.to_thread(f.close)
        if size == 0:
            raise RequestError(400, "the body is empty: expected a .safetensors file")
        await asyncio.to_thread(_check_weights, temp)
        if not await asyncio.to_thread(publish_file, temp, target, False):
            if target.is_file():  # another upload of the same name finished first
                return json_response({"status": "cached"}, 200)
            raise RequestError(409, f"{target.name!r} in {directory} is there already and is not a file")
    return json_response({"status": "success"}, 201)


class WorkflowExchange:
    """krita.py's: workflows a ComfyUI editor publishes, sent to the Krita clients subscribed.
    A subscriber is a client id with an open websocket; one whose sockets have all closed is
    dropped at the next call, so a junk id cannot hold a place."""

    def __init__(self, hub):
        self.hub = hub
        self.publishers: OrderedDict[str, tuple[str, dict, int]] = OrderedDict()  # id -> (name, workflow, bytes)
        self.subscribers: set[str] = set()

    def _prune(self) -> set[str]:
        connected = self.hub.client_ids()
        self.subscribers &= connected
        return connected

    def publish(self, name: str, client_id: str, workflow: dict, size: int) -> None:
        self._prune()
        self.hub.send_to(self.subscribers, "etn_workflow_published", _published(client_id, name, workflow))
        self.publishers.pop(client_id, None)
        self.publishers[client_id] = (name, workflow, size)
        while (len(self.publishers) > MAX_PUBLISHERS
               or sum(kept for *_, kept in self.publishers.values()) > MAX_PUBLISHED_BYTES):
            self.publishers.popitem(last=False)

    def subscribe(self, client_id: str) -> None:
        """Idempotent, unlike the pack's ('Already subscribed'): the plugin subscribes again after
        each reconnect under the same id, and gets the publishers' workflows again."""
        if client_id not in self._prune():
            raise RequestError(400, f"client id {client_id!r} has no open websocket: connect to "
                                    f"/ws?clientId={client_id} first, then subscribe")
        if client_id not in self.subscribers and len(self.subscribers) >= MAX_SUBSCRIBERS:
            raise RequestError(400, f"there are {MAX_SUBSCRIBERS} subscribers already, the most this server keeps")
        self.subscribers.add(client_id)
        for publisher, (name, workflow, _) in self.publishers.items():
            self.hub.send_to((client_id,), "etn_workflow_published", _published(publisher, name, workflow))

    def unsubscribe(self, client_id: str) -> None:
        # checked before pruning: the plugin unsubscribes as it closes its socket
        if client_id not in self.subscribers:
            raise KeyError("No subscriber found with id " + client_id)
        self.subscribers.discard(client_id)
        self._prune()


def _published(publisher: str, name: str, workflow: dict) -> dict:
    return {"publisher": {"name": name, "id": publisher}, "workflow": workflow}


EXCHANGE = web.AppKey("etn_workflow_exchange", WorkflowExchange)  # set by create_app
MODEL_UPLOADS = web.AppKey("etn_model_uploads", asyncio.Semaphore)  # set by create_app: MAX_MODEL_UPLOADS


async def _exchange_call(request, method: str, *fields: str):
    if request.content_length is not None and request.content_length > MAX_WORKFLOW_BYTES:
        raise RequestError(413, f"the body is {request.content_length} bytes, over the {MAX_WORKFLOW_BYTES} a "
                                "workflow request may have")
    body = await json_body(request)
    size = len(await request.read())  # the body json_body read, kept by aiohttp
    if size > MAX_WORKFLOW_BYTES:
        raise RequestError(413, f"the body is over the {MAX_WORKFLOW_BYTES} bytes a workflow request may have")
    if not isinstance(body, dict):
        raise RequestError(400, "the body must be a JSON object")
    try:
        values = [body[field] for field in fields]
    except KeyError as e:
        return json_response({"error": str(e)}, 400)
    for field, value in zip(fields, values):
        if field == "workflow" and not isinstance(value, dict):
            raise RequestError(400, "workflow must be a JSON object")
        if field == "name" and not isinstance(value, str):
            raise RequestError(400, "name must be a string")
        if field == "client_id" and valid_client_id(value) is None:
            raise RequestError(400, "client_id must be 1-128 letters, digits or _.:-")
    if method == "publish":
        values.append(size)
    try:
        getattr(request.app[EXCHANGE], method)(*values)
    except KeyError as e:
        return json_response({"error": str(e)}, 400)
    return json_response({"status": "success"}, 200)


async def publish_workflow(request):
    return await _exchange_call(request, "publish", "name", "client_id", "workflow")


async def subscribe_workflow(request):
    return await _exchange_call(request, "subscribe", "client_id")


async def unsubscribe_workflow(request):
    return await _exchange_call(request, "unsubscribe", "client_id")


async def translate(request):
    from nodes.pack_nodes_etn import english_text

    try:
        return json_response(english_text(f"lang:{request.match_info['lang']} {request.match_info['text']}"))
    except ValueError as e:
        return json_response({"error": str(e)}, 500)


# (method, path, handler, what it does): registered by the app
ROUTES = (
    ("GET", "/api/etn/image/{id}", get_image, "a picture ETN_SaveImageCache stored (with its type, and nosniff)"),
    ("PUT", "/api/etn/image/{id}", put_image, "store a picture for ETN_LoadImageCache: the body, a PNG, JPEG or WebP "
                                              "file (415 otherwise), up to the upload limit and the cache's 512 MiB "
                                              "(413)"),
    ("GET", "/api/etn/languages", languages, "the languages ETN_Translate translates from: none (no translator)"),
    ("GET", "/api/etn/model_info", model_info, "the checkpoints' base models, as model_info/checkpoints"),
    ("GET", "/api/etn/model_info/{folder}", model_info, "each file of a model folder with its base model, inpainting "
                                                        "and type, from its header (`offset`, `limit`: a page, with "
                                                        "_meta)"),
    ("PUT", "/api/etn/upload/{folder}/{filename}", upload, "store a .safetensors model file (the plugin's LoRAs) in "
                                                           "the folder, up to the model upload limit (413) and free "
                                                           "space (507), two at once (503); 200 "
                                                           "cached where the folder has the name"),
    ("POST", "/api/etn/workflow/publish", publish_workflow, "publish a workflow ({name, client_id, workflow}) to the "
                                                            "subscribed clients' websockets (etn_workflow_published)"),
    ("POST", "/api/etn/workflow/subscribe", subscribe_workflow, "a client id ({client_id}) gets the published "
                                                                "workflows over its open websocket (again: re-sent)"),
    ("POST", "/api/etn/workflow/unsubscribe", unsubscribe_workflow, "stop sending published workflows to a client id"),
    ("GET", "/api/etn/translate/{lang}/{text}", translate, "the text in English as the pack answers without its "
                                                           "translator: lang en passes, another language is a 500 "
                                                           "(no translator)"),
)
