"""ComfyUI_IPAdapter_plus's other nodes: PrepImageForClipVision, IPAdapterTiled(Batch),
IPAdapterCombineEmbeds, IPAdapterNoise, the precise nodes, IPAdapterMS and the embeds files,
each against closed forms (Pillow, torch ops, torchvision's transforms as the pack calls them)
and end to end on the tiny SD1.5 of tests/test_ip_adapter.py."""

import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from graphflow.choices import IPADAPTER_COMBINE_METHODS, IPADAPTER_CROP_POSITIONS, IPADAPTER_INTERPOLATIONS
from graphflow.context import NodeInputError
from graphflow.models.ip_adapter import cross_attentions, transformer_numbers, transformer_weights
from graphflow.models.ip_adapter_images import (contrast_adaptive_sharpening, noise_image, reference_tiles,
                                                tile_positions)
from tests.test_ip_adapter import graph, models, run, sdxl_models  # noqa: F401 (fixtures)
from tests.test_nodes_image_mask import call


def pil_reference(x: torch.Tensor, size: tuple[int, int], resample: str) -> torch.Tensor:
    """[H, W, 3] through Pillow as torchvision's ToPILImage makes it (values truncated to 1/255)."""
    levels = (x.numpy() * 255).astype(np.uint8)
    out = Image.fromarray(levels).resize(size, resample=Image.Resampling[resample])
    return torch.from_numpy(np.asarray(out, dtype=np.float32) / 255)


@pytest.mark.parametrize("interpolation", IPADAPTER_INTERPOLATIONS)
def test_prep_image_crops_at_the_position_and_resizes_with_pillow(builtin_registry, interpolation):
    image = torch.rand(2, 30, 50, 3, generator=torch.Generator().manual_seed(1))
    crops = {"top": (0, 10), "bottom": (0, 10), "center": (0, 10), "left": (0, 0), "right": (0, 20)}  # (top, left)
    assert set(crops) | {"pad"} == set(IPADAPTER_CROP_POSITIONS)
    for position, (top, left) in crops.items():
        out = call(builtin_registry, "PrepImageForClipVision", image=image, interpolation=interpolation,
                   crop_position=position)
        assert out.shape == (2, 224, 224, 3)
        for b in range(2):
            ref = pil_reference(image[b, top:top + 30, left:left + 30], (224, 224), interpolation)
            torch.testing.assert_close(out[b], ref, atol=0, rtol=0)
    tall = image.transpose(1, 2)  # 50 x 30: top / bottom move the square
    for position, top in (("top", 0), ("bottom", 20), ("center", 10), ("left", 10)):
        out = call(builtin_registry, "PrepImageForClipVision", image=tall, interpolation=interpolation,
                   crop_position=position)
        torch.testing.assert_close(out[0], pil_reference(tall[0, top:top + 30], (224, 224), interpolation), atol=0, rtol=0)
    # pad: black bars of (50 - 30) // 2 on both sides of the short side
    padded = torch.zeros(50, 50, 3)
    padded[10:40] = image[0]
    out = call(builtin_registry, "PrepImageForClipVision", image=image, interpolation=interpolation, crop_position="pad")
    torch.testing.assert_close(out[0], pil_reference(padded, (224, 224), interpolation), atol=0, rtol=0)


def test_contrast_adaptive_sharpening_per_pixel():
    """The sharpening against its formula written pixel by pixel (zero padding around)."""
    x = torch.rand(1, 2, 5, 6, generator=torch.Generator().manual_seed(2))
    amount = 0.6
    out = contrast_adaptive_sharpening(x, amount)
    p = np.pad(x.numpy()[0], ((0, 0), (1, 1), (1, 1)))
    for c in range(2):
        for i in range(5):
            for j in range(6):
                win = p[c, i:i + 3, j:j + 3]
                cross = [win[0, 1], win[1, 0], win[1, 1], win[1, 2], win[2, 1]]
                corners = [win[0, 0], win[0, 2], win[2, 0], win[2, 2]]
                low = max(min(cross), 0) + max(min(corners), 0)
                high = min(max(cross), 1) + min(max(corners), 1)
                lobe = -np.sqrt(min(low, 2 - high) / high) * (amount * (1 / 5 - 1 / 8) + 1 / 8)
                want = ((win[0, 1] + win[1, 0] + win[1, 2] + win[2, 1]) * lobe + win[1, 1]) / (1 + 4 * lobe)
                assert abs(out[0, c, i, j].item() - min(max(want, 0), 1)) < 1e-5
    flat = torch.full((1, 3, 8, 8), 0.4)
    torch.testing.assert_close(contrast_adaptive_sharpening(flat, 1.0)[..., 1:-1, 1:-1], flat[..., 1:-1, 1:-1])


