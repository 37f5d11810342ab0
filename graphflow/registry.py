"""The registry: every node type known to this process, and its machine-readable catalogue."""

import difflib
import importlib
import inspect
import pkgutil
from dataclasses import dataclass
from types import ModuleType

from graphflow.folders import walks_remembered
from graphflow.node import Node, node_catalogue, socket_catalogue
from graphflow.workflow import comfy_aliases


class DuplicateNodeError(ValueError):
    """Two sources define the same node type."""


# The pack id a UI save of graphflow's own node carries (properties' cnr_id) where a ComfyUI class
# of another node shares the node's name (our LatentInterpolate beside ComfyUI's): the save then
# reads back as ours, not as that class.
OWN_PACK = ("graphflow",)


@dataclass(frozen=True)
class Claim:
    """One node claiming a ComfyUI class name: through its ComfyAlias (`pack`: the alias's pack
    ids), or, for a node that declares no alias, its own type name (`own`; pack OWN_PACK)."""
    node: type[Node]
    pack: tuple[str, ...]
    own: bool = False

    @property
    def rank(self) -> int:
        """Which claim is the default: an alias naming no pack, then our own node of that name,
        then an alias naming its pack (such a claim is chosen by its pack id or input names)."""
        return 1 if self.own else 2 if self.pack else 0

    def names_pack(self, ids) -> bool:
        """Whether one of `ids` (a save's cnr_id / aux_id) is this claim's pack (case-insensitive)."""
        return bool({p.lower() for p in self.pack} & {i.lower() for i in ids})


