"""ComfyUI's `GET /object_info` schema, generated from our catalogue and alias table.

Every ComfyUI class that one of our nodes answers to (its `comfy` alias) is listed under the
ComfyUI class name, with ComfyUI's input names (the alias's renames reversed), ComfyUI's
values for renamed choices, and the inputs a ComfyUI client must send under `required`.
Inputs the alias fixes (VAEDecodeTiled's `tiled`, say) are left out; our own additions that
ComfyUI's class lacks (the alias's `optional`) are listed under `optional`, so a ComfyUI client
that fills the required inputs gets our defaults for them. Being derived, it cannot drift from
what the nodes accept.
"""

from graphflow.node import _REQUIRED
from graphflow.workflow import ComfyAlias, comfy_aliases

WIDGET_TYPES = {"INT": "INT", "FLOAT": "FLOAT", "STRING": "STRING", "BOOLEAN": "BOOLEAN"}


def _widget_options(widget, alias: ComfyAlias, our_name: str) -> dict:
    options = {}
    if widget.default is not _REQUIRED:
        default = widget.default
        if widget.kind == "CHOICE":
            default = _comfy_value(alias, our_name, default)
        options["default"] = default
    if widget.kind in ("INT", "FLOAT"):
        for key in ("min", "max", "step"):
            value = getattr(widget, key)
            if value is not None:
                options[key] = value
    if widget.kind == "STRING" and widget.multiline:
        options["multiline"] = True
    if widget.hints.get("dynamic_prompts"):  # the editor resolves {a|b} in it when it queues
        options["dynamicPrompts"] = True
    if widget.hints.get("control_after_generate") or (widget.kind == "INT" and our_name in ("seed", "noise_seed")):
        options["control_after_generate"] = True
    if widget.hints.get("upload") in ("image", "video"):
        options[widget.hints["upload"] + "_upload"] = True
    if widget.hints.get("force_input"):  # a pack's widget its editor shows as a socket only
        options["forceInput"] = True
    if widget.description:
        options["tooltip"] = widget.description
    return options


def _comfy_value(alias: ComfyAlias, our_name: str, value):
    """Our value of a choice input as ComfyUI names it (the alias's value renames reversed, file
    names annotated with their folder: LoadImageOutput's "x.png [output]")."""
    from graphflow.comfy_format import annotated_name

    for comfy_value, ours in alias.values.get(our_name, {}).items():
        if ours == value:
            return comfy_value
    return annotated_name(alias, our_name, value) if isinstance(value, str) else value


def _input_entry(spec, alias: ComfyAlias) -> list:
    widget = spec.widget
    if widget is None:
        # a socket: a text / number / boolean one is marked forceInput, or a ComfyUI editor would
        # show it as a widget (as it does a pack's input without the mark, Comfyroll's older int_)
        # and its saves would hold a value where our node takes a link
        forced = spec.name in alias.force_input or spec.type in WIDGET_TYPES
        return [spec.type, {"forceInput": True} if forced else {}]
    if widget.hints.get("upload") == "webcam":  # ComfyUI's own widget type: the capture's file name
        return ["WEBCAM", _widget_options(widget, alias, spec.name)]
    if widget.kind == "CHOICE":
        choices = [_comfy_value(alias, spec.name, c) for c in widget.choices()]
        return [choices, _widget_options(widget, alias, spec.name)]
    return [WIDGET_TYPES[widget.kind], _widget_options(widget, alias, spec.name)]


def class_info(cls, class_type: str, alias: ComfyAlias) -> dict:
    """The object_info entry of ComfyUI class `class_type`, answered by our node `cls`."""
    from graphflow.comfy_format import comfy_catalogue

    comfy_name = alias.written_names()
    catalogued = comfy_catalogue().get(class_type, {})
    required, optional = {}, {}
    for spec in cls.input_specs.values():
        if spec.name in alias.fixed:
            continue
        name = comfy_name.get(spec.name, spec.name)
        entry = _input_entry(spec, alias)
        # ComfyUI lists widgets with defaults as required; optional are sockets that may be left
        # unlinked (a core class: as its catalogue says, through alias.optional) and inputs that
        # exist only here.
        is_optional = spec.name in alias.optional or not catalogued and spec.socket is not None and not spec.required
        (optional if is_optional else required)[name] = entry
    specs = cls.output_specs
    if alias.outputs is not None:
        specs = [specs[i] for i in alias.outputs]
    outputs = [o.type for o in specs]
    # ComfyUI's own output names where its catalogue has the class (GetVideoComponents' "images",
    # "audio", "fps"); otherwise our outputs' names where they are a pack's RETURN_NAMES ("width"),
    # and the type where ours is only the type in lower case (a pack's class without RETURN_NAMES,
    # which ComfyUI names by its types: IPAdapterAdvanced's "MODEL")
    known = [o["name"] for o in catalogued.get("outputs", [])] or list(alias.output_names)
    names = known if len(known) == len(outputs) else [o.type if o.name.upper() == o.type else o.name for o in specs]
    info = {
        "input": {"required": required} | ({"optional": optional} if optional else {}),
        "input_order": {"required": list(required)} | ({"optional": list(optional)} if optional else {}),
        "is_input_list": bool(cls.input_is_list),
        "output": outputs,
        "output_is_list": [o.is_list for o in specs],
        "output_name": names,
        "name": class_type,
        "display_name": cls.display_name or class_type,
        "description": cls.description(),
        "python_module": "graphflow",
        "category": cls.category,
        "output_node": bool(cls.output_node),
        # ComfyUI's flags (its frontend leaves deprecated nodes out of the search): the catalogue's
        "deprecated": bool(catalogued.get("deprecated")),
        "experimental": bool(catalogued.get("experimental")),
        "api_node": False,
        "graphflow_node": cls.node_type,
    }
    return info


def object_info(registry) -> dict:
    """ComfyUI class name -> object_info entry, for every ComfyUI class one of our nodes answers to,
    and for our nodes that have no ComfyUI counterpart, under their own names. A node claiming a
    class another node is the default of (PostProcBlur of "Blur") is listed under its own node
    type, which it answers (Registry.comfy_node), so the editor can add it."""
    info = {}
    for cls in registry:
        node_type = cls.node_type
        aliases = comfy_aliases(cls)
        for alias in aliases:
            for class_type in alias.class_types:
                if registry.comfy_node(class_type) is cls:
                    info[class_type] = class_info(cls, class_type, alias)
                elif registry.comfy_node(node_type) is cls and node_type not in info:
                    info[node_type] = class_info(cls, node_type, ComfyAlias((node_type,)))  # read by our names
        if not aliases and node_type not in info:
            info[node_type] = class_info(cls, node_type, ComfyAlias((node_type,)))
    return info
