"""Loading what ComfyUI loads: .ckpt files through the restricted unpickler, refusals reported at
validation, LoRA keys that match nothing skipped with a warning, and checkpoints with their own
sampling detected (zero terminal SNR; Playground v2.5's EDM in tests/test_playground.py)."""

import pytest
import torch
from safetensors.torch import load_file, save_file

from graphflow.executor import Executor
from graphflow.models.checkpoint import load_checkpoint
from graphflow.sampling.model_sampling import DiscreteSchedule
from graphflow.testing import write_checkpoint, write_lora
from graphflow.validation import validate
from graphflow.workflow import parse_workflow


def comfy_txt2img(ckpt_name: str, lora_name: str | None = None) -> dict:
    model, clip = ["4", 0], ["4", 1]
    graph = {
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": ckpt_name}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a red circle", "clip": clip}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": clip}},
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
        "3": {"class_type": "KSampler", "inputs": {"seed": 2, "steps": 2, "cfg": 4.0, "sampler_name": "euler",
                                                   "scheduler": "normal", "denoise": 1.0, "model": model,
                                                   "positive": ["6", 0], "negative": ["7", 0], "latent_image": ["5", 0]}},
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
        "9": {"class_type": "PreviewImage", "inputs": {"images": ["8", 0]}},
    }
    if lora_name is not None:
        graph["10"] = {"class_type": "LoraLoader", "inputs": {"model": model, "clip": clip, "lora_name": lora_name,
                                                              "strength_model": 1.0, "strength_clip": 1.0}}
        graph["3"]["inputs"]["model"] = ["10", 0]
        graph["6"]["inputs"]["clip"] = graph["7"]["inputs"]["clip"] = ["10", 1]
    return graph


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    for sub in ("checkpoints", "loras"):
        (root / sub).mkdir()
    write_checkpoint(root / "checkpoints" / "tiny.safetensors", "sd1")
    torch.save({"state_dict": load_file(str(root / "checkpoints" / "tiny.safetensors")), "global_step": 7},
               root / "checkpoints" / "tiny.ckpt")
    return root


@pytest.fixture
def folders(tmp_folders, models):
    tmp_folders.models = models
    return tmp_folders


def run(registry, graph, events=None):
    result = Executor(registry).run(parse_workflow(graph, registry), on_event=events)
    assert result.status == "success", (result.problems, result.error)
    return result


def test_ckpt_gives_the_same_images_as_its_safetensors_twin(builtin_registry, folders):
    twin = run(builtin_registry, comfy_txt2img("tiny.safetensors"))
    pickled = run(builtin_registry, comfy_txt2img("tiny.ckpt"))
    assert torch.equal(twin.values["8"][0], pickled.values["8"][0])
    assert twin.values["8"][0].std() > 0


class WritesAFile:
    """A pickle payload that would create a file if it were ever unpickled by plain pickle."""

    def __init__(self, target):
        self.target = str(target)

    def __reduce__(self):
        return (open, (self.target, "w"))


def test_code_executing_pickle_is_refused_at_validation_and_nothing_runs(builtin_registry, folders, tmp_path):
    marker = tmp_path / "payload-ran"
    evil = folders.models / "checkpoints" / "evil.ckpt"
    state = load_file(str(folders.models / "checkpoints" / "tiny.safetensors"))
    torch.save({"state_dict": state, "payload": WritesAFile(marker)}, evil)
    try:
        workflow = parse_workflow(comfy_txt2img("evil.ckpt"), builtin_registry)
        problems = validate(workflow, builtin_registry)
        assert [(p.node_id, p.input) for p in problems] == [("4", "checkpoint")]
        assert "evil.ckpt" in problems[0].message and "restricted unpickler" in problems[0].message
        assert "open" in problems[0].message, "the refused global is named"
        result = Executor(builtin_registry).run(workflow)
        assert result.status == "invalid" and not result.executed
        assert not marker.exists()
    finally:
        evil.unlink()


