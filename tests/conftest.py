import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture
def toy_registry():
    import toy_nodes
    from graphflow.registry import Registry

    registry = Registry()
    for cls in toy_nodes.TOY_NODES:
        registry.add(cls, source="tests")
    toy_nodes.runs.clear()
    return registry
