"""Plugins: nodes, socket types and choice lists from outside graphflow, loaded in isolation.

Where plugins come from, in load order:
  1. plugin folders (`folders.plugins`: <home>/plugins, then each --plugins-dir, then the
     GRAPHFLOW_PLUGINS folders): every `name.py` file and every `name/` package (a folder
     with an __init__.py) is a plugin called `name`, taken in name order within a folder.
     Names starting with `_` or `.` are not plugins (keep helpers and data there).
  2. installed distributions declaring an entry point in the group `graphflow.nodes`: the
     entry point's name is the plugin's name, its value names the plugin's module.

What a plugin registers (the one rule): the concrete Node classes (those with a run())
that its module exposes under a public name and that are defined inside the plugin, in that
module or one of its submodules. So a package's __init__ lists its nodes by importing them;
a class imported from elsewhere (a built-in node to subclass) is not registered again.

A plugin that fails to import (syntax error, missing dependency, a bad node declaration, any
exception) is skipped whole: none of its nodes or socket types are kept, and a problem entry
{plugin, file, kind, message, location, traceback} is added to `registry.problems` for
`graphflow nodes` and the server to show. Built-in nodes are registered before any plugin and
plugins in load order, so on a node type clash the earlier definition wins; only the clashing
node is skipped (and reported, naming the one kept), the plugin's other nodes load.
"""

import hashlib
import importlib
import importlib.metadata
import importlib.util
import re
import sys
import tempfile
import threading
import traceback
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType

from graphflow.node import Node, NodeDeclarationError
from graphflow.registry import Registry
from graphflow.types import SOCKET_TYPES

ENTRY_POINT_GROUP = "graphflow.nodes"
MODULE_PREFIX = "graphflow_plugins"  # folder plugin `name` is imported as graphflow_plugins.name
GRAPHFLOW_DIR = Path(__file__).resolve().parent


class PluginError(Exception):
    """Why a plugin was skipped: `kind` is one of syntax, dependency, declaration, clash,
    error, empty, layout, folder."""

    def __init__(self, kind: str, message: str, location: str | None = None, trace: str | None = None):
        super().__init__(message)
        self.kind, self.location, self.trace = kind, location, trace


