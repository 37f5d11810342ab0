"""Custom node packs' frontend-only nodes in ComfyUI's UI format, resolved as each pack's editor
code does when it builds the API prompt (a backend never sees them):

- KJNodes' SetNode / GetNode: a GetNode outputs what the SetNode of the same name (its
  `widgets_values[0]`) receives, the SetNode looked up in the GetNode's own graph, then the
  graphs around it (a subgraph sees its parents' SetNodes). A SetNode also passes its input on.
- rgthree's virtual nodes: `Reroute (rgthree)` forwards its input; the group and node muters and
  bypassers, Fast Actions Button, Bookmark and Label only change node modes (already saved in
  the file) or help to navigate, so they are left out.
- rgthree's Power Lora Loader: its editor turns each LoRA row widget ({on, lora, strength,
  strengthTwo}) into an input lora_1, lora_2 ...; here the rows (the widgets that are such dicts,
  among the header, divider and button widgets) become the node's one widget, a JSON list. The
  editor sends a row's strengthTwo (the text encoder's) only when the node's "Show Strengths"
  property is "Separate Model & Clip", a null one as 1; else the model's strength serves both.
  `power_lora_widgets` writes the rows back as the editor saves them, with that property.
- mxToolkit's mxReroute (a Reroute drawn with its input and output on chosen sides) forwards
  its input, as the editor's virtual-node walk does.
- pysssss's Reroute Primitive forwards its input; one with nothing linked in holds the value of
  the widget it shows for what it feeds (its `widgets_values[0]`), which is what it gives (in an
  API graph, where its editor sends that value, `primitive_class` reads it as a Primitive).
- cg-use-everywhere's broadcasters: each linked input of an Everywhere node is sent to every
  unconnected input of the same type in its graph, under the node's restrictions (title and
  input-name regexes, colour), the highest priority winning; a tie connects nothing in ComfyUI
  and is a problem here, as is a group restriction (which nodes a group holds is worked out by
  the editor from the drawn geometry, which the file doesn't settle).
- VideoHelperSuite's nodes (`VHS_`): its editor keeps widgets by name; a save from before that (a
  list, for the classes in VHS_LIST_WIDGETS) is read by the pack's positions, and an older size
  choice `force_size` becomes custom_width / custom_height, as its editor migrates them on loading
  (`vhs_widgets`, the pack's nodes' ComfyAlias.widgets hook, so every reader of a save sees it).

`resolve(nodes, links)` rewrites the flattened UI graph (comfy_format._flatten) in place: the
pack's nodes become forwarders (`__forward`: output slot i passes on input i) or Primitives,
broadcasts become links, and it returns the problems found.
"""

import json
import re

from graphflow.regex_trial import backtracks
from graphflow.workflow import Problem

MUTED, BYPASSED = 2, 4
SET, GET = "SetNode", "GetNode"
RGTHREE_REROUTE = "Reroute (rgthree)"
MX_REROUTE = "mxReroute"
POWER_LORA_LOADER = "Power Lora Loader (rgthree)"
SHOW_STRENGTHS, SEPARATE_STRENGTHS = "Show Strengths", "Separate Model & Clip"  # the node's property and view
# rgthree-comfy's RgthreeBaseVirtualNode subclasses that carry no data
RGTHREE_VIRTUAL = ("Fast Groups Muter (rgthree)", "Fast Groups Bypasser (rgthree)", "Fast Muter (rgthree)",
                   "Fast Bypasser (rgthree)", "Fast Actions Button (rgthree)", "Bookmark (rgthree)",
                   "Label (rgthree)")
PYSSSSS_REROUTE = "ReroutePrimitive|pysssss"
# pysssss's loaders whose file list held {content: name, image: preview} items in the pack's older
# versions, which their editor saves and queues as they are (read as the name): {class: the input}
PYSSSSS_IMAGE_COMBOS = {"CheckpointLoader|pysssss": "ckpt_name", "LoraLoader|pysssss": "lora_name"}
BROADCASTERS = ("Anything Everywhere", "Anything Everywhere?", "Anything Everywhere3", "Prompts Everywhere",
                "Seed Everywhere")
