"""The ETN pack's image routes (Acly's comfyui-tooling-nodes, api.py), which the Krita AI Diffusion
plugin uses: PUT /api/etn/image/{id} stores a picture for ETN_LoadImageCache, GET
/api/etn/image/{id} returns one ETN_SaveImageCache stored (graphflow.image_exchange). Answers as the
pack's: 201 {"status": "success"} for a new picture, 200 {"status": "cached"} where one is stored
under the id already, 404 {"error": "Image not found"}. Beyond the pack, a picture over the
server's upload limit is refused (413), and ids are plain names."""

from aiohttp import web

from graphflow.image_exchange import image_exchange
from graphflow.server.json_api import CLIENT_ID, json_response
from graphflow.server.server import server_of
from graphflow.server.uploads import RequestError


def _key(request) -> str:
    key = request.match_info["id"]
    if not CLIENT_ID.match(key):
        raise RequestError(400, "the image id must be 1 to 128 letters, digits or _ . : -")
    return key


async def get_image(request):
    entry = image_exchange.get(_key(request))
    if entry is None:
        return json_response({"error": "Image not found"}, 404)
    return web.Response(body=entry.data, content_type=entry.content_type)


async def put_image(request):
    key = _key(request)
    limit = server_of(request).config.limits.max_bytes
    if request.content_length is not None and request.content_length > limit:
        raise RequestError(413, f"the picture is {request.content_length} bytes, over the {limit} an upload may have")
    data = bytearray()
    async for chunk in request.content.iter_any():
        data.extend(chunk)
        if len(data) > limit:
            raise RequestError(413, f"the picture is over the {limit} bytes an upload may have")
    content_type = request.headers.get("Content-Type", "application/octet-stream")
    if image_exchange.put(key, bytes(data), content_type):
        return json_response({"status": "success"}, 201)
    return json_response({"status": "cached"}, 200)


# (method, path, handler, what it does): registered by the app
ROUTES = (
    ("GET", "/api/etn/image/{id}", get_image, "a picture ETN_SaveImageCache stored"),
    ("PUT", "/api/etn/image/{id}", put_image, "store a picture for ETN_LoadImageCache (the body; its Content-Type)"),
)
