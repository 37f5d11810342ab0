"""ComfyUI API graphs built from the core nodes added for issue 14, validated and run on the bundled
demo model, and judged by what the pictures show (graphflow.demo.measure)."""

import torch

from graphflow.demo import measure
from graphflow.executor import Executor
from graphflow.validation import validate
from graphflow.workflow import parse_workflow

PROMPT = "a red circle on a white background"


def base_graph(width=64, batch=1):
    return {
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "graphflow-demo.safetensors"}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": PROMPT, "clip": ["4", 1]}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["4", 1]}},
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": width, "height": 64, "batch_size": batch}},
        "3": {"class_type": "KSampler", "inputs": {"seed": 3, "steps": 10, "cfg": 5.0, "sampler_name": "euler",
                                                   "scheduler": "normal", "denoise": 1.0, "model": ["4", 0],
                                                   "positive": ["6", 0], "negative": ["7", 0],
                                                   "latent_image": ["5", 0]}},
    }


def run(registry, graph, outputs=("8",)):
    """Import, validate and run toward the given nodes (these graphs have no output node)."""
    workflow = parse_workflow(graph, registry)
    problems = validate(workflow, registry, list(outputs))
    assert not problems, problems
    result = Executor(registry).run(workflow, outputs=list(outputs))
    assert result.ok, result.error or result.problems
    return result


def described(image):
    m = measure.measure(image)
    return m.colour, m.shape, m.background


def test_hires_fix_with_latent_upscale_by(builtin_registry, tmp_folders):
    graph = base_graph()
    graph.update({
        "10": {"class_type": "LatentUpscaleBy", "inputs": {"samples": ["3", 0], "upscale_method": "bislerp",
                                                           "scale_by": 1.5}},
        "11": {"class_type": "KSampler", "inputs": {"seed": 4, "steps": 10, "cfg": 5.0, "sampler_name": "euler",
                                                    "scheduler": "normal", "denoise": 0.5, "model": ["4", 0],
                                                    "positive": ["6", 0], "negative": ["7", 0],
                                                    "latent_image": ["10", 0]}},
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["11", 0], "vae": ["4", 2]}},
        "12": {"class_type": "GetImageSize", "inputs": {"image": ["8", 0]}},
    })
    result = run(builtin_registry, graph, ("8", "12"))
    image = result.values["8"][0][0]
    assert image.shape == (96, 96, 3) and result.values["12"] == (96, 96, 1)
    assert described(image) == ("red", "circle", "white")


def test_a_prompt_outside_its_timestep_range_changes_nothing(builtin_registry, tmp_folders):
    plain = base_graph()
    plain["8"] = {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}}
    graph = {k: {**v, "inputs": dict(v["inputs"])} for k, v in plain.items()}
    graph.update({
        "20": {"class_type": "CLIPTextEncode", "inputs": {"text": "a blue square on a black background",
                                                          "clip": ["4", 1]}},
        "21": {"class_type": "ConditioningSetTimestepRange", "inputs": {"conditioning": ["20", 0], "start": 1.0,
                                                                        "end": 1.0}},
        "22": {"class_type": "ConditioningCombine", "inputs": {"conditioning_1": ["6", 0],
                                                               "conditioning_2": ["21", 0]}},
    })
    graph["3"]["inputs"]["positive"] = ["22", 0]
    switched = run(builtin_registry, graph).values["8"][0]
    assert torch.equal(switched, run(builtin_registry, plain).values["8"][0])
    # Active over the whole run instead, the blue square is averaged in and the picture changes.
    graph["21"]["inputs"].update(start=0.0, end=1.0)
    assert (run(builtin_registry, graph).values["8"][0] - switched).abs().mean() > 0.05


