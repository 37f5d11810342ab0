"""Muted and bypassed nodes (ComfyUI's modes 2 and 4; Ctrl+M and Ctrl+B in the editor), kept in
the workflow's ui block: `ui.nodes[id].mode` is "mute" or "bypass".

As in ComfyUI, a muted node does not run (a node that needs its output then has a missing
input), and a bypassed node does not run either: each reader of one of its outputs reads instead
the bypassed node's input at the same position if that has the output's type, else its first
input of that type (bypass_input), followed through chains of bypasses; when that input is
unlinked, the reader gets nothing.
"""

from graphflow.workflow import Workflow, is_link

MODES = ("mute", "bypass")


def connects(a, b) -> bool:
    """Whether socket types fit, as LiteGraph's isValidConnection: "*", "" or no type fits
    anything; else the same name ignoring case, or a shared member of comma-separated lists
    ("IMAGE,MASK")."""
    if a in ("*", "", None) or b in ("*", "", None) or a == b:
        return True
    left, right = str(a).lower().split(","), str(b).lower().split(",")
    return any(x == y or x in ("*", "") or y in ("*", "") for x in left for y in right)


def bypass_input(sockets: list[tuple], inputs: list[tuple], slot: int, wanted: str, out_type=None):
    """The input a bypassed node's output `slot` (of type `out_type`) passes to a reader of type
    `wanted`, as ComfyUI's editor picks it: the socket at the same index if its type fits both
    (connects), else the first input of exactly the wanted type, else the first that fits both
    (linked or not: an unlinked choice passes nothing). Items are (key, type); None: no match.
    A reader of any type ("*") takes the same index, else the first socket."""
    if wanted in ("*", ""):
        return sockets[slot][0] if slot < len(sockets) else sockets[0][0] if sockets else None
    if slot < len(sockets) and connects(sockets[slot][1], out_type) and connects(sockets[slot][1], wanted):
        return sockets[slot][0]
    exact = next((key for key, kind in inputs if kind == wanted), None)
    if exact is not None:
        return exact
    return next((key for key, kind in inputs if connects(kind, out_type) and connects(kind, wanted)), None)


def node_modes(workflow: Workflow) -> dict[str, str]:
    ui_nodes = workflow.ui.get("nodes") if isinstance(workflow.ui, dict) else None
    if not isinstance(ui_nodes, dict):
        return {}
    return {i: u["mode"] for i, u in ui_nodes.items()
            if isinstance(u, dict) and u.get("mode") in MODES and i in workflow.nodes}


def apply_modes(workflow: Workflow, registry) -> Workflow:
    """The workflow as it runs: muted and bypassed nodes left out, links rewired past bypasses."""
    modes = node_modes(workflow)
    if not modes:
        return workflow

    def through(link, reader: str | None):
        """Where a link really reads from, past bypassed nodes; None when nothing passes through.
        `reader`: the type of the input reading it ("*" takes a bypass's input by position)."""
        seen = set()
        while link[0] in modes and modes[link[0]] == "bypass" and link[0] not in seen:
            seen.add(link[0])
            entry = workflow.nodes[link[0]]
            cls = registry.get(entry.type)
            specs = list(cls.output_specs) if cls is not None else []
            index = link[1] if isinstance(link[1], int) else next(
                (k for k, o in enumerate(specs) if o.name == link[1]), len(specs))  # an output named
            if index >= len(specs):
                return None
            name = bypass_input([(s.name, s.type) for s in cls.input_specs.values() if s.socket is not None],
                                [(s.name, s.type) for s in cls.input_specs.values()], index,
                                "*" if reader == "*" else specs[index].type, specs[index].type)
            value = entry.inputs.get(name) if name is not None else None
            reader = cls.input_specs[name].type if name is not None else None
            if not is_link(value):
                return None  # the chosen input is unlinked: nothing passes, as in ComfyUI
            link = tuple(value)
        return None if link[0] in modes else link

    kept = {}
    for node_id, entry in workflow.nodes.items():
        if node_id in modes:
            continue
        inputs = {}
        reader_cls = registry.get(entry.type)
        for name, value in entry.inputs.items():
            if is_link(value) and value[0] in modes:
                spec = reader_cls.input_specs.get(name) if reader_cls is not None else None
                value = through(tuple(value), spec.type if spec is not None else None)
                if value is None:
                    continue  # muted, or a bypass with no input of that type: the input is missing
                value = list(value)
            inputs[name] = value
        kept[node_id] = entry.model_copy(update={"inputs": inputs})
    result = workflow.model_copy(update={"nodes": kept})
    return result
