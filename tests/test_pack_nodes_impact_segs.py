"""Impact Pack's SEGS and detailer nodes (nodes/pack_nodes_impact_segs.py): MaskToSEGS's segments
against connected components (scipy) and the pack's crop-region rule worked in the test, the
blur against torchvision's GaussianBlur, the paste against its formula, the detailer on the demo
model (what changes, what stays bit-identical, the guide-size scaling, SEGSDetailer + SEGSPaste
against DetailerForEach), the filters, the clear errors, and UI / API saves with the pack's class
names read, run and written back."""

from dataclasses import replace

import numpy as np
import pytest
import torch
from PIL import Image
from scipy import ndimage
from torchvision.transforms import GaussianBlur

import nodes.pack_nodes_impact_segs as segs_module
from graphflow.comfy_format import export_api, export_ui
from graphflow.context import NodeInputError
from graphflow.executor import Executor
from graphflow.registry import Registry
from graphflow.testing import write_checkpoint
from graphflow.workflow import parse_workflow
from nodes.pack_nodes_impact_segs import SEG, Segs, blurred_mask, wildcard_plan
from tests.test_nodes_image_mask import call
from tests.test_pack_nodes import ui_graph, ui_node


@pytest.fixture(scope="module")
def registry():
    return Registry().load_builtin()


def crop_rule(width, height, bbox, factor, min_size=None):
    """The pack's make_crop_region, worked here from its text: the box grown about its centre, the
    corner truncated, then moved inside the picture (clamped where larger)."""
    out = []
    for limit, start, end in ((width, bbox[0], bbox[2]), (height, bbox[1], bbox[3])):
        size = (end - start) * factor if min_size is None else max(min_size, (end - start) * factor)
        corner = int(start + (end - start) / 2 - size / 2)
        if corner < 0:
            out.append((0, int(min(limit, size))))
        elif corner + size > limit:
            out.append((int(max(0, limit - size)), limit))
        else:
            out.append((corner, int(min(limit, corner + size))))
    return [out[0][0], out[1][0], out[0][1], out[1][1]]


@pytest.mark.parametrize("bbox, factor, want", [
    ((24, 20, 34, 30), 2.0, [19, 15, 39, 35]),   # inside: grown about the centre
    ((0, 0, 10, 10), 3.0, [0, 0, 30, 30]),       # off the top-left: moved in
    ((60, 60, 64, 64), 3.0, [52, 52, 64, 64]),   # off the bottom-right: moved in
    ((0, 0, 40, 40), 3.0, [0, 0, 64, 64]),       # larger than the picture: clamped
    ((3, 3, 8, 8), 1.5, [1, 1, 8, 8]),           # 7.5 wide: corner int(1.75), end int(8.5)
])
def test_crop_region_follows_the_pack(bbox, factor, want):
    assert segs_module.make_crop_region(64, 64, bbox, factor) == want == crop_rule(64, 64, bbox, factor)
    assert segs_module.make_crop_region(64, 48, bbox, factor, 20) == crop_rule(64, 48, bbox, factor, 20)


def drawn_mask():
    mask = np.zeros((80, 96), np.float32)
    mask[10:18, 8:22] = 1.0                       # a rectangle
    mask[40:60, 40:60] = 1.0                      # a ring: a square with a hole
    mask[46:54, 46:54] = 0.0
    mask[5:12, 70:78] = 0.5                       # a half-strength blob
    mask[70:72, 10:12] = 1.0                      # 2×2: dropped at drop_size 2
    mask[70:73, 30:33] = 1.0                      # 3×3: kept
    return mask


def test_mask_to_segs_parts_regions_and_masks(registry):
    mask = drawn_mask()
    for contour_fill in (False, True):
        segs = call(registry, "MaskToSEGS", mask=torch.from_numpy(mask)[None], combined=False, crop_factor=1.5,
                    bbox_fill=False, drop_size=2, contour_fill=contour_fill)
        assert segs.shape == (80, 96)
        labels, count = ndimage.label(mask > 0, structure=np.ones((3, 3)))
        want = {}
        for index, found in enumerate(ndimage.find_objects(labels), start=1):
            ys, xs = found
            if xs.stop - xs.start <= 2 or ys.stop - ys.start <= 2:
                continue
            bbox = (xs.start, ys.start, xs.stop, ys.stop)
            part = labels == index
            inside = ndimage.binary_fill_holes(part) if contour_fill else part
            region = crop_rule(96, 80, bbox, 1.5)
            x1, y1, x2, y2 = region
            values = inside.astype(np.float32) if contour_fill else mask * inside
            want[bbox] = (region, values[y1:y2, x1:x2])
        assert {seg.bbox for seg in segs.segs} == set(want) and len(want) == 4
        for seg in segs.segs:
            region, values = want[seg.bbox]
            assert list(seg.crop_region) == region and seg.label == "A" and seg.confidence == 1.0
            assert np.array_equal(seg.cropped_mask.numpy(), values)


def test_mask_to_segs_combined_and_bbox_fill(registry):
    mask = drawn_mask()
    segs = call(registry, "MaskToSEGS", mask=torch.from_numpy(mask)[None], combined=True, crop_factor=1.2,
                bbox_fill=False, drop_size=50, contour_fill=False)
    ys, xs = np.nonzero(mask)
    bbox = (xs.min(), ys.min(), xs.max(), ys.max())  # the last pixel, not after it (the pack's)
    seg, = segs.segs
    x1, y1, x2, y2 = crop_rule(96, 80, bbox, 1.2)
    assert seg.bbox == bbox and list(seg.crop_region) == [x1, y1, x2, y2]
    assert np.array_equal(seg.cropped_mask.numpy(), mask[y1:y2, x1:x2])
    filled = call(registry, "MaskToSEGS", mask=torch.from_numpy(mask)[None], combined=False, crop_factor=2.0,
                  bbox_fill=True, drop_size=2, contour_fill=False)
    ring = next(s for s in filled.segs if s.bbox == (40, 40, 60, 60))
    cx1, cy1 = ring.crop_region[:2]
    assert ring.cropped_mask[40 - cy1:60 - cy1, 40 - cx1:60 - cx1].eq(1).all()
    assert ring.cropped_mask.sum() == 400


def test_too_many_parts_are_refused(registry, monkeypatch):
    monkeypatch.setattr(segs_module, "MAX_SEGMENTS", 3)
    with pytest.raises(NodeInputError) as e:
        call(registry, "MaskToSEGS", mask=torch.from_numpy(drawn_mask())[None], combined=False, crop_factor=1.5,
             bbox_fill=False, drop_size=2, contour_fill=False)
    assert e.value.input == "mask" and "drop_size" in str(e.value)


