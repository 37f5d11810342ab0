"""AnimateDiff motion modules (graphflow.models.animatediff) against diffusers' UNetMotionModel.

The oracle: our random SD1-style UNet converted by diffusers' own single-file converter (as in
test_unet), the same motion-module weights renamed into diffusers' MotionAdapter by the key map of
diffusers' scripts/convert_animatediff_motion_module_to_diffusers.py, and UNetMotionModel.from_unet2d.
Diffusers normalises its motion transformers' GroupNorm over all frames and the UNet's per frame;
AnimateDiff-Evolved does one or the other everywhere (its GroupNorm hack for v1, not for v2 / v3), so
each test swaps diffusers' GroupNorms for the other statistic, computed with torch's F.group_norm.
"""

import pytest
import torch
import torch.nn.functional as F
from diffusers import MotionAdapter, UNetMotionModel

from graphflow.models import UNetConfig
from graphflow.models.animatediff import (MotionModuleError, MotionSettings, attach_motion, load_motion_model,
                                          motion_slots)
from graphflow.testing import motion_module_shapes, motion_module_state
from tests.test_unet import random_unet, to_diffusers_unet

# SD1.5's layout scaled down: 4 levels, 2 ResBlocks each, attention on the upper three
TINY = UNetConfig(model_channels=32, channel_mult=(1, 1, 2, 2), num_res_blocks=2, transformer_depth=(1, 1, 1, 0),
                  context_dim=48, num_heads=8, num_head_channels=-1)
FRAMES = 6


def diffusers_key(key: str) -> str | None:
    """Original motion-module key -> MotionAdapter key (None: the positional table, computed there)."""
    if "pos_encoder" in key:
        return None
    for old, new in ((".temporal_transformer.", "."), ("attention_blocks.0", "attn1"), ("attention_blocks.1", "attn2"),
                     ("norms.0", "norm1"), ("norms.1", "norm2"), ("ff_norm", "norm3")):
        key = key.replace(old, new)
    return key


def diffusers_motion_unet(ours_unet, state: dict, cfg: UNetConfig, mid: bool, key_scale: float = 1.0):
    unet2d, _ = to_diffusers_unet(ours_unet)
    adapter = MotionAdapter(block_out_channels=tuple(m * cfg.model_channels for m in cfg.channel_mult),
                            motion_layers_per_block=cfg.num_res_blocks[0], motion_mid_block_layers_per_block=1,
                            motion_num_attention_heads=8, motion_norm_num_groups=32, motion_max_seq_length=32,
                            use_motion_mid_block=mid)
    converted = {diffusers_key(k): v.float() for k, v in state.items() if diffusers_key(k)}
    if key_scale != 1.0:  # the pack's motion scale multiplies the keys: the same as scaling to_k
        converted = {k: v * key_scale if ".to_k." in k else v for k, v in converted.items()}
    missing, unexpected = adapter.load_state_dict(converted, strict=False)
    assert not unexpected and all("pos_embed" in k for k in missing), (missing, unexpected)
    return UNetMotionModel.from_unet2d(unet2d, adapter).eval()


class PerFrameNorm(torch.nn.Module):
    """Diffusers' motion GroupNorm (on [B, C, F, h, w]) with per-frame statistics."""

    def __init__(self, norm):
        super().__init__()
        self.inner = norm

    def forward(self, x):
        b, c, f, h, w = x.shape
        n = self.inner
        flat = x.transpose(1, 2).reshape(b * f, c, h, w)
        out = F.group_norm(flat, n.num_groups, n.weight, n.bias, n.eps)
        return out.reshape(b, f, c, h, w).transpose(1, 2)


