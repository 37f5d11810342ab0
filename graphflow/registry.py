"""The registry: every node type known to this process, and its machine-readable catalogue."""

import difflib
import importlib
import inspect
import pkgutil
from types import ModuleType

from graphflow.node import Node, node_catalogue, socket_catalogue
from graphflow.workflow import comfy_aliases


class DuplicateNodeError(ValueError):
    """Two sources define the same node type."""


class Registry:
    def __init__(self):
        self._nodes: dict[str, type[Node]] = {}
        self._sources: dict[str, str] = {}
        self._comfy: dict[str, type[Node]] = {}
        self.problems: list[dict] = []  # load problems (broken plugins, clashes) for the catalogue
        self.plugins: list[dict] = []  # loaded plugins: {name, file, origin, nodes} (graphflow.plugins)
        self._close: dict[str, list[str]] = {}  # close_types' answers (difflib over every type is ~10 ms)

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
        for alias in comfy_aliases(cls):
            for class_type in alias.class_types:
                self._comfy.setdefault(class_type, cls)

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
        """Our node for a ComfyUI class name: an alias first, else a node of the same name that
        declares no ComfyUI class (graphflow's own nodes and alias-less plugins, as `export_ui`
        writes them). A node declaring aliases answers to those only, so a pack node's own
        graphflow name (say `ImageOverlay`) never claims another pack's class of that name."""
        cls = self._comfy.get(class_type)
        if cls is None:
            cls = self._nodes.get(class_type)
            if cls is not None and comfy_aliases(cls):
                return None
        return cls

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

    def catalogue(self) -> dict:
        return {
            "nodes": {name: dict(node_catalogue(cls, self._sources[name]),  # ComfyUI names: the editor's search knows them
                                 comfy=sorted({t for a in comfy_aliases(cls) for t in a.class_types}))
                      for name, cls in sorted(self._nodes.items())},
            "sockets": socket_catalogue(),
            "problems": list(self.problems),
        }


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