def test_crops_beyond_the_memory_are_refused_before_they_are_made(registry, monkeypatch):
    """A crop region may be the whole picture: the crops' pixels, not only their count, are held
    to the memory (check_run_memory's rule, here on a machine of 600 kB): 4 specks at crop_factor
    100 give 4 whole 200×200 crops (640 kB of masks); at 1.0, 4 small ones. A batch of more masks
    than MAX_SEGMENTS is refused with combined too."""
    from graphflow import resource_limits
    monkeypatch.setattr(resource_limits, "machine_ram", lambda: 600_000)
    mask = torch.zeros(1, 200, 200)
    for x in (20, 60, 100, 140):
        mask[0, 90:100, x:x + 10] = 1.0
    settings = dict(combined=False, bbox_fill=False, drop_size=2, contour_fill=False)
    with pytest.raises(NodeInputError) as e:
        call(registry, "MaskToSEGS", mask=mask, crop_factor=100.0, **settings)
    assert e.value.input == "crop_factor" and "memory" in str(e.value)
    small = call(registry, "MaskToSEGS", mask=mask, crop_factor=1.0, **settings)
    assert len(small.segs) == 4
    with pytest.raises(NodeInputError) as e:
        call(registry, "MakeTileSEGS", images=torch.zeros(1, 200, 200, 3), bbox_size=64, crop_factor=10.0)
    assert e.value.input == "crop_factor"
    whole = SEG(None, torch.ones(200, 200), 1.0, (0, 0, 200, 200), (90, 90, 110, 110), "A")
    image = torch.zeros(1, 200, 200, 3)
    with pytest.raises(NodeInputError) as e:  # 40000 pixels × 3 values × 4 bytes, twice
        call(registry, "SEGSDetailer", image=image, segs=Segs((200, 200), (whole,)),
             basic_pipe=("DUMMY", None, None, [], []), batch_size=2)
    assert e.value.input == "batch_size"
    with pytest.raises(NodeInputError) as e:  # 40000 pixels × (3 + 3 + 4) values × 4 bytes
        call(registry, "DetailerForEach", image=image, segs=Segs((200, 200), (whole,)), model="DUMMY", clip=None,
             vae=None, positive=[], negative=[])
    assert e.value.input == "segs"
    monkeypatch.setattr(segs_module, "MAX_SEGMENTS", 3)
    with pytest.raises(NodeInputError) as e:
        call(registry, "MaskToSEGS", mask=mask.repeat(4, 1, 1), crop_factor=1.0, **{**settings, "combined": True})
    assert e.value.input == "mask"


def test_dilation_in_segs_reports_each_segment(registry, monkeypatch):
    """A large square on many whole-picture crops takes minutes: each segment reports progress,
    which is where a run is stopped (interrupt, max_run_seconds)."""
    reported = []
    monkeypatch.setattr(segs_module, "progress", lambda value, total: reported.append((value, total)))
    seg = SEG(None, torch.zeros(8, 8), 1.0, (0, 0, 8, 8), (2, 2, 6, 6), "A")
    call(registry, "DilateMaskInSEGS", segs=Segs((8, 8), (seg,) * 3), dilation=3)
    assert reported == [(0, 3), (1, 3), (2, 3)]


@pytest.mark.parametrize("height, width, feather", [(30, 40, 5), (30, 40, 20), (4, 6, 1), (40, 33, 3)])
def test_blur_is_torchvisions_gaussian_blur(height, width, feather):
    mask = (torch.rand(height, width) > 0.6).float()
    size = feather * 2 + 1
    if min(height, width) <= size:
        size = min(height, width) // 2
        size += 1 - size % 2
    want = GaussianBlur(kernel_size=size, sigma=10.0)(mask[None, None])[0, 0]
    assert torch.allclose(blurred_mask(mask, feather)[0, ..., 0], want, atol=1e-6)


def test_blur_leaves_small_masks_and_zero_feather():
    mask = (torch.rand(3, 9) > 0.5).float()
    assert torch.equal(blurred_mask(mask, 5)[0, ..., 0], mask)  # the kernel would be 1: skipped, as the pack
    assert torch.equal(blurred_mask(mask, 0)[0, ..., 0], mask)


def test_segs_paste_is_the_blend_formula(registry):
    image = torch.rand(1, 40, 50, 3)
    patch = torch.rand(1, 20, 16, 3)
    mask = torch.zeros(20, 16)
    mask[5:15, 4:12] = 1.0
    segs = Segs((40, 50), (SEG(patch, mask, 1.0, (30, 10, 46, 30), (34, 15, 42, 25), "A"),))
    out = call(registry, "SEGSPaste", image=image, segs=segs, feather=3, alpha=200)
    blur = GaussianBlur(kernel_size=7, sigma=10.0)(mask[None, None])[0, 0][..., None] * (200 / 255)
    want = image.clone()
    want[0, 10:30, 30:46] = (1 - blur) * image[0, 10:30, 30:46] + blur * patch[0]
    assert torch.allclose(out, want, atol=1e-6)
    outside = torch.ones(40, 50, dtype=torch.bool)
    outside[10:30, 30:46] = False
    assert torch.equal(out[0][outside], image[0][outside])


def test_segs_paste_on_a_batch(registry):
    """Picture i of the segment onto picture i; three masks for two pictures OR-ed as 8 bits and
    made 0 / 1 above 0.1 (the pack's rule, worked here in numpy); too few pictures in the segment
    or ref_image_opt are refused by name."""
    image = torch.rand(2, 16, 16, 3)
    patches = torch.rand(2, 8, 8, 3)
    masks = torch.zeros(3, 8, 8)
    masks[0, :4] = 0.3
    masks[1, 6:, 6:] = 0.05
    masks[2, :, :2] = 1.0
    seg = SEG(patches, masks, 1.0, (4, 4, 12, 12), (6, 6, 10, 10), "A")
    out = call(registry, "SEGSPaste", image=image, segs=Segs((16, 16), (seg,)), feather=0, alpha=255)
    bits = np.bitwise_or.reduce((masks.numpy() * 255).astype(np.uint8), axis=0)
    combined = torch.from_numpy((bits / 255.0 > 0.1).astype(np.float32))[..., None]
    want = image.clone()
    want[:, 4:12, 4:12] = (1 - combined) * image[:, 4:12, 4:12] + combined * patches
    assert torch.equal(out, want) and not combined[6:, 6:].any()
    one = SEG(patches[:1], masks[0], 1.0, (4, 4, 12, 12), (6, 6, 10, 10), "A")
    for change, name in (({"segs": Segs((16, 16), (one,))}, "segs"),
                         ({"segs": Segs((16, 16), (one,)), "ref_image_opt": image[:1]}, "ref_image_opt"),
                         ({"segs": Segs((16, 16), (one,)), "ref_image_opt": torch.rand(2, 8, 8, 3)}, "ref_image_opt")):
        with pytest.raises(NodeInputError) as e:
            call(registry, "SEGSPaste", **{"image": image, "feather": 0, **change})
        assert e.value.input == name
    ref = image.flip(0)
    from_ref = call(registry, "SEGSPaste", image=image, segs=Segs((16, 16), (one,)), feather=0, ref_image_opt=ref)
    inside = masks[0][..., None]
    assert torch.equal(from_ref[:, 4:12, 4:12], (1 - inside) * image[:, 4:12, 4:12] + inside * ref[:, 4:12, 4:12])


