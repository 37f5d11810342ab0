"""Routes the browser editor loads: the node catalogue, the example workflows, workflow
conversion and the editor's page."""

from pathlib import Path

from aiohttp import web

from graphflow.validation import Problem, validate
from graphflow.workflow import WorkflowFormatError, parse_workflow

from graphflow.server.json_api import error_response, json_body, json_response
from graphflow.server.server import server_of
from graphflow.server.uploads import RequestError


async def get_nodes(request):
    server = server_of(request)
    return server.nodes_reply.response(server.registry)


EXAMPLE_WORKFLOWS = Path(__file__).resolve().parents[2] / "workflows"


async def list_examples(request):
    names = sorted(p.stem for p in EXAMPLE_WORKFLOWS.glob("*.json")) if EXAMPLE_WORKFLOWS.is_dir() else []
    return json_response({"workflows": names})


async def get_example(request):
    name = request.match_info["name"]
    if not name.replace("_", "").replace("-", "").isalnum():
        return error_response(400, f"invalid workflow name {name!r}")
    path = EXAMPLE_WORKFLOWS / f"{name}.json"
    if not path.is_file():
        return error_response(404, f"no example workflow named {name!r}")
    return web.Response(text=path.read_text(encoding="utf-8"), content_type="application/json")


async def convert_workflow(request):
    """A workflow converted to a format (`to`: graphflow, the default; comfy-api; comfy-ui) from
    `workflow` (ours, a ComfyUI API or UI graph) or `image` (a PNG/WebP, base64, whose metadata
    holds one), with its validation report and import notes (informative: the editor loads an
    invalid graph so the user can fix it)."""
    import base64
    import binascii

    from graphflow.comfy_format import FORMATS, convert
    from graphflow.picture_metadata import workflow_from_picture

    server = server_of(request)

    def failed(message, status=400):
        problem = Problem(None, None, None, message)
        return json_response({"error": message, "problems": [problem.to_dict()]}, status)

    try:
        body = await json_body(request)
    except RequestError as e:
        return failed(str(e))
    if not isinstance(body, dict) or ("workflow" not in body and "image" not in body):
        return failed("the body must be a JSON object with the workflow under 'workflow' "
                      "(or a PNG/WebP, base64, under 'image')")
    target = body.get("to", "graphflow")
    if target not in FORMATS:
        return failed(f"'to' must be one of {', '.join(FORMATS)}, got {target!r}")
    try:
        if "image" in body:
            try:
                raw = base64.b64decode(body["image"], validate=True)
            except (binascii.Error, TypeError, ValueError):
                return failed("'image' must be a base64-encoded PNG or WebP file")
            workflow = workflow_from_picture(raw, server.registry, what=str(body.get("name") or "the picture"))
        else:
            workflow = parse_workflow(body["workflow"], server.registry)
    except WorkflowFormatError as e:
        return json_response({"error": str(e), "problems": [p.to_dict() for p in e.problems]}, 400)
    try:
        converted = convert(workflow, target, server.registry)
    except Exception as e:  # a graph read but not writable in that format: say why
        return failed(f"can't write it as {target}: {e or type(e).__name__}")
    problems = validate(workflow, server.registry)
    return json_response({"workflow": converted, "format": target, "problems": [p.to_dict() for p in problems],
                          "notes": workflow.notes})


async def index(request):
    web_dir = server_of(request).config.web_dir
    page = web_dir / "index.html" if web_dir is not None else None
    if page is not None and page.is_file():
        return web.FileResponse(page)
    return web.Response(text="<!doctype html><title>graphflow</title><p>graphflow server: the editor is not "
                             "installed; the API is at /api (see docs/api.md).</p>", content_type="text/html")