def test_tile_positions_spread_evenly_to_the_edge():
    assert tile_positions(256) == [0]
    assert tile_positions(512) == [0, 256]
    assert tile_positions(455) == [0, 199]  # overlap 57: the last tile ends at 455
    assert tile_positions(853) == [0, 199, 398, 597]  # overlap 57
    assert tile_positions(1024) == [0, 256, 512, 768]
    for length in (300, 455, 700, 853, 1000):
        starts = tile_positions(length)
        assert starts[0] == 0 and starts[-1] + 256 == length


@pytest.mark.parametrize("shape, frame, starts", [
    ((64, 64), (512, 512), [(0, 0), (0, 256), (256, 0), (256, 256)]),  # near square: 512 x 512
    ((70, 60), (512, 512), [(0, 0), (0, 256), (256, 0), (256, 256)]),  # 70 / 60 < 1.33: its centre square
    ((90, 160), (256, 455), [(0, 0), (0, 199)]),  # short side 256
    ((200, 60), (853, 256), [(0, 0), (199, 0), (398, 0), (597, 0)]),
    ((40, 200), (256, 1024), [(0, 0), (0, 256), (0, 512), (0, 768)]),  # 1280 wide, cut to 4 tiles
])
def test_reference_tiles_and_masks(shape, frame, starts):
    h, w = shape
    image = torch.rand(2, h, w, 3, generator=torch.Generator().manual_seed(3))
    tiles, masks = reference_tiles(image)
    assert len(tiles) == len(starts) and all(t.shape == (2, 256, 256, 3) for t in tiles)
    # the prepared image: its centre square or all of it, Lanczos through Pillow, then a centre crop
    if 0.75 < h / w < 1.33:
        side = min(h, w)
        top, left = round((h - side) / 2), round((w - side) / 2)
        source, size = image[:, top:top + side, left:left + side], (512, 512)
    else:
        source, size = image, (int(256 * w / h), 256) if h < w else (256, int(256 * h / w))
    resized = torch.stack([pil_reference(source[b], size, "LANCZOS") for b in range(2)])
    top, left = round((resized.shape[1] - frame[0]) / 2), round((resized.shape[2] - frame[1]) / 2)
    prepared = resized[:, top:top + frame[0], left:left + frame[1]]
    for tile, mask, (y, x) in zip(tiles, masks, starts):
        torch.testing.assert_close(tile, prepared[:, y:y + 256, x:x + 256], atol=0, rtol=0)
        want = torch.zeros(1, *frame)
        want[:, y:y + 256, x:x + 256] = 1
        torch.testing.assert_close(mask, want, atol=1e-6, rtol=0)  # the default mask: ones, in the tile


def test_reference_tiles_cut_the_attention_mask():
    """A given mask is resized (bicubic, antialiased) to the prepared frame; each tile's mask is
    that mask inside its tile, zero outside."""
    mask = torch.zeros(1, 90, 160)
    mask[:, :, :40] = 1.0
    tiles, masks = reference_tiles(torch.rand(1, 90, 160, 3), mask)
    frame = torch.nn.functional.interpolate(mask[:, None], size=(256, 455), mode="bicubic", antialias=True,
                                            align_corners=False)[:, 0]
    for x, tile_mask in zip((0, 199), masks):
        want = torch.zeros_like(frame)
        want[:, :, x:x + 256] = frame[:, :, x:x + 256]
        torch.testing.assert_close(tile_mask, want, atol=0, rtol=0)
    assert masks[0][:, :, :100].mean() > 0.9 and masks[1].abs().max() < 0.05  # the left part only


def _pack_noise_input(image):
    """The pack's IPAdapterNoise input: torchvision's centre crop and antialiased bicubic resize."""
    T = pytest.importorskip("torchvision.transforms.v2")
    prep = T.Compose([T.CenterCrop(min(image.shape[1:3])),
                      T.Resize((224, 224), interpolation=T.InterpolationMode.BICUBIC, antialias=True)])
    return prep(image.permute([0, 3, 1, 2])).permute([0, 2, 3, 1])


