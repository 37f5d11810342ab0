"""The built-in node library. Every module here is loaded by the registry; each node is
written with the public API in graphflow.api only, exactly as a plugin would be."""
