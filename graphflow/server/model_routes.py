"""What the editor asks about a model file: its native image size (graphflow.models.native_size),
read from the file's header in a worker thread."""

import asyncio

from graphflow.folders import folders

from graphflow.server.json_api import error_response, json_response

# Folders whose files are whole image models (their header tells the family).
IMAGE_MODEL_KINDS = ("checkpoints",)


async def model_info(request):
    from graphflow.models.native_size import native_size

    kind = request.match_info["kind"]
    name = request.query.get("name", "")
    if kind not in IMAGE_MODEL_KINDS:
        return error_response(400, f"model info is for {' or '.join(IMAGE_MODEL_KINDS)}, not {kind!r}")
    try:
        path = folders.find_model(kind, name)
    except (FileNotFoundError, ValueError) as e:
        return error_response(404, str(e))
    try:
        info = await asyncio.get_running_loop().run_in_executor(None, native_size, path)
    except Exception as e:  # not a model we can read: the editor keeps its defaults
        return error_response(422, f"can't read {name!r}: {e}")
    return json_response({"kind": kind, "name": name, **info})