def test_noise_types_as_the_pack_draws_them(builtin_registry):
    """fade / dissolve / gaussian against the pack's draws (torch's global generator seeded by the
    image's sum, *_like filling the tensors torchvision made); the same image gives the same
    noise; strength 0 keeps the image (fade)."""
    image = torch.rand(1, 60, 80, 3, generator=torch.Generator().manual_seed(4))
    # short side already 224: torchvision's crop is a view and its resize a no-op, so the pack's
    # draws fill a plain [B, H, W, C] tensor, not a resized [B, C, H, W] one
    at_size = [torch.rand(1, *shape, 3, generator=torch.Generator().manual_seed(7)) for shape in ((224, 224), (224, 300))]
    for source in (image, None, *at_size):
        x = _pack_noise_input(source) if source is not None else torch.zeros(1, 224, 224, 3)
        for kind, strength in (("fade", 0.3), ("dissolve", 0.4), ("gaussian", 0.2)):
            torch.manual_seed(int(x.sum().item()) % 1000000007)
            if kind == "fade":
                ref = x * (1 - strength) + torch.rand_like(x) * strength
            elif kind == "dissolve":
                chosen = (torch.rand_like(x) < strength).float()
                ref = x * (1 - chosen) + torch.rand_like(x) * chosen
            else:
                ref = x + torch.randn_like(x) * strength
            out = call(builtin_registry, "IPAdapterNoise", type=kind, strength=strength, blur=0, image_optional=source)
            assert out.shape == (1, 224, 224, 3)
            torch.testing.assert_close(out, ref.clamp(0, 1), atol=1e-6, rtol=0)
            assert torch.equal(out, call(builtin_registry, "IPAdapterNoise", type=kind, strength=strength, blur=0,
                                         image_optional=source))
    torch.testing.assert_close(call(builtin_registry, "IPAdapterNoise", type="fade", strength=0.0, blur=0,
                                    image_optional=image), _pack_noise_input(image).clamp(0, 1), atol=1e-6, rtol=0)
    black = call(builtin_registry, "IPAdapterNoise", type="fade", strength=1.0, blur=0)  # seed 0, uniform noise
    assert abs(black.mean().item() - 0.5) < 0.01 and abs(black.std().item() - (1 / 12) ** 0.5) < 0.01
    with pytest.raises(ValueError, match="unknown noise type"):
        noise_image("salt", 0.5, 0)


def test_noise_shuffle_and_blur_match_torchvision():
    T = pytest.importorskip("torchvision.transforms.v2")
    image = torch.rand(1, 50, 70, 3, generator=torch.Generator().manual_seed(5))
    for source, strength, blur in ((image, 0.6, 0), (image, 1.0, 4), (None, 0.5, 3)):
        x = _pack_noise_input(source) if source is not None else torch.zeros(1, 224, 224, 3)
        torch.manual_seed(int(x.sum().item()) % 1000000007)
        shuffle = T.Compose([T.ElasticTransform(alpha=75.0, sigma=(1 - strength) * 3.5),
                             T.RandomVerticalFlip(p=1.0), T.RandomHorizontalFlip(p=1.0)])
        x = shuffle(x.permute([0, 3, 1, 2])).permute([0, 2, 3, 1])
        n = torch.randn_like(x) * (strength * 0.75)
        ref = (x * (1 - n) + n).clamp(0, 1)
        if blur:
            kernel = blur + 1 if blur % 2 == 0 else blur  # the pack's odd kernel
            ref = T.functional.gaussian_blur(ref.permute([0, 3, 1, 2]), kernel).permute([0, 2, 3, 1])
        out = noise_image("shuffle", strength, blur, source)
        torch.testing.assert_close(out, ref, atol=1e-4, rtol=0)  # the blurred field: float rounding


def test_combine_embeds_node(builtin_registry):
    g = torch.Generator().manual_seed(6)
    a, b, c = torch.randn(2, 5, 8, generator=g), torch.randn(1, 5, 8, generator=g), torch.randn(1, 5, 8, generator=g)
    rows = torch.cat([a, b, c])
    expected = {"concat": rows, "add": rows.sum(0, keepdim=True),
                "subtract": (rows[0] - rows[1:].mean(0))[None], "average": rows.mean(0, keepdim=True),
                "norm average": (rows / rows.norm(dim=0)).mean(0, keepdim=True),
                "max": rows.max(0).values[None], "min": rows.min(0).values[None]}
    assert tuple(expected) == IPADAPTER_COMBINE_METHODS
    for method, want in expected.items():
        out = call(builtin_registry, "IPAdapterCombineEmbeds", embed1=a, method=method, embed3=b, embed5=c)
        torch.testing.assert_close(out, want, atol=1e-6, rtol=0)
    assert call(builtin_registry, "IPAdapterCombineEmbeds", embed1=a, method="concat") is not None
    with pytest.raises(NodeInputError, match="don't fit embed1's") as info:
        call(builtin_registry, "IPAdapterCombineEmbeds", embed1=a, method="add", embed2=torch.zeros(1, 5, 9))
    assert info.value.input == "embed2"