class AcrossFramesNorm(torch.nn.Module):
    """A UNet GroupNorm (on [B * F, C, h, w]) with statistics over each video's frames."""

    def __init__(self, norm, frames):
        super().__init__()
        self.inner, self.frames = norm, frames

    def forward(self, x):
        bf, c, h, w = x.shape
        n = self.inner
        video = x.reshape(bf // self.frames, self.frames, c, h, w).transpose(1, 2)
        out = F.group_norm(video, n.num_groups, n.weight, n.bias, n.eps)
        return out.transpose(1, 2).reshape(bf, c, h, w)


def swap_norms(model, make, motion: bool):
    """Replace the GroupNorms inside (motion=True) or outside (False) the motion modules."""
    for name, module in list(model.named_modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, torch.nn.GroupNorm) and ("motion_modules" in f"{name}.{child_name}") == motion:
                setattr(module, child_name, make(child))


def inputs(videos: int = 2, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(videos, 4, FRAMES, 16, 16, generator=g)
    context = torch.randn(videos, 5, TINY.context_dim, generator=g)
    return x, context


def ours_call(unet, x, t, context):
    """Our UNet on the frames as a batch: [videos * frames, C, h, w] -> [videos, C, frames, h, w]."""
    b, c, f, h, w = x.shape
    flat = x.transpose(1, 2).reshape(b * f, c, h, w)
    out = unet(flat, torch.full((b * f,), t), context.repeat_interleave(f, 0), num_frames=f)
    return out.reshape(b, f, c, h, w).transpose(1, 2)


@pytest.mark.parametrize("version", ["v2", "v1", "v3"])
def test_motion_unet_matches_diffusers(version):
    ours = random_unet(TINY)
    state = motion_module_state(TINY, version, seed=3, dtype=torch.float32)
    motion = load_motion_model(state, f"mm_{version}")
    assert motion.config.version == version
    theirs = diffusers_motion_unet(ours, state, TINY, mid=version == "v2")
    if motion.frames_group_norm():  # v1: every GroupNorm over the frames (the pack's hack)
        assert version == "v1"
        swap_norms(theirs, lambda n: AcrossFramesNorm(n, FRAMES), motion=False)
    else:
        swap_norms(theirs, PerFrameNorm, motion=True)
    x, context = inputs()
    with torch.no_grad():
        expected = theirs(x, 500.0, encoder_hidden_states=context.repeat_interleave(FRAMES, 0)).sample
        got = ours_call(attach_motion(ours, motion), x, 500.0, context)
        plain = ours_call(ours, x, 500.0, context)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)
    assert (got - plain).abs().max() > 1e-2  # the motion module changed the prediction


def test_motion_scale_scales_the_keys():
    ours = random_unet(TINY)
    state = motion_module_state(TINY, "v3", seed=4, dtype=torch.float32)
    theirs = diffusers_motion_unet(ours, state, TINY, mid=False, key_scale=1.7)
    swap_norms(theirs, PerFrameNorm, motion=True)
    x, context = inputs(videos=1)
    with torch.no_grad():
        expected = theirs(x, 250.0, encoder_hidden_states=context.repeat_interleave(FRAMES, 0)).sample
        got = ours_call(attach_motion(ours, load_motion_model(state), MotionSettings(scale=1.7)), x, 250.0, context)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)


def test_effect_blends_each_temporal_module():
    from graphflow.models.animatediff import _run_temporal

    motion = load_motion_model(motion_module_state(TINY, "v2", dtype=torch.float32))
    module = motion.temporal_modules()["input"][0]
    x = torch.randn(2 * FRAMES, 32, 8, 8)
    with torch.no_grad():
        full = module.temporal_transformer(x, FRAMES)
        blended = _run_temporal(motion, "input", 0, MotionSettings(effect=0.3), False, x, FRAMES)
        off = _run_temporal(motion, "input", 0, MotionSettings(effect=0.0), False, x, FRAMES)
    torch.testing.assert_close(blended, x * 0.7 + full * 0.3)
    assert off is x