class Registry:
    def __init__(self):
        self._nodes: dict[str, type[Node]] = {}
        self._sources: dict[str, str] = {}
        self._comfy: dict[str, type[Node]] = {}  # ComfyUI class name -> its default claimant
        # ComfyUI class name -> every node claiming it, default first, the rest in load order
        self._claims: dict[str, list[Claim]] = {}
        self._keys: dict[str, tuple[str, type[Node]]] = {}  # claimant_key -> (class name, node)
        # a packed claimant that is not its class's default -> answers its own node type too, so
        # saves naming that type (our exports before it claimed the class) load, and the editor lists it
        self._sole: dict[str, type[Node]] = {}
        self.problems: list[dict] = []  # load problems (broken plugins, clashes) for the catalogue
        self.plugins: list[dict] = []  # loaded plugins: {name, file, origin, nodes} (graphflow.plugins)
        self._close: dict[str, list[str]] = {}  # close_types' answers (difflib over every type is ~10 ms)
        self.generation = 0  # counts the nodes added: a catalogue made at another generation is out of date

    def add(self, cls: type[Node], source: str = "builtin") -> None:
        if not (isinstance(cls, type) and issubclass(cls, Node)) or cls is Node:
            raise TypeError(f"{cls!r} is not a Node subclass")
        name = cls.node_type
        if name in self._nodes and self._nodes[name] is not cls:
            raise DuplicateNodeError(
                f"node type {name!r} from {source} is already defined by {self._sources[name]}; "
                f"the one from {self._sources[name]} is kept"
            )
        self._nodes[name] = cls
        self._sources[name] = source
        self._close.clear()
        self.generation += 1
        aliases = comfy_aliases(cls)
        for alias in aliases:
            for class_type in alias.class_types:
                self._claim(class_type, Claim(cls, tuple(alias.pack)), source)
        if not aliases:  # graphflow's own node (or an alias-less plugin's) answers to its own name
            # a plugin's own claim is chosen by the plugin's name, never by graphflow's pack id
            self._claim(name, Claim(cls, OWN_PACK if source == "builtin" else (source,), own=True), source)

    def _claim(self, class_type: str, claim: Claim, source: str) -> None:
        claims = self._claims.setdefault(class_type, [])
        if any(c.node is claim.node for c in claims):
            return
        before = claims[0] if claims else None
        claims.append(claim)
        claims.sort(key=lambda c: c.rank)  # stable: load order within a rank
        self._comfy[class_type] = claims[0].node
        self._keys.pop(claimant_key(class_type, claims[0].node), None)  # a default is read by the class name
        self._sole.pop(claims[0].node.node_type, None)
        for other in claims[1:]:
            self._keys[claimant_key(class_type, other.node)] = (class_type, other.node)
            if other.pack and not other.own and other.node.node_type != class_type:
                self._sole.setdefault(other.node.node_type, other.node)
        who = f"plugin '{source}'" if source != "builtin" else "built-in node"
        problem = {"plugin": source if source != "builtin" else None, "file": None, "kind": "clash"}
        if claims[0] is not claim and not claim.pack:  # no save could ever choose it: never silent
            default = claims[0].node
            self.problems.append({**problem,
                "message": f"{who}: ComfyUI class '{class_type}' already maps to {default.node_type} from "
                           f"{self._sources[default.node_type]}, which is kept; {claim.node.node_type} names no "
                           "pack (ComfyAlias(pack=...)) by which a save could choose it, so it gets no alias"})
        elif before is not None and claims[0] is claim and source != "builtin":  # displaced the default: never silent
            self.problems.append({**problem,
                "message": f"{who}: ComfyUI class '{class_type}' now reads as {claim.node.node_type} (an alias "
                           f"naming no pack), no longer as {before.node.node_type} from "
                           f"{self._sources[before.node.node_type]}; a save names {before.node.node_type}'s "
                           f"pack ({', '.join(before.pack)}) to get it"})
        elif claims[0] is not claim and source != "builtin":  # a packed second claimant: said, as a note
            default = claims[0].node
            self.problems.append({**problem, "kind": "info",
                "message": f"{who}: ComfyUI class '{class_type}' reads as {claim.node.node_type} where a save "
                           f"names its pack ({', '.join(claim.pack)}) or gives an input only it reads; else as "
                           f"{default.node_type} from {self._sources[default.node_type]}"})

    def add_module(self, module: ModuleType, source: str = "builtin") -> list[type[Node]]:
        """Register every public concrete node class a module defines (one that has its own run;
        a `_Base` class shared by several nodes is not a node itself)."""
        added = []
        for name, cls in inspect.getmembers(module, inspect.isclass):
            if (issubclass(cls, Node) and cls.__module__ == module.__name__ and cls.run is not Node.run
                    and not name.startswith("_")):
                self.add(cls, source)
                added.append(cls)
        return added

    def load_builtin(self) -> "Registry":
        import nodes

        for info in sorted(pkgutil.iter_modules(nodes.__path__), key=lambda m: m.name):
            self.add_module(importlib.import_module(f"nodes.{info.name}"))
        return self

    def get(self, node_type: str) -> type[Node] | None:
        return self._nodes.get(node_type)

    def source(self, node_type: str) -> str | None:
        return self._sources.get(node_type)

    def comfy_node(self, class_type: str) -> type[Node] | None:
        """Our node for a ComfyUI class name: the class's default claimant (Claim.rank: an alias
        first, else a node of the same name that declares no ComfyUI class, graphflow's own nodes
        and alias-less plugins, as `export_ui` writes them). A node declaring aliases answers to
        those only, so a pack node's own graphflow name (say `ImageOverlay`) never claims another
        pack's class of that name; except a claimant chosen by its pack (PostProcBlur of "Blur"),
        which answers its own type as that name's sole claimant (our exports before it claimed
        the class wrote that name). Never a `claimant_key`: see claimant_node."""
        return self._comfy.get(class_type) or self._sole.get(class_type)

    def claimant_node(self, key: str) -> type[Node] | None:
        """Our node for a class name (comfy_node) or a claimant_key, which only the claimant choice
        (comfy_format's _claimant_class) makes: what a node already read is looked up by."""
        return self._keys[key][1] if key in self._keys else self.comfy_node(key)

    def claimants(self, class_type: str) -> list[Claim]:
        """Every node claiming a ComfyUI class name (two packs register "Blur"): the default first."""
        return list(self._claims.get(class_type, ()))

    def claimant_key(self, class_type: str, cls: type[Node] | None) -> str:
        """The name a node of ComfyUI class `class_type` is read under when it is `cls`: the class
        name for its default claimant (or a node that does not claim it), else a key of that claim
        that comfy_node answers (comfy_format reads a node as the claimant its save names)."""
        key = claimant_key(class_type, cls) if cls is not None else class_type
        return key if key in self._keys else class_type

    def comfy_class(self, key: str) -> str:
        """The ComfyUI class name a claimant_key stands for (any other name: itself)."""
        return self._keys[key][0] if isinstance(key, str) and key in self._keys else key

    def claim(self, key: str) -> Claim | None:
        """The claim a class name (its default) or claimant_key reads as."""
        class_type, cls = self._keys.get(key, (key, self._comfy.get(key)))
        return next((c for c in self._claims.get(class_type, ()) if c.node is cls), None)

    def close_types(self, name: str) -> list[str]:
        """Up to three node types named like `name`, for a "did you mean" (remembered per name)."""
        if len(name) > 200:
            return []
        found = self._close.get(name)
        if found is None:
            found = difflib.get_close_matches(name, list(self._nodes), n=3)
            if len(self._close) < 4096:
                self._close[name] = found
        return found

    def __contains__(self, node_type: str) -> bool:
        return node_type in self._nodes

    def __iter__(self):
        return iter(self._nodes.values())

    def __len__(self):
        return len(self._nodes)

    def choice_options(self) -> dict[tuple[str, str], list]:
        """Every choice input's options as they are now, (node type, input) -> list (the files in a
        models folder, say): with `generation`, `problems` and the socket types, all a catalogue
        holds beyond the node classes' declarations."""
        return {(name, spec.name): spec.widget.choices() for name, cls in self._nodes.items()
                for spec in cls.input_specs.values() if spec.widget is not None and spec.widget.kind == "CHOICE"}

    def catalogue(self) -> dict:
        with walks_remembered():  # ~500 inputs list the same few model folders
            return self._catalogue()

    def _catalogue(self) -> dict:
        return {
            "nodes": {name: dict(node_catalogue(cls, self._sources[name]),  # ComfyUI names: the editor's search knows them
                                 comfy=sorted({t for a in comfy_aliases(cls) for t in a.class_types}))
                      for name, cls in sorted(self._nodes.items())},
            "sockets": socket_catalogue(),
            "problems": list(self.problems),
        }


# Joins a claimant_key: a control character no ComfyUI class name carries (some end in "[Pack]")
KEY_SEP = "\x1f"


def claimant_key(class_type: str, cls: type[Node]) -> str:
    """The name a non-default claimant of a ComfyUI class is read under internally, never shown
    (registry.comfy_class gives the class name back): "Blur", KEY_SEP, "PostProcBlur"."""
    return f"{class_type}{KEY_SEP}{cls.node_type}"


_default: Registry | None = None


def default_registry() -> Registry:
    """The process-wide registry: built-in nodes plus discovered plugins, loaded once."""
    global _default
    if _default is None:
        from graphflow.plugins import load_plugins

        registry = Registry().load_builtin()
        load_plugins(registry)
        _default = registry
    return _default


def reset_default_registry() -> None:
    global _default
    _default = None
