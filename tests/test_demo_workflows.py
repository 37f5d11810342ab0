"""The shipped example workflows, exactly as saved, on the bundled demo model: each must run and
show what it is for, judged by pixel measurements (graphflow.demo.measure), not by eye."""

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from graphflow.demo import measure, shapes
from graphflow.executor import Executor
from graphflow.workflow import load_workflow

WORKFLOWS = Path(__file__).parent.parent / "workflows"


def run(registry, name, **sets):
    wf = load_workflow(WORKFLOWS / f"{name}.json")
    for key, value in sets.items():
        node, _, inp = key.rpartition("__")
        wf.nodes[node].inputs[inp] = value
    result = Executor(registry).run(wf)
    assert result.ok, result.error or result.problems
    return wf, result


def output_of(wf, result, node_type, index=0):
    (node,) = [k for k, n in wf.nodes.items() if n.type == node_type]
    return result.values[node][index]


def prompt_words(prompt):
    words = prompt.split()
    colour = next(w for w in words if w in shapes.COLOURS)
    shape = next(w for w in words if w in shapes.SHAPES)
    return colour, shape, words[words.index("background") - 1]


def described(image):
    m = measure.measure(image)
    return m.colour, m.shape, m.background


def input_image(wf):
    from PIL import Image

    from graphflow.folders import folders
    from graphflow.images import pil_to_image

    (node,) = [n for n in wf.nodes.values() if n.type == "LoadImage"]
    return pil_to_image(Image.open(folders.input_path(node.inputs["image"])).convert("RGB"))[0]


def test_txt2img_draws_its_prompt(builtin_registry, tmp_folders):
    """The README's main job: LoadCheckpoint -> CLIPEncode -> KSampler -> VAEDecode -> SaveImage."""
    wf, result = run(builtin_registry, "txt2img")
    want = prompt_words(wf.nodes["2"].inputs["text"])
    images = output_of(wf, result, "VAEDecode")
    found = [described(image) for image in images]
    print(f"\n{want}: {found}")
    assert sum(f == want for f in found) >= 0.75 * len(found)
    saved = result.outputs["7"]["images"]
    assert len(saved) == len(images) and all((tmp_folders.outputs / i["filename"]).is_file() for i in saved)


def test_img2img_redraws_the_image_to_its_prompt(builtin_registry, tmp_folders):
    wf, result = run(builtin_registry, "img2img")
    source = described(input_image(wf))
    want = prompt_words(wf.nodes["2"].inputs["text"])
    assert source != want  # the example changes what the picture shows
    assert described(output_of(wf, result, "VAEDecode")[0]) == want


def test_inpaint_repaints_the_masked_square_only(builtin_registry, tmp_folders):
    wf, result = run(builtin_registry, "inpaint")
    before = input_image(wf)
    after = output_of(wf, result, "VAEDecode")[0]
    mask = output_of(wf, result, "MaskCompose")[0]  # 1 inside the square that is repainted
    colour, shape, background = prompt_words(wf.nodes["2"].inputs["text"])
    assert described(after) == (colour, shape, background)
    outside = mask < 0.5
    outside[12:52, 12:52] = False  # the VAE's receptive field blurs a few pixels across the edge
    assert (after - before).abs()[outside].mean() < 0.03  # unmasked pixels: a VAE round trip away
    inside = measure.measure(after).mask & (mask > 0.5).numpy()
    assert inside.sum() >= 0.9 * measure.measure(after).mask.sum()  # the new shape is in the square


def test_outpaint_extends_the_background(builtin_registry, tmp_folders):
    wf, result = run(builtin_registry, "outpaint")
    before = input_image(wf)
    after = output_of(wf, result, "VAEDecode")[0]
    h, w, _ = before.shape
    added = wf.nodes["5"].inputs["right"]
    assert after.shape == (h, w + added, 3)
    assert (after[:, : w - 16] - before[:, : w - 16]).abs().mean() < 0.03  # the original stays
    background = shapes.BACKGROUNDS[prompt_words(wf.nodes["2"].inputs["text"])[2]]
    new_strip = after[:, w + 4:].reshape(-1, 3).numpy()
    near_background = np.abs(new_strip - np.array(background) / 255).max(axis=1) < 0.15
    assert near_background.mean() > 0.6, near_background.mean()  # mostly background, not the pad's grey


def test_lora_moves_every_shape_to_the_corner(builtin_registry, tmp_folders):
    wf, with_lora = run(builtin_registry, "lora")
    _, without = run(builtin_registry, "lora", **{"8__strength_model": 0.0, "8__strength_clip": 0.0})
    _, plain = run(builtin_registry, "txt2img")
    # strength 0 is exactly no LoRA: the same pixels as txt2img (same prompt, seed and settings)
    assert torch.equal(output_of(wf, without, "VAEDecode"), plain.values["6"][0])
    want = prompt_words(wf.nodes["2"].inputs["text"])

    def centres(images):
        found = [measure.measure(image) for image in images]
        assert all((m.colour, m.shape, m.background) == want for m in found), [described(i) for i in images]
        return [np.argwhere(m.mask).mean(axis=0) / m.mask.shape[0] for m in found]  # (y, x) as fractions

    moved = centres(output_of(wf, with_lora, "VAEDecode"))
    print(f"\ncentres with the LoRA {np.round(moved, 2).tolist()}")
    assert all(y < 0.35 and x < 0.35 for y, x in moved)
    assert not all(y < 0.35 and x < 0.35 for y, x in centres(output_of(wf, without, "VAEDecode")))


