"""The node API: how a node (built-in or plugin) declares its inputs and outputs.

    class EmptyLatent(Node):
        '''Make a blank latent batch to start sampling from.'''
        category = "latent"
        width: int = Int(512, min=16, max=16384, step=8)
        height: int = Int(512, min=16, max=16384, step=8)
        batch_size: int = Int(1, min=1, max=4096)
        outputs = {"latent": LATENT}

        def run(self):
            return {"samples": torch.zeros(self.batch_size, 4, self.height // 8, self.width // 8)}

Annotated class attributes are the inputs, in order: a socket annotation (IMAGE, MODEL, ...)
makes a link input, any other is a widget whose constraints come from Int/Float/Text/Bool/
Choice. An input with a default is optional (a socket input is optional with `= None`).
One pydantic model is built from the widgets, so validation, defaults and the catalogue
JSON all come from this one declaration. `run()` reads the inputs as attributes and returns
the single output's value, or a tuple in the order of `outputs`.

Lists (ComfyUI's OUTPUT_IS_LIST / INPUT_IS_LIST): an output declared `ListOf(LATENT)` returns a
Python list, whose items flow on one by one. A node that gets a list on any input runs once per
item (shorter lists repeat their last item) and each of its outputs becomes a list; a node with
`input_is_list = True` instead runs once and reads every input, widgets too, as a list.
"""

import difflib
import functools
import inspect
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, ClassVar, get_type_hints

from pydantic import (AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, TypeAdapter, ValidationError,
                      ValidationInfo, create_model)

from graphflow.folders import file_name_problem
from graphflow.types import SOCKET_TYPES, SocketType, socket_of


class NodeDeclarationError(TypeError):
    """A node class declares its inputs or outputs wrongly."""


_REQUIRED = object()
RESERVED_NAMES = {
    "run", "category", "version", "outputs", "output_node", "cacheable", "display_name",
    "node_type", "fingerprint", "upgrade", "comfy", "inputs", "spec", "estimate", "input_is_list",
    "widget_model", "linked_widget_model",  # an input's Widget there would hide the built model
}


@dataclass
class Widget:
    """Constraints and editor hints for a widget input; build it with Int/Float/Text/Bool/Choice."""

    kind: str  # INT, FLOAT, STRING, BOOLEAN or CHOICE
    default: Any = _REQUIRED
    min: float | None = None
    max: float | None = None
    step: float | None = None
    multiline: bool = False
    options: Sequence | Callable[[], Sequence] | None = None
    hints: dict = field(default_factory=dict)
    description: str = ""

    def choices(self) -> list:
        options = self.options() if callable(self.options) else self.options
        return list(options or [])


def Int(default=_REQUIRED, *, min=None, max=None, step=1, description="", **hints) -> Any:
    """An integer. `linked_min=N` lets a value that arrives by a link go down to N (None: no lower
    bound) where the node itself handles values below `min`, as a pack does whose ComfyUI node gets
    linked values unchecked; a typed-in value still has to be at least `min`."""
    return Widget("INT", default, min, max, step, description=description, hints=hints)


def Float(default=_REQUIRED, *, min=None, max=None, step=0.01, description="", **hints) -> Any:
    """A finite number. `linked_nonfinite=True` lets a value that arrives by a link be inf or NaN
    where the node means to handle them (a test for infinity, a pack's float operation whose
    ComfyUI node gets linked values unchecked); a typed-in value still has to be finite.
    `linked_list=True` lets a linked value also be a list of such numbers, each within the bounds
    (a pack's per-frame values, as FizzNodes' pw_a takes a Batch Value Schedule's list).
    `linked_max=N` lets a value that arrives by a link go up to N (None: no upper bound) where the
    node itself handles values above `max`, as a pack does whose ComfyUI node gets linked values
    unchecked (Int's `linked_min` the other way); a typed-in value still has to be at most `max`."""
    return Widget("FLOAT", default, min, max, step, description=description, hints=hints)