def test_unet_unchanged_without_motion():
    ours = random_unet(TINY)
    motion = load_motion_model(motion_module_state(TINY, "v2", dtype=torch.float32))
    patched = attach_motion(ours, motion)
    assert ours.temporal_layers is None and patched.temporal_layers
    assert patched.input_blocks is ours.input_blocks  # v2: the blocks are shared, not copied
    x, context = inputs(videos=1)
    flat = x.transpose(1, 2).reshape(FRAMES, 4, 16, 16)
    with torch.no_grad():
        before = ours(flat, torch.full((FRAMES,), 300.0), context.expand(FRAMES, -1, -1))
        attach_motion(ours, load_motion_model(motion_module_state(TINY, "v1", dtype=torch.float32)))
        after = ours(flat, torch.full((FRAMES,), 300.0), context.expand(FRAMES, -1, -1), num_frames=FRAMES)
        off = attach_motion(ours, motion, MotionSettings(effect=0.0))(
            flat, torch.full((FRAMES,), 300.0), context.expand(FRAMES, -1, -1), num_frames=FRAMES)
    torch.testing.assert_close(after, before, rtol=0, atol=0)
    torch.testing.assert_close(off, before, rtol=0, atol=0)


def test_slots_follow_the_packs_injection_rule():
    from graphflow.models import UNet

    with torch.device("meta"):
        unet = UNet(UNetConfig())
    slots = motion_slots(unet)
    # SD1.5: input blocks 1, 2, 4, 5, 7, 8 after their attention, 10, 11 after the ResBlock; 12 output blocks
    assert [(k, at) for k, at, _ in slots["input"]] == [(1, 1), (2, 1), (4, 1), (5, 1), (7, 1), (8, 1),
                                                        (10, 0), (11, 0)]
    assert [c for _, _, c in slots["output"]] == [1280] * 6 + [640] * 3 + [320] * 3
    assert [at for _, at, _ in slots["output"]][:3] == [0, 0, 0]  # before output block 2's Upsample
    assert slots["middle"] == [(0, 1, 1280)]  # between the attention and the second ResBlock


def meta_motion_module(version: str) -> dict[str, torch.Tensor]:
    """A full-size SD1.5 motion module's tensors on the meta device: its layout without its weights."""
    return {k: torch.empty(shape, dtype=torch.float16, device="meta")
            for k, shape in motion_module_shapes(None, version).items()}


def test_full_size_files_and_errors():
    for version, (mid, positions) in {"v1": (False, 24), "v2": (True, 32), "v3": (False, 32)}.items():
        state = meta_motion_module(version)
        cfg = load_motion_model(state).config
        assert (cfg.channels, cfg.mid_block, cfg.pe_length, cfg.version, cfg.base) == (
            (320, 640, 1280, 1280), mid, positions, version, "sd1")
        assert sum(v.numel() for v in state.values()) > 4e8 if version == "v2" else True
    with pytest.raises(MotionModuleError, match="no AnimateDiff motion module"):
        load_motion_model({"model.diffusion_model.input_blocks.0.0.weight": torch.zeros(1)}, "sd15.safetensors")
    from graphflow.models import UNet

    sdxl = UNetConfig(channel_mult=(1, 2, 4), transformer_depth=(0, 2, 10), transformer_depth_middle=10,
                      context_dim=2048, num_heads=-1, num_head_channels=64, use_linear_in_transformer=True,
                      adm_in_channels=2816)
    with torch.device("meta"):
        unet = UNet(sdxl)
        with pytest.raises(MotionModuleError, match="SD1.5 motion module"):
            attach_motion(unet, load_motion_model(meta_motion_module("v2")))


def test_frames_beyond_the_positional_table_are_refused():
    ours = random_unet(TINY)
    motion = load_motion_model(motion_module_state(TINY, "v1", dtype=torch.float32))  # 24 positions
    x = torch.randn(25, 4, 8, 8)
    with pytest.raises(MotionModuleError, match="at most 24 frames"):
        attach_motion(ours, motion)(x, torch.full((25,), 10.0), torch.randn(25, 3, TINY.context_dim), num_frames=25)