def test_precise_boosts_and_layer_weights_tables():
    """The boosts replace the weight where the pack's ipadapter_execute puts them; layer_weights
    keep only the transformers listed, swapping sides for the precise types."""
    sdxl = transformer_weights("style transfer precise", 0.8, True, 11, boost=2.0)
    assert sdxl[3] == (2.0, True) and sdxl[6] == (0.8, False) and sum(w for w, _ in sdxl) == pytest.approx(2.8)
    sd1 = transformer_weights("style transfer precise", 0.8, False, 16, boost=2.0)
    assert sd1[4] == (0.5, True) and sd1[5] == (2.0, True) and sd1[0] == (0.8, False) and sd1[6] == (0.0, False)
    comp = transformer_weights("composition precise", 0.8, True, 11, boost=0.5)
    assert comp[3] == (0.8, False) and comp[6] == (0.5, True) and comp[0] == (pytest.approx(0.05), True)
    comp1 = transformer_weights("composition precise", 0.8, False, 16, boost=0.5)
    assert comp1[4] == (pytest.approx(0.2), False) and comp1[5] == (0.8, False) and comp1[0] == (0.5, True)
    assert comp1[7] == (pytest.approx(0.05), True) and comp1[9] == (0.5, True)
    # no boost: as the weight type itself (the pack's default when the node has none)
    assert transformer_weights("composition precise", 0.8, True, 11, boost=None) == \
        transformer_weights("composition precise", 0.8, True, 11)
    layered = transformer_weights("ease in", 0.5, False, 16, layer_weights={0: 2.0, 6: 1.0})
    assert [w for w, _ in layered] == [1.0] + [0.0] * 5 + [0.5] + [0.0] * 9
    assert not any(s for _, s in layered)
    swapped = transformer_weights("style transfer precise", 0.5, True, 11, layer_weights={3: 1.0, 6: 1.0})
    assert swapped[3] == (0.5, True) and swapped[6] == (0.5, False) and swapped[0] == (0.0, False)


def test_parse_layer_weights():
    from nodes.ip_adapter import parse_layer_weights

    assert parse_layer_weights("") is None and parse_layer_weights(" \n") is None
    assert parse_layer_weights("0:0.5, 6:1.0\n7: 2,") == {0: 0.5, 6: 1.0, 7: 2.0}
    with pytest.raises(NodeInputError, match="'six:1' is not 'transformer:weight'") as info:
        parse_layer_weights("0:1, six:1")
    assert info.value.input == "layer_weights"


def _unet_out(model, seed=20, negative=(False, True)):
    """The UNet on two rows, by default the second the negative prompt's (the precise types swap
    sides); negative=(False, False): two latents of the positive side."""
    from graphflow.sampling.guidance import UNetRows, unet_rows

    g = torch.Generator().manual_seed(seed)
    x, t = torch.randn(2, 4, 8, 8, generator=g), torch.tensor([400.0, 400.0])
    context = torch.randn(2, 7, model.unet.config.context_dim, generator=g)
    adm = model.unet.config.adm_in_channels  # SDXL's pooled text and size vector
    y = torch.randn(2, adm, generator=g) if adm else None
    marker = unet_rows.set(UNetRows(torch.tensor([5.0]), negative))
    try:
        with torch.no_grad():
            return model.unet(x, t, context, y)
    finally:
        unet_rows.reset(marker)


@pytest.fixture
def parts(builtin_registry, models):
    vision = call(builtin_registry, "LoadCLIPVision", clip_name="vit_tiny.safetensors")
    model = call(builtin_registry, "LoadCheckpoint", checkpoint="sd1.safetensors")[0]
    adapter = call(builtin_registry, "IPAdapterModelLoader", ipadapter_file="ip-adapter_sd15.safetensors")
    return model, adapter, vision


def test_tiled_is_one_masked_adapter_per_tile(builtin_registry, parts):
    """IPAdapterTiled = IPAdapterAdvanced applied once per tile (its image, its mask), added up."""
    model, adapter, vision = parts
    image = torch.rand(1, 48, 80, 3, generator=torch.Generator().manual_seed(7))
    tiled, tiles, masks = call(builtin_registry, "IPAdapterTiled", model=model, ipadapter=adapter, image=image,
                               clip_vision=vision, weight=0.8, weight_type="ease in")
    assert tiles.shape == (2, 256, 256, 3) and masks.shape == (2, 256, 426)
    chained = model
    for k in range(2):
        chained = call(builtin_registry, "IPAdapterAdvanced", model=chained, ipadapter=adapter, image=tiles[k:k + 1],
                       attn_mask=masks[k:k + 1], clip_vision=vision, weight=0.8, weight_type="ease in")
    out = _unet_out(tiled)
    torch.testing.assert_close(out, _unet_out(chained), atol=1e-5, rtol=0)
    assert (out - _unet_out(model)).abs().max() > 1e-4
    batch, btiles, _ = call(builtin_registry, "IPAdapterTiledBatch", model=model, ipadapter=adapter, image=image,
                            clip_vision=vision, weight=0.8, weight_type="ease in")
    torch.testing.assert_close(_unet_out(batch), out, atol=1e-5, rtol=0)  # one image: the same for every latent
    assert torch.equal(btiles, tiles)


