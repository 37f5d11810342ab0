"""The user's named workflows, saved from the editor's workflow browser: JSON files in
<home>/user/workflows (ComfyUI keeps its in user/default/workflows), so they survive a reload, a
new browser and a cleared browser cache. Names are plain (letters, digits, space, `_ - . ( )`),
so a name can never reach outside the folder."""

import json
import os
import re
import tempfile
import time

from aiohttp import web

from graphflow.folders import folders, safe_join

from graphflow.server.json_api import error_response, json_body, json_response
from graphflow.server.uploads import RequestError

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _().-]{0,99}$")
NAME_RULE = "1-100 letters, digits, spaces and _ - . ( ), starting with a letter or digit"


def workflows_folder():
    return folders.home / "user" / "workflows"


def _path(request):
    name = request.match_info["name"]
    if not NAME.match(name) or name.endswith("."):
        raise RequestError(400, f"invalid workflow name {name[:60]!r}: {NAME_RULE}")
    return name, safe_join(workflows_folder(), f"{name}.json")


async def list_workflows(request):
    folder = workflows_folder()
    items = []
    if folder.is_dir():
        for path in folder.glob("*.json"):
            if path.is_file() and NAME.match(path.stem):
                stat = path.stat()
                items.append({"name": path.stem, "modified": stat.st_mtime, "size": stat.st_size})
    items.sort(key=lambda item: -item["modified"])
    return json_response({"workflows": items})


async def get_workflow(request):
    name, path = _path(request)
    if not path.is_file():
        return error_response(404, f"no saved workflow named {name!r}")
    return web.Response(text=path.read_text(encoding="utf-8"), content_type="application/json")


async def put_workflow(request):
    """Save a workflow under a name; `?overwrite=0` refuses (409) to replace an existing one."""
    name, path = _path(request)
    body = await json_body(request)
    if not isinstance(body, dict) or not isinstance(body.get("nodes"), dict):
        return error_response(400, 'the body must be a workflow: {"version": 1, "nodes": {...}, "ui": {...}}')
    if path.exists() and request.query.get("overwrite") in ("0", "false"):
        return error_response(409, f"a workflow named {name!r} exists already")
    path.parent.mkdir(parents=True, exist_ok=True)
    # Written beside and renamed over: a reader never sees half a file.
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=".saving-", suffix=".json")
    with os.fdopen(fd, "w", encoding="utf-8") as file:
        json.dump(body, file, indent=1)
    os.replace(temp, path)
    return json_response({"name": name, "modified": time.time()})


async def delete_workflow(request):
    name, path = _path(request)
    if not path.is_file():
        return error_response(404, f"no saved workflow named {name!r}")
    path.unlink()
    return json_response({"deleted": name})
