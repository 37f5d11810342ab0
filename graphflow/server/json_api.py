"""How the routes read JSON requests and write JSON replies. Bad input raises RequestError, which the
application's guard turns into an error reply with its status."""

import copy
import json
import re

from aiohttp import web

from graphflow.folders import walks_remembered
from graphflow.node import socket_catalogue
from graphflow.validation import Problem
from graphflow.workflow import MAX_JSON_DEPTH, json_depth_exceeds

from graphflow.server.events import dumps
from graphflow.server.uploads import RequestError

CLIENT_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")


def json_response(data, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=dumps)


class RegistryReply:
    """A large JSON reply made from a registry (the node catalogue, ComfyUI's object_info), kept
    as its encoded body while what it is made from stays the same: the registry's nodes
    (Registry.generation), every choice input's options as they are now (a model file dropped into
    its folder is offered at the next request), the load problems and the socket types. Made at
    each request it took ~0.1 s for ~2.7 MB, more with full model folders, which the ~500 folder
    inputs listed one by one. The decoded reply is not kept (~7 MB of dicts for the ~2.7 MB body):
    a reply made `by_key` keeps each top-level entry encoded, for a request of one entry."""

    def __init__(self, make, by_key: bool = False):
        self.make = make
        self.by_key = by_key
        self.made_from = None
        self.body = b""
        self.entries: dict[str, bytes] = {}

    def current(self, registry) -> bytes:
        with walks_remembered():  # the options and a remake list each folder once
            # the problems copied deeply: a problem completed in place (plugins.py sets its "file") is a change
            made_from = (registry, registry.generation, registry.choice_options(), copy.deepcopy(registry.problems),
                         socket_catalogue())
            if made_from != self.made_from:
                made = self.make(registry)
                if self.by_key:
                    self.entries = {key: dumps(value).encode() for key, value in made.items()}
                    # dumps(made) byte for byte: its separators are compact
                    self.body = b"{%s}" % b",".join(b"%s:%s" % (dumps(key).encode(), entry)
                                                    for key, entry in self.entries.items())
                else:
                    self.body = dumps(made).encode()
                self.made_from = made_from
        return self.body

    def response(self, registry, key: str | None = None) -> web.Response:
        """The reply; given a key (a reply made by_key), an object of that entry alone, empty if none."""
        body = self.current(registry)
        if key is not None:
            entry = self.entries.get(key)
            body = b"{%s:%s}" % (dumps(key).encode(), entry) if entry is not None else b"{}"
        return web.Response(body=body, content_type="application/json", charset="utf-8")


def error_response(status: int, message: str) -> web.Response:
    return json_response({"error": message}, status)


def invalid_response(problems: list[Problem]) -> web.Response:
    return json_response({"error": "invalid workflow", "problems": [p.to_dict() for p in problems]}, 400)


async def json_body(request: web.Request, optional: bool = False):
    if optional and not request.body_exists:
        return {}
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise RequestError(400, "the body is not valid JSON") from None
    except RecursionError:  # the decoder gives up near the interpreter's limit
        body = None
        too_deep = True
    else:
        too_deep = json_depth_exceeds(body)
    if too_deep:  # refused before any recursive code (validation, storing) walks it
        raise RequestError(400, f"the body nests lists and objects deeper than {MAX_JSON_DEPTH} levels")
    if optional and body is None:
        return {}
    return body


def valid_client_id(value) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not CLIENT_ID.match(value):
        raise RequestError(400, "client_id must be 1-128 letters, digits or _.:-")
    return value


def int_query(request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise RequestError(400, f"{name} must be an integer, got {raw!r}") from None
    if not low <= value <= high:
        raise RequestError(400, f"{name} must be from {low} to {high}, got {value}")
    return value