def test_other_formats_load_and_pick_the_packs_schedule_and_norms():
    from graphflow.models import UNet
    from graphflow.models.animatediff import MotionModel, MotionModuleConfig
    from graphflow.models.file_kind import identify

    state = motion_module_state(TINY, "v2", seed=7, dtype=torch.float32)
    assert identify({k: tuple(v.shape) for k, v in state.items()}).folder == "animatediff_models"
    # AnimateLCM: no positional encoding (64 frames), its own LCM schedule
    lcm = load_motion_model({k: v for k, v in state.items() if "pos_encoder" not in k}, "AnimateLCM_sd15_t2v.ckpt")
    assert (lcm.config.format, lcm.config.max_frames, lcm.beta_schedule) == ("AnimateLCM", 64, "lcm")
    # HotshotXL's names (temporal_attentions.N., positional_encoding) are read as AnimateDiff's
    hotshot = {k.replace("motion_modules.", "temporal_attentions.").replace(".temporal_transformer.", ".")
               .replace("pos_encoder.pe", "pos_encoder.positional_encoding"): v for k, v in state.items()}
    assert not any("motion_modules" in k for k in hotshot)
    read = load_motion_model(hotshot, "hsxl_temporal_layers.safetensors")
    assert read.config.hotshot and read.frames_group_norm()
    read_state = read.state_dict()  # once: a state_dict() per key made the test quadratic in the keys
    for key, value in load_motion_model(state).state_dict().items():
        torch.testing.assert_close(read_state[key], value, rtol=0, atol=0)
    # the pack's GroupNorm hack: v1 yes, v2 only without apply_v2_models_properly, v3 never
    v1, v3 = (load_motion_model(motion_module_state(TINY, v, dtype=torch.float32)) for v in ("v1", "v3"))
    assert v1.frames_group_norm() and not load_motion_model(state).frames_group_norm()
    assert load_motion_model(state).frames_group_norm(apply_v2_properly=False) and not v3.frames_group_norm(False)
    # AnimateDiff-SDXL (3 levels, no mid block): its schedule, the hack, and its places in SDXL's UNet
    sdxl = UNetConfig(channel_mult=(1, 2, 4), transformer_depth=(0, 2, 10), transformer_depth_middle=10,
                      context_dim=2048, num_heads=-1, num_head_channels=64, use_linear_in_transformer=True,
                      adm_in_channels=2816)
    with torch.device("meta"):
        motion = MotionModel(MotionModuleConfig(channels=(320, 640, 1280), pe_length=32), "mm_sdxl_v10_beta.ckpt")
        patched = attach_motion(UNet(sdxl), motion)
    assert (motion.config.base, motion.beta_schedule, motion.frames_group_norm()) == (
        "sdxl", "linear (AnimateDiff-SDXL)", True)
    assert sorted(k for k in patched.temporal_layers if k[0] == "input") == [("input", k) for k in (1, 2, 4, 5, 7, 8)]
    assert len([k for k in patched.temporal_layers if k[0] == "output"]) == 9