def load_plugins(registry: Registry, dirs: list[Path] | None = None, *, entry_points: bool = True) -> list[dict]:
    """Load the plugins from `dirs` (default: the configured plugin folders) and, unless
    `entry_points` is False, from installed entry points, into `registry`.

    Returns the loaded plugins ({name, file, origin, nodes}), also appended to
    `registry.plugins`; the skipped ones are reported in `registry.problems`."""
    if dirs is None:
        from graphflow.folders import folders

        dirs, default_dir = folders.plugins, (folders.home / "plugins").resolve()
    else:
        default_dir = None  # every folder was named by the caller
    candidates, scanned = [], set()  # candidates: (name, file, origin, importer)
    for folder in dirs:
        folder = Path(folder).resolve()
        if folder in scanned:  # named twice (a flag repeating the default): scan it once
            continue
        scanned.add(folder)
        if not folder.is_dir():
            if folder != default_dir:  # the default folder is optional; a named one should exist
                registry.problems.append(_problem(None, folder, "folder", f"plugin folder {folder} does not exist"))
            continue
        for path in sorted(folder.iterdir(), key=lambda p: p.name):
            if path.name.startswith(("_", ".")):
                continue
            if path.is_dir():
                if not (path / "__init__.py").is_file():
                    registry.problems.append(_problem(
                        path.name, path, "layout",
                        f"plugin '{path.name}' ({path}) skipped: a folder plugin must be a Python package "
                        "(add an __init__.py); a single-file plugin is a .py file"))
                    continue
                candidates.append((path.name, path, "folder", _folder_importer(path.name, path)))
            elif path.suffix == ".py":
                candidates.append((path.stem, path, "folder", _folder_importer(path.stem, path)))
    if entry_points:
        for ep in sorted(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
            dist = getattr(ep.dist, "name", None)
            where = f"entry point {ep.name} = {ep.value}" + (f" (distribution {dist})" if dist else "")
            candidates.append((ep.name, where, "entry_point", _entry_point_importer(ep)))

    loaded, seen = [], {}
    for name, file, origin, importer in candidates:
        if name in seen:
            registry.problems.append(_problem(
                name, file, "clash",
                f"plugin '{name}' ({file}) skipped: the plugin name is taken by {seen[name]}, found first"))
            continue
        seen[name] = file  # the first plugin of a name claims it, even if it then fails
        try:
            if name == "builtin":
                raise PluginError("clash", "the plugin name 'builtin' is reserved for graphflow's own nodes; rename it")
            info = _load_one(registry, name, file, origin, importer)
        except PluginError as e:
            registry.problems.append(_problem(name, file, e.kind, f"plugin '{name}' ({file}) skipped: {e}",
                                              e.location, e.trace))
            continue
        loaded.append(info)
    registry.plugins.extend(loaded)
    return loaded


def _load_one(registry: Registry, name, file, origin, importer) -> dict:
    sockets_before = set(SOCKET_TYPES)
    try:
        module = importer()
        classes = _node_classes(module)
        if not classes:
            raise PluginError("empty", "it defines no nodes (no public Node subclass with a run() in its module)")
        clashes = _clashes(registry, classes)
        if len(clashes) == len(classes):  # nothing of its own left to load
            raise PluginError("clash", next(iter(clashes.values())))
    except (Exception, SystemExit) as e:  # SystemExit too: a plugin must not end the server
        for socket in set(SOCKET_TYPES) - sockets_before:  # all or nothing: forget its socket types too
            del SOCKET_TYPES[socket]
        if isinstance(e, PluginError):
            raise
        raise _describe(e, root=file if origin == "folder" else None) from None
    for cls, reason in clashes.items():
        registry.problems.append(_problem(name, file, "clash", f"plugin '{name}' ({file}): node {cls.__name__} "
                                                               f"skipped: {reason}; the plugin's other nodes load"))
    classes = [cls for cls in classes if cls not in clashes]
    reported = len(registry.problems)
    for cls in classes:  # a ComfyUI alias an earlier node holds, and no pack to choose this one by: reported
        registry.add(cls, source=name)
    for problem in registry.problems[reported:]:  # Registry.add's clash reports: the plugin's file too
        problem["file"] = str(file)
    return {"name": name, "file": str(getattr(module, "__file__", None) or file), "origin": origin,
            "nodes": [cls.node_type for cls in classes]}


def _folder_importer(name: str, path: Path):
    """Import a plugin file or package under its own module name, so no two plugins' modules
    (nor a plugin and an installed package) can share a name."""

    def importer():
        identifier = re.sub(r"\W", "_", name)
        if identifier != name:  # keep "a-b" and "a_b" apart
            identifier += "_" + hashlib.blake2b(name.encode(), digest_size=4).hexdigest()
        module_name = f"{MODULE_PREFIX}.{identifier}"
        if MODULE_PREFIX not in sys.modules:
            parent = ModuleType(MODULE_PREFIX, "Namespace of the plugins loaded from plugin folders.")
            parent.__path__ = []
            sys.modules[MODULE_PREFIX] = parent
        _forget(module_name)  # a fresh import each load, so an edited plugin is seen
        if path.is_dir():
            spec = importlib.util.spec_from_file_location(module_name, path / "__init__.py",
                                                          submodule_search_locations=[str(path)])
        else:
            spec = importlib.util.spec_from_file_location(module_name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        try:
            with _from_source():
                spec.loader.exec_module(module)
        except BaseException:  # leave no half-imported modules behind
            _forget(module_name)
            raise
        return module

    return importer


_source_lock = threading.Lock()


@contextmanager
def _from_source():
    """Compile a folder plugin's modules from their source, neither reading nor writing bytecode:
    a cached .pyc is trusted by its source's mtime (whole seconds) and size, so an edit of the same
    length within the second of the last load ran the old code. The bytecode folder is pointed at
    an empty one meanwhile (process-wide: an import in another thread compiles from source too)."""
    with _source_lock, tempfile.TemporaryDirectory(prefix="graphflow-plugin-") as empty:
        saved = sys.pycache_prefix, sys.dont_write_bytecode
        sys.pycache_prefix, sys.dont_write_bytecode = empty, True
        try:
            yield
        finally:
            sys.pycache_prefix, sys.dont_write_bytecode = saved


def _entry_point_importer(ep):
    def importer():
        module = ep.load()
        if not isinstance(module, ModuleType):
            raise PluginError("layout", f"the entry point must name a module (like `my_plugin.nodes`), "
                                        f"not {type(module).__name__} {ep.value!r}")
        return module

    return importer


def _forget(module_name: str) -> None:
    for key in [k for k in sys.modules if k == module_name or k.startswith(module_name + ".")]:
        del sys.modules[key]


def _node_classes(module: ModuleType) -> list[type[Node]]:
    prefix = module.__name__
    classes = []
    for attr, value in vars(module).items():
        if (not attr.startswith("_") and isinstance(value, type) and issubclass(value, Node)
                and value.run is not Node.run
                and (value.__module__ == prefix or value.__module__.startswith(prefix + "."))
                and value not in classes):
            classes.append(value)
    return classes


def _clashes(registry: Registry, classes: list[type[Node]]) -> dict[type[Node], str]:
    """The classes whose node type an earlier source defines, with the reason. A type defined
    twice in the plugin itself is a bug in it, which skips the plugin (PluginError)."""
    mine, clashes = {}, {}
    for cls in classes:
        name = cls.node_type
        if name in mine:
            raise PluginError("clash", f"it defines node type '{name}' twice ({mine[name].__name__} and {cls.__name__})")
        mine[name] = cls
        if name in registry:
            owner = registry.source(name)
            who = "the built-in nodes" if owner == "builtin" else f"plugin '{owner}'"
            kept = "the built-in one" if owner == "builtin" else f"the one from plugin '{owner}'"
            clashes[cls] = f"node type '{name}' is already defined by {who}; {kept} is kept"
    return clashes


def _describe(e: BaseException, root: Path | None) -> PluginError:
    """A one-line reason and where it happened, for an exception raised while importing a plugin."""
    trace = "".join(traceback.format_exception(e))
    if isinstance(e, SyntaxError):
        where = f"{e.filename}:{e.lineno}" if e.filename else None
        return PluginError("syntax", f"syntax error at {where or 'unknown place'}: {e.msg}", where, trace)
    where = _location(e, root)
    at = f" (at {where})" if where else ""
    if isinstance(e, ModuleNotFoundError) and e.name and e.name.startswith(MODULE_PREFIX + "."):
        own = e.name.split(".", 2)[-1] if e.name.count(".") >= 2 else e.name
        return PluginError("error", f"it imports its own module '{own}', which doesn't exist{at}", where, trace)
    if isinstance(e, ModuleNotFoundError) and e.name:
        top = e.name.split(".")[0]
        return PluginError("dependency",
                           f"missing dependency: no module named '{e.name}'{at}; install the package providing "
                           f"'{top}' into graphflow's Python environment", where, trace)
    if isinstance(e, NodeDeclarationError):
        return PluginError("declaration", f"bad node declaration: {e}{at}", where, trace)
    message = str(e).strip().splitlines()[0] if str(e).strip() else "(no message)"
    return PluginError("error", f"{type(e).__name__} while loading: {message}{at}", where, trace)


def _location(e: BaseException, root: Path | None) -> str | None:
    """The deepest frame inside the plugin; else the deepest one outside graphflow and importlib."""
    frames = traceback.extract_tb(e.__traceback__)
    if root is not None:
        inside = [f for f in frames if _within(f.filename, root)]
        if inside:
            return f"{inside[-1].filename}:{inside[-1].lineno}"
    outside = [f for f in frames if not f.filename.startswith("<") and not _within(f.filename, GRAPHFLOW_DIR)
               and "importlib" not in Path(f.filename).parts]
    return f"{outside[-1].filename}:{outside[-1].lineno}" if outside else None


def _within(filename: str, root: Path) -> bool:
    try:
        path = Path(filename).resolve()
    except (OSError, ValueError):
        return False
    root = root.resolve()
    return path == root or root in path.parents


def _problem(plugin, file, kind, message, location=None, trace=None) -> dict:
    entry = {"plugin": plugin, "file": str(file) if file is not None else None, "kind": kind, "message": message}
    if location:
        entry["location"] = location
    if trace:
        entry["traceback"] = trace
    return entry
