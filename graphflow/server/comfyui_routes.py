"""ComfyUI-compatible routes, for scripts written against ComfyUI's /prompt and /history."""

from graphflow.validation import Problem

from graphflow.server.json_api import CLIENT_ID, json_body, json_response, valid_client_id
from graphflow.server.server import server_of
from graphflow.server.store import FINISHED
from graphflow.server.uploads import RequestError


def _comfy_node_errors(problems: list[Problem]) -> dict:
    errors: dict[str, dict] = {}
    for p in problems:
        if p.node_id is None:
            continue
        entry = errors.setdefault(p.node_id, {"errors": [], "dependent_outputs": [], "class_type": p.node_type})
        entry["errors"].append({"type": "invalid_input" if p.input else "invalid_node", "message": p.message,
                                "details": p.input or "", "extra_info": {"input_name": p.input}})
    return errors


async def comfy_prompt(request):
    server = server_of(request)
    workflow = None
    try:
        body = await json_body(request)
        if not isinstance(body, dict) or "prompt" not in body:
            raise RequestError(400, "the body must be a JSON object with the graph under 'prompt'")
        client_id = valid_client_id(body.get("client_id"))
        run_id = body.get("prompt_id")
        if run_id is not None and (not isinstance(run_id, str) or not CLIENT_ID.match(run_id)
                                   or server.store.status_of(run_id) is not None):
            raise RequestError(400, "prompt_id must be a new id of 1-128 letters, digits or _.:-")
    except RequestError as e:
        problems = [Problem(None, None, None, str(e))]
    else:
        workflow, problems = server.check(body["prompt"], None)
    if problems:
        return json_response({
            "error": {"type": "prompt_outputs_failed_validation", "message": "Prompt outputs failed validation",
                      "details": "\n".join(map(str, problems)), "extra_info": {}},
            "node_errors": _comfy_node_errors(problems),
            "problems": [p.to_dict() for p in problems]}, 400)
    queued = server.enqueue(workflow, client_id, None, bool(body.get("front")), run_id)
    return json_response({"prompt_id": queued["run_id"], "number": queued["number"], "node_errors": {}})


async def comfy_prompt_info(request):
    server = server_of(request)
    return json_response({"exec_info": {"queue_remaining": server.store.count_pending() + len(server.running)}})


async def comfy_history(request):
    record = server_of(request).store.get(request.match_info["run_id"])
    if record is None or record["status"] not in FINISHED:
        return json_response({})
    status = {"status_str": "success" if record["status"] == "success" else "error",
              "completed": record["status"] == "success", "messages": []}
    return json_response({record["run_id"]: {
        "prompt": [record["number"], record["run_id"], record["workflow"], {}, list(record["outputs"] or {})],
        "outputs": record["outputs"] or {}, "status": status}})