def test_precise_nodes_and_ms_against_advanced(builtin_registry, parts):
    model, adapter, vision = parts
    image = torch.rand(1, 32, 32, 3, generator=torch.Generator().manual_seed(8))
    base = dict(model=model, ipadapter=adapter, image=image, clip_vision=vision)

    def advanced(**kw):
        return _unet_out(call(builtin_registry, "IPAdapterAdvanced", **base, **kw))

    # the boost equal to the weight: the weight type itself, as IPAdapterAdvanced applies it
    style = call(builtin_registry, "IPAdapterPreciseStyleTransfer", **base, weight=0.7, style_boost=0.7)
    torch.testing.assert_close(_unet_out(style), advanced(weight=0.7, weight_type="style transfer precise"),
                               atol=1e-6, rtol=0)
    boosted = call(builtin_registry, "IPAdapterPreciseStyleTransfer", **base, weight=0.7, style_boost=2.0)
    assert (_unet_out(boosted) - _unet_out(style)).abs().max() > 1e-5
    comp = call(builtin_registry, "IPAdapterPreciseComposition", **base, weight=0.7, composition_boost=0.7)
    torch.testing.assert_close(_unet_out(comp), advanced(weight=0.7, weight_type="composition precise"),
                               atol=1e-6, rtol=0)
    batch = call(builtin_registry, "IPAdapterPreciseCompositionBatch", **base, weight=0.7, composition_boost=0.7)
    torch.testing.assert_close(_unet_out(batch), _unet_out(comp), atol=1e-6, rtol=0)
    # IPAdapterMS: empty layer_weights is IPAdapterAdvanced; every transformer at 1 is "linear"
    layers = transformer_numbers(cross_attentions(model.unet))[1]
    plain_ms = call(builtin_registry, "IPAdapterMS", **base, weight=0.6, weight_type="ease out")
    torch.testing.assert_close(_unet_out(plain_ms), advanced(weight=0.6, weight_type="ease out"), atol=1e-6, rtol=0)
    every = ", ".join(f"{i}:1" for i in range(layers))
    ms = call(builtin_registry, "IPAdapterMS", **base, weight=0.6, weight_type="ease out", layer_weights=every)
    torch.testing.assert_close(_unet_out(ms), advanced(weight=0.6), atol=1e-6, rtol=0)
    first = call(builtin_registry, "IPAdapterMS", **base, weight=0.6, layer_weights="0:1")
    assert (_unet_out(first) - _unet_out(ms)).abs().max() > 1e-5
    assert (_unet_out(first) - _unet_out(model)).abs().max() > 1e-5


def tiled_graph():
    """tests/test_ip_adapter.py's graph with PrepImageForClipVision -> IPAdapterTiled, and
    IPAdapterNoise for the negative image."""
    g = graph()
    g["11"] = {"class_type": "IPAdapterNoise", "inputs": {"type": "dissolve", "strength": 0.5, "blur": 3}}
    g["12"] = {"class_type": "PrepImageForClipVision", "inputs": {"image": ["5", 0], "interpolation": "BICUBIC",
                                                                  "crop_position": "center", "sharpening": 0.2}}
    g["7"] = {"class_type": "IPAdapterTiled", "inputs": {
        "model": ["1", 0], "ipadapter": ["6", 0], "image": ["12", 0], "clip_vision": ["4", 0], "weight": 1.0,
        "weight_type": "linear", "combine_embeds": "concat", "start_at": 0.0, "end_at": 1.0, "sharpening": 0.0,
        "embeds_scaling": "V only", "image_negative": ["11", 0]}}
    return g


def test_tiled_graph_end_to_end(builtin_registry, models):
    """An API graph with PrepImageForClipVision, IPAdapterNoise and IPAdapterTiled samples; the
    tiled adapter at weight 0 is the plain model, bit for bit."""
    g = tiled_graph()
    prompted = run(builtin_registry, g)
    g["7"]["inputs"]["weight"] = 0.0
    zero = run(builtin_registry, g)
    plain = graph()
    plain["9"]["inputs"]["model"] = ["1", 0]
    assert torch.equal(zero, run(builtin_registry, plain))
    assert (prompted - zero).abs().max() > 1e-3