TYPES = (SET, GET, RGTHREE_REROUTE, MX_REROUTE, PYSSSSS_REROUTE) + RGTHREE_VIRTUAL + BROADCASTERS
VHS_PREFIX = "VHS_"  # VideoHelperSuite's class names
# VideoHelperSuite's editor: the widgets of its list-shaped saves, by position (None: the upload button)
VHS_LIST_WIDGETS = {
    "VHS_LoadImages": ("directory", None, "image_load_cap", "skip_first_images", "select_every_nth"),
    "VHS_LoadImagesPath": ("directory", "image_load_cap", "skip_first_images", "select_every_nth"),
    "VHS_VideoCombine": ("frame_rate", "loop_count", "filename_prefix", "format", "pingpong", "save_output"),
    "VHS_LoadVideo": ("video", "force_rate", "force_size", "frame_load_cap", "skip_first_frames", "select_every_nth"),
    "VHS_LoadVideoPath": ("video", "force_rate", "force_size", "frame_load_cap", "skip_first_frames",
                          "select_every_nth"),
}

# cg-use-everywhere's defaults (its i18n.js, with KSampler's English input names)
SEED_REGEX = "seed|seed"
PROMPT_REGEXES = (r"(_|\b)pos(itive|_|\b)|positive", r"(_|\b)neg(ative|_|\b)|negative")
REGEX_KINDS = ("title", "input", "prompt", "negative", "group")
REGEX_SECONDS = 1.0  # the most a broadcast's regex may take over the graph's labels


def node_properties(node: dict) -> dict:
    """A UI-format node's "properties", or {} where a save has none or something else there."""
    properties = node.get("properties")
    return properties if isinstance(properties, dict) else {}


def resolve(nodes: dict[str, dict], links: dict[str, tuple]) -> list[Problem]:
    problems: list[Problem] = []
    _set_get(nodes, problems)
    _broadcasts(nodes, links, problems)
    for node in nodes.values():
        values = node.get("widgets_values")
        # one text value: the JSON list itself (as graphflow wrote the node before it wrote the pack's shape)
        if node.get("type") == POWER_LORA_LOADER and isinstance(values, list) and \
                not (len(values) == 1 and isinstance(values[0], str)):
            properties = node_properties(node)
            separate = properties.get(SHOW_STRENGTHS) == SEPARATE_STRENGTHS
            rows = [{**row, "strengthTwo": (1 if row.get("strengthTwo") is None else row["strengthTwo"])
                     if separate else None} for row in _power_lora_rows(values)]
            node["widgets_values"] = [json.dumps(rows)]
        if node.get("type") in (RGTHREE_REROUTE, MX_REROUTE):
            node["type"] = "__forward"
        elif node.get("type") == PYSSSSS_REROUTE:
            inputs = node.get("inputs") or [{"name": "value", "type": "*", "link": None}]
            if inputs[0].get("link") is None and isinstance(values, list) and values:
                inputs = [{**inputs[0], "value": values[0]}]  # its widget: given as a literal
            node.update(type="__forward", inputs=inputs)
        elif node.get("type") in RGTHREE_VIRTUAL + BROADCASTERS:  # muted or bypassed broadcasters send nothing
            node.update(type="__forward", inputs=[])
    return problems


def primitive_class(class_type: str, inputs: dict) -> str:
    """The class a node of an API graph is read as: a pysssss Reroute Primitive that its editor
    queued with the value of its widget (not a link) is the ComfyUI Primitive of that value."""
    value = inputs.get("value")
    if class_type != PYSSSSS_REROUTE or isinstance(value, list):
        return class_type
    kinds = ((bool, "PrimitiveBoolean"), (int, "PrimitiveInt"), (float, "PrimitiveFloat"), (str, "PrimitiveString"))
    return next((name for kind, name in kinds if isinstance(value, kind)), class_type)


def combo_value(class_type: str, name: str, value):
    """A pysssss loader's {content, image} file item as the file name (other values as they are)."""
    if PYSSSSS_IMAGE_COMBOS.get(class_type) == name and isinstance(value, dict) \
            and isinstance(value.get("content"), str):
        return value["content"]
    return value


def file_item_widget(values: list, old_values) -> None:
    """A pysssss loader's widgets_values with its file name written back as the {content, image}
    item read, when the graph was read with one naming the same file (the pack's versions before
    2025 save and queue such items; later ones plain names, as written otherwise)."""
    old = old_values[0] if isinstance(old_values, list) and old_values else None
    if values and isinstance(old, dict) and old.get("content") == values[0]:
        values[0] = old


