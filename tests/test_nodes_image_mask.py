import json

import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from graphflow.executor import Executor
from graphflow.workflow import parse_workflow


def call(registry, node_type, **inputs):
    """Run one node's run() directly with the given inputs (defaults filled in)."""
    cls = registry.get(node_type)
    values = cls.widget_model.model_validate({k: v for k, v in inputs.items()
                                              if cls.input_specs[k].widget}).model_dump()
    node = cls.__new__(cls)
    node.__dict__.update(values)
    node.__dict__.update({k: v for k, v in inputs.items() if cls.input_specs[k].socket})
    for name, spec in cls.input_specs.items():
        node.__dict__.setdefault(name, None)
    return node.run()


def test_mask_compose_operations_offset_and_clamp(builtin_registry):
    dest = torch.full((1, 4, 4), 0.6)
    src = torch.full((1, 2, 2), 0.7)
    expected = {"multiply": 0.42, "add": 1.0, "subtract": 0.0, "min": 0.6, "max": 0.7,
                "and": 1.0, "or": 1.0, "xor": 0.0}
    for op, value in expected.items():
        out = call(builtin_registry, "MaskCompose", destination=dest, source=src, x=1, y=2, operation=op)
        assert out.shape == (1, 4, 4)
        assert torch.allclose(out[0, 2:4, 1:3], torch.tensor(value)), op
        assert torch.allclose(out[0, :2], torch.tensor(0.6)) and torch.allclose(out[0, :, 3], torch.tensor(0.6))
    # Partly outside the destination: only the overlap changes.
    out = call(builtin_registry, "MaskCompose", destination=dest, source=src, x=-1, y=3, operation="add")
    assert torch.allclose(out[0, 3, 0], torch.tensor(1.0)) and torch.allclose(out[0, 3, 1], torch.tensor(0.6))


def test_grow_mask_square_tapered_and_shrink(builtin_registry):
    mask = torch.zeros(1, 9, 9)
    mask[0, 4, 4] = 1
    square = call(builtin_registry, "GrowMask", mask=mask, expand=2, tapered_corners=False)
    assert square.sum() == 25 and square[0, 2:7, 2:7].min() == 1
    diamond = call(builtin_registry, "GrowMask", mask=mask, expand=2, tapered_corners=True)
    assert diamond.sum() == 13 and diamond[0, 2, 2] == 0 and diamond[0, 2, 4] == 1
    shrunk = call(builtin_registry, "GrowMask", mask=square, expand=-1, tapered_corners=False)
    assert shrunk.sum() == 9


def test_feather_mask_ramps(builtin_registry):
    out = call(builtin_registry, "FeatherMask", mask=torch.ones(1, 6, 10), left=4, top=0, right=2, bottom=3)
    assert torch.allclose(out[0, 0, :4], torch.tensor([0.25, 0.5, 0.75, 1.0]))
    assert torch.allclose(out[0, 0, -2:], torch.tensor([1.0, 0.5]))
    assert torch.allclose(out[0, -3:, 5], torch.tensor([1.0, 2 / 3, 1 / 3]))


def test_image_mask_conversions_solid_crop_invert(builtin_registry):
    image = torch.rand(2, 5, 6, 3)
    green = call(builtin_registry, "ImageToMask", image=image, channel="green")
    assert torch.equal(green, image[..., 1])
    back = call(builtin_registry, "MaskToImage", mask=green)
    assert back.shape == (2, 5, 6, 3) and torch.equal(back[..., 2], green)
    from graphflow.context import NodeInputError
    with pytest.raises(NodeInputError, match="no alpha"):
        call(builtin_registry, "ImageToMask", image=image, channel="alpha")
    solid = call(builtin_registry, "SolidMask", value=0.25, width=7, height=3)
    assert solid.shape == (1, 3, 7) and solid.unique().tolist() == [0.25]
    crop = call(builtin_registry, "CropMask", mask=green, x=2, y=1, width=3, height=10)
    assert torch.equal(crop, green[:, 1:, 2:5])
    assert torch.allclose(call(builtin_registry, "InvertMask", mask=green), 1 - green)