def test_ui_workflow_with_the_pack_nodes_runs_as_the_api_graph(builtin_registry, models):
    """The same graph as ComfyUI's editor saves it (widgets_values in the pack's input order, a
    link into IPAdapterTiled's optional image_negative) samples the same latent."""
    from graphflow.executor import Executor
    from graphflow.workflow import parse_workflow
    from tests.test_comfy_pack_nodes import ui_graph

    tiled_inputs = [("model", "MODEL"), ("ipadapter", "IPADAPTER"), ("image", "IMAGE"),
                    ("image_negative", "IMAGE"), ("attn_mask", "MASK"), ("clip_vision", "CLIP_VISION")]
    nodes = [
        (1, "CheckpointLoaderSimple", [], [("MODEL", "MODEL"), ("CLIP", "CLIP"), ("VAE", "VAE")], ["sd1.safetensors"]),
        (2, "CLIPTextEncode", [("clip", "CLIP")], [("CONDITIONING", "CONDITIONING")], ["a cat"]),
        (3, "CLIPTextEncode", [("clip", "CLIP")], [("CONDITIONING", "CONDITIONING")], [""]),
        (4, "CLIPVisionLoader", [], [("CLIP_VISION", "CLIP_VISION")], ["vit_tiny.safetensors"]),
        (5, "EmptyImage", [], [("IMAGE", "IMAGE")], [64, 64, 1, 0x30a0ff]),
        (6, "IPAdapterModelLoader", [], [("IPADAPTER", "IPADAPTER")], ["ip-adapter_sd15.safetensors"]),
        (11, "IPAdapterNoise", [("image_optional", "IMAGE")], [("IMAGE", "IMAGE")], ["dissolve", 0.5, 3]),
        (12, "PrepImageForClipVision", [("image", "IMAGE")], [("IMAGE", "IMAGE")], ["BICUBIC", "center", 0.2]),
        (7, "IPAdapterTiled", tiled_inputs, [("MODEL", "MODEL"), ("tiles", "IMAGE"), ("masks", "MASK")],
         [1.0, "linear", "concat", 0.0, 1.0, 0.0, "V only"]),
        (8, "EmptyLatentImage", [], [("LATENT", "LATENT")], [32, 32, 1]),
        (9, "KSampler", [("model", "MODEL"), ("positive", "CONDITIONING"), ("negative", "CONDITIONING"),
                         ("latent_image", "LATENT")], [("LATENT", "LATENT")], [3, "fixed", 2, 4.0, "euler", "normal", 1.0]),
    ]
    edges = [(1, 1, 2, "clip"), (1, 1, 3, "clip"), (5, 0, 12, "image"), (1, 0, 7, "model"), (6, 0, 7, "ipadapter"),
             (12, 0, 7, "image"), (11, 0, 7, "image_negative"), (4, 0, 7, "clip_vision"), (7, 0, 9, "model"),
             (2, 0, 9, "positive"), (3, 0, 9, "negative"), (8, 0, 9, "latent_image")]
    ui = parse_workflow(ui_graph(nodes, edges), builtin_registry)
    api = parse_workflow(tiled_graph(), builtin_registry)
    for node_id in ("7", "11", "12"):
        assert ui.to_json()["nodes"][node_id]["inputs"] == api.to_json()["nodes"][node_id]["inputs"]
    result = Executor(builtin_registry).run(ui, outputs=["9"])
    assert result.ok, result.error or result.problems
    assert torch.equal(result.values["9"][0]["samples"], run(builtin_registry, tiled_graph()))


class _Payload:
    def __reduce__(self):
        return (print, ("unpickled",))


def test_save_and_load_embeds(builtin_registry, tmp_folders):
    embeds = torch.randn(2, 5, 8, generator=torch.Generator().manual_seed(9))
    call(builtin_registry, "IPAdapterSaveEmbeds", embeds=embeds, filename_prefix="emb/IP_embeds")
    call(builtin_registry, "IPAdapterSaveEmbeds", embeds=embeds[:1], filename_prefix="emb/IP_embeds")
    saved = sorted((tmp_folders.outputs / "emb").iterdir())
    assert [p.name for p in saved] == ["IP_embeds_00001.ipadpt", "IP_embeds_00002.ipadpt"]
    (tmp_folders.inputs / "mine.ipadpt").write_bytes(saved[0].read_bytes())
    from nodes.ip_adapter import _embeds_files

    assert _embeds_files() == ["mine.ipadpt"]
    assert torch.equal(call(builtin_registry, "IPAdapterLoadEmbeds", embeds="mine.ipadpt"), embeds)
    with open(tmp_folders.inputs / "evil.ipadpt", "wb") as f:
        pickle.dump(_Payload(), f, protocol=2)
    with pytest.raises(NodeInputError, match="restricted unpickler") as info:
        call(builtin_registry, "IPAdapterLoadEmbeds", embeds="evil.ipadpt")
    assert info.value.input == "embeds"
    torch.save({"a": torch.zeros(2)}, tmp_folders.inputs / "dict.ipadpt")
    with pytest.raises(NodeInputError, match="holds a dict, not IP-Adapter EMBEDS"):
        call(builtin_registry, "IPAdapterLoadEmbeds", embeds="dict.ipadpt")


