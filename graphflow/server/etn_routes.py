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
(the pack's argostranslate); the plugin asks at connect and offers no prompt translation."""

from aiohttp import web

from graphflow.image_exchange import TooLarge, image_exchange
from graphflow.server.json_api import CLIENT_ID, json_response
from graphflow.server.server import server_of
from graphflow.server.uploads import RequestError

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


# (method, path, handler, what it does): registered by the app
ROUTES = (
    ("GET", "/api/etn/image/{id}", get_image, "a picture ETN_SaveImageCache stored (with its type, and nosniff)"),
    ("PUT", "/api/etn/image/{id}", put_image, "store a picture for ETN_LoadImageCache: the body, a PNG, JPEG or WebP "
                                              "file (415 otherwise), up to the upload limit and the cache's 512 MiB "
                                              "(413)"),
    ("GET", "/api/etn/languages", languages, "the languages ETN_Translate translates from: none (no translator)"),
)