def test_checkpoint_of_unknown_architecture_is_reported_at_validation(builtin_registry, folders):
    odd = folders.models / "checkpoints" / "odd.safetensors"
    save_file({"some.other.weight": torch.zeros(4, 4)}, str(odd))
    try:
        problems = validate(parse_workflow(comfy_txt2img("odd.safetensors"), builtin_registry), builtin_registry)
        assert [(p.node_id, p.input) for p in problems] == [("4", "checkpoint")]
        assert "no UNet keys" in problems[0].message
    finally:
        odd.unlink()


def test_missing_model_file_is_named_at_validation(builtin_registry, folders):
    problems = validate(parse_workflow(comfy_txt2img("absent.safetensors"), builtin_registry), builtin_registry)
    assert len(problems) == 1 and problems[0].input == "checkpoint" and "absent.safetensors" in problems[0].message


def test_lora_keys_that_match_nothing_are_skipped_with_one_warning(builtin_registry, folders):
    clean = write_lora(folders.models / "loras" / "clean.safetensors", "sd1")
    tensors = load_file(str(clean))
    extra = {"lora_unet_not_a_layer_to_q", "lora_te_not_a_layer_either"}
    for key in extra:
        tensors[key + ".lora_down.weight"] = torch.zeros(4, 8)
        tensors[key + ".lora_up.weight"] = torch.zeros(8, 4)
    save_file(tensors, str(folders.models / "loras" / "extra.safetensors"))
    events = []
    with_extra = run(builtin_registry, comfy_txt2img("tiny.safetensors", "extra.safetensors"), events.append)
    plain = run(builtin_registry, comfy_txt2img("tiny.safetensors", "clean.safetensors"))
    assert torch.equal(with_extra.values["8"][0], plain.values["8"][0])
    warnings = [e for e in events if e["type"] == "warning"]
    assert len(warnings) == 1 and warnings[0]["node"] == "10"
    assert "2 of" in warnings[0]["message"] and all(k in warnings[0]["message"] for k in extra)

    save_file({k: v for k, v in tensors.items() if any(k.startswith(e) for e in extra)},
              str(folders.models / "loras" / "nothing.safetensors"))
    result = Executor(builtin_registry).run(parse_workflow(comfy_txt2img("tiny.safetensors", "nothing.safetensors"),
                                                           builtin_registry))
    assert result.status == "error" and result.error["node_id"] == "10"
    assert "match no layer" in result.error["message"]


def test_zero_terminal_snr_vpred_checkpoint_gets_its_schedule(tmp_path):
    from diffusers.schedulers.scheduling_ddim import rescale_zero_terminal_snr

    path = tmp_path / "noob.safetensors"
    write_checkpoint(path, "sdxl")
    tensors = load_file(str(path))
    tensors["v_pred"] = torch.tensor([])
    tensors["ztsnr"] = torch.tensor([])
    save_file(tensors, str(path))
    ckpt = load_checkpoint(path, device="cpu")
    assert ckpt.model.prediction == "v" and ckpt.info.zero_terminal_snr and ckpt.model.zsnr
    schedule = DiscreteSchedule.for_model(ckpt.model)
    betas = torch.linspace(0.00085 ** 0.5, 0.012 ** 0.5, 1000, dtype=torch.float64) ** 2
    reference = torch.cumprod(1 - rescale_zero_terminal_snr(betas), 0)  # diffusers: ends at exactly 0
    ours = 1 / (schedule.sigmas.double() ** 2 + 1)
    torch.testing.assert_close(ours[:-1], reference[:-1], rtol=1e-6, atol=1e-9)  # sigmas are stored float32
    assert reference[-1] == 0 and float(ours[-1]) == pytest.approx(4.8973451890853435e-08, rel=1e-5)
    assert float(schedule.sigma_max) == pytest.approx(4518.9, rel=1e-3), "pure noise at the last timestep"
    plain = DiscreteSchedule.for_model(load_checkpoint(write_checkpoint(tmp_path / "p.safetensors", "sdxl"), device="cpu").model)
    assert float(plain.sigma_max) == pytest.approx(14.6146, rel=1e-4)