def test_combined_mask_and_mask_list(registry):
    a = SEG(None, torch.tensor([[0.5, 1.0], [0.0, 0.25]]), 1.0, (1, 1, 3, 3), (1, 1, 3, 3), "A")
    b = SEG(None, torch.tensor([[1.0, 0.0]]), 1.0, (2, 2, 4, 3), (2, 2, 4, 3), "B")
    segs = Segs((4, 5), (a, b))
    combined, = call(registry, "SegsToCombinedMask", segs=segs)
    want = np.zeros((4, 5), np.uint8)
    want[1:3, 1:3] |= (a.cropped_mask.numpy() * 255).astype(np.uint8)
    want[2:3, 2:4] |= (b.cropped_mask.numpy() * 255).astype(np.uint8)
    assert torch.equal(combined, torch.from_numpy(want.astype(np.float32) / 255.0))
    masks = call(registry, "SEGSToMaskList", segs=segs)
    assert len(masks) == 2 and masks[1][0, 2, 2] == 1.0 and masks[1].sum() == 1.0
    assert call(registry, "CountEltsInSEGS", segs=segs) == 2


def test_filters(registry):
    def seg(region, label, confidence=1.0):
        return SEG(None, torch.ones(region[3] - region[1], region[2] - region[0]), confidence, region, region, label)
    items = (seg((0, 0, 10, 10), "face"), seg((5, 5, 35, 15), "left_eye", 0.5), seg((0, 20, 20, 40), "hand", 0.9))
    segs = Segs((50, 50), items)
    biggest, rest = call(registry, "SEGSOrderedFilter", segs=segs, target="area(=w*h)", order=True, take_start=0,
                         take_count=2)
    assert biggest.segs == (items[2], items[1]) and rest.segs == (items[0],)
    wide, narrow = call(registry, "SEGSRangeFilter", segs=segs, target="width", mode=True, min_value=15,
                        max_value=30)
    assert wide.segs == (items[1], items[2]) and narrow.segs == (items[0],)
    out, _ = call(registry, "SEGSRangeFilter", segs=segs, target="confidence(0-100)", mode=False, min_value=60,
                  max_value=100)
    assert out.segs == (items[1],)
    eyes, others = call(registry, "SEGSLabelFilter", segs=segs, preset="all", labels="eyes, hand")
    assert eyes.segs == (items[1], items[2]) and others.segs == (items[0],)
    joined = call(registry, "SEGSConcat", segs1=eyes, segs2=Segs((0, 0), ()), segs3=others)
    assert joined.segs == (items[1], items[2], items[0]) and joined.shape == (50, 50)


def test_wildcard_plan_orders_and_items():
    a = SEG(None, torch.ones(1, 1), 1.0, (0, 0, 9, 9), (30, 0, 40, 10), "face")
    b = SEG(None, torch.ones(1, 1), 1.0, (0, 0, 9, 9), (0, 5, 5, 10), "hand")
    assert wildcard_plan("", (a, b)) == ((a, b), [(None, "")] * 2, False)
    assert wildcard_plan("[ASC]x[SEP:7]y", (a, b)) == ((b, a), [(None, "x"), (7, "y")], False)
    assert wildcard_plan("[DSC-SIZE]only", (b, a)) == ((a, b), [(None, "only"), (None, "only")], False)
    assert wildcard_plan("[CONCAT][LAB][ALL]red [face]eyes", (a, b))[1:] == ([(None, "redeyes"), (None, "red")], True)
    with pytest.raises(NodeInputError):
        wildcard_plan("[RND]a[SEP]b", (a, b))
    # the pack's chooser is asked only for segments it details: one with an empty mask takes no item
    empty = SEG(None, torch.zeros(1, 1), 1.0, (0, 0, 9, 9), (0, 0, 4, 4), "face")
    ordered, items, _ = wildcard_plan("[ASC]x[SEP:7]y", (a, empty, b))
    assert ordered == (empty, b, a) and items[1:] == [(None, "x"), (7, "y")]


# -- the detailer on the demo model ----------------------------------------------------------------


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    folder = tmp_path_factory.mktemp("segs_models")
    write_checkpoint(folder / "tiny.safetensors", "sd1")
    return folder / "tiny.safetensors"


@pytest.fixture
def demo(registry, tmp_folders, model_file):
    (tmp_folders.models / "checkpoints").mkdir(exist_ok=True)
    (tmp_folders.models / "checkpoints" / "tiny.safetensors").symlink_to(model_file)
    model, clip, vae = call(registry, "LoadCheckpoint", checkpoint="tiny.safetensors")
    return {"model": model, "clip": clip, "vae": vae,
            "positive": call(registry, "CLIPEncode", clip=clip, text="a face"),
            "negative": call(registry, "CLIPEncode", clip=clip, text="")}


def picture_and_segs(registry):
    generator = torch.Generator().manual_seed(3)
    image = torch.rand(1, 64, 72, 3, generator=generator)
    mask = torch.zeros(1, 64, 72)
    mask[0, 20:30, 24:34] = 1.0
    segs = call(registry, "MaskToSEGS", mask=mask, combined=False, crop_factor=2.0, bbox_fill=False, drop_size=2,
                contour_fill=True)
    return image, segs


DETAIL = dict(guide_size=64, guide_size_for=True, max_size=128, seed=5, steps=2, cfg=7.0, sampler_name="euler",
              scheduler="normal", denoise=0.6, feather=3, noise_mask=True, force_inpaint=True, wildcard="", cycle=1,
              inpaint_model=False, noise_mask_feather=4)


def test_detailer_changes_the_segment_only_and_scales_as_the_pack(registry, demo, monkeypatch):
    image, segs = picture_and_segs(registry)
    sizes = []
    resize = segs_module.lanczos
    monkeypatch.setattr(segs_module, "lanczos", lambda picture, w, h: sizes.append((w, h)) or resize(picture, w, h))
    out = call(registry, "DetailerForEach", image=image, segs=segs, **demo, **DETAIL)
    seg, = segs.segs
    x1, y1, x2, y2 = seg.crop_region
    # the pack's sizing: the bbox's shorter side (10) to guide_size 64: x6.4 on the 20×20 crop = 128
    upscale = 64 / min(seg.bbox[2] - seg.bbox[0], seg.bbox[3] - seg.bbox[1])
    assert sizes == [(int((x2 - x1) * upscale), int((y2 - y1) * upscale)), (x2 - x1, y2 - y1)]
    outside = torch.ones(64, 72, dtype=torch.bool)
    outside[y1:y2, x1:x2] = False
    assert torch.equal(out[0][outside], image[0][outside])
    blur = blurred_mask(seg.cropped_mask, 3)[0, ..., 0]
    region_in, region_out = image[0, y1:y2, x1:x2], out[0, y1:y2, x1:x2]
    assert torch.equal(region_out[blur == 0], region_in[blur == 0])
    assert (region_out[blur > 0.5] - region_in[blur > 0.5]).abs().mean() > 0.01