def Text(default=_REQUIRED, *, multiline=False, description="", **hints) -> Any:
    """Text; `file_name=True` makes it a file name inside a folder (SaveImage's prefix), refused at
    validation when absolute, with '..', a backslash or control characters, or too long."""
    return Widget("STRING", default, multiline=multiline, description=description, hints=hints)


def Bool(default=_REQUIRED, *, description="", **hints) -> Any:
    return Widget("BOOLEAN", default, description=description, hints=hints)


def Choice(options: Sequence | Callable[[], Sequence], default=_REQUIRED, *, description="", **hints) -> Any:
    """A value from a list; `options` may be a function, called whenever the list is needed
    (e.g. the files in a models folder). Hints such as `upload="image"` guide the editor;
    `if_empty="..."` is added to the refusal of a value when the list is empty (where its files go)."""
    return Widget("CHOICE", default, options=options, description=description, hints=hints)


# hints that check a linked value unlike a typed one
LINKED_HINTS = {"linked_min", "linked_max", "linked_nonfinite", "linked_list"}

_PLAIN_WIDGET_KINDS = {int: "INT", float: "FLOAT", str: "STRING", bool: "BOOLEAN"}


@dataclass(frozen=True)
class InputSpec:
    name: str
    type: str  # socket type name, or the widget kind
    required: bool
    socket: SocketType | None = None
    widget: Widget | None = None

    @property
    def default(self):
        if self.widget is None or self.widget.default is _REQUIRED:
            return None
        return self.widget.default


@dataclass(frozen=True)
class OutputSpec:
    name: str
    type: str
    is_list: bool = False  # run() returns a list of values of `type`, passed on item by item


class ListOf:
    """An output that is a list: `outputs = {"latents": ListOf(LATENT)}` (ComfyUI's OUTPUT_IS_LIST).
    run() returns a Python list for it; each item goes on as one value of the socket type."""

    __slots__ = ("item",)

    def __init__(self, item):
        self.item = item

    def __repr__(self):
        return f"ListOf({self.item!r})"


MAX_CLOSE_SEARCH = 2000  # choices compared in full (difflib's ratio) when naming the closest ones


def closest_choices(value: str, choices: Sequence, n: int = 5) -> list[str]:
    """The choices nearest `value` (difflib's closest, at most n). A list longer than
    MAX_CLOSE_SEARCH is first narrowed to the choices that share the value's first three characters
    (any case) or hold it, at most MAX_CLOSE_SEARCH of them: comparing against 100,000 choices
    took seconds per bad value."""
    names = list(map(str, choices))
    if len(names) > MAX_CLOSE_SEARCH:
        text = str(value).casefold()
        start = text[:3]
        names = [name for name in names if (folded := name.casefold()).startswith(start) or text in folded]
        names = names[:MAX_CLOSE_SEARCH]
    return difflib.get_close_matches(str(value), names, n=n)


def _check_choice(widget: Widget):
    def check(value):
        try:
            choices = widget.choices()
        except Exception as e:  # a folder listing that failed, say: a problem with this input, not a crash
            raise ValueError(f"the choices could not be listed: {type(e).__name__}: {e}") from None
        if value not in choices:
            if not choices:  # Choice(..., if_empty="...") says how the list gets its entries
                why = f" ({widget.hints['if_empty']})" if widget.hints.get("if_empty") else ""
                raise ValueError(f"{value!r} is not one of the choices: (none available){why}")
            shown = ", ".join(map(repr, choices[:12])) + (" ..." if len(choices) > 12 else "")
            # a long list is cut short: the names nearest the value are named too (a misspelt style)
            close = closest_choices(value, choices) if len(choices) > 12 else []
            closest = f" (closest: {', '.join(map(repr, close))})" if close else ""
            raise ValueError(f"{value!r} is not one of the choices: {shown}{closest}")
        return value

    return check


def _check_file_name(value: str) -> str:
    problem = file_name_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