def test_pad_for_outpaint_keeps_centre_and_masks_border(builtin_registry):
    image = torch.rand(1, 32, 40, 3)
    padded, mask = call(builtin_registry, "PadImageForOutpaint", image=image, left=16, top=0, right=8,
                        bottom=24, feathering=10)
    assert padded.shape == (1, 56, 64, 3) and mask.shape == (1, 56, 64)
    assert torch.equal(padded[:, :32, 16:56], image)
    assert (padded[:, 32:] == 0.5).all() and (padded[:, :, :16] == 0.5).all()
    assert (mask[:, 32:] == 1).all() and (mask[:, :, :16] == 1).all() and (mask[:, :, 56:] == 1).all()
    # Inside: 1 at the padded edge, fading to 0 at `feathering` pixels; the unpadded top edge stays 0.
    assert mask[0, 10, 16] == 1 and mask[0, 10, 26] == 0 and 0 < mask[0, 10, 20] < 1
    assert mask[0, 0, 36] == 0
    no_feather = call(builtin_registry, "PadImageForOutpaint", image=image, left=8, feathering=0)[1]
    assert (no_feather[:, :, 8:] == 0).all()


def test_image_scale_sizes_and_crop(builtin_registry):
    image = torch.rand(1, 40, 80, 3)
    out = call(builtin_registry, "ImageScale", image=image, upscale_method="bilinear", width=40, height=0)
    assert out.shape == (1, 20, 40, 3)
    out = call(builtin_registry, "ImageScale", image=image, upscale_method="lanczos", width=30, height=30,
               crop="center")
    assert out.shape == (1, 30, 30, 3) and 0 <= out.min() and out.max() <= 1
    same = call(builtin_registry, "ImageScale", image=image, upscale_method="nearest-exact", width=80, height=40)
    assert torch.equal(same, image)


def test_image_scale_gives_comfyuis_pixels(builtin_registry):
    """ComfyUI's common_upscale: plain torch interpolation (bicubic a=-0.75, no antialias, which
    differs from the antialiased kernel even when enlarging), Lanczos through Pillow on 8-bit
    levels truncated from 0..1, and crop="center" cutting round(excess / 2) from each side."""
    import numpy as np
    from PIL import Image
    torch.manual_seed(0)
    image = torch.rand(2, 50, 101, 3)
    nchw = image.movedim(-1, 1)
    for method in ("bilinear", "bicubic"):
        for size in ((40, 20), (230, 170)):
            out = call(builtin_registry, "ImageScale", image=image, upscale_method=method,
                       width=size[0], height=size[1])
            plain = F.interpolate(nchw, size=size[::-1], mode=method).movedim(1, -1)
            antialiased = F.interpolate(nchw, size=size[::-1], mode=method, antialias=True).clamp(0, 1)
            assert torch.equal(out, plain)
            if method == "bicubic" or size[0] < 101:  # enlarging bilinear is the same either way
                assert not torch.allclose(out, antialiased.movedim(1, -1), atol=1e-3)
    # 101x50 to 1:1: the excess is 51 columns, round(25.5) = 26 from each side keeps 49 (not 50).
    out = call(builtin_registry, "ImageScale", image=image, upscale_method="nearest-exact", width=49,
               height=50, crop="center")
    assert torch.equal(out, image[:, :, 26:75])
    out = call(builtin_registry, "ImageScale", image=image, upscale_method="lanczos", width=37, height=23)
    for b in range(2):
        levels = np.clip(255.0 * image[b].numpy(), 0, 255).astype(np.uint8)
        expected = np.asarray(Image.fromarray(levels).resize((37, 23), Image.LANCZOS), dtype=np.float32) / 255.0
        assert torch.equal(out[b], torch.from_numpy(expected))


