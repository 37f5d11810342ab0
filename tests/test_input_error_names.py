"""A NodeInputError raised inside a try whose `except ValueError` re-raises a NodeInputError of its
own (NodeInputError is a ValueError) must come out as it was raised: naming the input that was
wrong, with its message once. These are the sites where the audit of `except ValueError` found
such an inner error; each test triggers the inner error and checks the input named, the message,
and that the error is the one raised where the input was checked (its traceback ends there)."""

import pytest
import torch

from graphflow.api import NodeInputError
from tests.test_nodes_image_mask import call

PERCENT_PREFIX = "shots/%date:yyyy-MM-dd%"


def _check_passed_unchanged(excinfo):
    err = excinfo.value
    assert err.input == "save_prefix"
    # the inner message, once: "%date:..% / %input% patterns are not built in"
    assert str(err).count("patterns are not built in") == 1
    assert str(err).startswith(repr(PERCENT_PREFIX))
    # raised where the prefix was checked, not made anew by the caller's `except ValueError`
    assert excinfo.traceback[-1].name == "_save_prefix_checked"


def test_ttn_output_images_passes_the_save_prefix_error_through(tmp_folders):
    """nodes/pack_nodes_ttn.py output_images (the tinyterra samplers' image_output Save)."""
    from nodes.pack_nodes_ttn import output_images

    with pytest.raises(NodeInputError) as excinfo:
        output_images(torch.zeros(1, 8, 8, 3), "Save", PERCENT_PREFIX)
    _check_passed_unchanged(excinfo)
    assert not any(tmp_folders.outputs.rglob("*.png"))


def test_ttn_image_output_passes_the_save_prefix_error_through(builtin_registry, tmp_folders):
    """nodes/pack_nodes_ttn_utils.py TtnImageOutput.run."""
    with pytest.raises(NodeInputError) as excinfo:
        call(builtin_registry, "TtnImageOutput", image=torch.zeros(1, 8, 8, 3), image_output="Save",
             save_prefix=PERCENT_PREFIX)
    _check_passed_unchanged(excinfo)
    assert not any(tmp_folders.outputs.rglob("*.png"))


def test_ttn_text_output_passes_the_save_prefix_error_through(builtin_registry, tmp_folders):
    """nodes/pack_nodes_ttn_utils.py TtnTextOutput.run."""
    with pytest.raises(NodeInputError) as excinfo:
        call(builtin_registry, "TtnTextOutput", text="hello", text_output="Save", save_prefix=PERCENT_PREFIX)
    _check_passed_unchanged(excinfo)
    assert not any(tmp_folders.outputs.rglob("*.txt"))


@pytest.mark.parametrize("node_type", ["TtnImageOutput", "TtnTextOutput"])
def test_ttn_outputs_still_name_save_prefix_for_a_path_out_of_the_outputs(builtin_registry, tmp_folders, node_type):
    """The `except ValueError` kept after the change still turns safe_join's refusal (an
    UnsafePathError, a plain ValueError) into an error naming save_prefix: here a link in the
    outputs folder that leads out of it (a name with '..' is refused before run())."""
    outside = tmp_folders.outputs.parent / "elsewhere"
    outside.mkdir()
    (tmp_folders.outputs / "escape").symlink_to(outside, target_is_directory=True)
    inputs = ({"image": torch.zeros(1, 8, 8, 3), "image_output": "Save"} if node_type == "TtnImageOutput"
              else {"text": "hello", "text_output": "Save"})
    with pytest.raises(NodeInputError) as excinfo:
        call(builtin_registry, node_type, save_prefix="escape/shot", **inputs)
    assert excinfo.value.input == "save_prefix"
    assert "leads outside its folder" in str(excinfo.value)
    assert not any(outside.iterdir())
