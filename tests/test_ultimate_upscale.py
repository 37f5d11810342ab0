"""Ultimate SD Upscale (ComfyUI_UltimateSDUpscale's nodes): the pack's tile geometry, the per-tile
img2img on the demo model, the redraw orders, the seams-fix passes, and ComfyUI graphs using it."""

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw, ImageFilter, ImageOps

import nodes.ultimate_upscale as usdu
from graphflow.context import NodeInputError
from graphflow.executor import Executor
from graphflow.folders import BUNDLED
from graphflow.registry import Registry
from graphflow.testing import write_esrgan
from graphflow.workflow import parse_workflow
from tests.test_nodes_image_mask import call


@pytest.fixture(scope="module")
def registry():
    return Registry().load_builtin()




@pytest.fixture(scope="module")
def demo(registry):
    model, clip, vae = call(registry, "LoadCheckpoint", checkpoint="graphflow-demo.safetensors")
    positive = call(registry, "CLIPEncode", clip=clip, text="a red circle on a blue background")
    negative = call(registry, "CLIPEncode", clip=clip, text="")
    other = call(registry, "CLIPEncode", clip=clip, text="a green square on a white background")
    positive, negative, other = (p[0] if isinstance(p, tuple) else p for p in (positive, negative, other))
    picture = Image.open(BUNDLED / "inputs" / "red-circle-on-blue.png").convert("RGB")
    image = torch.from_numpy(np.asarray(picture, dtype=np.float32) / 255.0)[None]
    return dict(model=model, vae=vae, positive=positive, negative=negative, other=other, image=image)


SAMPLING = dict(seed=7, steps=2, cfg=3.0, sampler_name="euler", scheduler="normal")


def tiles_args(demo, **overrides):
    args = dict(model=demo["model"], positive=demo["positive"], negative=demo["negative"], vae=demo["vae"],
                **SAMPLING, denoise=0.5, mode_type="Linear", tile_width=64, tile_height=64, mask_blur=8,
                tile_padding=16, seam_fix_mode="None", seam_fix_denoise=0.5, seam_fix_width=16,
                seam_fix_mask_blur=4, seam_fix_padding=16, force_uniform_tiles=True, tiled_decode=False, batch_size=1)
    args.update(overrides)
    return args


# -- geometry ---------------------------------------------------------------------------------

def tiles(width, height, tw, th, pad, uniform=True, mode="Linear"):
    """(crop region, sampled size) of each redrawn tile, in order, as the node places them."""
    settings = SimpleNamespace(tile_width=tw, tile_height=th, tile_padding=pad, mask_blur=0, denoise=0.5,
                               mode_type=mode)
    return [usdu._place((width, height), job, uniform) for job in usdu.redraw_jobs(width, height, settings)]