def test_motion_lora_adds_up_times_down():
    from graphflow.models.animatediff import motion_lora_deltas, with_motion_loras
    from graphflow.testing import motion_lora_state

    motion = load_motion_model(motion_module_state(TINY, "v2", dtype=torch.float32))
    lora = motion_lora_state(TINY, "v2", rank=3, seed=2, dtype=torch.float32)
    patched = with_motion_loras(motion, [(motion_lora_deltas(lora, motion), 0.7)])
    path = "mid_block.motion_modules.0.temporal_transformer.transformer_blocks.0.attention_blocks.1"
    for name, lora_name in (("to_k.weight", "to_k"), ("to_out.0.weight", "to_out")):
        down = lora[f"{path}.processor.{lora_name}_lora.down.weight"]
        up = lora[f"{path}.processor.{lora_name}_lora.up.weight"]
        expected = motion.state_dict()[f"{path}.{name}"] + 0.7 * torch.mm(up, down)
        torch.testing.assert_close(patched.state_dict()[f"{path}.{name}"], expected)
    # the input is unchanged, unpatched weights are shared
    assert not torch.equal(patched.state_dict()[f"{path}.to_k.weight"], motion.state_dict()[f"{path}.to_k.weight"])
    assert patched.mid_block.motion_modules[0].temporal_transformer.proj_in.weight is \
        motion.mid_block.motion_modules[0].temporal_transformer.proj_in.weight
    # a v2 LoRA on a v1 model: its mid-block entries are skipped, as the pack does
    v1 = load_motion_model(motion_module_state(TINY, "v1", dtype=torch.float32))
    assert not any(k.startswith("mid_block.") for k in motion_lora_deltas(lora, v1))
    # a LoRA of other widths does not fit
    other = UNetConfig(model_channels=64, channel_mult=(1, 1, 2, 2), num_res_blocks=2, transformer_depth=(1, 1, 1, 0),
                       context_dim=48)
    with pytest.raises(MotionModuleError, match="does not fit"):
        motion_lora_deltas(motion_lora_state(other, "v2", rank=2), motion)


def test_animatelcm_takes_at_most_64_frames_without_windows():
    state = motion_module_state(TINY, "v2", dtype=torch.float32)
    lcm = load_motion_model({k: v for k, v in state.items() if "pos_encoder" not in k}, "AnimateLCM_sd15_t2v.ckpt")
    unet = attach_motion(random_unet(TINY), lcm)
    with torch.no_grad():
        context = torch.randn(64, 3, TINY.context_dim)
        out = unet(torch.randn(64, 4, 8, 8), torch.full((64,), 10.0), context, num_frames=64)
        assert out.shape == (64, 4, 8, 8)
        with pytest.raises(MotionModuleError, match="at most 64 frames"):
            unet(torch.randn(65, 4, 8, 8), torch.full((65,), 10.0), torch.randn(65, 3, TINY.context_dim), num_frames=65)


def test_one_motion_model_runs_with_and_without_a_motion_lora():
    """One loaded motion model (a cached node output) used plainly and, in another UNet, with a motion
    LoRA whose copy shares its unpatched weights: each runs in its UNet's dtype, and the model itself
    is neither moved nor cast."""
    from graphflow.models.animatediff import motion_lora_deltas, with_motion_loras
    from graphflow.testing import motion_lora_state

    unet = random_unet(TINY).to(torch.float64)  # another dtype than the file's, as fp16 UNets on a GPU
    motion = load_motion_model(motion_module_state(TINY, "v2", seed=5, dtype=torch.float32))
    lora = motion_lora_state(TINY, "v2", rank=3, seed=6, dtype=torch.float32)
    with_lora = with_motion_loras(motion, [(motion_lora_deltas(lora, motion), 0.8)])
    x, context = inputs(videos=1)
    x, context = x.double(), context.double()
    with torch.no_grad():
        plain = ours_call(attach_motion(unet, motion), x, 400.0, context)
        patched = ours_call(attach_motion(unet, with_lora), x, 400.0, context)
        again = ours_call(attach_motion(unet, motion), x, 400.0, context)
    assert all(p.dtype == torch.float32 for p in motion.parameters())  # the cached model is unchanged
    assert all(p.dtype == torch.float32 for p in with_lora.parameters())
    torch.testing.assert_close(again, plain, rtol=0, atol=0)
    # the LoRA branch equals a model loaded with the patched weights and cast to the UNet's dtype
    reference = load_motion_model({k: v.double() for k, v in with_lora.state_dict().items()})
    with torch.no_grad():
        expected = ours_call(attach_motion(unet, reference), x, 400.0, context)
    torch.testing.assert_close(patched, expected, rtol=0, atol=0)
    assert (patched - plain).abs().max() > 1e-3