def test_guide_size_beyond_max_size_is_scaled_down(registry, demo, monkeypatch):
    image, segs = picture_and_segs(registry)
    sizes = []
    resize = segs_module.lanczos
    monkeypatch.setattr(segs_module, "lanczos", lambda picture, w, h: sizes.append((w, h)) or resize(picture, w, h))
    call(registry, "DetailerForEach", image=image, segs=segs, **demo, **{**DETAIL, "guide_size": 256, "max_size": 96,
                                                                           "guide_size_for": False})
    crop_w = segs.segs[0].crop_region[2] - segs.segs[0].crop_region[0]
    upscale = 256 / crop_w                          # the crop region's shorter side to guide_size
    new = int(crop_w * upscale)
    upscale *= 96 / new                             # then its longer side down to max_size
    assert sizes[0] == (int(crop_w * upscale),) * 2


def test_detailer_skips_big_segments_unless_forced(registry, demo):
    """A bbox already guide_size each way is skipped; force_inpaint samples it at its own size
    (the pack's upscale 1), and a DUMMY model samples nothing."""
    image = torch.rand(1, 80, 80, 3, generator=torch.Generator().manual_seed(4))
    mask = torch.zeros(1, 80, 80)
    mask[0, 8:72, 8:72] = 1.0
    segs = call(registry, "MaskToSEGS", mask=mask, combined=False, crop_factor=1.0, bbox_fill=False, drop_size=2,
                contour_fill=True)
    assert segs.segs[0].bbox == (8, 8, 72, 72)
    skipped = call(registry, "DetailerForEach", image=image, segs=segs, **demo, **{**DETAIL, "force_inpaint": False})
    assert torch.equal(skipped, image)
    forced = call(registry, "DetailerForEach", image=image, segs=segs, **demo, **DETAIL)
    assert not torch.equal(forced, image)
    dummy = call(registry, "DetailerForEach", image=image, segs=segs, **{**demo, "model": "DUMMY"}, **DETAIL)
    assert torch.allclose(dummy, image, atol=1e-6)


def test_detailer_is_the_chain_of_core_nodes(registry, demo):
    """One segment detailed is, to the bit, the crop scaled up (LANCZOS), VAEEncode,
    SetLatentNoiseMask (the mask blurred by noise_mask_feather), KSampler on the
    DifferentialDiffusion model with seed + 0, VAEDecode, scaled back and pasted through the mask
    blurred by feather. (Even denoise 0.0001, the pack's least, changes the demo model's latent
    well beyond a VAE round trip: its weights are random, so that is not asserted.)"""
    image, segs = picture_and_segs(registry)
    out = call(registry, "DetailerForEach", image=image, segs=segs, **demo, **DETAIL)
    seg, = segs.segs
    x1, y1, x2, y2 = seg.crop_region
    up = segs_module.lanczos(image[:, y1:y2, x1:x2], 128, 128)
    latent = call(registry, "VAEEncode", pixels=up, vae=demo["vae"])
    latent = call(registry, "SetLatentNoiseMask", samples=latent, mask=blurred_mask(seg.cropped_mask, 4)[..., 0])
    model = call(registry, "DifferentialDiffusion", model=demo["model"])
    sampled = call(registry, "KSampler", model=model, seed=5, steps=2, cfg=7.0, sampler_name="euler",
                   scheduler="normal", positive=demo["positive"], negative=demo["negative"], latent_image=latent,
                   denoise=0.6)
    back = segs_module.lanczos(call(registry, "VAEDecode", samples=sampled, vae=demo["vae"]), x2 - x1, y2 - y1)
    blur = blurred_mask(seg.cropped_mask, 3)[0]
    want = image.clone()
    want[0, y1:y2, x1:x2] = (1 - blur) * image[0, y1:y2, x1:x2] + blur * back[0]
    assert torch.equal(out, want)


def test_a_model_with_differential_diffusion_keeps_its_own(registry, demo, monkeypatch):
    """noise_mask_feather above 0 applies DifferentialDiffusion (strength 1) to the model, but not
    over one the user gave it already (the newer pack skips a model with a denoise-mask function)."""
    strengths = []
    core = segs_module._core

    def spy(cls, *args, **inputs):
        if cls.__name__ == "KSampler":
            strengths.append(inputs["model"].options.get("differential_diffusion"))
        return core(cls, *args, **inputs)
    monkeypatch.setattr(segs_module, "_core", spy)
    image, segs = picture_and_segs(registry)
    pipe = (demo["model"], demo["clip"], demo["vae"], demo["positive"], demo["negative"])
    call(registry, "DetailerForEach", image=image, segs=segs, **demo, **DETAIL)
    own = call(registry, "DifferentialDiffusion", model=demo["model"], strength=0.5)
    call(registry, "DetailerForEach", image=image, segs=segs, **{**demo, "model": own}, **DETAIL)
    call(registry, "SEGSDetailer", image=image, segs=segs, basic_pipe=(own, *pipe[1:]),
         **{k: v for k, v in DETAIL.items() if k not in ("feather", "wildcard")})
    call(registry, "DetailerForEach", image=image, segs=segs, **demo, **{**DETAIL, "noise_mask_feather": 0})
    assert strengths == [1.0, 0.5, 0.5, None]


def test_lanczos_is_pils_on_8_bits():
    picture = torch.rand(1, 9, 13, 3)
    pixels = np.clip(picture[0].numpy() * 255.0, 0, 255).astype(np.uint8)
    want = np.asarray(Image.fromarray(pixels).resize((31, 20), Image.Resampling.LANCZOS), np.float32) / 255.0
    assert torch.equal(segs_module.lanczos(picture, 31, 20)[0], torch.from_numpy(want))


def test_segs_detailer_and_paste_equal_detailer_for_each(registry, demo):
    image, segs = picture_and_segs(registry)
    pipe = (demo["model"], demo["clip"], demo["vae"], demo["positive"], demo["negative"])
    whole = call(registry, "DetailerForEach", image=image, segs=segs, **demo, **DETAIL)
    settings = {k: v for k, v in DETAIL.items() if k not in ("feather", "wildcard")}
    detailed, cnet = call(registry, "SEGSDetailer", image=image, segs=segs, basic_pipe=pipe,
                          **{**settings, "seed": DETAIL["seed"] - 1})  # SEGSDetailer starts at seed + 1
    assert len(cnet) == 1 and cnet[0].shape == (1, 64, 64, 3)
    pasted = call(registry, "SEGSPaste", image=image, segs=detailed, feather=DETAIL["feather"], alpha=255)
    assert torch.equal(pasted, whole)
    pictures = call(registry, "SEGSToImageList", segs=detailed)
    assert torch.equal(pictures[0], detailed.segs[0].cropped_image)
    debug = call(registry, "DetailerForEachDebug", image=image, segs=segs, **demo, **DETAIL)
    assert torch.equal(debug[0], whole) and torch.equal(debug[2][0], detailed.segs[0].cropped_image)
    assert debug[3][0].shape[-1] == 4


