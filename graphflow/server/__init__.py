"""graphflow's server: HTTP API, persistent queue and history, live progress (docs/api.md)."""

from graphflow.server.app import create_app, serve

__all__ = ["create_app", "serve"]