def vhs_widgets(values: list | dict, names: tuple = ()) -> list | dict:
    """A VHS node's widgets_values as the pack's editor restores them: by name (an old list by the
    pack's positions `names`, VHS_LIST_WIDGETS; save_image is save_output's old name), force_size
    turned into custom sizes. The pack's ComfyAlias.widgets: `partial(vhs_widgets, names=...)`."""
    if isinstance(values, list) and names and len(values) >= len(names):
        values = {name: value for name, value in zip(names, values) if name}
    if not isinstance(values, dict):
        return values
    values = dict(values)
    if "save_image" in values:
        values.setdefault("save_output", values.pop("save_image"))
    size = values.pop("force_size", None)
    if isinstance(size, str) and "x" in size:  # "512x?": a width of 512, the height from the aspect
        width, height = size.split("x", 1)
        values["custom_width"] = 0 if width == "?" else int(width) if width.isdigit() else width
        values["custom_height"] = 0 if height == "?" else int(height) if height.isdigit() else height
    elif isinstance(size, str):
        if size in ("Disabled", "Custom Height"):
            values["custom_width"] = 0
        if size in ("Disabled", "Custom Width"):
            values["custom_height"] = 0
    return values


def _power_lora_rows(values: list) -> list[dict]:
    return [v for v in values if isinstance(v, dict) and "lora" in v]  # rgthree's own test for a row


def power_lora_widgets(loras, properties: dict) -> list:
    """The Power Lora Loader's widgets_values as the pack's editor saves them, from the node's
    JSON list of rows (text that is no such list is kept as the one value, for the reader to
    report). A row with its own text encoder strength needs the "Separate Model & Clip" view,
    set in `properties`; in that view a row without one gets the model's strength there."""
    try:
        rows = json.loads(loras) if isinstance(loras, str) else loras
    except ValueError:
        rows = None
    if not isinstance(rows, list):
        return [loras]
    rows = _power_lora_rows(rows)
    if any(row.get("strengthTwo") is not None for row in rows):
        properties[SHOW_STRENGTHS] = SEPARATE_STRENGTHS
    if properties.get(SHOW_STRENGTHS) == SEPARATE_STRENGTHS:
        rows = [{**row, "strengthTwo": row.get("strength")} if row.get("strengthTwo") is None else row
                for row in rows]
    # before the rows a divider and the header, after them a divider and the Add Lora button
    return [{}, {"type": "PowerLoraLoaderHeaderWidget"}, *rows, {}, ""]


def _scope(node_id: str) -> str:
    """The graph a flattened node sits in: its instance prefix ("" at the top)."""
    return node_id.rpartition(":")[0]


def _set_get(nodes: dict, problems: list) -> None:
    setters: dict[tuple[str, str], str] = {}  # (scope, name) -> SetNode id
    for node_id, node in nodes.items():
        if node.get("type") == SET:
            name = _name(node)
            key = (_scope(node_id), name)
            if key in setters:
                problems.append(Problem(node_id, SET, None, f"a second SetNode named {name!r} in the same graph "
                                        f"(node {setters[key]} is the first); a GetNode can't tell which to use"))
            else:
                setters[key] = node_id
    for node_id, node in nodes.items():
        if node.get("type") != GET:
            continue
        name, scope, setter = _name(node), _scope(node_id), None
        while setter is None:
            setter = setters.get((scope, name))
            if not scope:
                break
            scope = _scope(scope)
        if setter is None:
            problems.append(Problem(node_id, GET, None,
                                    f"no SetNode is named {name!r}: the GetNode has nothing to give"))
            node.update(type="__forward", inputs=[])
            continue
        inputs = nodes[setter].get("inputs") or []
        node.update(type="__forward", inputs=[{"link": inputs[0].get("link")}] if inputs else [])
    for node in nodes.values():
        if node.get("type") == SET:
            node["type"] = "__forward"  # its own output passes its input on


def _name(node: dict) -> str:
    values = node.get("widgets_values")
    return str(values[0]) if isinstance(values, list) and values else ""


def _settings(node: dict) -> dict:
    """The node's Use Everywhere settings in the pack's 7.0 shape (`properties.ue_properties`),
    older saves converted as the pack converts them on loading."""
    properties = node_properties(node)
    saved = properties.get("ue_properties") if isinstance(properties.get("ue_properties"), dict) else {}
    if not _version_at_least(saved.get("version"), (7, 0)):
        values = node.get("widgets_values") if isinstance(node.get("widgets_values"), list) else []
        # Before 7.0 only Anything Everywhere? had widgets: title, input and group regexes.
        regexes = values[:3] if node.get("type") == "Anything Everywhere?" else []
        saved = {"group_restricted": properties.get("group_restricted"),
                 "color_restricted": properties.get("color_restricted"),
                 **{f"{k}_regex": v for k, v in zip(("title", "input", "group"), regexes)}}
    settings = dict(saved)
    if node.get("type") == "Seed Everywhere":
        settings["input_regex"] = settings.get("input_regex") or SEED_REGEX
    for kind in REGEX_KINDS:
        if settings.get(f"{kind}_regex") == ".*":
            settings[f"{kind}_regex"] = None
    return settings


