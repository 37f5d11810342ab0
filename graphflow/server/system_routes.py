"""System routes: versions, device and memory figures, and freeing cached models and memory."""

import asyncio
import importlib.metadata
import platform

from graphflow.cache import OutputCache
from graphflow.device import free_memory, memory_stats
from graphflow.resource_limits import memory_figures

from graphflow.server.json_api import json_body, json_response
from graphflow.server.server import server_of
from graphflow.server.uploads import RequestError


def holds_model(value, depth: int = 0) -> bool:
    """Whether a cached output holds a model (a torch module somewhere inside it)."""
    import torch

    if isinstance(value, torch.nn.Module):
        return True
    if depth > 3 or isinstance(value, (torch.Tensor, str, bytes, int, float, bool)) or value is None:
        return False
    if isinstance(value, dict):
        return any(holds_model(v, depth + 1) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(holds_model(v, depth + 1) for v in value)
    if hasattr(value, "__dict__"):
        return any(holds_model(v, depth + 1) for v in vars(value).values())
    return False


async def free(request):
    server = server_of(request)
    body = await json_body(request, optional=True)
    if not isinstance(body, dict):
        raise RequestError(400, 'expected {"models": bool, "cache": bool}')
    drop_cache = bool(body.get("cache") or body.get("free_memory"))
    drop_models = bool(body.get("models") or body.get("unload_models"))
    dropped = 0
    if drop_cache:
        dropped = len(server.cache)
        server.cache.clear()
    elif drop_models:
        dropped = server.cache.discard(holds_model)
    await asyncio.to_thread(free_memory)
    if server.dispatcher is not None and (drop_cache or drop_models):
        dropped += await server.dispatcher.free(drop_models, drop_cache)  # the workers hold the models
    return json_response({"dropped": dropped, "cache": _cache_json(server.cache)})


def _models_json() -> dict:
    from graphflow.memory import manager

    return manager().status()


def _cache_json(cache: OutputCache) -> dict:
    return {"entries": len(cache), "bytes": cache.nbytes, "max_bytes": cache.max_bytes}


def version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def ram() -> dict:
    return memory_figures()


async def system(request):
    server = server_of(request)
    import aiohttp
    import PIL
    import torch

    return json_response({
        "versions": {"graphflow": version("graphflow"), "python": platform.python_version(),
                     "torch": torch.__version__, "aiohttp": aiohttp.__version__, "pillow": PIL.__version__},
        "device": await asyncio.to_thread(memory_stats),
        "memory": ram(),
        "models": await asyncio.to_thread(_models_json),  # what is resident where (graphflow.memory)
        "cache": _cache_json(server.cache),
        "queue": {"running": len(server.running), "pending": server.store.count_pending()},
        "workers": len(server.workers) if server.dispatcher is None else len(server.dispatcher.pool.slots),
        # Ray workers: name, host, device, what each has loaded and runs (None: runs here).
        "cluster": server.dispatcher.describe() if server.dispatcher is not None else None,
        "limits": {"max_upload_bytes": server.config.limits.max_bytes,
                   "max_image_side": server.config.limits.max_side},
        "problems": list(server.registry.problems),
    })