def test_empty_segments_take_no_wildcard_item(registry, demo):
    """(empty, a, b) in [ASC] order with items x, [STOP]: as the pack, a takes x and is detailed,
    b takes [STOP] (positional items would give a the [STOP] and detail nothing)."""
    image = torch.rand(1, 16, 40, 3)
    empty, a, b = (SEG(None, torch.full((8, 8), value), 1.0, (x, 4, x + 8, 12), (x, 4, x + 8, 12), "A")
                   for value, x in ((0.0, 0), (1.0, 12), (1.0, 24)))
    out = call(registry, "DetailerForEachDebug", image=image, segs=Segs((16, 40), (empty, a, b)),
               **{**demo, "model": "DUMMY"}, **{**DETAIL, "wildcard": "[ASC]x[SEP][STOP]"})
    cropped = out[1]
    assert len(cropped) == 1 and torch.equal(cropped[0], image[:, 4:12, 12:20])


def test_seeds_past_the_largest_wrap_to_zero(registry, demo):
    """seed + 1 (SEGSDetailer) and seed + segment number (DetailerForEach) past 2**64 - 1 go on
    from 0: the same pictures as seed 0, where the pack's sampler fails."""
    from nodes.sampling import SEED_MAX
    image, segs = picture_and_segs(registry)
    pipe = (demo["model"], demo["clip"], demo["vae"], demo["positive"], demo["negative"])
    settings = {k: v for k, v in DETAIL.items() if k not in ("feather", "wildcard")}
    last, _ = call(registry, "SEGSDetailer", image=image, segs=segs, basic_pipe=pipe, **{**settings, "seed": SEED_MAX})
    pasted = call(registry, "SEGSPaste", image=image, segs=last, feather=DETAIL["feather"], alpha=255)
    assert torch.equal(pasted, call(registry, "DetailerForEach", image=image, segs=segs, **demo,
                                    **{**DETAIL, "seed": 0}))
    a = segs.segs[0]
    b = replace(a, crop_region=(44, 30, 64, 50), bbox=(49, 35, 59, 45))
    both = call(registry, "DetailerForEach", image=image, segs=Segs(segs.shape, (a, b)), **demo,
                **{**DETAIL, "seed": SEED_MAX})
    first = call(registry, "DetailerForEach", image=image, segs=Segs(segs.shape, (a,)), **demo,
                 **{**DETAIL, "seed": SEED_MAX})
    assert torch.equal(both, call(registry, "DetailerForEach", image=first, segs=Segs(segs.shape, (b,)), **demo,
                                  **{**DETAIL, "seed": 0}))


def test_detailer_errors_name_the_input(registry, demo):
    image, segs = picture_and_segs(registry)
    cases = [({"image": image.repeat(2, 1, 1, 1)}, "image"), ({"detailer_hook": object()}, "detailer_hook"),
             ({"image": image[:, :32]}, "segs"), ({"wildcard": "[RND]a[SEP]b"}, "wildcard"),
             ({"segs": "not segs"}, "segs"), ({"wildcard": "a BREAK " * 120}, "wildcard")]
    for change, name in cases:
        with pytest.raises(NodeInputError) as e:
            call(registry, "DetailerForEach", **{"image": image, "segs": segs, **demo, **DETAIL, **change})
        assert e.value.input == name


# -- saves with the pack's class names -------------------------------------------------------------


def write_input(tmp_folders):
    pixels = (np.random.default_rng(1).random((64, 72, 3)) * 255).astype(np.uint8)
    alpha = np.full((64, 72), 255, np.uint8)
    alpha[20:30, 24:34] = 0  # LoadImage's mask is 1 - alpha: the part to detail
    Image.fromarray(np.dstack([pixels, alpha]), "RGBA").save(tmp_folders.inputs / "in.png")


DETAIL_WIDGETS = [64, True, 128, 5, "fixed", 2, 7.0, "euler", "normal", 0.6, 3, True, True, "", 1, False, 4, False,
                  False]


def test_ui_save_load_mask_segs_detail_save(registry, demo, tmp_folders):
    write_input(tmp_folders)
    nodes = [
        ui_node(1, "LoadImage", ["in.png", "image"], outputs=[("IMAGE", "IMAGE", [1]), ("MASK", "MASK", [2])]),
        ui_node(2, "MaskToSEGS", [False, 2.0, False, 2, True], [("mask", "MASK", 2, False)],
                [("SEGS", "SEGS", [3])]),
        ui_node(3, "CheckpointLoaderSimple", ["tiny.safetensors"],
                outputs=[("MODEL", "MODEL", [4]), ("CLIP", "CLIP", [5, 6, 7]), ("VAE", "VAE", [8])]),
        ui_node(4, "CLIPTextEncode", ["a face"], [("clip", "CLIP", 6, False)], [("CONDITIONING", "CONDITIONING", [9])]),
        ui_node(5, "CLIPTextEncode", [""], [("clip", "CLIP", 7, False)], [("CONDITIONING", "CONDITIONING", [10])]),
        ui_node(6, "DetailerForEach", DETAIL_WIDGETS,
                [("image", "IMAGE", 1, False), ("segs", "SEGS", 3, False), ("model", "MODEL", 4, False),
                 ("clip", "CLIP", 5, False), ("vae", "VAE", 8, False), ("positive", "CONDITIONING", 9, False),
                 ("negative", "CONDITIONING", 10, False), ("detailer_hook", "DETAILER_HOOK", None, False)],
                [("IMAGE", "IMAGE", [11])]),
        ui_node(7, "SaveImage", ["detailed"], [("images", "IMAGE", 11, False)]),
    ]
    links = [[1, 1, 0, 6, 0, "IMAGE"], [2, 1, 1, 2, 0, "MASK"], [3, 2, 0, 6, 1, "SEGS"], [4, 3, 0, 6, 2, "MODEL"],
             [5, 3, 1, 6, 3, "CLIP"], [6, 3, 1, 4, 0, "CLIP"], [7, 3, 1, 5, 0, "CLIP"], [8, 3, 2, 6, 4, "VAE"],
             [9, 4, 0, 6, 5, "CONDITIONING"], [10, 5, 0, 6, 6, "CONDITIONING"], [11, 6, 0, 7, 0, "IMAGE"]]
    graph = ui_graph(nodes, links)
    workflow = parse_workflow(graph, registry)
    saved = workflow.to_json()["nodes"]
    assert saved["6"]["inputs"]["seed"] == 5 and saved["6"]["inputs"]["noise_mask_feather"] == 4
    result = Executor(registry).run(workflow, outputs=["7", "6"])
    assert result.ok, (result.problems, result.error)
    loaded = result.values["1"][0]
    detailed = result.values["6"][0]
    seg, = result.values["2"][0].segs
    x1, y1, x2, y2 = seg.crop_region
    assert seg.bbox == (24, 20, 34, 30) and list(seg.crop_region) == crop_rule(72, 64, seg.bbox, 2.0)
    outside = torch.ones(64, 72, dtype=torch.bool)
    outside[y1:y2, x1:x2] = False
    assert torch.equal(detailed[0][outside], loaded[0][outside])
    assert not torch.equal(detailed, loaded)
    assert list(tmp_folders.outputs.glob("detailed_*.png"))
    written = export_ui(workflow, registry)
    by_id = {n["id"]: n for n in written["nodes"]}
    assert by_id[6]["type"] == "DetailerForEach" and by_id[6]["widgets_values"] == DETAIL_WIDGETS
    assert by_id[2]["type"] == "MaskToSEGS" and by_id[2]["widgets_values"] == [False, 2.0, False, 2, True]
    assert parse_workflow(written, registry).to_json()["nodes"] == saved