def _pydantic_field(spec: InputSpec, linked: bool = False):
    """The widget's pydantic field; `linked`: for a value arriving by a link (its `linked_min`,
    `linked_max`, `linked_nonfinite`, `linked_list`)."""
    w = spec.widget
    default = ... if w.default is _REQUIRED else w.default
    if w.kind == "CHOICE":
        return Annotated[Any, AfterValidator(_check_choice(w))], default
    if w.kind == "STRING" and w.hints.get("file_name"):  # Text(..., file_name=True): a name inside a folder
        return Annotated[str, AfterValidator(_check_file_name)], default
    python_type = {"INT": int, "FLOAT": float, "STRING": str, "BOOLEAN": bool}[w.kind]
    constraints = {}
    least = w.hints["linked_min"] if linked and "linked_min" in w.hints else w.min
    if least is not None:
        constraints["ge"] = least
    most = w.hints["linked_max"] if linked and "linked_max" in w.hints else w.max
    if most is not None:
        constraints["le"] = most
    if w.kind == "FLOAT":
        constraints["allow_inf_nan"] = bool(linked and w.hints.get("linked_nonfinite"))
    number = Annotated[int, BeforeValidator(_int_from_text), Field(**constraints)] if w.kind == "INT" \
        else Annotated[python_type, Field(**constraints)]
    if linked and w.hints.get("linked_list"):  # a number or a list of them
        # strict: an item that is text or a bool is refused here, not turned into a number
        item = Annotated[python_type, Field(strict=True, **constraints)]
        return Annotated[Any, AfterValidator(_number_or_list(TypeAdapter(item)))], default
    return number, default


def _int_from_text(value, info: ValidationInfo):
    """Typed-in text for an integer widget is read as Python's int() reads it, as ComfyUI's validation
    does: " 7 ", "+3" and "1_000" are numbers, "7.0" is not (pydantic alone would take it as 7). A
    linked value (validated with context {"linked": True}) ComfyUI passes on unconverted: it keeps
    pydantic's reading."""
    if not isinstance(value, str) or (info.context or {}).get("linked"):
        return value
    try:
        return int(value)
    except ValueError as e:
        why = "too many digits" if "digits" in str(e) else "no fraction, no exponent"
        raise ValueError(f"got {value[:40]!r}; expected an integer (text is read as ComfyUI reads it, by "
                         f"Python's int(): {why})") from None


def _number_or_list(number: TypeAdapter):
    """A check of a linked_list widget's value: a number, or a list of them, each named when wrong."""
    def check(value):
        items = value if isinstance(value, (list, tuple)) else [value]
        for k, item in enumerate(items):
            try:
                number.validate_python(item)
            except ValidationError as e:
                where = f"item {k} ({item!r}): " if items is value else ""
                raise ValueError(f"{where}{e.errors()[0]['msg']} (expected a number or a list of them)") from None
        return value

    return check


@functools.cache
def widget_model_linking(cls, linked: frozenset[str]) -> type[BaseModel]:
    """The node's widget model with the widgets in `linked` optional: those arrive by links, so
    the typed-in widgets are checked, and keep their values, whichever of them are linked."""
    return create_model(f"{cls.__name__}WidgetsLinking", __base__=cls.widget_model,
                        **{name: (Any, None) for name in linked})


def _widget_model(cls) -> type[BaseModel]:
    """The node's widgets as one pydantic model: a typed-in value is checked (and defaulted) by it."""
    widgets = {name: _pydantic_field(s) for name, s in cls.input_specs.items() if s.widget}
    return create_model(f"{cls.__name__}Widgets", __config__=ConfigDict(extra="ignore"), **widgets)


def _linked_widget_model(cls) -> type[BaseModel]:
    """widget_model for values arriving by links: the same model unless a widget has a linked hint."""
    if not any(s.widget and LINKED_HINTS & s.widget.hints.keys() for s in cls.input_specs.values()):
        return cls.widget_model
    linked = {name: _pydantic_field(s, linked=True) for name, s in cls.input_specs.items() if s.widget}
    return create_model(f"{cls.__name__}LinkedWidgets", __config__=ConfigDict(extra="ignore"), **linked)


