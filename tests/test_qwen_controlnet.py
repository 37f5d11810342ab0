"""Qwen-Image ControlNets on tiny random weights.

InstantX's (ControlNetLoader + ControlNetApplyAdvanced): against diffusers' QwenImageControlNetModel
and QwenImageTransformer2DModel reading the same tensors, through our FlowDenoiser; the hint is
the VAE's latent of the image, shifted and scaled as the sampled latent (Wan 2.1's process_in).

DiffSynth's block-wise ControlNets (ModelPatchLoader + QwenImageDiffsynthControlnet): diffusers
has no model for them, so the patched network is checked against the block-wise additions written
out here with plain torch ops on the file's tensors (ComfyUI's BlockWiseControlBlock after each
Qwen-Image block), strength 0 against the plain model, the inpaint variant's mask channel, and a
ComfyUI graph running.
"""

import json

import pytest
import torch
import torch.nn.functional as F
from diffusers import QwenImageControlNetModel
from safetensors.torch import load_file

from graphflow.models.checkpoint import load_diffusion_model
from graphflow.models.controlnet import ControlApplied, load_control_model
from graphflow.models.latent_formats import WAN21
from graphflow.models.qwen_image_controlnet import QwenImageControlNet
from graphflow.models.qwen_image_diffsynth import apply_diffsynth
from graphflow.models.uso import load_model_patch
from graphflow.sampling.flow_sampling import FlowDenoiser
from graphflow.testing import (QWEN_IMAGE_TINY_JOINT_DIM, T5_TINY_WIDTH, qwen_image_state,
                               write_qwen_diffsynth_controlnet, write_qwen_image, write_qwen_image_controlnet)
from tests.test_qwen_image import diffusers_qwen

TOL = 1e-4
JOINT = QWEN_IMAGE_TINY_JOINT_DIM


