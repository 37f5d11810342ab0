"""A checkpoint's native image size from its header (graphflow.models.native_size) and the
route the editor asks it from."""

import pytest

from graphflow.folders import BUNDLED
from graphflow.models.native_size import native_size
from graphflow.testing import write_checkpoint


@pytest.mark.parametrize("arch,metadata,expected,source", [
    ("sd1", None, [512, 512], "usual size"),
    ("sd2_v", None, [768, 768], "usual size"),
    ("sdxl", None, [1024, 1024], "usual size"),
    ("sd1", {"modelspec.resolution": "768x1024"}, [768, 1024], "modelspec.resolution"),
])
def test_native_size_from_metadata_or_the_family(tmp_path, arch, metadata, expected, source):
    path = write_checkpoint(tmp_path / "m.safetensors", arch, metadata=metadata)
    info = native_size(path)
    assert info["native_size"] == expected and source in info["source"]


def test_the_demo_model_is_64_pixels():
    info = native_size(BUNDLED / "checkpoints" / "graphflow-demo.safetensors")
    assert info == {"architecture": "sd1", "native_size": [64, 64], "source": "metadata graphflow.demo"}