def _version_at_least(version, least: tuple[int, int]) -> bool:
    try:
        return tuple(int(part) for part in str(version).split(".")[:2]) >= least
    except ValueError:
        return False


def _number(value) -> float:
    """A saved setting as a number (0 when it is none)."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return 0.0


def _priority(node: dict, settings: dict) -> float:
    """The pack's default_priority, with the node types it converts to on loading."""
    if _number(settings.get("priority")):
        return _number(settings["priority"])
    priority = 10 + (10 if node.get("type") == "Prompts Everywhere" else 0)
    if any(settings.get(f"{kind}_regex") for kind in REGEX_KINDS):
        priority += 20
    if _number(settings.get("group_restricted")) > 0:
        priority += 3
    if _number(settings.get("color_restricted")) > 0:
        priority += 6
    return priority


def _regex(node_id, node_type, settings, kind, problems, labels, default=None):
    """(compiled regex, inverted) for one of the node's regexes, or None. `labels`: the texts it
    will search (the graph's titles and input names), on which a file's regex must not backtrack
    without end (graphflow.regex_trial): reading a stranger's file must not hold the server."""
    pattern = settings.get(f"{kind}_regex") or default
    if not pattern:
        return None
    try:
        compiled = re.compile(str(pattern))
    except (re.error, ValueError, OverflowError, RecursionError) as e:
        problems.append(Problem(node_id, node_type, None, f"its {kind} regex {pattern!r} is not a valid regular "
                                                          f"expression: {e}"))
        return None
    if pattern != default and backtracks(compiled, labels, REGEX_SECONDS):
        problems.append(Problem(node_id, node_type, None, f"its {kind} regex {pattern!r} took longer than "
                                                          f"{REGEX_SECONDS:g} s on the graph's titles and input names "
                                                          "and was stopped: it backtracks too much"))
        return None
    return compiled, bool(settings.get(f"{kind}_regex_invert"))


def _labels(nodes: dict) -> list[str]:
    """Every node title and input name a broadcast's regexes may search."""
    labels = {_label(node) for node in nodes.values()}
    for node in nodes.values():
        for socket in node.get("inputs") or []:
            if isinstance(socket, dict):
                labels.add(socket.get("label") or socket.get("localized_name") or socket.get("name") or "")
    return sorted(str(label) for label in labels)


def _live(node: dict) -> bool:
    return node.get("mode", 0) not in (MUTED, BYPASSED)


def _label(node: dict) -> str:
    properties = node_properties(node)
    return node.get("title") or properties.get("Node name for S&R") or node.get("type") or ""