def test_api_prompt_segs_detailer_paste_preview_and_filters(registry, demo, tmp_folders):
    write_input(tmp_folders)
    detail = {k: v for k, v in DETAIL.items() if k not in ("feather", "wildcard")}
    graph = {
        "1": {"class_type": "LoadImage", "inputs": {"image": "in.png"}},
        "2": {"class_type": "MaskToSEGS", "inputs": {"mask": ["1", 1], "combined": False, "crop_factor": 2.0,
                                                     "bbox_fill": False, "drop_size": 2, "contour_fill": True}},
        "3": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "tiny.safetensors"}},
        "4": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["3", 1], "text": "a face"}},
        "5": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["3", 1], "text": ""}},
        "6": {"class_type": "ToBasicPipe", "inputs": {"model": ["3", 0], "clip": ["3", 1], "vae": ["3", 2],
                                                      "positive": ["4", 0], "negative": ["5", 0]}},
        "7": {"class_type": "ImpactSEGSOrderedFilter", "inputs": {"segs": ["2", 0], "target": "area(=w*h)",
                                                                  "order": True, "take_start": 0, "take_count": 1}},
        "8": {"class_type": "SEGSDetailer", "inputs": {"image": ["1", 0], "segs": ["7", 0], "basic_pipe": ["6", 0],
                                                       **detail, "refiner_ratio": 0.2, "batch_size": 1}},
        "9": {"class_type": "SEGSPaste", "inputs": {"image": ["1", 0], "segs": ["8", 0], "feather": 3, "alpha": 255}},
        "10": {"class_type": "SEGSPreview", "inputs": {"segs": ["8", 0], "alpha_mode": True, "min_alpha": 0.2}},
        "11": {"class_type": "SegsToCombinedMask", "inputs": {"segs": ["2", 0]}},
        "12": {"class_type": "SaveImage", "inputs": {"images": ["9", 0], "filename_prefix": "segs"}},
    }
    workflow = parse_workflow(graph, registry)
    result = Executor(registry).run(workflow, outputs=["12", "10", "11"])
    assert result.ok, (result.problems, result.error)
    mask = result.values["11"][0]
    assert torch.equal(mask, result.values["1"][1])  # the one part, filled: the loaded mask itself
    preview, = result.values["10"][0]
    seg, = result.values["8"][0].segs
    assert torch.allclose(preview, seg.cropped_image * seg.cropped_mask[None, ..., None])
    again = export_api(workflow, registry)
    assert {k: v["class_type"] for k, v in again.items()} == {k: v["class_type"] for k, v in graph.items()}
    assert parse_workflow(again, registry).to_json()["nodes"] == workflow.to_json()["nodes"]


def test_old_saves_toggle_choices_read_as_booleans(registry):
    """The pack's 2023 versions had choices where today's have toggles: read as today's, written
    back as today's."""
    graph = {
        "1": {"class_type": "SolidMask", "inputs": {"value": 1.0, "width": 64, "height": 64}},
        "2": {"class_type": "MaskToSEGS", "inputs": {"mask": ["1", 0], "combined": "True", "crop_factor": 3.0,
                                                     "bbox_fill": "enabled"}},
        "3": {"class_type": "SegsToCombinedMask", "inputs": {"segs": ["2", 0]}},
    }
    workflow = parse_workflow(graph, registry)
    inputs = workflow.to_json()["nodes"]["2"]["inputs"]
    assert inputs["combined"] is True and inputs["bbox_fill"] is True
    again = export_api(workflow, registry)["2"]["inputs"]
    assert again["combined"] is True and again["bbox_fill"] is True
    detailer = {"class_type": "DetailerForEach", "inputs": {"guide_size_for": "crop_region", "noise_mask": "disabled",
                                                            "force_inpaint": "enabled"}}
    read = parse_workflow({**graph, "4": detailer}, registry).to_json()["nodes"]["4"]["inputs"]
    assert (read["guide_size_for"], read["noise_mask"], read["force_inpaint"]) == (False, False, True)


def test_preview_and_image_list_of_crops_of_different_sizes(registry, tmp_folders):
    image = torch.rand(1, 40, 50, 3)
    small = SEG(None, torch.full((4, 6), 0.5), 1.0, (2, 3, 8, 7), (2, 3, 8, 7), "A")
    large = SEG(torch.rand(1, 10, 12, 3), torch.ones(10, 12), 1.0, (20, 20, 32, 30), (20, 20, 32, 30), "B")
    segs = Segs((40, 50), (small, large))
    shown = call(registry, "SEGSPreview", segs=segs, alpha_mode=True, min_alpha=0.2, fallback_image_opt=image)
    assert len(shown) == 2 and len(list(tmp_folders.temp.glob("*.png"))) == 2
    assert torch.equal(shown[0], image[:, 3:7, 2:8] * 0.5) and torch.equal(shown[1], large.cropped_image)
    pictures = call(registry, "SEGSToImageList", segs=segs, fallback_image_opt=image)
    assert torch.equal(pictures[0], image[:, 3:7, 2:8]) and pictures[1] is large.cropped_image
    assert call(registry, "SEGSToImageList", segs=Segs((0, 0), ()))[0].shape == (1, 64, 64, 3)


def test_conditioning_masks_are_cropped_to_the_segment():
    mask = torch.rand(1, 32, 36)
    conditioning = [(torch.zeros(1, 77, 8), {"mask": mask, "strength": 1.0}), (torch.zeros(1, 77, 8), {})]
    picture = torch.zeros(1, 64, 72, 3)
    cropped = segs_module.cropped_conditioning(conditioning, picture, (19, 15, 39, 35))
    # the pack's scale (mask / picture: 0.5 both ways), rounded as Python rounds: 9.5 -> 10, 7.5 -> 8
    assert torch.equal(cropped[0][1]["mask"], mask[:, 8:18, 10:20]) and cropped[1][1] == {}
    assert conditioning[0][1]["mask"] is mask