def reference_tiles(width, height, tw, th, pad, uniform):
    """The pack's rules, step by step on a drawn mask: PIL rectangle (inclusive corners), its
    getbbox, padded and clipped, the last row/column dropped unless at the border; then widened
    to the processing aspect (uniform) or to multiples of 8."""
    pw, ph = round((tw + pad) / 8) * 8, round((th + pad) / 8) * 8
    out = []
    for yi in range(math.ceil(height / th)):
        for xi in range(math.ceil(width / tw)):
            mask = Image.new("L", (width, height), 0)
            rect = (xi * tw, yi * th, xi * tw + tw, yi * th + th)
            ImageDraw.Draw(mask).rectangle(rect, fill=255)
            x1, y1, x2, y2 = mask.getbbox()
            x1, y1, x2, y2 = max(x1 - pad, 0), max(y1 - pad, 0), min(x2 + pad, width), min(y2 + pad, height)
            x2 -= 1 if x2 < width else 0
            y2 -= 1 if y2 < height else 0
            cw, ch = x2 - x1, y2 - y1
            if uniform:
                if cw / ch > pw / ph:
                    want = cw, round(cw / (pw / ph))
                else:
                    want = round(ch * (pw / ph)), ch
                size = (pw, ph)
            else:
                want = size = (-(-cw // 8) * 8, -(-ch // 8) * 8)
            # grow right by half the shortfall, left by the rest, right by what is still missing
            x2 = min(x2 + (want[0] - cw) // 2, width)
            x1 = max(x2 - want[0], 0)
            x2 = min(x1 + want[0], width)
            y2 = min(y2 + (want[1] - ch) // 2, height)
            y1 = max(y2 - want[1], 0)
            y2 = min(y1 + want[1], height)
            out.append(((x1, y1, x2, y2), size))
    return out


@pytest.mark.parametrize("width,height,tw,th,pad", [
    (128, 128, 64, 64, 16), (200, 136, 64, 64, 8), (256, 192, 128, 64, 32), (512, 512, 512, 512, 32),
    (1024, 776, 512, 512, 32), (96, 200, 64, 96, 0), (1344, 768, 384, 256, 64)])
@pytest.mark.parametrize("uniform", [True, False])
def test_tile_rectangles_and_crops_follow_the_packs_rules(width, height, tw, th, pad, uniform):
    got = tiles(width, height, tw, th, pad, uniform)
    assert got == reference_tiles(width, height, tw, th, pad, uniform)
    assert len(got) == math.ceil(width / tw) * math.ceil(height / th)


def test_hand_worked_tiles():
    # 128x128 canvas, 64 tiles, padding 16: processing size 80x80; each crop is the tile plus 16
    # inwards (the inclusive rectangle's extra pixel dropped), 80x80, nothing to widen
    # tile (1, 2) of 64x96 tiles: x 64..128, y 192..288, drawn with inclusive corners, so its mask
    # is one pixel wider and taller (cut at the border of a 120x250 canvas)
    assert usdu.tile_rectangle(1, 2, 64, 96) == (64, 192, 128, 288)
    settings = SimpleNamespace(tile_width=64, tile_height=96, tile_padding=0, mask_blur=0, denoise=0.5,
                               mode_type="Linear")
    masks = [job.mask.getbbox() for job in usdu.redraw_jobs(120, 250, settings)]
    assert masks == [(0, 0, 65, 97), (64, 0, 120, 97), (0, 96, 65, 193), (64, 96, 120, 193),
                     (0, 192, 65, 250), (64, 192, 120, 250)]
    placed = tiles(128, 128, 64, 64, 16)
    assert [t[0] for t in placed] == [(0, 0, 80, 80), (48, 0, 128, 80), (0, 48, 80, 128), (48, 48, 128, 128)]
    assert {t[1] for t in placed} == {(80, 80)}
    # 200x136, padding 8, processing 72x72: the last column's crop (184..200 wide, 0..72 high) is
    # widened to a square 72 wide: right edge stuck at 200, so all 56 pixels go left (128..200)
    placed = tiles(200, 136, 64, 64, 8)  # 3 rows of 4 tiles
    assert placed[3] == ((128, 0, 200, 72), (72, 72))
    # the corner tile's crop 184..200 x 120..136 is square already: kept, resized 16 -> 72
    assert placed[11] == ((184, 120, 200, 136), (72, 72))
    # without uniform tiles the crops are sampled at their own size (multiples of 8)
    placed = tiles(200, 136, 64, 64, 8, uniform=False)
    assert placed[3] == ((184, 0, 200, 72), (16, 72)) and placed[5] == ((56, 56, 136, 136), (80, 80))


def test_canvas_grid_and_upscale_passes():
    assert usdu.canvas_size(64, 64, 2.0) == (128, 128)
    assert usdu.canvas_size(100, 60, 1.5) == (152, 88)  # 150 -> 152 (18.75 -> 19), 90 -> 88 (11.25 -> 11)
    assert usdu.canvas_size(100, 100, 1.0) == (96, 96)  # 12.5 rounds half to even: 12
    assert usdu.grid(1024, 776, 512, 512) == (2, 2) and usdu.grid(1032, 512, 512, 512) == (1, 3)
    # A1111's split of the whole scale: x2 one pass, x4 one, x3 one, x1 none, x5 -> x6 = 3 then 2
    assert usdu.upscale_passes(1) == [] and usdu.upscale_passes(2) == [2] and usdu.upscale_passes(4) == [4]
    assert usdu.upscale_passes(3) == [3] and usdu.upscale_passes(5) == [3, 2]


def test_redraw_orders():
    assert usdu.redraw_order(2, 3, "Linear") == [(0, 0), (1, 0), (2, 0), (0, 1), (1, 1), (2, 1)]
    # chess: white squares (x + y even) row by row, then the black ones
    assert usdu.redraw_order(2, 3, "Chess") == [(0, 0), (2, 0), (1, 1), (1, 0), (0, 1), (2, 1)]
    assert usdu.redraw_order(2, 3, "None") == []


def test_area_conditioning_is_cut_to_the_tile():
    # an area over the right half of a 64x64 picture (latent units), canvas 128x128: pixels 64..128;
    # the tile crop 48..128 x 0..80 keeps 16..80 of it from its corner, 0..80 high
    assert usdu.crop_area((8, 4, 0, 4), (48, 0, 128, 80), (64, 64), (128, 128)) == (10, 8, 0, 2)
    assert usdu.crop_area((8, 4, 0, 4), (0, 0, 60, 80), (64, 64), (128, 128)) is None
    cond = [("emb", {"area": (8, 4, 0, 4), "strength": 0.5})]
    assert usdu.crop_conditioning(cond, (0, 0, 60, 80), (64, 64), (128, 128), (80, 80)) == [("emb", {})]
    assert cond[0][1]["area"] == (8, 4, 0, 4)  # the caller's conditioning is not changed


def test_masks_gligen_boxes_and_reference_latents_are_cut_to_the_tile():
    # a mask bright over the top quarter of the 64x64 picture (rows 0..32 of the 128x128 canvas); the
    # crop 0..80 x 0..64 is fitted into 80x80: 80x64, 8 rows of padding above and below filled from
    # the edges, so bright rows 8..40 and dark below
    mask = torch.zeros(1, 64, 64)
    mask[:, :16] = 1.0
    cond = [("emb", {"mask": mask, "reference_latents": [torch.rand(1, 4, 8, 8)],
                     "gligen": SimpleNamespace(model="m", boxes=[("p", 4, 4, 0, 4), ("q", 2, 2, 6, 0)])})]
    ((_, cut),) = usdu.crop_conditioning(cond, (0, 0, 80, 64), (64, 64), (128, 128), (80, 80))
    assert cut["mask"].shape == (1, 80, 80)
    assert torch.equal(cut["mask"][0, :8], torch.ones(8, 80)) and torch.equal(cut["mask"][0, -8:], torch.zeros(8, 80))
    assert cut["mask"][0, 8:38].min() > 0.99 and cut["mask"][0, 42:72].max() < 0.01
    # latents resized to the canvas's 16x16, rows 0..8 and columns 0..10 taken, resized to 10x10
    assert cut["reference_latents"][0].shape == (1, 4, 10, 10)
    # box "p" (pixels 32..64 x 0..32, so 64..128 x 0..64 on the canvas) keeps 64..80; "q" is outside
    assert cut["gligen"].boxes == [("p", 8, 2, 0, 8)] and cut["gligen"].model == "m"
    assert len(cond[0][1]["gligen"].boxes) == 2 and cond[0][1]["mask"] is mask  # the input is untouched


def pack_paste(picture, job, redraw):
    """The pack's process_images on 8-bit pictures, with `redraw` (a picture -> picture function) in
    place of encode, sample, decode: crop, resize to the processing size (Lanczos), redraw, resize
    back, paste into a clear RGBA canvas, the blurred mask as its alpha where the crop is, and
    alpha-composite over the picture."""
    region, tile_size = usdu.fit_region(usdu.crop_region(job.mask.getbbox(), job.padding, *picture.size),
                                        *picture.size, job.process_size, True)
    tile = picture.crop(region)
    initial = tile.size
    if tile.size != tile_size:
        tile = tile.resize(tile_size, Image.LANCZOS)
    tile = redraw(tile)
    if tile.size != initial:
        tile = tile.resize(initial, Image.LANCZOS)
    only = Image.new("RGBA", picture.size)
    only.paste(tile, region[:2])
    temp = only.copy()
    temp.putalpha(job.mask.filter(ImageFilter.GaussianBlur(job.blur)) if job.blur > 0 else job.mask)
    only.paste(temp, only)
    out = picture.convert("RGBA")
    out.alpha_composite(only)
    return out.convert("RGB")


def test_tiles_composite_as_the_packs_rgba_paste():
    """Redraw tiles and Half Tile seam passes of a 128x96 canvas, with an inverting 'sampler', against
    the pack's PIL compositing on the whole canvas: the same bytes, job after job."""
    settings = SimpleNamespace(tile_width=64, tile_height=64, tile_padding=16, mask_blur=8, denoise=0.5,
                               mode_type="Chess", seam_fix_mode="Half Tile", seam_fix_width=16,
                               seam_fix_padding=16, seam_fix_mask_blur=4, force_uniform_tiles=True,
                               positive=[], negative=[])
    picture = Image.fromarray(np.random.default_rng(0).integers(0, 256, (96, 128, 3), dtype=np.uint8))
    ours = [picture.copy()]
    jobs = list(usdu.redraw_jobs(128, 96, settings)) + list(usdu.seam_jobs(128, 96, settings))
    assert len(jobs) == 4 + 2 + 2  # 2x2 tiles: 2 passes over the horizontal seam, 2 over the vertical
    for job in jobs:
        # 1 - tile, nudged up half a level so that truncating it to 8 bits gives 255 - value exactly
        usdu.run_job(ours, job, settings, (128, 96), lambda tile, p, n, d: 1 - tile + 0.5 / 255)
        picture = pack_paste(picture, job, ImageOps.invert)
        assert np.array_equal(np.asarray(ours[0]), np.asarray(picture))


# -- sampling on the demo model ---------------------------------------------------------------

def eight_bit(image):
    """The first picture of an IMAGE as an 8-bit picture, truncated (numpy's cast) as the pack does."""
    return Image.fromarray((255 * image[0].numpy()).astype(np.uint8))


def as_image(picture):
    return torch.from_numpy(np.asarray(picture, dtype=np.float32) / 255)[None]


def truncated(image):
    """An IMAGE in the pack's 1/255 steps (255 x value, cast to 8 bits)."""
    return torch.from_numpy((255 * image.numpy()).astype(np.uint8).astype(np.float32) / 255)


def img2img(registry, demo, image, denoise):
    latent = call(registry, "VAEEncode", pixels=image, vae=demo["vae"])
    latent = call(registry, "KSampler", model=demo["model"], positive=demo["positive"],
                  negative=demo["negative"], latent_image=latent, denoise=denoise, **SAMPLING)
    return call(registry, "VAEDecode", samples=latent, vae=demo["vae"])


def test_one_tile_is_a_plain_img2img_through_the_blurred_mask(registry, demo):
    """32x32 upscaled x2 without a model (nearest), one 64-pixel tile: VAEEncode -> KSampler at
    denoise -> VAEDecode, truncated to 8 bits, pasted through the tile's mask blurred by PIL's Gaussian
    (Pillow's alpha compositing)."""
    small = demo["image"][:, ::2, ::2]
    out = call(registry, "UltimateSDUpscaleCustomSample", image=small, upscale_by=2.0,
               **tiles_args(demo, tile_padding=0))
    upscaled = small.repeat_interleave(2, 1).repeat_interleave(2, 2)
    redrawn = img2img(registry, demo, upscaled, 0.5)
    mask = Image.new("L", (64, 64), 0)
    ImageDraw.Draw(mask).rectangle((0, 0, 64, 64), fill=255)
    tile = eight_bit(redrawn).convert("RGBA")
    tile.putalpha(mask.filter(ImageFilter.GaussianBlur(8)))
    want = Image.alpha_composite(eight_bit(upscaled).convert("RGBA"), tile).convert("RGB")
    assert torch.equal(out, as_image(want))
    assert (out - upscaled).abs().mean() > 0.01  # it was redrawn


def test_no_upscale_one_tile_with_blur_edge(registry, demo):
    """A 64x64 image with a 64-pixel tile: the mask covers it all, so the result is the img2img."""
    before = demo["image"].clone()
    out = call(registry, "UltimateSDUpscaleNoUpscale", upscaled_image=demo["image"],
               **tiles_args(demo, tile_padding=0, denoise=0.4))
    assert torch.equal(demo["image"], before)  # the input is not painted over
    want = truncated(img2img(registry, demo, demo["image"], 0.4))
    assert torch.equal(out, want)
    tiled = call(registry, "UltimateSDUpscaleNoUpscale", upscaled_image=demo["image"],
                 **tiles_args(demo, tile_padding=0, denoise=0.4, tiled_decode=True))
    # one 512-pixel decode tile covers it: the same but for a level where float noise crosses a step
    assert (tiled - want).abs().max() <= 1.001 / 255 and (tiled != want).float().mean() < 0.01


def test_the_image_and_the_upscale_are_8_bit_pictures(registry, demo, tmp_path):
    """As the pack: the image truncated to 1/255 steps, the upscale model run on that and its output
    truncated again, then Lanczos (Pillow's, on the 8-bit picture) to the canvas; with nothing
    redrawn that is the output."""
    from graphflow.models.upscale import load_upscale_model

    model = load_upscale_model(write_esrgan(tmp_path / "x4.safetensors", scale=4))
    image = torch.rand(1, 16, 24, 3, generator=torch.Generator().manual_seed(0))
    args = tiles_args(demo, mode_type="None")
    assert torch.equal(call(registry, "UltimateSDUpscaleNoUpscale", upscaled_image=image, **args), truncated(image))
    out = call(registry, "UltimateSDUpscale", image=image, upscale_model=model, upscale_by=2.0, **args)
    x4 = call(registry, "ImageUpscaleWithModel", upscale_model=model, image=truncated(image))
    assert x4.shape == (1, 64, 96, 3)
    assert torch.equal(out, as_image(eight_bit(x4).resize((48, 32), Image.LANCZOS)))
    # without a model: x1.5 of 24x16 is 36x24, rounded to 32x24 (4.5 eights round to even), so
    # one pass of nearest x2 (48x32), then Lanczos to 32x24
    out = call(registry, "UltimateSDUpscaleCustomSample", image=image, upscale_by=1.5, **args)
    want = eight_bit(image).resize((48, 32), Image.NEAREST).resize((32, 24), Image.LANCZOS)
    assert torch.equal(out, as_image(want))


def test_every_image_of_a_batch_is_redrawn_in_one_latent_batch(registry, demo):
    """Each tile's crops of all the images are sampled together (the batch's noise, one seed)."""
    two = torch.cat([demo["image"], demo["image"].flip(2)])
    out = call(registry, "UltimateSDUpscaleNoUpscale", upscaled_image=two,
               **tiles_args(demo, tile_padding=0, denoise=0.4))
    assert torch.equal(out, truncated(img2img(registry, demo, two, 0.4)))


def test_custom_sampler_and_sigmas_sample_the_tile(registry, demo):
    """Both given: SamplerCustom with the node's seed and cfg over the sigmas (steps and denoise unused)."""
    sampler = call(registry, "KSamplerSelect", sampler_name="euler")
    sigmas = call(registry, "BasicScheduler", model=demo["model"], scheduler="karras", steps=3, denoise=0.6)
    out = call(registry, "UltimateSDUpscaleCustomSample", image=demo["image"], upscale_by=1.0,
               custom_sampler=sampler, custom_sigmas=sigmas, **tiles_args(demo, tile_padding=0))
    latent = call(registry, "VAEEncode", pixels=demo["image"], vae=demo["vae"])
    latent = call(registry, "SamplerCustom", model=demo["model"], add_noise=True, noise_seed=7, cfg=3.0,
                  positive=demo["positive"], negative=demo["negative"], sampler=sampler, sigmas=sigmas,
                  latent_image=latent)[0]
    want = call(registry, "VAEDecode", samples=latent, vae=demo["vae"])
    assert torch.equal(out, truncated(want))
    # only one of them: the widgets' sampler, as in the pack
    alone = call(registry, "UltimateSDUpscaleCustomSample", image=demo["image"], upscale_by=1.0,
                 custom_sampler=sampler, **tiles_args(demo, tile_padding=0))
    assert torch.equal(alone, truncated(img2img(registry, demo, demo["image"], 0.5)))


class Spy:
    """Records each tile's sampling call (seed, denoise, latent) and crop region."""

    def __init__(self, monkeypatch):
        from graphflow.sampling import pipeline
        self.calls, self.regions = [], []
        real_sample, real_crop = pipeline.sample, usdu.crop_conditioning

        def sample(model, seed, steps, cfg, sampler_name, scheduler, positive, negative, latent, denoise=1.0, **kw):
            self.calls.append((seed, denoise, latent["samples"].clone()))
            return real_sample(model, seed, steps, cfg, sampler_name, scheduler, positive, negative, latent,
                               denoise=denoise, **kw)

        def crop(conditioning, region, *args):
            if conditioning is self.positive:
                self.regions.append(region)
            return real_crop(conditioning, region, *args)
        monkeypatch.setattr(pipeline, "sample", sample)
        monkeypatch.setattr(usdu, "crop_conditioning", crop)


def test_each_tile_samples_its_crop_with_the_seed(registry, demo, monkeypatch):
    spy = Spy(monkeypatch)
    spy.positive = demo["positive"]
    out = call(registry, "UltimateSDUpscaleNoUpscale", upscaled_image=demo["image"].repeat(1, 2, 2, 1),
               **tiles_args(demo))
    assert out.shape == (1, 128, 128, 3)
    assert spy.regions == [(0, 0, 80, 80), (48, 0, 128, 80), (0, 48, 80, 128), (48, 48, 128, 128)]
    assert [c[0] for c in spy.calls] == [7] * 4 and [c[1] for c in spy.calls] == [0.5] * 4
    # the first tile's latent is the VAE encoding of its crop of the (not yet redrawn) image
    first = demo["vae"].encode(demo["image"].repeat(1, 2, 2, 1)[:, 0:80, 0:80])
    torch.testing.assert_close(spy.calls[0][2], first)
    assert all(c[2].shape == (1, 4, 10, 10) for c in spy.calls)


def test_chess_order_redraws_white_tiles_first(registry, demo, monkeypatch):
    image = demo["image"].repeat(1, 2, 2, 1)
    spy = Spy(monkeypatch)
    spy.positive = demo["positive"]
    linear = call(registry, "UltimateSDUpscaleNoUpscale", upscaled_image=image, **tiles_args(demo))
    chess = call(registry, "UltimateSDUpscaleNoUpscale", upscaled_image=image, **tiles_args(demo, mode_type="Chess"))
    assert spy.regions[4:] == [(0, 0, 80, 80), (48, 48, 128, 128), (48, 0, 128, 80), (0, 48, 80, 128)]
    # the top left tile comes first either way; the second tile sampled differs, and so does the picture
    torch.testing.assert_close(spy.calls[0][2], spy.calls[4][2])
    assert not torch.equal(spy.calls[1][2], spy.calls[5][2])
    assert (linear - chess).abs().max() > 0.01
    # one row of two tiles: white then black is the linear order, so the same picture
    wide = demo["image"].repeat(1, 1, 2, 1)
    a = call(registry, "UltimateSDUpscaleNoUpscale", upscaled_image=wide, **tiles_args(demo))
    b = call(registry, "UltimateSDUpscaleNoUpscale", upscaled_image=wide, **tiles_args(demo, mode_type="Chess"))
    torch.testing.assert_close(a, b, atol=0, rtol=0)


def test_tiles_batch_as_the_pack_batches_them(registry, demo, monkeypatch):
    class S:
        tile_width = tile_height = 64
        tile_padding, mask_blur, denoise = 16, 8, 0.5
    S.mode_type = "Linear"
    assert [len(b) for b in usdu.batches(usdu.redraw_jobs(192, 128, S), 4)] == [4, 2]
    S.mode_type = "Chess"  # batches never mix the colours: whites (0,0) (2,0) (1,1), then blacks
    assert [len(b) for b in usdu.batches(usdu.redraw_jobs(192, 128, S), 2)] == [2, 1, 2, 1]
    # batch_size 2 on one row of two tiles: both crops from the image as it was, sampled together
    spy = Spy(monkeypatch)
    spy.positive = demo["positive"]
    wide = demo["image"].repeat(1, 1, 2, 1)
    out = call(registry, "UltimateSDUpscaleNoUpscale", upscaled_image=wide, **tiles_args(demo, batch_size=2))
    ((seed, denoise, latent),) = spy.calls
    assert seed == 7 and latent.shape == (2, 4, 10, 10) and spy.regions == []  # conditioning uncut
    # 80x64 crops (the canvas is 64 high), resized (Lanczos) to the 80x80 processing size
    crops = [eight_bit(wide).crop(box).resize((80, 80), Image.LANCZOS) for box in ((0, 0, 80, 64), (48, 0, 128, 64))]
    crops = torch.stack([torch.from_numpy(np.asarray(c, dtype=np.float32) / 255) for c in crops])
    torch.testing.assert_close(latent, demo["vae"].encode(crops))
    one_by_one = call(registry, "UltimateSDUpscaleNoUpscale", upscaled_image=wide, **tiles_args(demo))
    assert out.shape == one_by_one.shape and (out - one_by_one).abs().max() > 0.01  # the second tile's noise differs
    with pytest.raises(NodeInputError) as e:
        call(registry, "UltimateSDUpscaleNoUpscale", upscaled_image=wide.repeat(2, 1, 1, 1),
             **tiles_args(demo, batch_size=2))
    assert e.value.input == "batch_size"


def test_controlnet_hints_are_cut_to_the_tile():
    from graphflow.models.controlnet import ControlApplied
    hint = torch.rand(1, 64, 64, 3)
    first = ControlApplied(None, torch.rand(1, 32, 32, 3), 0.5)
    control = ControlApplied(None, hint, 1.0, previous=first)
    ((_, options),) = usdu.crop_conditioning([("emb", {"control": control})], (48, 0, 128, 80), (64, 64),
                                             (128, 128), (80, 80))
    cut = options["control"]
    assert cut is not control and control.image is hint  # a copy: the graph's conditioning is untouched
    # the region in the hint's pixels: 24..64 x 0..40, resized (nearest) to the sampled 80x80
    assert cut.image.shape == (1, 80, 80, 3)
    torch.testing.assert_close(cut.image, hint[:, 0:40, 24:64].repeat_interleave(2, 1).repeat_interleave(2, 2))
    assert cut.previous.image.shape == (1, 80, 80, 3) and cut.strength == 1.0 and cut.previous.strength == 0.5
    torch.testing.assert_close(cut.previous.image, first.image[:, 0:20, 12:32].repeat_interleave(4, 1)
                               .repeat_interleave(4, 2))


def test_a_controlnet_steers_each_tile_through_its_cut_hint(registry, demo):
    """The bundled silhouette ControlNet with a hint for the whole 128x128 canvas: each tile samples
    with its part of the hint (a shape mismatch would fail), and the control changes the picture."""
    net = call(registry, "LoadControlNet", control_net_name="graphflow-demo-silhouette.safetensors")
    picture = Image.open(BUNDLED / "inputs" / "hint-circle-bottom-right.png").convert("RGB").resize((128, 128))
    hint = torch.from_numpy(np.asarray(picture, dtype=np.float32) / 255.0)[None]
    positive = call(registry, "ApplyControlNet", conditioning=demo["positive"], control_net=net, image=hint)
    positive = positive[0] if isinstance(positive, tuple) else positive
    image = demo["image"].repeat(1, 2, 2, 1)
    with_control = call(registry, "UltimateSDUpscaleNoUpscale", upscaled_image=image,
                        **tiles_args(demo, positive=positive, denoise=0.8))
    without = call(registry, "UltimateSDUpscaleNoUpscale", upscaled_image=image, **tiles_args(demo, denoise=0.8))
    assert with_control.shape == without.shape and (with_control - without).abs().max() > 0.01


def test_a_masked_and_an_area_prompt_sample_per_tile(registry, demo):
    """Another prompt with a mask and with an area (the right or left half of the 64x64
    picture), beside the whole-picture prompt, run through the 2x2 tiles of the 128x128 canvas,
    each tile getting its cut of them."""
    mask = torch.zeros(1, 64, 64)
    mask[:, :, 32:] = 1.0
    masked = call(registry, "ConditioningSetMask", conditioning=demo["other"], mask=mask, strength=1.0)
    area = [(emb, {**options, "area": (8, 4, 0, 0), "strength": 1.0}) for emb, options in demo["other"]]
    image = demo["image"].repeat(1, 2, 2, 1)
    plain = call(registry, "UltimateSDUpscaleNoUpscale", upscaled_image=image, **tiles_args(demo, denoise=0.8))
    for positive in (masked, area):
        positive = positive[0] if isinstance(positive, tuple) else positive
        out = call(registry, "UltimateSDUpscaleNoUpscale", upscaled_image=image,
                   **tiles_args(demo, positive=positive + demo["positive"], denoise=0.8))
        assert out.shape == plain.shape and torch.isfinite(out).all() and (out - plain).abs().max() > 0.01


def test_seams_fix_touches_only_its_bands(registry, demo):
    image = demo["image"].repeat(1, 2, 2, 1)  # 128x128: 2x2 tiles of 64, seams at x = 64 and y = 64
    args = tiles_args(demo, mode_type="None")
    # Band Pass, 16 wide: the bands x, y in 56..72 only (no blur: the band's own gradient)
    band = call(registry, "UltimateSDUpscaleNoUpscale", upscaled_image=image, **{**args, "seam_fix_mode": "Band Pass"})
    inside = torch.zeros(128, 128, dtype=torch.bool)
    inside[56:72, :] = inside[:, 56:72] = True
    assert torch.equal(band[0][~inside], image[0][~inside])
    assert (band[0][inside] - image[0][inside]).abs().max() > 0.01
    # Half Tile on one row of three tiles: passes centred on x = 64 and 128, each a tile wide plus
    # padding 16: x in 16..176 at most; the outer columns stay as they were
    wide = demo["image"].repeat(1, 1, 3, 1)
    half = call(registry, "UltimateSDUpscaleNoUpscale", upscaled_image=wide, **{**args, "seam_fix_mode": "Half Tile"})
    assert torch.equal(half[:, :, :16], wide[:, :, :16]) and torch.equal(half[:, :, 176:], wide[:, :, 176:])
    assert (half[:, :, 56:72] - wide[:, :, 56:72]).abs().max() > 0.01
    # + Intersections adds one pass on the inner corner (64, 64), a tile centred there, no padding
    halves = call(registry, "UltimateSDUpscaleNoUpscale", upscaled_image=image,
                  **{**args, "seam_fix_mode": "Half Tile"})
    corners = call(registry, "UltimateSDUpscaleNoUpscale", upscaled_image=image,
                   **{**args, "seam_fix_mode": "Half Tile + Intersections"})
    outside = torch.ones(128, 128, dtype=torch.bool)
    outside[32:96, 32:96] = False
    assert torch.equal(corners[0][outside], halves[0][outside])
    assert (corners[0][~outside] - halves[0][~outside]).abs().max() > 0.01


def test_seam_passes_sample_at_the_redraw_denoise(registry, demo, monkeypatch):
    """As in the pack, whose sampler reads p.denoise while the script sets seam_fix_denoise elsewhere."""
    spy = Spy(monkeypatch)
    spy.positive = demo["positive"]
    call(registry, "UltimateSDUpscaleNoUpscale", upscaled_image=demo["image"].repeat(1, 1, 2, 1),
         **tiles_args(demo, mode_type="None", seam_fix_mode="Band Pass", seam_fix_denoise=0.9))
    # one vertical band, x 56..72: padded by 16 to 40..88, less the last column (87); processing size
    # 16 + 2 * 16 = 48 by the image's 64, so 47 wide is widened to 48, on the left (39)
    assert [c[1] for c in spy.calls] == [0.5] and spy.regions == [(39, 0, 87, 64)]


def test_seam_jobs_counts():
    class S:
        tile_width = tile_height = 64
        seam_fix_width, seam_fix_padding, seam_fix_mask_blur, denoise = 16, 16, 4, 0.3
        mode_type = "None"
    # 3 rows, 4 cols: the pack's job counts
    for mode, count in (("None", 0), ("Band Pass", 3 + 2), ("Half Tile", 2 * 4 + 3 * 3),
                        ("Half Tile + Intersections", 2 * 4 + 3 * 3 + 2 * 3)):
        S.seam_fix_mode = mode
        assert len(list(usdu.seam_jobs(256, 192, S))) == count == usdu.job_count(256, 192, S)


# -- ComfyUI graphs -------------------------------------------------------------------------------

WIDGETS = [2.0, 7, "fixed", 2, 3.0, "euler", "normal", 0.5, "Chess", 64, 64, 8, 16, "Band Pass", 0.5, 16, 4, 16,
           True, False, 1]


@pytest.fixture
def usdu_folders(tmp_folders):
    (tmp_folders.models / "upscale_models").mkdir(parents=True)
    write_esrgan(tmp_folders.models / "upscale_models" / "esrgan_x4.safetensors", scale=4)
    (tmp_folders.inputs / "pic.png").write_bytes((BUNDLED / "inputs" / "red-circle-on-blue.png").read_bytes())
    return tmp_folders


def api_graph(no_upscale=False):
    base = {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "graphflow-demo.safetensors"}},
        "2": {"class_type": "CLIPTextEncode", "inputs": {"text": "a red circle", "clip": ["1", 1]}},
        "3": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["1", 1]}},
        "4": {"class_type": "LoadImage", "inputs": {"image": "pic.png"}},
        "5": {"class_type": "UpscaleModelLoader", "inputs": {"model_name": "esrgan_x4.safetensors"}},
    }
    names = ["upscale_by", "seed", "steps", "cfg", "sampler_name", "scheduler", "denoise", "mode_type",
             "tile_width", "tile_height", "mask_blur", "tile_padding", "seam_fix_mode", "seam_fix_denoise",
             "seam_fix_width", "seam_fix_mask_blur", "seam_fix_padding", "force_uniform_tiles", "tiled_decode",
             "batch_size"]
    widgets = dict(zip(names, [w for w in WIDGETS if w != "fixed"]))
    inputs = {"model": ["1", 0], "positive": ["2", 0], "negative": ["3", 0], "vae": ["1", 2], **widgets}
    if no_upscale:
        inputs.pop("upscale_by")
        base["6"] = {"class_type": "UltimateSDUpscaleNoUpscale", "inputs": {"upscaled_image": ["4", 0], **inputs}}
    else:
        base["6"] = {"class_type": "UltimateSDUpscale", "inputs": {"image": ["4", 0], "upscale_model": ["5", 0],
                                                                    **inputs}}
    return base