def test_latent_health_finds_the_demo_latents_healthy(builtin_registry, tmp_folders):
    wf, result = run(builtin_registry, "latent_health")
    report = output_of(wf, result, "LatentStats")
    assert "NaN: 0, Inf: 0" in report and "healthy" in report
    psnr = output_of(wf, result, "ImageDifference", 1)
    print(f"\n{report}\nround-trip PSNR {psnr:.2f} dB")
    assert psnr > 25.0


def test_vae_black_hole_maps_every_latent_position(builtin_registry, tmp_folders):
    wf, result = run(builtin_registry, "vae_black_hole")
    heatmap, overlay, top, score, _ = result.values["5"]
    image = input_image(wf)
    assert heatmap.shape[1:3] == (image.shape[0] // 8, image.shape[1] // 8)  # one cell per latent position
    assert torch.isfinite(heatmap).all() and torch.isfinite(overlay).all() and score > 0
    locations = json.loads(top)
    assert len(locations) == wf.nodes["5"].inputs["top_k"]
    effects = [loc["effect"] for loc in locations]
    assert effects == sorted(effects, reverse=True) and all(0 <= loc["row"] < 8 for loc in locations)
    report = result.values["4"][2]
    assert "posterior of a 8x8 latent, 4 channels" in report
    listed = re.findall(r"^\s+\d+\. \((\d+), (\d+)\)", report, flags=re.MULTILINE)
    assert len(listed) == wf.nodes["4"].inputs["top_k"]  # one line per anomalous location
    assert all(0 <= int(row) < 8 and 0 <= int(col) < 8 for row, col in listed)


def test_controlnet_puts_the_shape_where_the_hint_says(builtin_registry, tmp_folders):
    """The shipped demo ControlNet: the generated shape covers the hint's silhouette (IoU of the
    measured shape mask with the hint), for the saved hint and for another shape and place; at
    strength 0 the workflow gives txt2img's exact pixels."""
    from PIL import Image

    def iou(image, hint):
        m = measure.measure(image)
        return (m.mask & hint).sum() / max(1, (m.mask | hint).sum()), m

    wf, result = run(builtin_registry, "controlnet")
    hint = input_image(wf)[..., 0].numpy() > 0.5
    want = prompt_words(wf.nodes["2"].inputs["text"])
    with_cn = [iou(image, hint) for image in output_of(wf, result, "VAEDecode")]
    _, off = run(builtin_registry, "controlnet", **{"10__strength": 0.0})
    _, plain = run(builtin_registry, "txt2img")
    assert torch.equal(output_of(wf, off, "VAEDecode"), plain.values["6"][0])
    without = [iou(image, hint) for image in output_of(wf, off, "VAEDecode")]
    print(f"\nIoU with the hint: ControlNet {[round(float(v), 2) for v, _ in with_cn]}, "
          f"strength 0 {[round(float(v), 2) for v, _ in without]}")
    assert all((m.colour, m.shape, m.background) == want for _, m in with_cn)
    assert min(v for v, _ in with_cn) > 0.75
    assert max(v for v, _ in without) < 0.5

    # another shape, colour and place: a green square in the top-left on white
    spec = shapes.ShapeSpec("green", "square", "white", 0.42, 0.3, 0.3)
    Image.fromarray(shapes.render_mask(spec)).save(tmp_folders.inputs / "square-top-left.png")
    wf, result = run(builtin_registry, "controlnet", **{"9__image": "square-top-left.png", "2__text": spec.caption})
    hint = shapes.render_mask(spec)[..., 0] > 127
    found = [iou(image, hint) for image in output_of(wf, result, "VAEDecode")]
    print(f"IoU, square top-left: {[round(float(v), 2) for v, _ in found]}")
    assert all((m.colour, m.shape, m.background) == ("green", "square", "white") for _, m in found)
    assert min(v for v, _ in found) > 0.75


def test_hires_fix_upscales_and_keeps_the_picture(builtin_registry, tmp_folders):
    """txt2img at 64x64 -> the bundled 2x upscaler -> VAE encode -> KSampler at denoise 0.5: a
    128x128 picture of the same prompt, laid out like the first pass."""
    wf, result = run(builtin_registry, "hires_fix_upscale")
    first = result.values["6"][0][0]
    upscaled = result.values["8"][0][0]
    final = result.values["11"][0][0]
    assert first.shape == (64, 64, 3) and upscaled.shape == final.shape == (128, 128, 3)
    want = prompt_words(wf.nodes["2"].inputs["text"])
    assert described(first) == want and described(final) == want
    down = torch.nn.functional.avg_pool2d(final.permute(2, 0, 1)[None], 2)[0].permute(1, 2, 0)
    assert (down - first).abs().mean() < 0.1  # the second pass refines; it doesn't redraw
    assert result.outputs["12"]["images"][0]["filename"].startswith("hires_fix")