def test_ui_workflow_widgets_map_in_the_packs_order(builtin_registry):
    from graphflow.comfy_format import import_ui

    rows = {
        "PrepImageForClipVision": (["BICUBIC", "pad", 0.3],
                                   {"interpolation": "BICUBIC", "crop_position": "pad", "sharpening": 0.3}),
        "IPAdapterTiled": ([0.7, "ease in", "average", 0.1, 0.9, 0.2, "K+V"],
                           {"weight": 0.7, "weight_type": "ease in", "combine_embeds": "average", "start_at": 0.1,
                            "end_at": 0.9, "sharpening": 0.2, "embeds_scaling": "K+V"}),
        "IPAdapterTiledBatch": ([0.7, "ease in", 0.1, 0.9, 0.2, "K+V", 8],
                                {"weight": 0.7, "weight_type": "ease in", "start_at": 0.1, "end_at": 0.9,
                                 "sharpening": 0.2, "embeds_scaling": "K+V", "encode_batch_size": 8}),
        "IPAdapterCombineEmbeds": (["norm average"], {"method": "norm average"}),
        "IPAdapterNoise": (["shuffle", 0.4, 5], {"type": "shuffle", "strength": 0.4, "blur": 5}),
        "IPAdapterPreciseStyleTransfer": ([0.9, 1.5, "add", 0.0, 0.8, "V only"],
                                          {"weight": 0.9, "style_boost": 1.5, "combine_embeds": "add",
                                           "start_at": 0.0, "end_at": 0.8, "embeds_scaling": "V only"}),
        "IPAdapterPreciseCompositionBatch": ([0.9, -0.5, "concat", 0.2, 1.0, "K+V"],
                                             {"weight": 0.9, "composition_boost": -0.5, "combine_embeds": "concat",
                                              "start_at": 0.2, "end_at": 1.0, "embeds_scaling": "K+V"}),
        "IPAdapterMS": ([1.1, 2.0, "linear", "concat", 0.0, 1.0, "V only", "0:1, 6:2"],
                        {"weight": 1.1, "weight_faceidv2": 2.0, "weight_type": "linear", "combine_embeds": "concat",
                         "start_at": 0.0, "end_at": 1.0, "embeds_scaling": "V only", "layer_weights": "0:1, 6:2"}),
        "IPAdapterEmbedsBatch": ([0.9, "style transfer", 0.1, 0.8, "K+V"],
                                 {"weight": 0.9, "weight_type": "style transfer", "start_at": 0.1, "end_at": 0.8,
                                  "embeds_scaling": "K+V"}),
        "IPAdapterStyleCompositionBatch": ([0.8, 0.6, True, 0.1, 0.9, "K+V"],
                                           {"weight_style": 0.8, "weight_composition": 0.6, "expand_style": True,
                                            "start_at": 0.1, "end_at": 0.9, "embeds_scaling": "K+V"}),
        "IPAdapterSaveEmbeds": (["embeds/x"], {"filename_prefix": "embeds/x"}),
        "IPAdapterLoadEmbeds": (["x.ipadpt"], {"embeds": "x.ipadpt"}),
    }
    ui = {"nodes": [{"id": i + 1, "type": name, "inputs": [], "outputs": [], "widgets_values": values}
                    for i, (name, (values, _)) in enumerate(rows.items())], "links": []}
    nodes = import_ui(ui, builtin_registry).nodes
    for i, (name, (_, expected)) in enumerate(rows.items()):
        assert nodes[str(i + 1)].type == name and nodes[str(i + 1)].inputs == expected, name