def ui_graph(no_upscale=False):
    """The same graph as ComfyUI's editor saves it: the pack's widgets in its input order."""
    def node(id, type, widgets, inputs=(), outputs=()):
        return {"id": id, "type": type, "pos": [0, 0], "size": [200, 100], "flags": {}, "order": id, "mode": 0,
                "inputs": [{"name": n, "type": t, "link": link} for n, t, link in inputs],
                "outputs": [{"name": n, "type": t, "links": links} for n, t, links in outputs],
                "properties": {}, "widgets_values": widgets}
    links = [[1, 1, 0, 6, 1, "MODEL"], [2, 2, 0, 6, 2, "CONDITIONING"], [3, 3, 0, 6, 3, "CONDITIONING"],
             [4, 1, 2, 6, 4, "VAE"], [5, 4, 0, 6, 0, "IMAGE"], [6, 1, 1, 2, 0, "CLIP"], [7, 1, 1, 3, 0, "CLIP"],
             [8, 5, 0, 6, 5, "UPSCALE_MODEL"]]
    nodes = [
        node(1, "CheckpointLoaderSimple", ["graphflow-demo.safetensors"],
             outputs=[("MODEL", "MODEL", [1]), ("CLIP", "CLIP", [6, 7]), ("VAE", "VAE", [4])]),
        node(2, "CLIPTextEncode", ["a red circle"], [("clip", "CLIP", 6)], [("CONDITIONING", "CONDITIONING", [2])]),
        node(3, "CLIPTextEncode", [""], [("clip", "CLIP", 7)], [("CONDITIONING", "CONDITIONING", [3])]),
        node(4, "LoadImage", ["pic.png", "image"], outputs=[("IMAGE", "IMAGE", [5]), ("MASK", "MASK", [])]),
    ]
    first = [("upscaled_image" if no_upscale else "image", "IMAGE", 5), ("model", "MODEL", 1),
             ("positive", "CONDITIONING", 2), ("negative", "CONDITIONING", 3), ("vae", "VAE", 4)]
    if no_upscale:
        links.pop()
        nodes.append(node(6, "UltimateSDUpscaleNoUpscale", WIDGETS[1:], first, [("IMAGE", "IMAGE", [])]))
    else:
        nodes.append(node(5, "UpscaleModelLoader", ["esrgan_x4.safetensors"],
                          outputs=[("UPSCALE_MODEL", "UPSCALE_MODEL", [8])]))
        nodes.append(node(6, "UltimateSDUpscale", WIDGETS, first + [("upscale_model", "UPSCALE_MODEL", 8)],
                          [("IMAGE", "IMAGE", [])]))
    return {"last_node_id": 6, "last_link_id": 8, "nodes": nodes, "links": links, "groups": [], "config": {},
            "extra": {}, "version": 0.4}


