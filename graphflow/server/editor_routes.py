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
    return json_response(server_of(request).registry.catalogue())


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
    """A workflow in our format from ours or a ComfyUI API graph, with its validation report
    (informative: the editor loads an invalid graph so the user can fix it)."""
    server = server_of(request)
    try:
        body = await json_body(request)
    except RequestError as e:
        return json_response({"error": str(e), "problems": [Problem(None, None, None, str(e)).to_dict()]}, 400)
    if not isinstance(body, dict) or "workflow" not in body:
        message = "the body must be a JSON object with the workflow under 'workflow'"
        return json_response({"error": message, "problems": [Problem(None, None, None, message).to_dict()]}, 400)
    try:
        workflow = parse_workflow(body["workflow"], server.registry)
    except WorkflowFormatError as e:
        return json_response({"error": str(e), "problems": [p.to_dict() for p in e.problems]}, 400)
    problems = validate(workflow, server.registry)
    return json_response({"workflow": workflow.to_json(), "problems": [p.to_dict() for p in problems]})


async def index(request):
    web_dir = server_of(request).config.web_dir
    page = web_dir / "index.html" if web_dir is not None else None
    if page is not None and page.is_file():
        return web.FileResponse(page)
    return web.Response(text="<!doctype html><title>graphflow</title><p>graphflow server: the editor is not "
                             "installed; the API is at /api (see docs/api.md).</p>", content_type="text/html")