def test_noisy_latent_composition(builtin_registry, tmp_folders):
    """ComfyUI's noisy latent composition: two 70%-sampled latents (with their leftover noise) pasted
    side by side with LatentComposite and finished together, each half under its own prompt
    (ConditioningSetAreaPercentage)."""
    def half(node, text, seed):
        return {
            f"{node}t": {"class_type": "CLIPTextEncode", "inputs": {"text": text, "clip": ["4", 1]}},
            node: {"class_type": "KSamplerAdvanced", "inputs": {
                "add_noise": "enable", "noise_seed": seed, "steps": 10, "cfg": 5.0, "sampler_name": "euler",
                "scheduler": "normal", "model": ["4", 0], "positive": [f"{node}t", 0], "negative": ["7", 0],
                "latent_image": ["5", 0], "start_at_step": 0, "end_at_step": 7,
                "return_with_leftover_noise": "enable"}},
        }
    graph = base_graph()
    del graph["3"], graph["6"]
    graph.update(half("30", PROMPT, 1))
    graph.update(half("31", "a blue square on a black background", 2))
    graph.update({
        "32": {"class_type": "EmptyLatentImage", "inputs": {"width": 128, "height": 64, "batch_size": 1}},
        "33": {"class_type": "LatentComposite", "inputs": {"samples_to": ["32", 0], "samples_from": ["30", 0],
                                                           "x": 0, "y": 0, "feather": 0}},
        "34": {"class_type": "LatentComposite", "inputs": {"samples_to": ["33", 0], "samples_from": ["31", 0],
                                                           "x": 64, "y": 0, "feather": 0}},
        "35": {"class_type": "KSamplerAdvanced", "inputs": {
            "add_noise": "disable", "noise_seed": 0, "steps": 10, "cfg": 5.0, "sampler_name": "euler",
            "scheduler": "normal", "model": ["4", 0], "positive": ["40", 0], "negative": ["7", 0],
            "latent_image": ["34", 0], "start_at_step": 7, "end_at_step": 10000,
            "return_with_leftover_noise": "disable"}},
        "38": {"class_type": "ConditioningSetAreaPercentage", "inputs": {"conditioning": ["30t", 0], "width": 0.5,
                                                                         "height": 1.0, "x": 0.0, "y": 0.0,
                                                                         "strength": 1.0}},
        "39": {"class_type": "ConditioningSetAreaPercentage", "inputs": {"conditioning": ["31t", 0], "width": 0.5,
                                                                         "height": 1.0, "x": 0.5, "y": 0.0,
                                                                         "strength": 1.0}},
        "40": {"class_type": "ConditioningCombine", "inputs": {"conditioning_1": ["38", 0],
                                                               "conditioning_2": ["39", 0]}},
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["35", 0], "vae": ["4", 2]}},
        "36": {"class_type": "ImageCrop", "inputs": {"image": ["8", 0], "width": 64, "height": 64, "x": 0, "y": 0}},
        "37": {"class_type": "ImageCrop", "inputs": {"image": ["8", 0], "width": 64, "height": 64, "x": 64, "y": 0}},
    })
    result = run(builtin_registry, graph, ("36", "37"))
    assert result.values["8"][0].shape == (1, 64, 128, 3)
    left, right = described(result.values["36"][0][0]), described(result.values["37"][0][0])
    assert left == ("red", "circle", "white") and right == ("blue", "square", "black")


def _inpaint_graph(picture: str, mask_node: str) -> dict:
    """LoadImage -> VAEEncode -> SetLatentNoiseMask (LoadImage's mask) -> KSampler at denoise 1."""
    graph = base_graph()
    del graph["5"]
    graph.update({
        "1": {"class_type": "LoadImage", "inputs": {"image": picture}},
        "2": {"class_type": "VAEEncode", "inputs": {"pixels": ["1", 0], "vae": ["4", 2]}},
        "9": {"class_type": "SetLatentNoiseMask", "inputs": {"samples": ["2", 0], "mask": ["1", 1]}},
    })
    graph["3"]["inputs"].update(steps=4, latent_image=[mask_node, 0])
    return graph