# Modules whose node classes build their pydantic models on first use: building them for the ~2000
# built-in nodes took most of the 4-5 s of `graphflow nodes` / `validate`, which need few or none
# (tests/test_node_models.py builds every built-in's). Any other module's nodes (a plugin's) build
# them at declaration, so a declaration pydantic refuses still fails the plugin's import.
LAZY_MODEL_MODULES = ("nodes.",)


class _NodeModel:
    """A node class's model, built by `build(cls)` on first read and kept in that class's own
    __dict__ (under a private name: an attribute set on the class would be inherited by its
    subclasses, whose inputs differ)."""

    def __init__(self, build: Callable[[type], type[BaseModel]]):
        self.build = build

    def __set_name__(self, owner, name):
        self.slot = f"_built_{name}"

    def __get__(self, node, cls) -> type[BaseModel]:
        model = cls.__dict__.get(self.slot)
        if model is None:
            # built once: two threads building at once kept one's widget model and the other's linked
            # model made from it (the server validates on its loop while a worker thread runs)
            with _BUILDING_MODELS:
                model = cls.__dict__.get(self.slot)
                if model is None:
                    model = self.build(cls)
                    setattr(cls, self.slot, model)
        return model


_BUILDING_MODELS = threading.RLock()  # re-entered: building the linked model reads the widget model


class Node:
    """Base class of every node. Its docstring is the help text the editor shows."""

    node_type: ClassVar[str]  # defaults to the class name
    display_name: ClassVar[str | None] = None
    category: ClassVar[str] = "misc"
    version: ClassVar[int] = 1
    outputs: ClassVar[dict] = {}
    output_node: ClassVar[bool] = False  # produces results (save/preview): the executor runs toward these
    cacheable: ClassVar[bool] = True  # False: re-run every time, and so are its descendants
    keeps_frames: ClassVar[bool] = False  # passes a video's frames on (graphflow.resource_limits' default estimate)
    input_is_list: ClassVar[bool] = False  # True: run once on whole lists, every input a list (INPUT_IS_LIST)
    comfy: ClassVar[Any] = None  # ComfyAlias (graphflow.workflow) mapping ComfyUI names onto this node

    # Filled in by __init_subclass__ from the declaration:
    input_specs: ClassVar[dict[str, InputSpec]] = {}
    output_specs: ClassVar[tuple[OutputSpec, ...]] = ()
    # Built from input_specs, for built-in nodes on first read (LAZY_MODEL_MODULES):
    widget_model = _NodeModel(_widget_model)
    linked_widget_model = _NodeModel(_linked_widget_model)  # with the widgets' linked_min / _max / _nonfinite / _list

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "node_type" not in cls.__dict__:
            cls.node_type = cls.__name__
        cls.input_specs = _declared_inputs(cls)
        cls.output_specs = _declared_outputs(cls)
        eager = not cls.__module__.startswith(LAZY_MODEL_MODULES)  # a plugin's: a refusal fails its import
        if eager:
            cls.widget_model
        # between the two models, as before they were lazy: a declaration with faults in both the
        # fingerprint and a linked hint keeps failing on the fingerprint (a "declaration" problem)
        _check_fingerprint(cls)
        if eager:
            cls.linked_widget_model

    @classmethod
    def description(cls) -> str:
        return inspect.cleandoc(cls.__doc__) if cls.__doc__ else ""

    @classmethod
    def fingerprint(cls, **widgets) -> str | None:
        """State outside the inputs that the result depends on (a file's mtime or hash).

        Called with the widget values before each run; a changed fingerprint re-runs the node."""
        return None

    @classmethod
    def upgrade(cls, inputs: dict, saved_version: int) -> dict | None:
        """Map the inputs of a workflow saved with an older version of this node onto the
        current declaration; None (the default) means it can't, and the workflow is reported
        as needing an update of this node."""
        return None

    @classmethod
    def unknown_input(cls, name: str) -> str | None:
        """Why an input this node does not declare is refused, where the generic message
        ("unknown input; this node's inputs are: ...") would mislead: a pack's node that grows
        more numbered inputs than ours has, say. None (the default) keeps the generic message."""
        return None

    @classmethod
    def estimate(cls, widgets: dict, inputs: dict):
        """What a run of this node takes, for the check before a run starts: an Estimate
        (graphflow.resource_limits) of its outputs' pixel size and its working memory, from its
        widget values and the Size of each linked latent/image/mask input (None: unknown).
        None (the default) reads the widgets' resource hints (Int(..., resource="width"))."""
        return None

    def run(self):
        raise TypeError(f"node {self.node_type} declares no run()")