def test_dilation_and_blur_nodes_against_opencv_and_torchvision(registry):
    import cv2
    mask = (torch.rand(1, 30, 40) > 0.8).float()
    for dilation in (5, -3, 0):
        kernel = np.ones((abs(dilation), abs(dilation)), np.uint8)
        plane = mask[0].numpy()
        want = plane if dilation == 0 else cv2.dilate(plane, kernel, 1) if dilation > 0 else cv2.erode(plane, kernel, 1)
        assert torch.equal(call(registry, "ImpactDilateMask", mask=mask, dilation=dilation)[0], torch.from_numpy(want))
        segs = Segs((30, 40), (SEG(None, mask[0, 5:25, 5:35], 1.0, (5, 5, 35, 25), (5, 5, 35, 25), "A"),))
        grown, = call(registry, "DilateMaskInSEGS", segs=segs, dilation=dilation).segs
        inner = mask[0, 5:25, 5:35].numpy()
        want = inner if dilation == 0 else cv2.dilate(inner, kernel, 1) if dilation > 0 else cv2.erode(inner, kernel, 1)
        assert torch.equal(grown.cropped_mask, torch.from_numpy(want))
    blurred = call(registry, "ImpactGaussianBlurMask", mask=mask, kernel_size=4, sigma=2.5)
    assert torch.allclose(blurred, GaussianBlur(kernel_size=9, sigma=2.5)(mask[:, None])[:, 0], atol=1e-6)
    with pytest.raises(NodeInputError):
        call(registry, "ImpactDilateMask", mask=mask.repeat(2, 1, 1), dilation=3)


def test_concat_leaves_out_segs_of_another_size(registry):
    seg = SEG(None, torch.ones(2, 2), 1.0, (0, 0, 2, 2), (0, 0, 2, 2), "A")
    joined = call(registry, "SEGSConcat", segs1=Segs((8, 8), (seg,)), segs2=Segs((9, 8), (seg,)),
                  segs3=Segs((8, 8), (seg, seg)))
    assert joined.shape == (8, 8) and len(joined.segs) == 3
    assert call(registry, "SEGSConcat", segs1=Segs((0, 0), ())).shape == (0, 0)


def test_empty_not_empty_mask_batch_and_and_mask(registry):
    empty = call(registry, "EmptySEGS")
    assert empty.shape == (0, 0) and call(registry, "ImpactIsNotEmptySEGS", segs=empty) is False
    a = SEG(None, torch.tensor([[0.5, 1.0], [0.3, 0.0]]), 1.0, (1, 1, 3, 3), (1, 1, 3, 3), "A", "wrapper")
    segs = Segs((4, 5), (a,))
    assert call(registry, "ImpactIsNotEmptySEGS", segs=segs) is True
    batch = call(registry, "SEGSToMaskBatch", segs=segs)
    assert batch.shape == (1, 4, 5) and torch.equal(batch[0], segs_module.combined_mask(segs))
    mask = torch.rand(1, 4, 5)
    anded, = call(registry, "SegsBitwiseAndMask", segs=segs, mask=mask).segs
    want = np.bitwise_and((a.cropped_mask.numpy() * 255).astype(np.uint8),
                          (mask[0].numpy() * 255).astype(np.uint8)[1:3, 1:3]).astype(np.float32) / 255.0
    assert torch.equal(anded.cropped_mask, torch.from_numpy(want)) and anded.control_net_wrapper is None


def test_max_size_beyond_the_memory_is_refused_before_running(registry, demo, tmp_folders):
    """Each segment samples at up to max_size a side: the planner refuses what the budget can't hold."""
    from graphflow.resource_limits import RunLimits
    write_input(tmp_folders)
    graph = {
        "1": {"class_type": "LoadImage", "inputs": {"image": "in.png"}},
        "2": {"class_type": "MaskToSEGS", "inputs": {"mask": ["1", 1], "combined": False, "crop_factor": 2.0,
                                                     "bbox_fill": False, "drop_size": 2, "contour_fill": True}},
        "3": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "tiny.safetensors"}},
        "4": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["3", 1], "text": "a face"}},
        "6": {"class_type": "DetailerForEach",
              "inputs": {"image": ["1", 0], "segs": ["2", 0], "model": ["3", 0], "clip": ["3", 1], "vae": ["3", 2],
                         "positive": ["4", 0], "negative": ["4", 0], **{**DETAIL, "max_size": 8192}}},
        "7": {"class_type": "PreviewImage", "inputs": {"images": ["6", 0]}},
    }
    limits = RunLimits(ram_bytes=2**30, device_bytes=2**30)
    result = Executor(registry, limits=limits).run(parse_workflow(graph, registry), outputs=["7"])
    assert not result.ok and any(p.node_id == "6" and "memory" in p.message for p in result.problems), \
        (result.problems, result.error)
    graph["6"]["inputs"]["max_size"] = 128
    assert Executor(registry, limits=limits).run(parse_workflow(graph, registry), outputs=["7"]).ok


def test_detailer_pipe_equals_detailer_for_each(registry, demo):
    image, segs = picture_and_segs(registry)
    pipe = (demo["model"], demo["clip"], demo["vae"], demo["positive"], demo["negative"])
    whole = call(registry, "DetailerForEach", image=image, segs=segs, **demo, **DETAIL)
    out, new_segs, same_pipe, cnet = call(registry, "DetailerForEachPipe", image=image, segs=segs, basic_pipe=pipe,
                                          refiner_ratio=0.2, **DETAIL)
    assert torch.equal(out, whole) and same_pipe is pipe and len(cnet) == 1
    seg, = new_segs.segs
    x1, y1, x2, y2 = seg.crop_region
    assert seg.cropped_image.shape == (1, y2 - y1, x2 - x1, 3)
    with pytest.raises(NodeInputError) as e:
        call(registry, "DetailerForEachPipe", image=image, segs=segs, basic_pipe=pipe, refiner_basic_pipe_opt=pipe,
             **DETAIL)
    assert e.value.input == "refiner_basic_pipe_opt"