def test_latent_upscale_keeps_the_noise_mask_and_the_sampler_resizes_it(builtin_registry, tmp_folders):
    """ComfyUI's LatentUpscale copies the LATENT and replaces only "samples": the 64x64 noise mask
    set before it reaches the sampler, which resizes it (bilinear) to the upscaled 16x16 latent. The
    left half (mask 0) comes back as it went in, the right half (mask 1) is repainted."""
    from PIL import Image
    picture = Image.new("RGBA", (64, 64), (200, 40, 40, 255))
    picture.paste((0, 0, 0, 0), (32, 0, 64, 64))  # transparent: the part to repaint
    picture.save(tmp_folders.inputs / "half.png")
    graph = _inpaint_graph("half.png", "10")
    graph["10"] = {"class_type": "LatentUpscale", "inputs": {"samples": ["9", 0], "upscale_method": "bilinear",
                                                             "width": 128, "height": 128, "crop": "disabled"}}
    result = run(builtin_registry, graph, ("3", "9", "10"))
    upscaled, out = result.values["10"][0], result.values["3"][0]["samples"]
    assert upscaled["noise_mask"] is result.values["9"][0]["noise_mask"]
    assert upscaled["noise_mask"].shape == (1, 1, 64, 64) and out.shape == (1, 4, 16, 16)
    torch.testing.assert_close(out[..., :8], upscaled["samples"][..., :8], rtol=0, atol=1e-4)
    assert (out[..., 8:] - upscaled["samples"][..., 8:]).abs().mean() > 0.1


def test_load_images_empty_mask_is_resized_by_the_inpaint_nodes(builtin_registry, tmp_folders):
    """A picture without alpha gives ComfyUI's [1, 64, 64] mask of zeros; the nodes that take it
    resize it to the 96x64 picture (or its latent) as ComfyUI's do: nothing is repainted."""
    from PIL import Image
    Image.new("RGB", (96, 64), (30, 90, 200)).save(tmp_folders.inputs / "plain.png")
    graph = _inpaint_graph("plain.png", "9")
    graph.update({
        "20": {"class_type": "VAEEncodeForInpaint", "inputs": {"pixels": ["1", 0], "vae": ["4", 2],
                                                               "mask": ["1", 1], "grow_mask_by": 6}},
        "21": {"class_type": "InpaintModelConditioning", "inputs": {
            "positive": ["6", 0], "negative": ["7", 0], "vae": ["4", 2], "pixels": ["1", 0], "mask": ["1", 1],
            "noise_mask": True}},
        "22": {"class_type": "ImageCompositeMasked", "inputs": {
            "destination": ["1", 0], "source": ["1", 0], "x": 0, "y": 0, "resize_source": False,
            "mask": ["1", 1]}},
    })
    result = run(builtin_registry, graph, ("1", "2", "3", "20", "21", "22"))
    image, mask = result.values["1"]
    assert mask.shape == (1, 64, 64) and not mask.any()
    assert result.values["20"][0]["noise_mask"].shape == (1, 1, 64, 96)
    assert not result.values["20"][0]["noise_mask"].any()
    assert result.values["21"][2]["noise_mask"].shape == (1, 1, 64, 96)
    assert torch.equal(result.values["22"][0], image)
    # the sampler kept all of the latent (mask 0 everywhere)
    torch.testing.assert_close(result.values["3"][0]["samples"], result.values["2"][0]["samples"],
                               rtol=0, atol=1e-4)


def test_a_checkpoint_name_linked_from_a_text_node(builtin_registry, tmp_folders):
    """ckpt_name from a PrimitiveString (a widget converted to an input): the loader's file
    fingerprint is made with the linked name, so the run works and a rerun is cached whole; a
    linked name of no file is refused naming the input."""
    graph = {"4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "graphflow-demo.safetensors"}},
             "6": {"class_type": "CLIPTextEncode", "inputs": {"text": PROMPT, "clip": ["4", 1]}}}
    graph["20"] = {"class_type": "PrimitiveString", "inputs": {"value": "graphflow-demo.safetensors"}}
    graph["4"]["inputs"]["ckpt_name"] = ["20", 0]
    workflow = parse_workflow(graph, builtin_registry)
    executor = Executor(builtin_registry)
    first = executor.run(workflow, outputs=["6"])
    assert first.ok, first.error
    assert first.executed == ["20", "4", "6"] and first.values["6"][0][0][0].shape[-1] > 0
    assert sorted(executor.run(workflow, outputs=["6"]).cached) == sorted(first.executed)
    graph["20"]["inputs"]["value"] = "missing.safetensors"
    failed = executor.run(parse_workflow(graph, builtin_registry), outputs=["6"])
    assert failed.error["node_id"] == "4" and failed.error["input"] == "checkpoint", failed.error
    assert "missing.safetensors" in failed.error["message"]