@pytest.mark.parametrize("no_upscale", [False, True])
def test_comfyui_graphs_run_and_map_widgets_by_the_packs_order(registry, usdu_folders, no_upscale):
    api = parse_workflow(api_graph(no_upscale), registry)
    ui = parse_workflow(ui_graph(no_upscale), registry)
    assert api.to_json()["nodes"]["6"] == ui.to_json()["nodes"]["6"]
    inputs = ui.to_json()["nodes"]["6"]["inputs"]
    assert inputs["mode_type"] == "Chess" and inputs["seam_fix_mode"] == "Band Pass" and inputs["tile_padding"] == 16
    assert inputs["seam_fix_mask_blur"] == 4 and inputs["seed"] == 7 and inputs["denoise"] == 0.5
    result = Executor(registry).run(ui, outputs=["6"])
    assert result.ok, result.error or result.problems
    out = result.values["6"][0]
    assert out.shape == ((1, 64, 64, 3) if no_upscale else (1, 128, 128, 3))
    assert torch.isfinite(out).all() and 0 <= out.min() and out.max() <= 1


def test_bad_inputs_name_node_and_input(registry, usdu_folders, demo):
    graph = api_graph()
    graph["6"]["inputs"]["seam_fix_mode"] = "Zigzag"
    result = Executor(registry).run(parse_workflow(graph, registry), outputs=["6"])
    assert not result.ok
    (problem,) = result.problems
    assert (problem.node_id, problem.node_type, problem.input) == ("6", "UltimateSDUpscale", "seam_fix_mode")
    assert "Zigzag" in problem.message and "Half Tile + Intersections" in problem.message
    # at run time, in a graph: two pictures with tiles batched
    graph = api_graph(no_upscale=True)
    graph["7"] = {"class_type": "RepeatImageBatch", "inputs": {"image": ["4", 0], "amount": 2}}
    graph["6"]["inputs"].update(upscaled_image=["7", 0], batch_size=2)
    result = Executor(registry).run(parse_workflow(graph, registry), outputs=["6"])
    assert not result.ok and result.error["node_type"] == "UltimateSDUpscaleNoUpscale"
    assert result.error["input"] == "batch_size" and "2 images" in result.error["message"]
    with pytest.raises(NodeInputError) as e:
        call(registry, "UltimateSDUpscaleNoUpscale", upscaled_image=demo["image"], **tiles_args(demo, vae=None))
    assert e.value.input == "vae"
    with pytest.raises(NodeInputError) as e:
        call(registry, "UltimateSDUpscaleCustomSample", image=demo["image"][:, :16, :16], upscale_by=0.1,
             **tiles_args(demo))
    assert e.value.input == "upscale_by" and "16x16" in str(e.value)
    with pytest.raises(NodeInputError) as e:
        call(registry, "UltimateSDUpscaleNoUpscale", upscaled_image=torch.rand(1, 64, 64), **tiles_args(demo))
    assert e.value.input == "upscaled_image"
    with pytest.raises(NodeInputError) as e:
        call(registry, "UltimateSDUpscaleNoUpscale", upscaled_image=demo["image"],
             **tiles_args(demo, seam_fix_mode="Band Pass", seam_fix_width=0))
    assert e.value.input == "seam_fix_width" and "Band Pass" in str(e.value)