def pack(x):
    b, c, H, W = x.shape
    return x.reshape(b, c, H // 2, 2, W // 2, 2).permute(0, 2, 4, 1, 3, 5).reshape(b, H * W // 4, 4 * c)


def unpack(t, c, H, W):
    return t.reshape(t.shape[0], H // 2, W // 2, c, 2, 2).permute(0, 3, 1, 4, 2, 5).reshape(-1, c, H, W)


class StubVAE:
    """Qwen-Image's VAE as the hint sees it: 8x pixels, Wan 2.1's latent format; encode gives a fixed
    raw latent (one frame, as the Wan VAE gives one image) and records the pixels it was given."""
    downscale, latent_format = 8, WAN21

    def __init__(self, raw):
        self.raw, self.pixels = raw, []

    def encode(self, pixels):
        self.pixels.append(pixels)
        assert pixels.shape[1:3] == (8 * self.raw.shape[-2], 8 * self.raw.shape[-1])
        return self.raw[:, :, None]


def diffusers_controlnet(path, inpainting=False):
    theirs = QwenImageControlNetModel(patch_size=2, in_channels=64, out_channels=16, num_layers=1,
                                      attention_head_dim=32, num_attention_heads=2, joint_attention_dim=JOINT,
                                      axes_dims_rope=(4, 14, 14), extra_condition_channels=4 * inpainting).eval()
    theirs.load_state_dict(load_file(str(path)), strict=True)
    return theirs


@pytest.fixture(scope="module")
def qwen(tmp_path_factory):
    base = write_qwen_image(tmp_path_factory.mktemp("qwen") / "qwen_image.safetensors", seed=3, dtype=torch.float32)
    model = load_diffusion_model(base, device="cpu", dtype=torch.float32)
    return model, diffusers_qwen(qwen_image_state(seed=3))


@pytest.mark.parametrize("inpainting", [False, True])
def test_instantx_controlnet_matches_diffusers(tmp_path, qwen, inpainting):
    """ControlNetLoader recognises the file (transformer_blocks' img_mlp beside controlnet_blocks, as
    ComfyUI); its one block's residual serves both of the model's blocks (i // ceil(2 / 1)). Through
    FlowDenoiser with ControlApplied (strength 0.7, the hint image through the VAE, the inpainting
    variant's kept-part mask as a 17th channel) the denoised latent is diffusers' with
    controlnet_block_samples scaled by 0.7."""
    model, theirs = qwen
    path = write_qwen_image_controlnet(tmp_path / "diffusion_pytorch_model.safetensors", seed=4, dtype=torch.float32,
                                       inpainting=inpainting)
    net = load_control_model(path, dtype=torch.float32)
    assert isinstance(net, QwenImageControlNet) and net.needs_vae and net.concat_mask == inpainting
    theirs_net = diffusers_controlnet(path, inpainting)
    g = torch.Generator().manual_seed(5)
    x = torch.randn(2, 16, 1, 8, 8, generator=g)
    raw = torch.randn(1, 16, 8, 8, generator=g)
    sigma, context = torch.tensor([0.3, 0.3]), torch.randn(1, 5, JOINT, generator=g)
    image = torch.rand(1, 64, 64, 3, generator=g)
    mask = (torch.rand(1, 1, 64, 64, generator=g) > 0.5).float() if inpainting else None
    vae = StubVAE(raw)
    applied = ControlApplied(net, image, 0.7, vae=vae, mask=mask)
    with torch.no_grad():
        mine = FlowDenoiser(model)(x, sigma, context.expand(2, -1, -1), control=applied)
        hint = WAN21.process_in(raw)
        if inpainting:  # the kept part at latent size (nearest-exact)
            hint = torch.cat([hint, F.interpolate(mask, size=(8, 8), mode="nearest-exact")], dim=1)
        kwargs = dict(encoder_hidden_states=context.expand(2, -1, -1), timestep=sigma, img_shapes=[(1, 4, 4)] * 2)
        samples = theirs_net(hidden_states=pack(x[:, :, 0]), controlnet_cond=pack(hint.expand(2, -1, -1, -1)),
                             conditioning_scale=0.7, return_dict=False, **kwargs)  # the list itself
        v = theirs(hidden_states=pack(x[:, :, 0]), controlnet_block_samples=samples, return_dict=False, **kwargs)[0]
        plain = theirs(hidden_states=pack(x[:, :, 0]), return_dict=False, **kwargs)[0]
    assert vae.pixels[0].shape == (1, 64, 64, 3) and torch.allclose(vae.pixels[0], image)
    assert samples[0].abs().mean() > 0.05
    expected = x[:, :, 0] - 0.3 * unpack(v, 16, 8, 8)
    assert mine.shape == x.shape and (mine[:, :, 0] - expected).abs().max() <= TOL
    assert (v - plain).abs().max() > 1e-2


def test_instantx_controlnet_refusals(tmp_path, qwen, builtin_registry):
    """The VAE is required by the apply node; a Qwen-Image ControlNet on FLUX's config is refused; it
    takes no union type: SetUnionControlNetType gives it back unchanged (ComfyUI ignores the type)."""
    from graphflow.context import NodeInputError
    from graphflow.models.flux import FluxConfig
    from tests.test_nodes_image_mask import call

    net = load_control_model(write_qwen_image_controlnet(tmp_path / "cn.safetensors", dtype=torch.float32),
                             dtype=torch.float32)
    cond = [(torch.zeros(1, 3, JOINT), {})]
    with pytest.raises(NodeInputError, match="connect the model's VAE"):
        call(builtin_registry, "ApplyControlNetAdvanced", positive=cond, negative=cond, control_net=net,
             image=torch.rand(1, 16, 16, 3), strength=1.0, start_percent=0.0, end_percent=1.0, vae=None)
    with pytest.raises(ValueError, match="not Qwen-Image"):
        net.control(None, torch.zeros(1, 16, 4, 4), torch.tensor([0.5]), None, None, FluxConfig())
    # ComfyUI hands SetUnionControlNetType's type to the net, whose forward drops it: the same net back
    typed = call(builtin_registry, "SetUnionControlNetType", control_net=net, type="canny/lineart/anime_lineart/mlsd")
    assert typed is net


def reference_diffsynth(model, state, latent, sigma, context, hint_latent, strength):
    """Qwen-Image's blocks with ComfyUI's block-wise additions written out: after block i, the image
    tokens x += strength * W2 gelu(W1 (rms(x) g_x + rms(y) g_y) + b1) + b2, y = img_in(hint patches)."""
    net = model.unet

    def rms(t, g):
        return t * torch.rsqrt(t.pow(2).mean(-1, keepdim=True) + 1e-6) * g

    x = latent[:, :, 0]
    c, H, W = x.shape[1:]
    y = pack(hint_latent) @ state["img_in.weight"].T + state["img_in.bias"]
    img, txt, temb, pe, _ = net.embed(x, sigma, context)
    for i, block in enumerate(net.transformer_blocks):
        img, txt = block(img, txt, temb, pe)
        w = {k[len(f"controlnet_blocks.{i}."):]: v for k, v in state.items() if k.startswith(f"controlnet_blocks.{i}.")}
        h = rms(img, w["x_rms.weight"]) + rms(y, w["y_rms.weight"])
        h = F.gelu(h @ w["input_proj.weight"].T + w["input_proj.bias"])
        img = img + strength * (h @ w["output_proj.weight"].T + w["output_proj.bias"])
    return unpack(net.proj_out(net.norm_out(img, temb)), c, H, W)[:, :, None]


@pytest.mark.parametrize("inpaint", [False, True])
def test_diffsynth_blockwise_controlnet(tmp_path, qwen, inpaint):
    """ModelPatchLoader reads the file; the patched model adds each block's output after every
    Qwen-Image block as written out here; the hint is the image through the VAE, Wan 2.1's
    process_in; the inpaint variant reads 1 - mask (bilinear to latent size) as a 17th channel (all
    ones without a mask). Strength 0 gives the plain model exactly; the original model is unchanged."""
    model, _ = qwen
    path = write_qwen_diffsynth_controlnet(tmp_path / "qwen_image_canny_diffsynth_controlnet.safetensors", seed=6,
                                           dtype=torch.float32, inpaint=inpaint)
    patch = load_model_patch(path, device="cpu", dtype=torch.float32)
    state = load_file(str(path))
    g = torch.Generator().manual_seed(7)
    x = torch.randn(2, 16, 1, 8, 8, generator=g)
    raw = torch.randn(1, 16, 8, 8, generator=g)
    sigma, context = torch.tensor([0.6, 0.6]), torch.randn(2, 4, JOINT, generator=g)
    image = torch.rand(1, 64, 64, 4, generator=g)  # an alpha channel: dropped
    mask = torch.zeros(1, 64, 64)
    mask[:, :, :24] = 1.0  # redraw the left part
    with torch.no_grad():
        plain = model(x, sigma, context)
        for strength, m in ((0.8, None), (-1.5, mask if inpaint else None)):
            vae = StubVAE(raw)
            patched = apply_diffsynth(model, patch, vae, image, strength, m)
            out = patched(x, sigma, context)
            assert torch.allclose(vae.pixels[0], image[..., :3])
            hint = WAN21.process_in(raw)
            if inpaint:
                keep = torch.ones(1, 1, 8, 8) if m is None else \
                    F.interpolate(1 - m[:, None], size=(8, 8), mode="bilinear")
                hint = torch.cat([hint, keep], dim=1)
            expected = reference_diffsynth(model, state, x, sigma, context, hint.expand(2, -1, -1, -1), strength)
            assert (out - expected).abs().max() <= TOL
            assert (out - plain).abs().max() > 1e-2
        if inpaint:  # the mask changes the result
            assert (apply_diffsynth(model, patch, StubVAE(raw), image, 1.0, mask)(x, sigma, context)
                    - apply_diffsynth(model, patch, StubVAE(raw), image, 1.0)(x, sigma, context)).abs().max() > 1e-4
        assert torch.equal(apply_diffsynth(model, patch, StubVAE(raw), image, 0.0)(x, sigma, context), plain)
    assert model.unet.double_block_patches == ()


def test_diffsynth_refusals(tmp_path, builtin_registry, qwen):
    from graphflow.context import NodeInputError
    from graphflow.models.qwen_image_diffsynth import (DiffSynthControlNet, DiffSynthControlNetConfig, ModelPatch,
                                                       load_diffsynth_controlnet)
    from graphflow.models.weight_files import CheckpointError, WeightFile
    from tests.test_nodes_image_mask import call

    model, _ = qwen
    patch = load_model_patch(write_qwen_diffsynth_controlnet(tmp_path / "p.safetensors", dtype=torch.float32),
                             device="cpu", dtype=torch.float32)
    image = torch.rand(1, 16, 16, 3)
    with pytest.raises(NodeInputError, match="needs a Qwen-Image model") as info:
        call(builtin_registry, "QwenImageDiffsynthControlnet", model=object(), model_patch=patch, vae=StubVAE(None),
             image=image, strength=1.0)
    assert info.value.input == "model"
    with pytest.raises(NodeInputError, match="expected a Qwen-Image DiffSynth ControlNet") as info:
        call(builtin_registry, "QwenImageDiffsynthControlnet", model=model, model_patch=object(), vae=StubVAE(None),
             image=image, strength=1.0)
    assert info.value.input == "model_patch"
    with pytest.raises(NodeInputError, match="qwen_image_vae") as info:
        call(builtin_registry, "QwenImageDiffsynthControlnet", model=model, model_patch=patch, vae=object(),
             image=image, strength=1.0)
    assert info.value.input == "vae"
    # apply_diffsynth names its parameter at fault (patch, vae); the node blames its input for it
    net = model.unet.config
    narrow = ModelPatch(DiffSynthControlNet(DiffSynthControlNetConfig(num_layers=net.num_layers, dim=net.dim // 2)))
    short = ModelPatch(DiffSynthControlNet(DiffSynthControlNetConfig(num_layers=net.num_layers - 1, dim=net.dim)))
    for wrong, part, message in ((narrow, "patch", "wide tokens"), (short, "patch", "blocks"),
                                  (patch, "vae", "qwen_image_vae")):
        vae = object() if part == "vae" else StubVAE(None)
        with pytest.raises(NodeInputError, match=message) as info:
            apply_diffsynth(model, wrong, vae, image, 1.0)
        assert info.value.input == part
        with pytest.raises(NodeInputError, match=message) as info:
            call(builtin_registry, "QwenImageDiffsynthControlnet", model=model, model_patch=wrong, vae=vae,
                 image=image, strength=1.0)
        assert info.value.input == {"patch": "model_patch"}.get(part, part)
    from safetensors.torch import save_file

    save_file({"controlnet_blocks.0.y_rms.weight": torch.ones(8), "img_in.weight": torch.ones(8, 64)},
              str(tmp_path / "partial.safetensors"))
    with WeightFile(tmp_path / "partial.safetensors") as wf, \
            pytest.raises(CheckpointError, match="partial.safetensors: a Qwen-Image DiffSynth"):
        load_diffsynth_controlnet(wf, "cpu", torch.float32)


@pytest.fixture
def qwen_models(tmp_folders):
    """A tiny Qwen-Image made for the tiny T5's width (CLIPLoader type sd3 gives the text), a tiny
    Wan 2.1 VAE as qwen_image_vae, a DiffSynth and an InstantX ControlNet."""
    from graphflow.testing import write_text_encoder, write_wan_vae

    m = tmp_folders.models
    for sub in ("diffusion_models", "model_patches", "vae", "text_encoders", "controlnet"):
        (m / sub).mkdir(parents=True, exist_ok=True)
    write_qwen_image(m / "diffusion_models" / "qwen_tiny.safetensors", seed=1, joint_attention_dim=T5_TINY_WIDTH)
    write_qwen_diffsynth_controlnet(m / "model_patches" / "qwen_image_depth_diffsynth_controlnet.safetensors", seed=2)
    write_qwen_image_controlnet(m / "controlnet" / "Qwen-Image-InstantX-ControlNet-Union.safetensors", seed=5,
                                dtype=torch.bfloat16, joint_attention_dim=T5_TINY_WIDTH)
    write_wan_vae(m / "vae" / "qwen_image_vae.safetensors", seed=3)
    write_text_encoder(m / "text_encoders" / "t5.safetensors", "t5xxl", seed=4, dtype=torch.float32)
    return m


def qwen_graph() -> dict:
    return {
        "1": {"class_type": "UNETLoader", "inputs": {"unet_name": "qwen_tiny.safetensors", "weight_dtype": "default"}},
        "2": {"class_type": "CLIPLoader", "inputs": {"clip_name": "t5.safetensors", "type": "sd3"}},
        "3": {"class_type": "CLIPTextEncode", "inputs": {"text": "a red house", "clip": ["2", 0]}},
        "4": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["2", 0]}},
        "5": {"class_type": "VAELoader", "inputs": {"vae_name": "qwen_image_vae.safetensors"}},
        "6": {"class_type": "EmptySD3LatentImage", "inputs": {"width": 48, "height": 32, "batch_size": 1}},
        "8": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 1, "color": 0x30a0ff}},
        "10": {"class_type": "KSampler", "inputs": {"model": ["1", 0], "positive": ["3", 0], "negative": ["4", 0],
                                                     "latent_image": ["6", 0], "seed": 3, "steps": 2, "cfg": 2.0,
                                                     "sampler_name": "euler", "scheduler": "simple", "denoise": 1.0}},
        "11": {"class_type": "VAEDecode", "inputs": {"samples": ["10", 0], "vae": ["5", 0]}},
    }


def run_graph(registry, graph):
    from graphflow.executor import Executor
    from graphflow.workflow import parse_workflow

    result = Executor(registry).run(parse_workflow(json.loads(json.dumps(graph)), registry), outputs=["11"])
    assert result.ok, result.error or result.problems
    return result.values["11"][0]


def test_controlnet_graphs(qwen_models, builtin_registry):
    """ComfyUI's graphs on one tiny Qwen-Image (KSampler with CFG, VAEDecode): ModelPatchLoader +
    QwenImageDiffsynthControlnet; ControlNetLoader (bf16 files) + ControlNetApplyAdvanced with the
    VAE; the InstantX inpainting ControlNet with ControlNetInpaintingAliMamaApply and a mask. Each
    changes the image; strength 0 gives the plain image exactly."""
    write_qwen_image_controlnet(qwen_models / "controlnet" / "Qwen-Image-InstantX-ControlNet-Inpainting.safetensors",
                                seed=6, dtype=torch.bfloat16, inpainting=True, joint_attention_dim=T5_TINY_WIDTH)
    plain = run_graph(builtin_registry, qwen_graph())
    assert plain.shape == (1, 32, 48, 3)
    diffsynth = {"7": {"class_type": "ModelPatchLoader",
                       "inputs": {"name": "qwen_image_depth_diffsynth_controlnet.safetensors"}},
                 "9": {"class_type": "QwenImageDiffsynthControlnet", "inputs": {
                     "model": ["1", 0], "model_patch": ["7", 0], "vae": ["5", 0], "image": ["8", 0], "strength": 1.0}}}

    def instantx(kind):
        nodes = {"7": {"class_type": "ControlNetLoader",
                       "inputs": {"control_net_name": f"Qwen-Image-InstantX-ControlNet-{kind}.safetensors"}},
                 "9": {"class_type": "ControlNetApplyAdvanced", "inputs": {
                     "positive": ["3", 0], "negative": ["4", 0], "control_net": ["7", 0], "image": ["8", 0],
                     "strength": 1.0, "start_percent": 0.0, "end_percent": 1.0, "vae": ["5", 0]}}}
        if kind == "Inpainting":
            nodes["12"] = {"class_type": "SolidMask", "inputs": {"value": 1.0, "width": 32, "height": 64}}
            nodes["9"]["class_type"] = "ControlNetInpaintingAliMamaApply"
            nodes["9"]["inputs"]["mask"] = ["12", 0]
        return nodes

    for extra, sampler_inputs in ((diffsynth, {"model": ["9", 0]}),
                                  (instantx("Union"), {"positive": ["9", 0], "negative": ["9", 1]}),
                                  (instantx("Inpainting"), {"positive": ["9", 0], "negative": ["9", 1]})):
        graph = {**qwen_graph(), **extra}
        graph["10"]["inputs"].update(sampler_inputs)
        guided = run_graph(builtin_registry, graph)
        graph["9"]["inputs"]["strength"] = 0.0
        assert torch.equal(run_graph(builtin_registry, graph), plain), graph["9"]["class_type"]
        assert guided.shape == plain.shape and (guided - plain).abs().max() > 1e-4, graph["9"]["class_type"]


def test_files_loaded_with_the_wrong_loader_say_where_they_go(tmp_path):
    """Each file names its folder and loader when given to another loader (UNETLoader reads no
    Qwen-Image model in the InstantX ControlNet, whose blocks are Qwen-Image's but which has no
    proj_out)."""
    from graphflow.models.weight_files import CheckpointError

    instantx = write_qwen_image_controlnet(tmp_path / "instantx.safetensors", dtype=torch.float32)
    diffsynth = write_qwen_diffsynth_controlnet(tmp_path / "diffsynth.safetensors")
    cases = ((lambda p: load_diffusion_model(p, device="cpu", dtype=torch.float32), instantx,
              "ControlNet \\(Qwen-Image\\): put it in models/controlnet/"),
             (lambda p: load_model_patch(p, device="cpu"), instantx, "ControlNet \\(Qwen-Image\\)"),
             (lambda p: load_diffusion_model(p, device="cpu", dtype=torch.float32), diffsynth,
              "Qwen-Image DiffSynth ControlNet \\(model patch\\): put it in models/model_patches/"),
             (lambda p: load_control_model(p), diffsynth, "models/model_patches/ and load it with LoadModelPatch"))
    for load, path, message in cases:
        with pytest.raises(CheckpointError, match=message):
            load(path)