def test_make_tile_segs_spreads_tiles_as_the_pack(registry):
    """200×160 in 96-pixel tiles, overlap at least 10: worked from the pack's steps, 3 across
    (ceil(200 / 86); the 88 pixels over shared by 2 overlaps: 44) and 2 down (32 over: 32),
    the last tile of a row or column put against the edge."""
    image = torch.zeros(1, 160, 200, 3)
    segs = call(registry, "MakeTileSEGS", images=image, bbox_size=96, crop_factor=1.5, min_overlap=10,
                filter_segs_dilation=0, mask_irregularity=0.0, irregular_mask_mode="Reuse fast")
    want = [(0, 0, 96, 96), (52, 0, 148, 96), (104, 0, 200, 96), (0, 64, 96, 160), (52, 64, 148, 160),
            (104, 64, 200, 160)]
    assert [seg.bbox for seg in segs.segs] == want and segs.shape == (160, 200)
    for seg in segs.segs:
        assert list(seg.crop_region) == crop_rule(200, 160, seg.bbox, 1.5)
        cx1, cy1 = seg.crop_region[:2]
        x1, y1, x2, y2 = seg.bbox
        assert seg.cropped_mask.sum() == 96 * 96 and seg.cropped_mask[y1 - cy1:y2 - cy1, x1 - cx1:x2 - cx1].eq(1).all()
    left = SEG(None, torch.ones(160, 100), 1.0, (0, 0, 100, 160), (0, 0, 100, 160), "A")
    out = call(registry, "MakeTileSEGS", images=image, bbox_size=96, crop_factor=1.0, min_overlap=10,
               filter_segs_dilation=0, filter_out_segs_opt=Segs((160, 200), (left,)))
    assert [seg.bbox for seg in out.segs] == [b for b in want if b[0] != 0]  # the tiles at x 0 lie wholly inside
    middle = out.segs[0]
    assert middle.cropped_mask[:, :100 - 52].eq(0).all() and middle.cropped_mask[:, 100 - 52:].eq(1).all()
    with pytest.raises(NodeInputError) as e:
        call(registry, "MakeTileSEGS", images=image, bbox_size=96, crop_factor=1.0, min_overlap=10,
             filter_segs_dilation=0, mask_irregularity=0.3)
    assert e.value.input == "mask_irregularity"


def test_make_tile_segs_within_filter_in_segs(registry):
    """Kept to the bbox of filter_in_segs_opt (its last pixel, as mask_to_segs gives it: 79 wide),
    bbox_size shrinks to that, and one tile then covers it (the pack's overlap equals the tile)."""
    inside = SEG(None, torch.ones(80, 80), 1.0, (60, 40, 140, 120), (60, 40, 140, 120), "A")
    segs = call(registry, "MakeTileSEGS", images=torch.zeros(1, 160, 200, 3), bbox_size=96, crop_factor=1.0,
                min_overlap=10, filter_segs_dilation=0, filter_in_segs_opt=Segs((160, 200), (inside,)))
    seg, = segs.segs
    assert seg.bbox == (60, 40, 139, 119) and list(seg.crop_region) == [60, 40, 139, 119]
    assert seg.cropped_mask.eq(1).all()


def test_make_tile_segs_overlap_against_the_shrunk_tile_and_empty_filters(registry):
    """300×100 in 512 tiles: the tile shrinks to 100, where min_overlap 100 (or 150) would divide
    by zero (or count no tiles): it becomes 50, so 6 across (ceil(300 / 50)) with the 300 pixels
    over shared by 5 overlaps (60): starts 0, 40, ... 200. EmptySEGS filters out nothing and
    filters in nothing."""
    image = torch.zeros(1, 100, 300, 3)
    want = [(x, 0, x + 100, 100) for x in (0, 40, 80, 120, 160, 200)]
    for min_overlap in (100, 150):
        segs = call(registry, "MakeTileSEGS", images=image, bbox_size=512, crop_factor=1.0, min_overlap=min_overlap)
        assert [seg.bbox for seg in segs.segs] == want
    empty = call(registry, "EmptySEGS")
    plain = call(registry, "MakeTileSEGS", images=image, bbox_size=64, min_overlap=8)
    out = call(registry, "MakeTileSEGS", images=image, bbox_size=64, min_overlap=8, filter_out_segs_opt=empty)
    assert [s.bbox for s in out.segs] == [s.bbox for s in plain.segs] and len(plain.segs) > 1
    assert all(torch.equal(a.cropped_mask, b.cropped_mask) for a, b in zip(out.segs, plain.segs))
    none = call(registry, "MakeTileSEGS", images=image, bbox_size=64, min_overlap=8, filter_in_segs_opt=empty)
    assert none.segs == () and none.shape == (100, 300)


UI_WIDGETS = {  # each class's widgets_values as the pack's editor saves them (a seed followed by its control)
    "SEGSDetailer": ([256, False, 512, 9, "fixed", 3, 6.5, "euler", "karras", 0.4, True, False, 0.2, 2, 1, False, 8],
                     {"guide_size": 256, "guide_size_for": False, "max_size": 512, "seed": 9, "scheduler": "karras",
                      "noise_mask": True, "force_inpaint": False, "batch_size": 2, "noise_mask_feather": 8}),
    "DetailerForEachPipe": ([384, True, 1024, 3, "randomize", 20, 8.0, "euler", "normal", 0.5, 5, True, True,
                             "[CONCAT] sharp", 0.2, 2, False, 20, True, False],
                            {"seed": 3, "feather": 5, "wildcard": "[CONCAT] sharp", "cycle": 2, "tiled_encode": True}),
    "DetailerForEachDebug": (DETAIL_WIDGETS, {"guide_size": 64, "seed": 5, "noise_mask_feather": 4}),
    "SEGSPaste": ([7, 128], {"feather": 7, "alpha": 128}),
    "SEGSPreview": ([False, 0.5], {"alpha_mode": False, "min_alpha": 0.5}),
    "ImpactSEGSOrderedFilter": (["x1", False, 1, 2],
                                {"target": "x1", "order": False, "take_start": 1, "take_count": 2}),
    "ImpactSEGSRangeFilter": (["height", False, 3, 90], {"target": "height", "mode": False, "max_value": 90}),
    "ImpactSEGSLabelFilter": (["face", "face,hand"], {"preset": "face", "labels": "face,hand"}),
    "ImpactMakeTileSEGS": ([640, 2.5, 16, 10, 0, "Reuse quality"],
                           {"bbox_size": 640, "crop_factor": 2.5, "min_overlap": 16, "filter_segs_dilation": 10,
                            "irregular_mask_mode": "Reuse quality"}),
    "ImpactDilateMaskInSEGS": ([-4], {"dilation": -4}),
    "ImpactGaussianBlurMask": ([6, 3.5], {"kernel_size": 6, "sigma": 3.5}),
}


@pytest.mark.parametrize("class_type", sorted(UI_WIDGETS))
def test_ui_widgets_read_in_the_packs_order_and_written_back(registry, class_type):
    widgets, want = UI_WIDGETS[class_type]
    graph = ui_graph([ui_node(1, class_type, widgets)])
    workflow = parse_workflow(graph, registry)
    inputs = workflow.to_json()["nodes"]["1"]["inputs"]
    assert {k: inputs[k] for k in want} == want
    written, = export_ui(workflow, registry)["nodes"]
    assert written["type"] == class_type and written["widgets_values"] == widgets


def test_label_assign(registry):
    seg = SEG(None, torch.ones(1, 1), 1.0, (0, 0, 1, 1), (0, 0, 1, 1), "A")
    out = call(registry, "SEGSLabelAssign", segs=Segs((2, 2), (seg, seg, seg)), labels="face, hand")
    assert [s.label for s in out.segs] == ["face", "hand", "A"]
