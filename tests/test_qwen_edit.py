"""Qwen-Image-Edit and Edit-2509: reference latents in the MM-DiT against diffusers'
QwenImageTransformer2DModel on identical tiny random weights, fed as diffusers' QwenImageEditPipeline
/ QwenImageEditPlusPipeline feed it (each picture's packed latent appended after the noisy latent's
tokens, img_shapes listing the noisy latent then each reference, the output cut to the first
tokens); ComfyUI's Edit graph end to end (workflows/qwen_image_edit.json).

diffusers' rotary module gives reference k frame k, each centred on its own size: ComfyUI's "index"
method (Qwen-Image's default). Where they differ (odd patch counts, centred one lower by diffusers;
a reference larger than the noisy latent, which moves diffusers' text positions but not ComfyUI's;
the "offset" method, which diffusers lacks) the comparison gives diffusers' transformer ComfyUI's
positions, written out here from ComfyUI's rules (comfy_rope).

The Edit nodes scale pictures to about 1024 x 1024 pixels, which the tiny vision tower and VAE take
a minute for on a CPU: the graph tests shrink nodes.qwen.REFERENCE_PIXELS.
"""

import json

import pytest
import torch
import torch.nn.functional as F

from graphflow.models.qwen_image import QwenImage
from graphflow.testing import QWEN_IMAGE_TINY_JOINT_DIM, qwen_image_config, qwen_image_state
from tests.test_qwen_image import diffusers_qwen

TOL = 1e-4
JOINT = QWEN_IMAGE_TINY_JOINT_DIM


@pytest.fixture(scope="module")
def qwen_pair():
    state = qwen_image_state(seed=4)
    ours = QwenImage(qwen_image_config()).eval()
    ours.load_state_dict(state, strict=True)
    return ours, diffusers_qwen(state)


