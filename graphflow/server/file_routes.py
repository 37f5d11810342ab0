"""File routes: viewing outputs and inputs, and uploading images, videos and masks."""

import asyncio
import json

from aiohttp import web

from graphflow.folders import split_annotation
from graphflow.server import uploads
from graphflow.server.json_api import int_query, json_response
from graphflow.server.server import server_of
from graphflow.server.uploads import RequestError


async def view(request):
    query = request.query
    if "filename" not in query:  # ComfyUI: 404 (an empty name: 400, below)
        raise RequestError(404, "no 'filename' given: /view?filename=NAME[&subfolder=...&type=output|input|temp]")
    # as in ComfyUI, an annotated name ("x.png [input]", LoadImage's value for it) says its folder
    filename, annotated = split_annotation(query["filename"])
    path = uploads.resolve_view(annotated or query.get("type") or "output", query.get("subfolder"), filename)
    # ComfyUI names the file in every /view answer (clients save under that name); quoted, escaped
    quoted = path.name.replace("\\", "\\\\").replace('"', '\\"')
    headers = {"X-Content-Type-Options": "nosniff", "Cache-Control": "no-cache",
               "Content-Disposition": f'filename="{quoted}"'}
    content_type = uploads.VIEW_TYPES[path.suffix.lower()]
    if content_type.startswith("video/"):  # served as it is: the conversions below are for pictures
        return web.FileResponse(path, headers=dict(headers, **{"Content-Type": content_type}))
    if query.get("thumbnail"):
        size = int_query(request, "thumbnail", 256, 16, 2048)
        data = await asyncio.to_thread(uploads.thumbnail, path, size)
        return web.Response(body=data, content_type="image/jpeg", headers=headers)
    channel = query.get("channel", "")
    preview = query.get("preview")
    if preview is not None or channel in ("rgb", "a"):  # ComfyUI's /view options: a preview, or one channel
        data, content_type = await asyncio.to_thread(uploads.converted, path, preview, channel)
        return web.Response(body=data, content_type=content_type, headers=headers)
    headers["Content-Type"] = content_type
    return web.FileResponse(path, headers=headers)


async def upload(request, mask: bool = False):
    server = server_of(request)
    limits = server.config.limits
    fields, file = await uploads.read_form(request, limits)
    name = uploads.clean_filename(file["filename"])
    subfolder = uploads.clean_subfolder(fields.get("subfolder"))
    overwrite = fields.get("overwrite", "").strip().lower() in ("1", "true", "yes", "on")
    kind = fields.get("type", "").strip() or "input"  # ComfyUI's: the folder the upload goes into
    uploads.folder_of(kind)  # another type is refused before the file is checked
    check = uploads.check_image if mask else uploads.check_upload
    info = await asyncio.to_thread(check, file["data"], file["content_type"], limits)
    data = file["data"]
    if mask:
        raw = fields.get("original") or fields.get("original_ref")
        try:
            ref = json.loads(raw) if raw else None
        except json.JSONDecodeError:
            ref = None
        if not isinstance(ref, dict):
            raise RequestError(400, "a mask upload needs 'original': JSON {filename, subfolder, type} of the image")
        # as ComfyUI: an annotated name ("x.png [input]") says its folder, else "type", else output
        filename, annotated = split_annotation(str(ref.get("filename") or ""))
        original = uploads.resolve_view(annotated or ref.get("type") or "output", ref.get("subfolder"), filename)
        data = await asyncio.to_thread(uploads.apply_mask, original, data)
        info = await asyncio.to_thread(uploads.check_image, data, "image/png", limits)
    result = await asyncio.to_thread(uploads.store_upload, data, name, subfolder, info["format"], overwrite, kind)
    return json_response(dict(result, **info))