def _declared_inputs(cls) -> dict[str, InputSpec]:
    specs = {}
    for klass in reversed(cls.__mro__):
        if klass is Node or klass is object:
            continue
        try:
            hints = _own_hints(klass)  # a mixin's too: get_type_hints read them, and refused bad ones
        except Exception as e:
            raise NodeDeclarationError(f"node {cls.__name__}: cannot read its input annotations: {e}") from e
        if not issubclass(klass, Node):
            continue
        for name in klass.__dict__.get("__annotations__", {}):
            hint = hints[name]
            if getattr(hint, "__origin__", None) is ClassVar or name.startswith("_"):
                continue
            if name in RESERVED_NAMES:
                raise NodeDeclarationError(
                    f"node {cls.__name__}: input name {name!r} is reserved by the node API; rename it"
                )
            specs[name] = _input_spec(cls, name, hint, klass.__dict__.get(name, _REQUIRED))
    return specs


def _own_hints(klass) -> dict:
    """The annotations `klass` itself declares, evaluated as typing.get_type_hints(klass) evaluates
    them (a string in the class's namespace and its module's), but not every base's again with them
    (Node's own each time: half the declaration time of the ~2000 built-in nodes). Anything but a
    plain widget type or a socket (a ClassVar too) is left to get_type_hints, which evaluates what it
    holds and gives a failure its message."""
    annotations = klass.__dict__.get("__annotations__", {})
    module = getattr(sys.modules.get(klass.__module__), "__dict__", {})
    namespace = None
    hints = {}
    for name, value in annotations.items():
        if isinstance(value, str):
            namespace = namespace if namespace is not None else dict(vars(klass))
            try:
                value = eval(_annotation_code(value), namespace, module)  # noqa: S307 (as get_type_hints does)
            except Exception:
                value = _NOT_PLAIN
        if not (isinstance(value, type) and value in _PLAIN_WIDGET_KINDS
                or not isinstance(value, str) and socket_of(value) is not None):
            every = get_type_hints(klass, include_extras=True)
            return {name: every[name] for name in annotations}
        hints[name] = value
    return hints


_NOT_PLAIN = object()


@functools.lru_cache(maxsize=4096)
def _annotation_code(text: str):
    return compile(text, "<annotation>", "eval")  # the same few ("IMAGE", "float") thousands of times


def _input_spec(cls, name, hint, default) -> InputSpec:
    socket = socket_of(hint)
    if socket is not None:
        if default is not _REQUIRED and default is not None:
            raise NodeDeclarationError(
                f"node {cls.__name__}: socket input {name!r} may only default to None (optional)"
            )
        return InputSpec(name, socket.name, required=default is _REQUIRED, socket=socket)
    if isinstance(default, Widget):
        widget = default
    elif hint in _PLAIN_WIDGET_KINDS:
        widget = Widget(_PLAIN_WIDGET_KINDS[hint], default)
    else:
        raise NodeDeclarationError(
            f"node {cls.__name__}: input {name!r} has annotation {hint!r}; use a socket type "
            "(IMAGE, LATENT, ...) or int/float/str/bool with Int/Float/Text/Bool/Choice"
        )
    if widget.kind == "CHOICE" and widget.options is None:
        raise NodeDeclarationError(f"node {cls.__name__}: choice input {name!r} has no options")
    return InputSpec(name, widget.kind, required=widget.default is _REQUIRED, widget=widget)