def comfy_rope(theirs, sizes, method):
    """diffusers' rotary module (its own rope_params) with ComfyUI's positions for a noisy latent and
    references of latent sizes sizes = [(H, W), (h1, w1), ...]: patches (frame, row, column), rows of
    a latent of n patch rows at r - n // 2 (plus the reference's offset); "index": reference k at
    frame k; "offset": all at frame 1, each placed right of the ones before if stacking it below
    would make their bounding box taller than wide, else below (offsets in latent pixels, halved
    rounding up); text from max(rows // 2, cols // 2) of the noisy latent."""
    pe = theirs.pos_embed

    def centred(n, shift):
        return torch.arange(n) + shift - n // 2

    def grid(frame, rows, cols):
        axes = (torch.full((len(rows) * len(cols),), frame), rows.repeat_interleave(len(cols)), cols.repeat(len(rows)))
        return torch.cat([pe.rope_params(a, d, pe.theta) for a, d in zip(axes, pe.axes_dim)], dim=1)

    (H, W), refs = sizes[0], sizes[1:]
    blocks = [grid(0, centred((H + 1) // 2, 0), centred((W + 1) // 2, 0))]
    tall = wide = 0  # the bounding box of the references so far (offset)
    for k, (h, w) in enumerate(refs):
        down = right = 0
        if method == "index":
            frame = k + 1
        else:
            frame = 1
            if h + tall > w + wide:
                right = wide
            else:
                down = tall
            tall, wide = max(tall, h + down), max(wide, w + right)
        blocks.append(grid(frame, centred((h + 1) // 2, (down + 1) // 2), centred((w + 1) // 2, (right + 1) // 2)))
    start = max((H + 1) // 2 // 2, (W + 1) // 2 // 2)

    def forward(video_fhw, device=None, max_txt_seq_len=None):
        t = torch.arange(start, start + int(max_txt_seq_len))
        return torch.cat(blocks), torch.cat([pe.rope_params(t, d, pe.theta) for d in pe.axes_dim], dim=1)

    return forward


def pack(x):
    """[B, 16, H, W] (H, W even) -> diffusers' packed [B, H W / 4, 64]."""
    b, c, H, W = x.shape
    return x.reshape(b, c, H // 2, 2, W // 2, 2).permute(0, 2, 4, 1, 3, 5).reshape(b, H * W // 4, 4 * c)


def even(x):
    """Circularly padded to even sides, as ComfyUI pads to whole patches."""
    return F.pad(x, (0, x.shape[-1] % 2, 0, x.shape[-2] % 2), mode="circular")


def diffusers_edit(theirs, x, sigma, context, refs, monkeypatch=None, method=None):
    """diffusers' transformer on [B, 16, H, W] with references [B, 16, h, w] as its Edit pipelines
    feed it; with a method, ComfyUI's positions (comfy_rope) instead of diffusers' own."""
    b, c, H, W = x.shape
    xs = [even(x)] + [even(r.expand(b, -1, -1, -1)) for r in refs]
    if method is not None:
        monkeypatch.setattr(theirs.pos_embed, "forward", comfy_rope(theirs, [tuple(t.shape[-2:]) for t in [x, *refs]],
                                                                    method))
    packed = torch.cat([pack(t) for t in xs], dim=1)
    shapes = [[(1, t.shape[-2] // 2, t.shape[-1] // 2) for t in xs]] * b
    n = xs[0].shape[-2] * xs[0].shape[-1] // 4
    with torch.no_grad():
        out = theirs(packed, context.expand(b, -1, -1), None, sigma, img_shapes=shapes, return_dict=False)[0][:, :n]
    h, w = xs[0].shape[-2] // 2, xs[0].shape[-1] // 2
    out = out.reshape(b, h, w, c, 2, 2).permute(0, 3, 1, 4, 2, 5).reshape(b, c, 2 * h, 2 * w)
    if method is not None:
        monkeypatch.undo()
    return out[..., :H, :W]


def inputs(seed, size, refs, batch=1, tokens=5):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, 16, *size, generator=g)
    return (x, torch.rand(batch, generator=g), torch.randn(1, tokens, JOINT, generator=g),
            [torch.randn(1, 16, *r, generator=g) for r in refs])


# -- the transformer -------------------------------------------------------------------------------

@pytest.mark.parametrize("refs", [[(8, 12)], [(8, 8), (4, 12)]])
def test_index_references_match_diffusers(qwen_pair, refs):
    """The default ("index") placement, even patch counts: diffusers' own positions. References
    [1, 16, h, w] serve a batch of two; one-frame latents [B, 16, 1, h, w] give the same."""
    ours, theirs = qwen_pair
    x, sigma, context, ref_latents = inputs(1, (8, 12), refs, batch=2)
    want = diffusers_edit(theirs, x, sigma, context, ref_latents)
    with torch.no_grad():
        got = ours(x, sigma, context, reference_latents=ref_latents)
        frames = ours(x[:, :, None], sigma, context, reference_latents=[r[:, :, None] for r in ref_latents])
        plain = ours(x, sigma, context)
    assert float(want.std()) > 0.1 and (got - want).abs().max() < TOL
    assert torch.equal(frames[:, :, 0], got)
    assert (plain - got).abs().max() > 1e-2  # the pictures count


@pytest.mark.parametrize("method", ["index", "offset", "uxo"])
def test_methods_and_odd_sizes_match_comfyui_positions(qwen_pair, monkeypatch, method):
    """"offset" (FluxKontextMultiReferenceLatentMethod; "uxo" is placed as "offset", as ComfyUI's
    Qwen-Image does) and "index", with odd latent sides and patch counts, a reference larger than
    the noisy latent, and a text mask: diffusers' transformer on the circularly padded latents at
    ComfyUI's positions."""
    ours, theirs = qwen_pair
    x, sigma, context, refs = inputs(2, (7, 9), [(6, 10), (9, 7), (14, 16)], tokens=6)
    want = diffusers_edit(theirs, x, sigma, context, refs, monkeypatch, "offset" if method == "uxo" else method)
    with torch.no_grad():
        got = ours(x, sigma, context, reference_method=method, reference_latents=refs)
        masked = ours(x, sigma, torch.cat([context, torch.randn(1, 3, JOINT)], dim=1), reference_method=method,
                      reference_latents=refs, text_mask=torch.tensor([[1] * 6 + [0] * 3]))
    assert float(want.std()) > 0.1 and (got - want).abs().max() < TOL
    assert (masked - got).abs().max() < TOL
    if method == "index":
        with torch.no_grad():
            offset = ours(x, sigma, context, reference_method="offset", reference_latents=refs)
        assert (offset - got).abs().max() > 1e-3


def test_bad_reference_latents_are_refused(qwen_pair):
    ours, _ = qwen_pair
    x, sigma, context, _ = inputs(3, (4, 4), [])
    with pytest.raises(ValueError, match=r"reference latent 0 must be \[B, 16, h, w\]"):
        ours(x, sigma, context, reference_latents=[torch.zeros(1, 16, 2, 4, 4)])
    with pytest.raises(ValueError, match="reference latent 1"):
        ours(x, sigma, context, reference_latents=[torch.zeros(1, 16, 4, 4), torch.zeros(1, 4, 4, 4)])


# -- sampling and ComfyUI's graphs --------------------------------------------------------------------

def qwen_vae_norm(z):
    """diffusers' pipelines' (z - latents_mean) / latents_std with AutoencoderKLQwenImage's statistics."""
    from diffusers import AutoencoderKLQwenImage

    config = AutoencoderKLQwenImage(base_dim=8, z_dim=16).config
    mean, std = (torch.tensor(v).view(1, 16, 1, 1) for v in (config.latents_mean, config.latents_std))
    return (z - mean) / std


def cfg_norm_euler(velocity, x, sigmas, cfg, strength=1.0):
    """Euler steps with CFG then ComfyUI's CFGNorm on the denoised (x0) predictions, the norm over channels."""
    for sigma, following in zip(sigmas, sigmas[1:]):
        v_cond, v_uncond = velocity(x, sigma)
        d_cond, d_uncond = x - sigma * v_cond, x - sigma * v_uncond
        d = d_uncond + cfg * (d_cond - d_uncond)
        d = d * (d_cond.norm(dim=1, keepdim=True) / (d.norm(dim=1, keepdim=True) + 1e-8)).clamp(0, 1) * strength
        x = x + (x - d) / sigma * (following - sigma)
    return x


@pytest.fixture
def edit_models(tmp_folders):
    from PIL import Image
    import numpy as np

    from graphflow.testing import write_qwen25vl, write_qwen_image, write_wan_vae

    m = tmp_folders.models
    for sub in ("diffusion_models", "text_encoders", "vae"):
        (m / sub).mkdir()
    write_qwen_image(m / "diffusion_models" / "qwen_image_edit_fp8_e4m3fn.safetensors", seed=6, dtype=torch.float32)
    write_qwen25vl(m / "text_encoders" / "qwen_2.5_vl_7b_fp8_scaled.safetensors")
    write_wan_vae(m / "vae" / "qwen_image_vae.safetensors", dtype=torch.float32)
    rng = np.random.default_rng(0)
    for name, size in (("image_qwen_image_edit_input_image.png", (80, 96)), ("other.png", (80, 96)),
                       ("tall.png", (96, 64))):
        Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(tmp_folders.inputs / name)
    return tmp_folders


def transformer_of(folders):
    from safetensors.torch import load_file

    path = folders.models / "diffusion_models" / "qwen_image_edit_fp8_e4m3fn.safetensors"
    return diffusers_qwen(load_file(str(path)))


def test_ksampler_with_references_matches_diffusers(edit_models):
    """UNETLoader -> ModelSamplingAuraFlow 3 -> CFGNorm -> KSampler (euler, simple, 2 steps, cfg
    2.5) with both prompts carrying a one-frame reference latent [1, 16, 1, h, w] (what the Edit
    node puts there): equals CFGNorm'd Euler steps of diffusers' transformer given the reference
    normalised as its pipeline does (sigmas 1, 3 * 0.5 / (1 + 2 * 0.5), 0). With one picture
    FluxKontextMultiReferenceLatentMethod's "offset" places it as "index" does; with two, at
    ComfyUI's offset positions (comfy_rope), unlike the default "index"."""
    from graphflow.models.latent_formats import WAN21
    from graphflow.registry import Registry
    from graphflow.sampling.noise import initial_noise
    from tests.test_nodes_image_mask import call

    reg = Registry().load_builtin()
    model = call(reg, "LoadDiffusionModel", unet_name="qwen_image_edit_fp8_e4m3fn.safetensors", weight_dtype="default")
    model = call(reg, "CFGNorm", model=call(reg, "ModelSamplingAuraFlow", model=model, shift=3.0), strength=1.0)
    g = torch.Generator().manual_seed(8)
    cond, uncond = torch.randn(1, 5, JOINT, generator=g), torch.randn(1, 3, JOINT, generator=g)
    ref = torch.randn(1, 16, 1, 8, 8, generator=g) * 2 + 0.5  # even patch counts: diffusers' own positions
    latent = {"samples": torch.zeros(1, 16, 1, 8, 12)}

    def sample(positive, negative):
        return call(reg, "KSampler", model=model, seed=9, steps=2, cfg=2.5, sampler_name="euler", scheduler="simple",
                    positive=positive, negative=negative, latent_image=latent, denoise=1.0)["samples"]

    out = sample([(cond, {"reference_latents": [ref]})], [(uncond, {"reference_latents": [ref]})])
    assert out.shape == (1, 16, 1, 8, 12)

    theirs = transformer_of(edit_models)
    refs = [qwen_vae_norm(ref[:, :, 0])]

    def velocity(x, sigma):
        s = torch.tensor([sigma])
        return tuple(diffusers_edit(theirs, x, s, c, refs) for c in (cond, uncond))

    x = cfg_norm_euler(velocity, initial_noise(torch.zeros(1, 16, 1, 8, 12), 9)[:, :, 0], [1.0, 0.75, 0.0], 2.5)
    ours = WAN21.process_in(out[:, :, 0].float())
    assert float(x.abs().mean()) > 0.05 and float((ours - x).abs().max()) < 1e-4 * float(x.abs().max())

    one = sample(*(call(reg, "FluxKontextMultiReferenceLatentMethod", reference_latents_method="offset",
                        conditioning=[(c, {"reference_latents": [ref]})]) for c in (cond, uncond)))
    assert torch.equal(one, out)  # one picture: frame 1, unshifted, by either method

    # two pictures placed by "offset": ComfyUI's positions
    second = torch.randn(1, 16, 1, 5, 7, generator=g)
    both = [(c, {"reference_latents": [ref, second]}) for c in (cond, uncond)]
    offset = sample(*(call(reg, "FluxKontextMultiReferenceLatentMethod", reference_latents_method="offset",
                           conditioning=[c]) for c in both))
    refs = [qwen_vae_norm(r[:, :, 0]) for r in (ref, second)]
    monkey = pytest.MonkeyPatch()

    def velocity(x, sigma):
        s = torch.tensor([sigma])
        return tuple(diffusers_edit(theirs, x, s, c, refs, monkey, "offset") for c in (cond, uncond))

    x = cfg_norm_euler(velocity, initial_noise(torch.zeros(1, 16, 1, 8, 12), 9)[:, :, 0], [1.0, 0.75, 0.0], 2.5)
    assert float((WAN21.process_in(offset[:, :, 0].float()) - x).abs().max()) < 1e-4 * float(x.abs().max())
    assert (sample([both[0]], [both[1]]) - offset).abs().max() > 1e-3  # "index" by default

    with pytest.raises(Exception, match="reference latent 0 must be an image's"):
        sample([(cond, {"reference_latents": [torch.zeros(1, 16, 2, 8, 8)]})], [(uncond, {})])


def test_qwen_image_edit_workflow(edit_models, monkeypatch):
    """workflows/qwen_image_edit.json (ComfyUI's Qwen-Image-Edit template: both prompts through
    TextEncodeQwenImageEdit with the VAE and the scaled picture, CFGNorm, shift 3, 20 euler steps at
    cfg 2.5 on the picture's latent) as saved but for its size and steps: it runs, the picture
    steers the edit, and the two steps equal diffusers' transformer fed the graph's conditioning
    and reference latents (odd latent sides: ComfyUI's positions)."""
    import nodes.qwen
    from graphflow.executor import Executor
    from graphflow.models.latent_formats import WAN21
    from graphflow.registry import Registry
    from graphflow.sampling.noise import initial_noise
    from tests.test_workflows import workflow

    monkeypatch.setattr(nodes.qwen, "REFERENCE_PIXELS", 64 * 80)
    registry = Registry().load_builtin()
    sets = {"93__megapixels": 0.01, "3__steps": 2}

    def run(**more):
        result = Executor(registry).run(workflow("qwen_image_edit", **sets, **more))
        assert result.ok, json.dumps(result.error, default=str)[:2000]
        return result

    result = run()
    image = result.values["8"][0]
    assert image.shape == (1, 88, 112, 3) and float(image.std()) > 0.01  # 93 x 112 (0.01 MP), cut to multiples of 8
    assert result.outputs["60"]["images"][0]["filename"].startswith("ComfyUI_")
    [(cond, options)] = result.values["76"][0]
    [(uncond, negative)] = result.values["77"][0]
    [ref] = options["reference_latents"]
    assert ref.shape == (1, 16, 1, 8, 9) and torch.equal(negative["reference_latents"][0], ref)  # 65 x 79 -> 64 x 72
    other = run(**{"78__image": "other.png"})
    assert (other.values["8"][0] - image).abs().max() > 1e-3

    theirs, monkey = transformer_of(edit_models), pytest.MonkeyPatch()
    refs = [qwen_vae_norm(ref[:, :, 0])]
    shape = result.values["88"][0]["samples"].shape
    assert shape == (1, 16, 1, 11, 14)

    def velocity(x, sigma):
        s = torch.tensor([sigma])
        return tuple(diffusers_edit(theirs, x, s, c, refs, monkey, "index") for c in (cond, uncond))

    x = cfg_norm_euler(velocity, initial_noise(torch.zeros(shape), 976480016588017)[:, :, 0], [1.0, 0.75, 0.0], 2.5)
    ours = WAN21.process_in(result.values["3"][0]["samples"][:, :, 0].float())
    assert float(x.abs().mean()) > 0.05 and float((ours - x).abs().max()) < 1e-4 * float(x.abs().max())


def test_edit_plus_with_two_pictures(edit_models, monkeypatch):
    """TextEncodeQwenImageEditPlus with two pictures of different shapes: two reference latents
    (sides multiples of 8), placed at frames 1 and 2; one euler step equals diffusers' transformer
    fed both (as QwenImageEditPlusPipeline), and the second picture counts."""
    import nodes.qwen
    from graphflow.executor import Executor
    from graphflow.models.latent_formats import WAN21
    from graphflow.registry import Registry
    from graphflow.sampling.noise import initial_noise
    from graphflow.workflow import parse_workflow

    monkeypatch.setattr(nodes.qwen, "REFERENCE_PIXELS", 64 * 64)
    monkeypatch.setattr(nodes.qwen, "PLUS_VISION_PIXELS", 56 * 56)

    def graph(second):
        return {
            "1": {"class_type": "UNETLoader", "inputs": {"unet_name": "qwen_image_edit_fp8_e4m3fn.safetensors",
                                                         "weight_dtype": "default"}},
            "2": {"class_type": "CLIPLoader", "inputs": {"clip_name": "qwen_2.5_vl_7b_fp8_scaled.safetensors",
                                                         "type": "qwen_image", "device": "default"}},
            "3": {"class_type": "VAELoader", "inputs": {"vae_name": "qwen_image_vae.safetensors"}},
            "4": {"class_type": "LoadImage", "inputs": {"image": "image_qwen_image_edit_input_image.png"}},
            "5": {"class_type": "LoadImage", "inputs": {"image": second}},
            "6": {"class_type": "TextEncodeQwenImageEditPlus",
                  "inputs": {"prompt": "the cat from picture 1 on the sofa of picture 2", "clip": ["2", 0],
                             "vae": ["3", 0], "image1": ["4", 0], "image2": ["5", 0]}},
            "7": {"class_type": "EmptySD3LatentImage", "inputs": {"width": 64, "height": 48, "batch_size": 1}},
            "8": {"class_type": "KSampler", "inputs": {"seed": 3, "steps": 1, "cfg": 1.0, "sampler_name": "euler",
                                                       "scheduler": "simple", "denoise": 1.0, "model": ["1", 0],
                                                       "positive": ["6", 0], "negative": ["6", 0],
                                                       "latent_image": ["7", 0]}},
        }

    registry = Registry().load_builtin()

    def run(second):
        result = Executor(registry).run(parse_workflow(graph(second), registry), outputs=["8"])
        assert result.ok, json.dumps(result.error, default=str)[:2000]
        return result

    result = run("tall.png")
    [(cond, options)] = result.values["6"][0]
    refs = options["reference_latents"]
    assert [tuple(r.shape) for r in refs] == [(1, 16, 1, 7, 9), (1, 16, 1, 10, 7)]  # 56 x 72 and 80 x 56 pixels
    out = result.values["8"][0]["samples"]

    theirs, monkey = transformer_of(edit_models), pytest.MonkeyPatch()
    x = initial_noise(torch.zeros(out.shape), 3)[:, :, 0]  # sigma 1 (shift 1.15) then 0: x0 = x - v
    v = diffusers_edit(theirs, x, torch.tensor([1.0]), cond, [qwen_vae_norm(r[:, :, 0]) for r in refs], monkey, "index")
    ours = WAN21.process_in(out[:, :, 0].float())
    assert (ours - (x - v)).abs().max() < 1e-4 * float(x.abs().max())
    other = run("other.png")
    assert (other.values["8"][0]["samples"] - out).abs().max() > 1e-3