def _broadcasts(nodes: dict, links: dict, problems: list) -> None:
    sources = []  # one per broadcast input: a dict of what it sends, where, and how strongly
    labels = _labels(nodes)
    for node_id, node in nodes.items():
        node_type = node.get("type")
        if node_type not in BROADCASTERS or not _live(node):
            continue
        settings = _settings(node)
        if _number(settings.get("group_restricted")) or settings.get("group_regex"):
            problems.append(Problem(node_id, node_type, None,
                                    "its broadcast is restricted by group: which nodes a group holds is worked out "
                                    "by ComfyUI's editor from the drawn layout, which the saved file doesn't settle; "
                                    "link its targets directly instead"))
            continue
        common = {"id": node_id, "type": node_type, "settings": settings, "node": node,
                  "priority": _priority(node, settings),
                  "title": _regex(node_id, node_type, settings, "title", problems, labels)}
        if node_type == "Seed Everywhere":  # it gives its own seed (the pack turns it into a PrimitiveInt)
            values = node.get("widgets_values") if isinstance(node.get("widgets_values"), list) else []
            node.update(type="PrimitiveNode", widgets_values=values[:1], inputs=[])
            sources.append({**common, "slot": 0, "kind": "INT", "name": None, "upstream": node_id,
                            "input": _regex(node_id, node_type, settings, "input", problems, labels)})
            continue
        inputs = node.get("inputs") or []
        linked = [(i, socket) for i, socket in enumerate(inputs) if socket.get("link") is not None]
        kinds = [_link_type(links, socket) for _, socket in linked]
        for i, socket in linked:
            kind = _link_type(links, socket)
            default = PROMPT_REGEXES[i] if node_type == "Prompts Everywhere" and i < 2 else None
            # two inputs of one type: the repeated-type rule tells their targets apart by this name
            repeated = kinds.count(kind) > 1 and not default
            sources.append({**common, "slot": i, "kind": kind,
                            "upstream": (links.get(str(socket["link"])) or [None])[0],
                            "name": (socket.get("label") or socket.get("name")) if repeated else None,
                            "input": _regex(node_id, node_type, settings,
                                            ("prompt", "negative")[i] if default else "input", problems, labels,
                                            default)})
        node["type"] = "__forward"  # output slot i passes input i on: the broadcast links come from it
    if not sources:
        return
    made = 0
    for node_id, node in nodes.items():
        if node.get("type") in TYPES or node.get("type") in ("__forward", "PrimitiveNode", "Reroute", "Note",
                                                               "MarkdownNote") or not _live(node):
            continue
        properties = node_properties(node)
        if properties.get("rejects_ue_links"):
            continue
        ue = properties.get("ue_properties") if isinstance(properties.get("ue_properties"), dict) else {}
        widget_ok = ue.get("widget_ue_connectable") or properties.get("widget_ue_connectable") or {}
        refused = ue.get("input_ue_unconnectable") or {}
        inputs = list(node.get("inputs") or [])
        for index, socket in enumerate(inputs):
            if not isinstance(socket, dict) or socket.get("link") is not None:
                continue
            name = socket.get("name")
            if (socket.get("widget") and not widget_ok.get(name)) or (not socket.get("widget") and refused.get(name)):
                continue
            matches = [s for s in sources if _matches(s, node_id, node, socket)]
            if not matches:
                continue
            matches.sort(key=lambda s: -s["priority"])
            if len(matches) > 1 and matches[0]["priority"] == matches[1]["priority"]:
                tied = [s for s in matches if s["priority"] == matches[0]["priority"]]
                problems.append(Problem(node_id, node.get("type"), name,
                                        "the input matches several Use Everywhere broadcasts of equal priority ("
                                        + ", ".join(f"node {s['id']} ({s['type']}) input {s['slot']}" for s in tied)
                                        + "); ComfyUI connects none of them: link it, or restrict the broadcasts"))
                continue
            best = matches[0]
            link_id, made = f"ue{made}", made + 1
            links[link_id] = (best["id"], best["slot"], node_id, index, best["kind"])
            inputs[index] = {**socket, "link": link_id, "saved_link": None}
        node["inputs"] = inputs


def _link_type(links: dict, socket: dict):
    link = links.get(str(socket.get("link")))
    kind = link[4] if link is not None else None
    return kind if kind not in (None, "*") else socket.get("type")


def _matches(source: dict, node_id: str, node: dict, socket: dict) -> bool:
    """cg-use-everywhere's UseEverywhere.matches for one broadcast and one unconnected input."""
    if _scope(node_id) != _scope(source["id"]) or node_id == source["upstream"]:
        return False
    settings = source["settings"]
    label = socket.get("label") or socket.get("localized_name") or socket.get("name") or ""
    if source["name"] is not None and not _repeated_type_rule(settings, source["name"], label, node):
        return False
    color = _number(settings.get("color_restricted"))
    if color and (node.get("color") == source["node"].get("color")) != (color == 1):
        return False
    if source["title"] is not None and bool(source["title"][0].search(_label(node))) == source["title"][1]:
        return False
    kind = socket.get("type")
    if kind != source["kind"] and not (source["kind"] == "STRING" and kind == "COMBO"
                                       and _number(settings.get("string_to_combo")) > 0):
        return False
    if source["input"] is not None and bool(source["input"][0].search(label)) == source["input"][1]:
        return False
    return True


def _repeated_type_rule(settings: dict, own: str, label: str, node: dict) -> bool:
    """Which input a broadcast goes to when one node broadcasts two inputs of one type."""
    rule = _number(settings.get("repeated_type_rule"))
    chars = min(len(own), len(label))
    if rule == 1:
        return label[:chars] == own[:chars]
    if rule == 2:
        return label[len(label) - chars:] == own[len(own) - chars:]
    if rule == 3:
        return node.get("title") == own
    return label == own