def _check_fingerprint(cls) -> None:
    """A fingerprint is called as fingerprint(**widget values): one that needs another input (a
    socket), or that takes fewer than all the widgets without **widgets, would fail every run, so
    it is refused where the node is declared."""
    if getattr(cls.fingerprint, "__func__", None) is Node.fingerprint.__func__:  # Node's own takes **widgets
        return
    try:
        parameters = list(inspect.signature(cls.fingerprint).parameters.values())
    except (TypeError, ValueError):
        return
    if parameters and parameters[0].name == "self":
        raise NodeDeclarationError(f"node {cls.__name__}: fingerprint() takes self; it is called on the class: "
                                   f"declare it @classmethod")
    named = set()
    for p in parameters:
        if p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL):
            continue
        spec = cls.input_specs.get(p.name)
        if p.kind == p.POSITIONAL_ONLY or p.default is p.empty and (spec is None or spec.widget is None):
            what = "a socket" if spec is not None else "no input of the node" if p.kind != p.POSITIONAL_ONLY \
                else "a positional-only parameter"
            raise NodeDeclarationError(f"node {cls.__name__}: fingerprint() takes {p.name!r}, {what}; it is called "
                                       f"with the widget values only, by name (take **inputs for the rest)")
        named.add(p.name)
    if not any(p.kind == p.VAR_KEYWORD for p in parameters):
        missing = [name for name, spec in cls.input_specs.items() if spec.widget is not None and name not in named]
        if missing:
            raise NodeDeclarationError(f"node {cls.__name__}: fingerprint() is called with every widget value but "
                                       f"does not take {', '.join(map(repr, missing))}: add **widgets")


def _declared_outputs(cls) -> tuple[OutputSpec, ...]:
    if not isinstance(cls.outputs, dict):
        raise NodeDeclarationError(f"node {cls.__name__}: outputs must be a dict of name -> socket type")
    specs = []
    for name, annotation in cls.outputs.items():
        is_list = isinstance(annotation, ListOf)
        socket = socket_of(annotation.item if is_list else annotation)
        if socket is None:
            raise NodeDeclarationError(
                f"node {cls.__name__}: output {name!r} is {annotation!r}, not a socket type or ListOf(socket type)"
            )
        specs.append(OutputSpec(name, socket.name, is_list))
    return tuple(specs)


def widget_catalogue(widget: Widget) -> dict:
    entry = {"kind": widget.kind}
    if widget.default is not _REQUIRED:
        entry["default"] = widget.default
    for key in ("min", "max", "step"):
        value = getattr(widget, key)
        if value is not None and widget.kind in ("INT", "FLOAT"):
            entry[key] = value
    if widget.multiline:
        entry["multiline"] = True
    if widget.kind == "CHOICE":
        entry["options"] = widget.choices()
        if callable(widget.options):
            entry["dynamic_options"] = True  # computed when asked (files in a folder): may change
    if widget.description:
        entry["description"] = widget.description
    entry.update(widget.hints)
    return entry


def node_catalogue(cls: type[Node], source: str | None = None) -> dict:
    """The catalogue entry of one node class: what the editor and `graphflow nodes` show."""
    inputs = []
    for spec in cls.input_specs.values():
        entry = {"name": spec.name, "type": spec.type, "required": spec.required}
        if spec.widget:
            entry.update(widget_catalogue(spec.widget))
        inputs.append(entry)
    outputs = [{"name": o.name, "type": o.type} | ({"is_list": True} if o.is_list else {}) for o in cls.output_specs]
    return {
        "type": cls.node_type,
        "display_name": cls.display_name or cls.node_type,
        "category": cls.category,
        "description": cls.description(),
        "version": cls.version,
        "output_node": cls.output_node,
        "cacheable": cls.cacheable,
        "source": source or "builtin",
        "inputs": inputs,
        "outputs": outputs,
    } | ({"input_is_list": True} if cls.input_is_list else {})


def socket_catalogue() -> dict:
    return {t.name: {"color": t.color, "description": t.description} for t in SOCKET_TYPES.values()}