def _sharp_edges() -> torch.Tensor:
    """A black/white checkerboard of 3x3 blocks with a grey channel: edges a cubic kernel overshoots."""
    ys, xs = torch.meshgrid(torch.arange(12), torch.arange(15), indexing="ij")
    board = ((ys // 3 + xs // 3) % 2).float()
    return torch.stack([board, 1 - board, torch.full_like(board, 0.5)], -1)[None]


def test_image_resizing_is_unclamped_torch_interpolation_as_comfyui(builtin_registry, tmp_path):
    """ComfyUI's ImageScale, ImageScaleBy, ImageScaleToTotalPixels and LatentUpscale give
    F.interpolate's output as is: bicubic enlarging past sharp edges overshoots 0..1, and stays so."""
    image = _sharp_edges()
    nchw = image.movedim(-1, 1)
    for method in ("nearest-exact", "bilinear", "area", "bicubic"):
        expected = F.interpolate(nchw, size=(29, 37), mode=method).movedim(1, -1)
        out = call(builtin_registry, "ImageScale", image=image, upscale_method=method, width=37, height=29)
        assert torch.equal(out, expected), method
        by = call(builtin_registry, "ImageScaleBy", image=image, upscale_method=method, scale_by=2.5)
        assert torch.equal(by, F.interpolate(nchw, size=(30, 38), mode=method).movedim(1, -1)), method
        # int(0.01 * 1024 * 1024) = 10485 pixels: scale sqrt(10485 / 180) = 7.632, 15x12 -> 114x92.
        total = call(builtin_registry, "ImageScaleToTotalPixels", image=image, upscale_method=method,
                     megapixels=0.01)
        assert torch.equal(total, F.interpolate(nchw, size=(92, 114), mode=method).movedim(1, -1)), method
        latent = call(builtin_registry, "LatentUpscale", samples={"samples": nchw}, upscale_method=method,
                      width=37 * 8, height=29 * 8)
        assert torch.equal(latent["samples"], F.interpolate(nchw, size=(29, 37), mode=method)), method
    bicubic = call(builtin_registry, "ImageScale", image=image, upscale_method="bicubic", width=37, height=29)
    assert bicubic.min() < -0.05 and bicubic.max() > 1.05  # the overshoot is kept, not clamped away
    # SaveImage clips it: the PNG holds 0 and 255 where the overshoot was.
    from graphflow.images import image_to_pil
    import numpy as np
    levels = np.asarray(image_to_pil(bicubic))
    assert levels.min() == 0 and levels.max() == 255
    expected = (bicubic[0].clamp(0, 1).numpy() * 255).astype(np.uint8)  # truncated, as ComfyUI saves
    assert np.array_equal(levels, expected)
    # width = height = 0 gives the image back untouched, even for Lanczos (no 8-bit round trip).
    fine = torch.rand(1, 6, 7, 3)
    assert call(builtin_registry, "ImageScale", image=fine, upscale_method="lanczos", width=0, height=0) is fine


def test_vae_encode_takes_the_overshoot_as_it_is(builtin_registry, tmp_path):
    """As ComfyUI's VAEEncode: pixels * 2 - 1 into the encoder, no clamping, so a bicubic
    enlargement's overshoot reaches the VAE (its encoder module the oracle)."""
    from graphflow.models.checkpoint import load_vae
    from graphflow.testing import write_vae
    vae = load_vae(write_vae(tmp_path / "v.safetensors", seed=3, dtype=torch.float32), device="cpu")
    image = call(builtin_registry, "ImageScale", image=_sharp_edges(), upscale_method="bicubic", width=16, height=16)
    assert image.min() < 0 and image.max() > 1
    latent = call(builtin_registry, "VAEEncode", pixels=image, vae=vae)["samples"]
    with torch.no_grad():
        mean = vae.module.encode(image.movedim(-1, 1) * 2 - 1)[0]
    torch.testing.assert_close(latent, mean, rtol=0, atol=1e-6)
    assert not torch.allclose(latent, call(builtin_registry, "VAEEncode", pixels=image.clamp(0, 1), vae=vae)["samples"])


def test_lanczos_resizing_is_pillows_on_the_same_bytes(builtin_registry):
    """Lanczos (all four image nodes) goes through Pillow: the 0..1 values clipped and cut to bytes,
    the picture resized whole (RGB; RGBA premultiplied by Pillow), and the result in 1/255 steps."""
    import numpy as np
    torch.manual_seed(1)
    image = torch.cat([_sharp_edges() * 1.2 - 0.1, (_sharp_edges() * 0.9 + 0.05)])  # out of range too
    for channels, mode in ((3, "RGB"), (4, "RGBA")):
        x = torch.cat([image, torch.rand(2, 12, 15, 1)], -1)[..., :channels]
        for node, widgets, size in (("ImageScale", {"width": 40, "height": 9}, (40, 9)),
                                    ("ImageScaleBy", {"scale_by": 2.0}, (30, 24))):
            out = call(builtin_registry, node, image=x, upscale_method="lanczos", **widgets)
            for b in range(2):
                levels = np.clip(255.0 * x[b].numpy(), 0, 255).astype(np.uint8)
                picture = Image.fromarray(levels, mode).resize(size, Image.LANCZOS)
                expected = torch.from_numpy(np.asarray(picture, dtype=np.float32) / 255.0)
                assert torch.equal(out[b], expected), (node, mode)


def test_latent_upscale_sizes_are_comfyuis(builtin_registry):
    """ComfyUI's LatentUpscale works out the size in pixels: the missing side from the latent's
    aspect ratio, each at least 64, then // 8; width = height = 0 passes the latent through."""
    latent = {"samples": torch.rand(1, 4, 8, 7), "noise_mask": torch.ones(1, 1, 64, 56)}
    out = call(builtin_registry, "LatentUpscale", samples=latent, upscale_method="bilinear", width=0, height=100)
    assert out["samples"].shape == (1, 4, 12, 11)  # width round(7 * 100 / 8) = 88 -> 11 (not round(7 * 12 / 8) = 10)
    out = call(builtin_registry, "LatentUpscale", samples=latent, upscale_method="bilinear", width=16, height=0)
    assert out["samples"].shape == (1, 4, 9, 8)  # width 16 -> 64; height round(8 * 64 / 7) = 73 -> 9
    assert call(builtin_registry, "LatentUpscale", samples=latent, upscale_method="bicubic", width=0,
                height=0) is latent


def test_latent_nodes(builtin_registry):
    empty = call(builtin_registry, "EmptyLatent", width=64, height=48, batch_size=3)
    assert empty["samples"].shape == (3, 4, 6, 8) and empty["samples"].abs().sum() == 0
    up = call(builtin_registry, "LatentUpscale", samples={"samples": torch.rand(1, 4, 8, 8)},
              upscale_method="bilinear", width=128, height=0)
    assert up["samples"].shape == (1, 4, 16, 16)
    batch = call(builtin_registry, "LatentBatch", samples1={"samples": torch.rand(2, 4, 8, 8)},
                 samples2={"samples": torch.rand(1, 4, 4, 4)})
    assert batch["samples"].shape == (3, 4, 8, 8) and batch["batch_index"] == [0, 1, 0]  # ComfyUI's: each batch's own
    latent = {"samples": torch.rand(1, 4, 8, 8)}
    masked = call(builtin_registry, "SetLatentNoiseMask", samples=latent, mask=torch.ones(1, 64, 64))
    assert masked["noise_mask"].shape == (1, 1, 64, 64) and "noise_mask" not in latent


def test_load_image_alpha_becomes_mask_and_save_embeds_workflow(builtin_registry, tmp_folders):
    rgba = Image.new("RGBA", (20, 10), (255, 0, 0, 255))
    rgba.putpixel((3, 4), (0, 0, 255, 0))  # one transparent pixel
    rgba.save(tmp_folders.inputs / "red.png")
    workflow = parse_workflow({"nodes": {
        "1": {"type": "LoadImage", "inputs": {"image": "red.png"}},
        "2": {"type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "shots/red"}},
        "3": {"type": "MaskToImage", "inputs": {"mask": ["1", 1]}},
        "4": {"type": "SaveImage", "inputs": {"images": ["3", 0], "filename_prefix": "mask"}},
    }, "ui": {"note": "kept"}})
    executor = Executor(builtin_registry)
    result = executor.run(workflow)
    assert result.ok, result.error
    assert result.outputs["2"] == {"images": [{"filename": "red_00001_.png", "subfolder": "shots", "type": "output"}]}
    saved = Image.open(tmp_folders.outputs / "shots" / "red_00001_.png")
    assert saved.size == (20, 10) and saved.getpixel((0, 0)) == (255, 0, 0)
    embedded = json.loads(saved.text["graphflow"])
    assert embedded["nodes"]["2"]["inputs"]["filename_prefix"] == "shots/red" and embedded["ui"] == {"note": "kept"}
    mask = Image.open(tmp_folders.outputs / "mask_00001_.png")
    assert mask.getpixel((3, 4)) == (255, 255, 255) and mask.getpixel((0, 0)) == (0, 0, 0)

    # Counter continues; a changed input file re-runs LoadImage (fingerprint), unchanged hits the cache.
    workflow.nodes["2"].inputs["filename_prefix"] = "shots/red "  # different signature, same folder
    assert executor.run(workflow).ok
    again = executor.run(workflow)
    assert "1" in again.cached
    Image.new("RGB", (20, 10), (0, 255, 0)).save(tmp_folders.inputs / "red.png")
    changed = executor.run(workflow)
    assert "1" in changed.executed


def test_save_image_writes_alpha_and_truncates_as_comfyui(builtin_registry, tmp_folders):
    """JoinImageWithAlpha's four channels are saved as an RGBA PNG (ComfyUI hands Pillow the 4-channel
    array), each value as int(255 x v) clipped to 0..255: 0.999 is 254, not 255."""
    import numpy as np

    image = torch.tensor([[[0.999, 0.5, 0.2], [1.2, -0.1, 0.0]]])[None]  # [1, 1, 2, 3]
    alpha_mask = torch.tensor([[[0.0, 0.75]]])  # ComfyUI masks: 1 = transparent
    rgba = call(builtin_registry, "JoinImageWithAlpha", image=image, alpha=alpha_mask)
    call(builtin_registry, "SaveImage", images=rgba, filename_prefix="alpha")
    saved = Image.open(tmp_folders.outputs / "alpha_00001_.png")
    assert saved.mode == "RGBA"
    assert np.asarray(saved).tolist() == [[[254, 127, 51, 255], [255, 0, 0, 63]]]


def _webcam(image, **widgets):
    return parse_workflow({"nodes": {
        "1": {"type": "WebcamCapture", "inputs": {"image": image, **widgets}},
        "2": {"type": "PreviewImage", "inputs": {"images": ["1", 0]}}}})


def test_webcam_capture_loads_the_upload_resized_to_nonzero_sizes(builtin_registry, tmp_folders):
    """ComfyUI's WebcamCapture: LoadImage's loading of the uploaded capture, IMAGE only; width and
    height 0 (the defaults) keep the capture's size, a nonzero one is the size it comes out at."""
    from graphflow.images import pil_to_image
    node = builtin_registry.get("WebcamCapture")
    assert [o.type for o in node.output_specs] == ["IMAGE"]
    assert {n: node.input_specs[n].default for n in ("width", "height", "capture_on_queue")} == \
        {"width": 0, "height": 0, "capture_on_queue": True}
    (tmp_folders.inputs / "webcam").mkdir()
    picture = Image.fromarray((torch.rand(10, 20, 3) * 255).byte().numpy())
    picture.save(tmp_folders.inputs / "webcam" / "cap.png")
    pixels = pil_to_image(picture)
    assert torch.equal(call(builtin_registry, "WebcamCapture", image="webcam/cap.png"), pixels)
    out = call(builtin_registry, "WebcamCapture", image="webcam/cap.png", width=8, height=0)
    assert torch.equal(out, F.interpolate(pixels.movedim(-1, 1), size=(10, 8), mode="bilinear").movedim(1, -1))
    out = call(builtin_registry, "WebcamCapture", image="webcam/cap.png", width=0, height=25)
    assert out.shape == (1, 25, 20, 3)
    # ComfyUI's editor names its captures "webcam/<time>.png [temp]": read from the temp folder.
    (tmp_folders.temp / "webcam").mkdir(parents=True)
    picture.save(tmp_folders.temp / "webcam" / "1.png")
    assert torch.equal(call(builtin_registry, "WebcamCapture", image="webcam/1.png [temp]"), pixels)
    result = Executor(builtin_registry).run(_webcam("webcam/cap.png", width=20, height=10))
    assert result.ok, result.error


def test_webcam_capture_errors_name_the_node_and_input(builtin_registry, tmp_folders, tmp_path):
    Image.new("RGB", (4, 4)).save(tmp_path / "secret.png")
    executor = Executor(builtin_registry)
    for name, expected in (("webcam/gone.png", "can't read 'webcam/gone.png' as an image"),
                           ("", "no capture yet"),
                           ("../secret.png", "not a file inside its folder"),
                           ("../secret.png [temp]", "not a file inside its folder")):
        result = executor.run(_webcam(name))
        assert result.status == "error", name
        assert (result.error["node_id"], result.error["node_type"], result.error["input"]) == \
            ("1", "WebcamCapture", "image"), name
        assert expected in result.error["message"], (name, result.error["message"])
        assert str(tmp_folders.inputs) not in result.error["message"]  # no server path reaches the client
    (tmp_folders.temp / "webcam").mkdir(parents=True)
    (tmp_folders.temp / "webcam" / "junk.png").write_bytes(b"not a picture")
    result = executor.run(_webcam("webcam/junk.png [temp]"))
    assert result.error["message"].endswith("can't read 'webcam/junk.png [temp]' as an image: not a picture format Pillow knows")


def test_load_image_reads_a_gif_as_a_batch_of_its_frames(builtin_registry, tmp_folders):
    """ComfyUI's LoadImage: every frame of a GIF (Pillow's ImageSequence) as one batch; frames
    without transparency get ComfyUI's empty 64x64 masks; listed among LoadImage's files."""
    import numpy as np
    from PIL import ImageSequence
    pictures = [Image.new("RGB", (9, 5), (60 * i, 200 - 60 * i, 30)) for i in range(3)]
    pictures[1].putpixel((2, 3), (255, 255, 255))
    pictures[0].save(tmp_folders.inputs / "anim.gif", save_all=True, append_images=pictures[1:], duration=50)
    assert "anim.gif" in builtin_registry.get("LoadImage").input_specs["image"].widget.options()
    image, mask = call(builtin_registry, "LoadImage", image="anim.gif")
    with Image.open(tmp_folders.inputs / "anim.gif") as gif:
        frames = [frame.convert("RGBA") for frame in ImageSequence.Iterator(gif)]
    assert len(frames) == 3 and image.shape == (3, 5, 9, 3) and mask.shape == (3, 64, 64) and not mask.any()
    for i, frame in enumerate(frames):
        assert torch.equal(image[i], torch.from_numpy(np.asarray(frame.convert("RGB"), dtype=np.float32) / 255.0))
    assert len({tuple(image[i, 0, 0].tolist()) for i in range(3)}) == 3  # three frames, not one repeated
    assert image[1, 3, 2].tolist() == [1.0, 1.0, 1.0] and image[0, 3, 2].tolist() != [1.0, 1.0, 1.0]


def test_load_image_greys_and_a_missing_alpha_as_comfyui(builtin_registry, tmp_folders):
    """ComfyUI's LoadImage divides integer greys of Pillow's mode "I" by 255 (Pillow's point
    truncates) before the RGB conversion; a 16-bit PNG opens as "I;16", which it converts as it is
    (Pillow clips at 255). A picture without alpha gives a [1, 64, 64] mask of zeros."""
    import numpy as np
    values = np.array([[0, 100, 254, 255, 256, 1000, 65535]], dtype=np.uint16)
    Image.fromarray(values).save(tmp_folders.inputs / "grey16.png")
    Image.fromarray(values.astype(np.int32)).save(tmp_folders.inputs / "grey32.tif")
    with Image.open(tmp_folders.inputs / "grey16.png") as png, Image.open(tmp_folders.inputs / "grey32.tif") as tif:
        assert (png.mode, tif.mode) == ("I;16", "I")
    from test_custom_sampling import run_node
    image, mask = run_node(builtin_registry.get("LoadImage"), image="grey32.tif")  # TIFFs are not listed
    scaled = np.minimum(values // 255, 255) / 255.0  # 0 0 0 1 1 3 255
    assert image.shape == (1, 1, 7, 3) and torch.equal(image[0, ..., 0], torch.tensor(scaled, dtype=torch.float32))
    assert torch.equal(image[..., 0], image[..., 2])
    image, mask = call(builtin_registry, "LoadImage", image="grey16.png")
    clipped = np.minimum(values, 255) / 255.0
    assert torch.equal(image[0, ..., 1], torch.tensor(clipped, dtype=torch.float32))
    assert mask.shape == (1, 64, 64) and not mask.any()
    Image.new("RGB", (20, 10), (9, 8, 7)).save(tmp_folders.inputs / "plain.png")
    image, mask = call(builtin_registry, "LoadImage", image="plain.png")
    assert image.shape == (1, 10, 20, 3) and mask.shape == (1, 64, 64) and not mask.any()


def test_file_names_cannot_escape_their_folders(builtin_registry, tmp_folders, tmp_path):
    Image.new("RGB", (4, 4)).save(tmp_path / "secret.png")
    workflow = parse_workflow({"nodes": {
        "1": {"type": "LoadImage", "inputs": {"image": "../secret.png"}},
        "2": {"type": "PreviewImage", "inputs": {"images": ["1", 0]}}}})
    result = Executor(builtin_registry).run(workflow)
    assert result.status == "invalid" and result.problems[0].input == "image"

    Image.new("RGB", (4, 4)).save(tmp_folders.inputs / "ok.png")
    workflow = parse_workflow({"nodes": {
        "1": {"type": "LoadImage", "inputs": {"image": "ok.png"}},
        "2": {"type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "../../evil"}}}})
    result = Executor(builtin_registry).run(workflow)  # refused at validation, before LoadImage runs
    assert result.status == "invalid" and result.problems[0].input == "filename_prefix"
    assert result.executed == [] and not list(tmp_path.glob("**/evil*"))

    (tmp_folders.inputs / "link.png").symlink_to(tmp_path / "secret.png")
    from graphflow.folders import UnsafePathError
    with pytest.raises(UnsafePathError):
        tmp_folders.input_path("link.png")


def test_grow_mask_stops_after_height_plus_width_steps_with_the_same_result(monkeypatch):
    """Past H + W steps the mask no longer changes, so more are skipped: bit-identical results."""
    import nodes.mask as mask_module
    dilate, steps = mask_module._dilate, []
    torch.manual_seed(0)
    mask = torch.rand(2, 3, 5)
    mask[1, 1, 2] = 1.0  # one peak: the slowest to spread
    for tapered in (True, False):
        for pixels in (-30, 30):
            x = mask[:, None]
            for _ in range(abs(pixels)):  # the uncapped loop
                x = dilate(x, tapered) if pixels > 0 else -dilate(-x, tapered)
            monkeypatch.setattr(mask_module, "_dilate", lambda m, t: steps.append(1) or dilate(m, t))
            assert torch.equal(mask_module.grow_mask(mask, pixels, tapered), x[:, 0]), (tapered, pixels)
            monkeypatch.setattr(mask_module, "_dilate", dilate)
    assert len(steps) == 4 * (3 + 5)
    monkeypatch.setattr(mask_module, "_dilate", lambda m, t: steps.append(1) or dilate(m, t))
    mask_module.grow_mask(torch.zeros(1, 4, 4), 16384)
    assert len(steps) == 4 * 8 + 8


def test_load_image_names_a_picture_too_large_to_decode(builtin_registry, tmp_folders, monkeypatch):
    """Pillow refuses a picture of more than twice its pixel limit before decoding it (a
    decompression bomb): LoadImage names its input instead of failing with Pillow's error."""
    from graphflow.context import NodeInputError
    Image.new("RGB", (30, 30)).save(tmp_folders.inputs / "bomb.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # 900 pixels > 2 x 100, as 15000² is for the real limit
    with pytest.raises(NodeInputError, match="too large to load") as caught:
        call(builtin_registry, "LoadImage", image="bomb.png")
    assert caught.value.input == "image"