def test_thin_batch_variants(builtin_registry, parts, sdxl_models):
    """IPAdapterEmbedsBatch: row k of pos_embed prompts latent k, as IPAdapterEmbeds with that row;
    IPAdapterStyleCompositionBatch likewise with image k of each input (the last one beyond)."""
    model, adapter, vision = parts
    images = torch.rand(2, 32, 32, 3, generator=torch.Generator().manual_seed(10))
    two = (False, False)  # two latents, both on the positive side
    pos, _ = call(builtin_registry, "IPAdapterEncoder", ipadapter=adapter, image=images, clip_vision=vision)
    batch = _unet_out(call(builtin_registry, "IPAdapterEmbedsBatch", model=model, ipadapter=adapter, pos_embed=pos),
                      negative=two)
    singles = [_unet_out(call(builtin_registry, "IPAdapterEmbeds", model=model, ipadapter=adapter,
                              pos_embed=pos[k:k + 1]), negative=two) for k in range(2)]
    for k in range(2):
        torch.testing.assert_close(batch[k:k + 1], singles[k][k:k + 1], atol=1e-5, rtol=0)
    assert (singles[0][1:] - singles[1][1:]).abs().max() > 1e-4  # the rows' images matter
    sdxl = call(builtin_registry, "LoadCheckpoint", checkpoint="sdxl.safetensors")[0]
    sdxl_adapter = call(builtin_registry, "IPAdapterModelLoader", ipadapter_file="ip-adapter_sdxl.safetensors")
    base = dict(model=sdxl, ipadapter=sdxl_adapter, clip_vision=vision, weight_style=0.8, weight_composition=1.2)
    batch = _unet_out(call(builtin_registry, "IPAdapterStyleCompositionBatch", image_style=images,
                           image_composition=images[1:], **base), negative=two)
    singles = [_unet_out(call(builtin_registry, "IPAdapterStyleComposition", image_style=images[k:k + 1],
                              image_composition=images[1:], **base), negative=two) for k in range(2)]
    for k in range(2):
        torch.testing.assert_close(batch[k:k + 1], singles[k][k:k + 1], atol=1e-5, rtol=0)
    assert (singles[0][1:] - singles[1][1:]).abs().max() > 1e-4
    # as the pack, the negative images are first cut to as many as the style images (one here):
    # with two composition images, both negative latents still take negative image 0
    negatives = torch.rand(2, 32, 32, 3, generator=torch.Generator().manual_seed(11))
    both_negative = (True, True)
    runs = [_unet_out(call(builtin_registry, "IPAdapterStyleCompositionBatch", image_style=images[:1],
                           image_composition=images, image_negative=negative, **base), negative=both_negative)
            for negative in (negatives, negatives[:1], negatives[1:])]
    torch.testing.assert_close(runs[0], runs[1], atol=1e-5, rtol=0)
    assert (runs[0] - runs[2]).abs().max() > 1e-4


def test_bad_inputs_are_named(builtin_registry, parts):
    model, adapter, vision = parts
    base = dict(model=model, ipadapter=adapter, image=torch.rand(1, 32, 32, 3), clip_vision=vision)
    cases = [("IPAdapterTiled", dict(image=torch.rand(32, 32)), "image", r"IMAGE \[B, H, W, C\]"),
             ("IPAdapterTiled", dict(clip_vision=None), "clip_vision", "no CLIP vision model"),
             ("IPAdapterMS", dict(layer_weights="3=1"), "layer_weights", "not 'transformer:weight'")]
    for node, change, name, message in cases:
        with pytest.raises(NodeInputError, match=message) as info:
            call(builtin_registry, node, **{**base, **change})
        assert info.value.input == name, node
    with pytest.raises(NodeInputError, match=r"IMAGE \[B, H, W, C\]") as info:
        call(builtin_registry, "PrepImageForClipVision", image=torch.rand(3, 32, 32))
    assert info.value.input == "image"
    with pytest.raises(NodeInputError, match="expected IP-Adapter EMBEDS") as info:
        call(builtin_registry, "IPAdapterSaveEmbeds", embeds=torch.zeros(3), filename_prefix="x")
    assert info.value.input == "embeds"


def test_style_composition_with_more_composition_images_than_style_images(builtin_registry, parts, sdxl_models):
    """One style image, two composition images, concat, with CFG: the pack's sides hold 8 and 4
    tokens on the composition transformer and its attention cuts them evenly over the rows; the
    model samples (no shape error) and without CFG both composition images reach the positive row."""
    _, _, vision = parts
    images = torch.rand(2, 32, 32, 3, generator=torch.Generator().manual_seed(14))
    sdxl = call(builtin_registry, "LoadCheckpoint", checkpoint="sdxl.safetensors")[0]
    adapter = call(builtin_registry, "IPAdapterModelLoader", ipadapter_file="ip-adapter_sdxl.safetensors")
    base = dict(model=sdxl, ipadapter=adapter, clip_vision=vision, image_style=images[:1], combine_embeds="concat")
    both = call(builtin_registry, "IPAdapterStyleComposition", image_composition=images, **base)
    first = call(builtin_registry, "IPAdapterStyleComposition", image_composition=images[:1], **base)
    with_cfg = _unet_out(both)  # rows: positive, negative
    assert torch.isfinite(with_cfg).all() and (with_cfg - _unet_out(first)).abs().max() > 1e-5
    positive = (False, False)
    assert (_unet_out(both, negative=positive) - _unet_out(first, negative=positive)).abs().max() > 1e-5
