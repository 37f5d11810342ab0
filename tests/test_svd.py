"""Stable Video Diffusion: the spatio-temporal UNet against diffusers' UNetSpatioTemporalConditionModel
and the temporal-decoder VAE against diffusers' AutoencoderKLTemporalDecoder, on identical tiny
random weights mapped to Stability's checkpoint names."""

import re
from types import SimpleNamespace
from dataclasses import replace

import pytest
import torch

from graphflow.models.svd import SVDConfig, SVDUNet, svd_adm, svd_config_from_shapes

diffusers = pytest.importorskip("diffusers")

TINY = SVDConfig(model_channels=32, channel_mult=(1, 2), num_res_blocks=1, attention_levels=(True, False),
                 context_dim=24, num_head_channels=16)


def _unet_name(name: str, n_res: int) -> str:
    """diffusers' UNetSpatioTemporalConditionModel parameter name -> Stability's (sgm) name."""
    fixed = {"conv_in.": "input_blocks.0.0.", "time_embedding.linear_1.": "time_embed.0.",
             "time_embedding.linear_2.": "time_embed.2.", "add_embedding.linear_1.": "label_emb.0.0.",
             "add_embedding.linear_2.": "label_emb.0.2.", "conv_norm_out.": "out.0.", "conv_out.": "out.2."}
    for a, b in fixed.items():
        if name.startswith(a):
            return b + name[len(a):]
    if m := re.match(r"down_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.(.*)", name):
        i, kind, j, rest = int(m[1]), m[2], int(m[3]), m[4]
        name = f"input_blocks.{1 + i * (n_res + 1) + j}.{0 if kind == 'resnets' else 1}.{rest}"
    elif m := re.match(r"down_blocks\.(\d+)\.downsamplers\.0\.conv\.(.*)", name):
        name = f"input_blocks.{(int(m[1]) + 1) * (n_res + 1)}.0.op.{m[2]}"
    elif m := re.match(r"mid_block\.(resnets|attentions)\.(\d+)\.(.*)", name):
        name = f"middle_block.{1 if m[1] == 'attentions' else 2 * int(m[2])}.{m[3]}"
    elif m := re.match(r"up_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.(.*)", name):
        i, kind, j, rest = int(m[1]), m[2], int(m[3]), m[4]
        name = f"output_blocks.{i * (n_res + 1) + j}.{0 if kind == 'resnets' else 1}.{rest}"
    elif m := re.match(r"up_blocks\.(\d+)\.upsamplers\.0\.conv\.(.*)", name):
        return f"output_blocks.{int(m[1]) * (n_res + 1) + n_res}.UP.conv.{m[2]}"
    for a, b in (("spatial_res_block.norm1.", "in_layers.0."), ("spatial_res_block.conv1.", "in_layers.2."),
                 ("spatial_res_block.time_emb_proj.", "emb_layers.1."), ("spatial_res_block.norm2.", "out_layers.0."),
                 ("spatial_res_block.conv2.", "out_layers.3."),
                 ("spatial_res_block.conv_shortcut.", "skip_connection."),
                 ("temporal_res_block.norm1.", "time_stack.in_layers.0."),
                 ("temporal_res_block.conv1.", "time_stack.in_layers.2."),
                 ("temporal_res_block.time_emb_proj.", "time_stack.emb_layers.1."),
                 ("temporal_res_block.norm2.", "time_stack.out_layers.0."),
                 ("temporal_res_block.conv2.", "time_stack.out_layers.3."),
                 ("temporal_transformer_blocks.", "time_stack."), ("time_pos_embed.linear_1.", "time_pos_embed.0."),
                 ("time_pos_embed.linear_2.", "time_pos_embed.2.")):
        name = name.replace(a, b)
    return name


def diffusers_unet_to_sgm(reference, n_res: int, ours: SVDUNet) -> dict:
    out = {}
    for name, value in reference.state_dict().items():
        mapped = _unet_name(name, n_res)
        if ".UP." in mapped:  # the Upsample follows the transformer where the level has one
            block = int(mapped.split(".")[1])
            mapped = mapped.replace(".UP.", f".{len(ours.output_blocks[block]) - 1}.")
        out[mapped] = value
    return out


def tiny_reference(adm: int = 768):
    """adm: the added embedding's input width (768 SVD, 256 SV3D_u, 1280 SV3D_p)."""
    from diffusers import UNetSpatioTemporalConditionModel

    torch.manual_seed(0)
    reference = UNetSpatioTemporalConditionModel(
        in_channels=8, out_channels=4, down_block_types=("CrossAttnDownBlockSpatioTemporal", "DownBlockSpatioTemporal"),
        up_block_types=("UpBlockSpatioTemporal", "CrossAttnUpBlockSpatioTemporal"), block_out_channels=(32, 64),
        layers_per_block=1, cross_attention_dim=24, num_attention_heads=(2, 4), num_frames=3,
        projection_class_embeddings_input_dim=adm).eval()
    # diffusers builds its cross-attention down blocks' ResBlock norms with eps 1e-6; Stability's
    # model (and ComfyUI's) uses GroupNorm's 1e-5 in every UNet ResBlock
    for name, module in reference.named_modules():
        if isinstance(module, torch.nn.GroupNorm) and "resnets" in name:
            module.eps = 1e-5
    with torch.no_grad():  # nonzero mix factors, so both branches count
        for name, p in reference.named_parameters():
            if name.endswith("mix_factor"):
                p.copy_(torch.randn(1))
    return reference


def test_unet_matches_diffusers_on_two_videos():
    reference = tiny_reference()
    ours = SVDUNet(TINY).eval()
    ours.load_state_dict(diffusers_unet_to_sgm(reference, TINY.num_res_blocks, ours), strict=True)
    found = svd_config_from_shapes({k: tuple(v.shape) for k, v in ours.state_dict().items()})
    assert replace(found, num_head_channels=16) == TINY  # head width is not in the shapes (64 in SVD)

    torch.manual_seed(1)
    videos, frames = 2, 3
    x = torch.randn(videos, frames, 8, 8, 12)  # 8x12 latent: odd sizes after one downsample are fine too
    image_embeds = torch.randn(videos, 1, 24)
    time_ids = torch.tensor([[5.0, 127.0, 0.02], [7.0, 60.0, 0.0]])
    sigma = torch.tensor([3.0, 0.5])
    t = 0.25 * sigma.log()
    with torch.no_grad():
        expected = reference(x, t, image_embeds, time_ids).sample
        y = torch.cat([svd_adm(fps_id + 1, motion, aug) for fps_id, motion, aug in time_ids.tolist()])
        got = ours(x.flatten(0, 1), t.repeat_interleave(frames), image_embeds.repeat_interleave(frames, 0),
                   y.repeat_interleave(frames, 0), num_frames=frames)
    assert got.shape == (videos * frames, 4, 8, 12)
    torch.testing.assert_close(got, expected.flatten(0, 1), atol=1e-4, rtol=1e-4)
    # the frames interact: one video of 6 frames is not two of 3
    with torch.no_grad():
        other = ours(x.flatten(0, 1), t.repeat_interleave(frames), image_embeds.repeat_interleave(frames, 0),
                     y.repeat_interleave(frames, 0), num_frames=6)
    assert (other - got).abs().max() > 1e-3


def test_svd_adm_is_comfyui_added_time_ids():
    # fps 6 -> id 5, as ComfyUI's SVD_img2vid.encode_adm; cos half first, max period 10000
    y = svd_adm(6, 127, 0.0)
    assert y.shape == (1, 768)
    freqs = torch.exp(-torch.log(torch.tensor(10000.0)) * torch.arange(128) / 128)
    torch.testing.assert_close(y[0, :128], torch.cos(5 * freqs))
    torch.testing.assert_close(y[0, 256:384], torch.cos(127 * freqs))
    torch.testing.assert_close(y[0, 640:], torch.zeros(128))  # sin(0)


def _vae_name(name: str, num_up: int) -> str:
    """diffusers' AutoencoderKLTemporalDecoder name -> Stability's (first_stage_model.* without the prefix)."""
    from graphflow.models.diffusers_names import vae_key

    if name.startswith("decoder.time_conv_out."):
        return "decoder.conv_out.time_mix_conv." + name.rpartition(".")[2]
    temporal = {"temporal_res_block.norm1.": "time_stack.in_layers.0.",
                "temporal_res_block.conv1.": "time_stack.in_layers.2.",
                "temporal_res_block.norm2.": "time_stack.out_layers.0.",
                "temporal_res_block.conv2.": "time_stack.out_layers.3.",
                "time_mixer.mix_factor": "mix_factor"}
    for a, b in temporal.items():
        if a in name:
            head, _, tail = name.partition(a)
            return vae_key(head + "norm1.weight", num_up).rpartition("norm1.")[0] + b + tail
    return vae_key(name.replace("spatial_res_block.", ""), num_up)


def _tiny_temporal_vaes():
    """diffusers' AutoencoderKLTemporalDecoder on tiny random weights (random mix factors) and ours
    with the same weights."""
    from diffusers import AutoencoderKLTemporalDecoder

    from graphflow.models.configs import VAEConfig
    from graphflow.models.video_vae import AutoencoderKLTemporal

    torch.manual_seed(0)
    # layers_per_block 2: diffusers' temporal mid block has that many ResBlocks (and attends only between them)
    reference = AutoencoderKLTemporalDecoder(block_out_channels=(32, 64), layers_per_block=2,
                                             down_block_types=("DownEncoderBlock2D",) * 2).eval()
    with torch.no_grad():
        for name, p in reference.named_parameters():
            if name.endswith("mix_factor"):
                p.copy_(torch.randn(1))
        # Stability's AutoencodingEngine has no quant conv: diffusers' as the identity
        reference.quant_conv.weight.copy_(torch.eye(8)[:, :, None, None])
        reference.quant_conv.bias.zero_()
    ours = AutoencoderKLTemporal(VAEConfig(ch=32, ch_mult=(1, 2), num_res_blocks=2, use_quant_conv=False)).eval()
    state = {_vae_name(k, 2): v for k, v in reference.state_dict().items() if not k.startswith("quant_conv.")}
    state = {k: v[:, :, None, None] if ".attn_1." in k and v.dim() == 2 else v for k, v in state.items()}
    ours.load_state_dict(state, strict=True)
    return reference, ours


def test_temporal_vae_decode_matches_diffusers():
    from graphflow.models.video_vae import VideoVAE

    reference, ours = _tiny_temporal_vaes()
    torch.manual_seed(1)
    z = torch.randn(5, 4, 6, 5)
    with torch.no_grad():
        expected = reference.decode(z, num_frames=5).sample
        torch.testing.assert_close(ours.decode(z), expected, atol=1e-4, rtol=1e-4)
        pixels = torch.rand(2, 3, 16, 24) * 2 - 1
        torch.testing.assert_close(ours.encode(pixels)[0], reference.encode(pixels).latent_dist.mean,
                                   atol=1e-4, rtol=1e-4)

    # the socket decodes in chunks, each chunk one video (as diffusers' decode_chunk_size)
    socket = VideoVAE(ours)
    socket.chunk_frames = 2
    with torch.no_grad():
        chunked = torch.cat([reference.decode(z[i:i + 2], num_frames=len(z[i:i + 2])).sample for i in (0, 2, 4)])
    frames = socket.decode(z)
    assert frames.shape == (5, 12, 10, 3)  # this tiny VAE downscales by 2
    torch.testing.assert_close(frames, ((chunked + 1) / 2).clamp(0, 1).permute(0, 2, 3, 1), atol=1e-4, rtol=1e-4)


def test_temporal_vae_tiled_decode_is_per_frame_as_comfyui():
    """ComfyUI's VAEDecodeTiled on SVD's VAE: decode_tiled_ -> tiled_scale, which takes the latent
    batch one sample at a time, so each frame is decoded as a one-frame video (the temporal
    convolutions see zero padding, not the neighbouring frames). Tiles as large as the latent: every
    tiling runs the decoder once on the whole frame, so the result is diffusers' decode of each
    frame alone (num_frames=1). Plain VAEDecode decodes the frames together (memory permitting)."""
    from graphflow.models.video_vae import VideoVAE
    from nodes.vae import VAEDecode

    reference, ours = _tiny_temporal_vaes()
    z = torch.randn(3, 4, 6, 5, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        alone = torch.cat([reference.decode(z[i:i + 1], num_frames=1).sample for i in range(3)])
        together = reference.decode(z, num_frames=3).sample
    socket = VideoVAE(ours)
    node = VAEDecode.__new__(VAEDecode)
    node.__dict__.update(samples={"samples": z}, vae=socket, tiled=True, tile_size=64, overlap=0,
                         temporal_size=64, temporal_overlap=8)
    tiled = node.run()
    expected = ((alone + 1) / 2).clamp(0, 1).permute(0, 2, 3, 1)
    torch.testing.assert_close(tiled, expected, atol=1e-4, rtol=1e-4)
    node.tiled = False
    torch.testing.assert_close(node.run(), ((together + 1) / 2).clamp(0, 1).permute(0, 2, 3, 1),
                               atol=1e-4, rtol=1e-4)
    assert not torch.allclose(tiled, node.run(), atol=1e-3)  # the frames' neighbours matter


# -- nodes ---------------------------------------------------------------------------------------

def _svd_graph(frames: int = 3, guidance: str = "VideoLinearCFGGuidance") -> dict:
    return {
        "1": {"class_type": "ImageOnlyCheckpointLoader", "inputs": {"ckpt_name": "tiny_svd.safetensors"}},
        "2": {"class_type": "EmptyImage", "inputs": {"width": 80, "height": 48, "batch_size": 1, "color": 0xff8020}},
        "3": {"class_type": "SVD_img2vid_Conditioning",
              "inputs": {"clip_vision": ["1", 1], "init_image": ["2", 0], "vae": ["1", 2], "width": 64, "height": 48,
                         "video_frames": frames, "motion_bucket_id": 127, "fps": 6, "augmentation_level": 0.0}},
        "4": {"class_type": guidance, "inputs": {"model": ["1", 0], "min_cfg": 1.0}},
        "5": {"class_type": "KSampler", "inputs": {"model": ["4", 0], "positive": ["3", 0], "negative": ["3", 1],
                                                   "latent_image": ["3", 2], "seed": 3, "steps": 2, "cfg": 2.5,
                                                   "sampler_name": "euler", "scheduler": "karras", "denoise": 1.0}},
        "6": {"class_type": "VAEDecode", "inputs": {"samples": ["5", 0], "vae": ["1", 2]}},
        "7": {"class_type": "SaveAnimatedWEBP", "inputs": {"images": ["6", 0], "filename_prefix": "svd", "fps": 6.0,
                                                           "lossless": False, "quality": 85, "method": "default"}},
    }


def test_comfyui_svd_graph_end_to_end(builtin_registry, tmp_folders, monkeypatch):
    """ImageOnlyCheckpointLoader -> SVD_img2vid_Conditioning -> VideoLinearCFGGuidance -> KSampler
    -> VAEDecode -> SaveAnimatedWEBP imports and runs; the UNet sees the positive and negative
    batched (6 latents) as two videos of 3 frames, the init latent on the channels, sigmas up to 700."""
    from PIL import Image

    from graphflow.executor import Executor
    from graphflow.models import svd
    from graphflow.testing import write_svd_checkpoint
    from graphflow.workflow import parse_workflow

    (tmp_folders.models / "checkpoints").mkdir(parents=True)
    write_svd_checkpoint(tmp_folders.models / "checkpoints" / "tiny_svd.safetensors")
    calls = []
    forward = svd.SVDUNet.forward

    def spy(self, x, timesteps, context, y, num_frames=None):
        calls.append((x.shape, float(timesteps.max()), num_frames, context.shape))
        return forward(self, x, timesteps, context, y, num_frames)

    monkeypatch.setattr(svd.SVDUNet, "forward", spy)
    result = Executor(builtin_registry).run(parse_workflow(_svd_graph(), builtin_registry))
    assert result.ok, result.error
    frames = result.values["6"][0]
    assert frames.shape == (3, 48, 64, 3)
    assert (frames[0] - frames[2]).abs().max() > 1e-3  # the frames are not one image repeated
    assert calls and all(shape == (6, 8, 6, 8) and n == 3 for shape, _, n, _ in calls)
    assert calls[0][3] == (6, 1, 32)  # the image embedding as one context token per latent
    assert calls[0][1] == pytest.approx(0.25 * torch.log(torch.tensor(700.0)).item(), abs=1e-4)
    [saved] = list(tmp_folders.outputs.glob("svd*.webp"))
    with Image.open(saved) as webp:
        assert webp.n_frames == 3 and webp.size == (64, 48)


def test_conditioning_as_comfyui(builtin_registry, tmp_folders):
    from graphflow.models.checkpoint import load_image_only_checkpoint
    from graphflow.testing import write_svd_checkpoint
    from tests.test_nodes_image_mask import call

    model, clip_vision, vae = load_image_only_checkpoint(write_svd_checkpoint(tmp_folders.models / "svd.safetensors"),
                                                         device="cpu", dtype=torch.float32)
    image = torch.rand(1, 40, 90, 3)
    positive, negative, latent = call(builtin_registry, "SVDImageToVideo", clip_vision=clip_vision, init_image=image,
                                      vae=vae, width=64, height=32, video_frames=5, motion_bucket_id=40, fps=8,
                                      augmentation_level=0.0)
    [(embedding, options)] = positive
    torch.testing.assert_close(embedding, clip_vision.encode_image(image).image_embeds[None])
    assert options["concat_latent_image"].shape == (1, 4, 4, 8)
    assert (options["fps"], options["motion_bucket_id"], options["augmentation_level"]) == (8, 40, 0.0)
    [(zeros, negative_options)] = negative
    assert not zeros.any() and not negative_options["concat_latent_image"].any()
    assert latent["samples"].shape == (5, 4, 4, 8) and not latent["samples"].any()
    torch.testing.assert_close(model.encode_adm(options, 64, 32), svd_adm(8, 40, 0.0))
    # augmentation noise changes the init latent, the same way every run
    augmented = call(builtin_registry, "SVDImageToVideo", clip_vision=clip_vision, init_image=image, vae=vae, width=64,
                     height=32, video_frames=5, motion_bucket_id=40, fps=8, augmentation_level=0.3)[0][0][1]
    again = call(builtin_registry, "SVDImageToVideo", clip_vision=clip_vision, init_image=image, vae=vae, width=64,
                 height=32, video_frames=5, motion_bucket_id=40, fps=8, augmentation_level=0.3)[0][0][1]
    assert (augmented["concat_latent_image"] - options["concat_latent_image"]).abs().max() > 1e-3
    assert torch.equal(augmented["concat_latent_image"], again["concat_latent_image"])


@pytest.mark.parametrize("node", ["VideoLinearCFGGuidance", "VideoTriangleCFGGuidance"])
def test_frame_cfg_closed_forms(builtin_registry, node):
    from types import SimpleNamespace

    from tests.test_nodes_image_mask import call

    patched = call(builtin_registry, node, model=SimpleNamespace(), min_cfg=1.5)
    torch.manual_seed(0)
    cond, uncond = torch.randn(5, 4, 3, 3), torch.randn(5, 4, 3, 3)
    out = patched.cfg_function({"cond_denoised": cond, "uncond_denoised": uncond, "cond_scale": 7.5})
    cfg, low = 7.5, 1.5
    if node == "VideoLinearCFGGuidance":
        scales = [low + (cfg - low) * i / 4 for i in range(5)]  # 1.5, 3, 4.5, 6, 7.5
    else:
        scales = [low, low + (cfg - low) / 2, cfg, low + (cfg - low) / 2, low]  # up to the middle frame and back
    for i, s in enumerate(scales):
        torch.testing.assert_close(out[i], uncond[i] + s * (cond[i] - uncond[i]))
    # cfg 1 skips the negative: ComfyUI's function then sees a zero prediction
    skipped = patched.cfg_function({"cond_denoised": cond, "uncond_denoised": None, "cond_scale": 1.0})
    torch.testing.assert_close(skipped[0], low * cond[0])


def test_temporal_attention_multiply_scales_the_right_attentions(builtin_registry, tmp_folders):
    from graphflow.context import NodeInputError
    from graphflow.models.checkpoint import load_image_only_checkpoint
    from graphflow.testing import write_checkpoint, write_svd_checkpoint
    from tests.test_nodes_image_mask import call

    model = load_image_only_checkpoint(write_svd_checkpoint(tmp_folders.models / "svd.safetensors"), device="cpu")[0]
    patched = call(builtin_registry, "UNetTemporalAttentionMultiply", model=model, self_structural=2.0,
                   self_temporal=3.0, cross_structural=1.0, cross_temporal=5.0)
    factors = {p.param: float(p.change(torch.ones(1))[0]) for p in patched.patches}
    names = dict(model.unet.named_parameters())
    expected = {}
    for name in names:
        temporal = ".time_stack." in name
        if ".attn1.to_out.0." in name:
            expected[name] = 3.0 if temporal else 2.0
        elif ".attn2.to_out.0." in name and temporal:
            expected[name] = 5.0
    assert factors == expected
    assert any(".time_stack." in n for n in expected) and any(".time_stack." not in n for n in expected)
    assert model.patches == ()  # the input model is unchanged

    (tmp_folders.models / "checkpoints").mkdir(parents=True, exist_ok=True)
    write_checkpoint(tmp_folders.models / "checkpoints" / "sd1.safetensors", "sd1")
    model, clip_vision, vae = call(builtin_registry, "ImageOnlyCheckpointLoader", checkpoint="sd1.safetensors")
    assert model.arch == "sd1" and clip_vision is None  # as ComfyUI loads an image checkpoint
    with pytest.raises(NodeInputError, match="needs a diffusion MODEL"):
        call(builtin_registry, "UNetTemporalAttentionMultiply", model=SimpleNamespace(arch="sd1"), self_structural=1.0,
             self_temporal=1.0, cross_structural=1.0, cross_temporal=1.0)


def test_example_workflow_runs_on_a_tiny_svd_xt(builtin_registry, tmp_folders):
    """workflows/svd_img2vid.json, as saved but for sizes, frames and steps, on a tiny checkpoint
    under SVD-XT's file name: a video of video_frames frames, whose motion follows motion_bucket_id."""
    from graphflow.testing import write_svd_checkpoint
    from tests.test_workflows import run, workflow

    (tmp_folders.models / "checkpoints").mkdir(parents=True)
    write_svd_checkpoint(tmp_folders.models / "checkpoints" / "svd_xt.safetensors")
    sets = {"3__width": 64, "3__height": 40, "3__video_frames": 4, "5__steps": 2}
    video = run(builtin_registry, workflow("svd_img2vid", **sets)).values["6"][0]
    assert video.shape == (4, 40, 64, 3)
    other = run(builtin_registry, workflow("svd_img2vid", **sets, **{"3__motion_bucket_id": 10})).values["6"][0]
    assert (other - video).abs().max() > 1e-4
    assert list(tmp_folders.outputs.glob("svd_img2vid*.webp"))


def test_image_only_checkpoint_save_round_trip(builtin_registry, tmp_folders):
    """ImageOnlyCheckpointSave writes what ImageOnlyCheckpointLoader reads: the same weights (a
    temporal-attention patch merged in), the CLIP vision model in ComfyUI's saved layout."""
    from graphflow.context import NodeInputError
    from graphflow.models.checkpoint import load_image_only_checkpoint
    from graphflow.testing import write_svd_checkpoint
    from tests.test_nodes_image_mask import call

    model, clip_vision, vae = load_image_only_checkpoint(write_svd_checkpoint(tmp_folders.models / "svd.safetensors"),
                                                         device="cpu", dtype=torch.float32)
    patched = call(builtin_registry, "UNetTemporalAttentionMultiply", model=model, self_structural=1.0,
                   self_temporal=0.5, cross_structural=1.0, cross_temporal=1.0)
    call(builtin_registry, "ImageOnlyCheckpointSave", model=patched, clip_vision=clip_vision, vae=vae,
         filename_prefix="checkpoints/svd_copy")
    [saved] = list((tmp_folders.outputs / "checkpoints").glob("svd_copy_*.safetensors"))
    model2, clip_vision2, vae2 = load_image_only_checkpoint(saved, device="cpu", dtype=torch.float32)
    assert (model2.arch, model2.prediction, model2.edm) == ("svd", "v", model.edm)
    # the memory manager reads each part back alone from the file when it was dropped
    from graphflow.memory import manager

    reread = manager().components[id(model2.unet)].reload()
    assert isinstance(reread, type(model2.unet)) and reread is not model2.unet
    assert torch.equal(next(iter(reread.state_dict().values())).float(), next(iter(model2.unet.state_dict().values())))
    assert isinstance(manager().components[id(vae2.module)].reload(), type(vae2.module))
    weights, weights2 = model.unet.state_dict(), model2.unet.state_dict()
    key = next(k for k in weights if ".time_stack." in k and k.endswith("attn1.to_out.0.weight"))
    torch.testing.assert_close(weights2[key], weights[key] * 0.5)
    other = next(k for k in weights if ".time_stack." not in k and k.endswith("attn1.to_out.0.weight"))
    torch.testing.assert_close(weights2[other], weights[other])
    image = torch.rand(1, 56, 56, 3)
    torch.testing.assert_close(clip_vision2.encode_image(image).image_embeds,
                               clip_vision.encode_image(image).image_embeds)
    z = torch.randn(3, 4, 4, 4)
    torch.testing.assert_close(vae2.decode(z), vae.decode(z))
    with pytest.raises(NodeInputError, match="video") as e:
        call(builtin_registry, "ImageOnlyCheckpointSave", model=SimpleNamespace(arch="sd1"), clip_vision=clip_vision,
             vae=vae, filename_prefix="x")
    assert e.value.input == "model"
    # an image VAE (no temporal decoder): save_image_only_checkpoint names its vae parameter
    from graphflow.models.checkpoint import load_checkpoint
    from graphflow.models.checkpoint_save import save_image_only_checkpoint
    from graphflow.testing import write_checkpoint

    image_vae = load_checkpoint(write_checkpoint(tmp_folders.models / "sd1.safetensors", "sd1"), device="cpu").vae
    with pytest.raises(NodeInputError, match="temporal decoder") as e:
        save_image_only_checkpoint(tmp_folders.outputs / "x.safetensors", model, clip_vision, image_vae)
    assert e.value.input == "vae"
    with pytest.raises(NodeInputError, match="temporal decoder") as e:
        call(builtin_registry, "ImageOnlyCheckpointSave", model=model, clip_vision=clip_vision, vae=image_vae,
             filename_prefix="x")
    assert e.value.input == "vae"


def test_sampler_step_is_diffusers_svd_step():
    """One denoiser evaluation of both sides, batched as the sampler batches them (two videos of 3
    frames in one UNet call), equals diffusers' SVD step on the same weights: EulerDiscreteScheduler's
    continuous-time v-prediction (c_in 1/sqrt(sigma^2 + 1), timestep 0.25 ln sigma, x0 =
    x / (sigma^2 + 1) - v sigma / sqrt(sigma^2 + 1)) with the init latent on the channels and
    added_time_ids (fps - 1, motion bucket, augmentation)."""
    from graphflow.models.diffusion_model import DiffusionModel
    from graphflow.sampling.guidance import predict_sides, prepare_conds
    from graphflow.sampling.model_sampling import ModelDenoiser
    from graphflow.sampling.pipeline import ip2p_concat

    reference = tiny_reference()
    ours = SVDUNet(TINY).eval()
    ours.load_state_dict(diffusers_unet_to_sgm(reference, TINY.num_res_blocks, ours))
    model = DiffusionModel(ours, "svd", "v").with_continuous_sampling("v", 0.002, 700.0)
    torch.manual_seed(2)
    x, latent, embeds = torch.randn(3, 4, 8, 8), torch.randn(1, 4, 8, 8), torch.randn(1, 1, 24)
    options = {"fps": 7, "motion_bucket_id": 90, "augmentation_level": 0.1}
    sides = [[(embeds, {**options, "concat_latent_image": latent})],
             [(torch.zeros_like(embeds), {**options, "concat_latent_image": torch.zeros_like(latent)})]]

    def concat(o):
        return ip2p_concat(o, "svd", model.latent_format, tuple(x.shape), "cpu")

    conds = [prepare_conds(side, model, x.shape, "cpu", concat_fn=concat) for side in sides]
    sigma = torch.full((3,), 4.2)
    with torch.no_grad():
        got = predict_sides(ModelDenoiser(model), conds, x, sigma)
        s = 4.2
        for (image_embeds, opts), prediction in zip([side[0] for side in sides], got):
            sample = torch.cat([x / (s ** 2 + 1) ** 0.5, opts["concat_latent_image"].expand(3, -1, -1, -1)], dim=1)
            v = reference(sample[None], torch.tensor([0.25 * torch.log(torch.tensor(s)).item()]), image_embeds,
                          torch.tensor([[6.0, 90.0, 0.1]])).sample[0]
            expected = x / (s ** 2 + 1) - v * s / (s ** 2 + 1) ** 0.5
            torch.testing.assert_close(prediction, expected, atol=1e-4, rtol=1e-4)
    assert (got[0] - got[1]).abs().max() > 1e-3


def test_full_size_layout_is_diffusers_svd():
    """At SVD's real size (the defaults), every parameter has the shape of diffusers' default
    UNetSpatioTemporalConditionModel's (SVD's own config) under Stability's name, and the config
    read back from the shapes is the default one. Built on the meta device: no memory, no time."""
    from diffusers import UNetSpatioTemporalConditionModel

    with torch.device("meta"):
        ours = SVDUNet(SVDConfig())
        reference = UNetSpatioTemporalConditionModel()
    shapes = {k: tuple(v.shape) for k, v in ours.state_dict().items()}
    mapped = {k: tuple(v.shape) for k, v in diffusers_unet_to_sgm(reference, 2, ours).items()}
    assert mapped == shapes
    assert svd_config_from_shapes(shapes) == SVDConfig()
    assert sum(v.numel() for v in ours.state_dict().values()) == 1_524_623_082  # SVD's UNet
    # and the VAE: SVD's (128, 256, 512, 512) channels, two ResBlocks a level
    from diffusers import AutoencoderKLTemporalDecoder

    from graphflow.models.video_vae import SVD_VAE, AutoencoderKLTemporal

    with torch.device("meta"):
        vae = AutoencoderKLTemporal(SVD_VAE)
        reference_vae = AutoencoderKLTemporalDecoder(block_out_channels=(128, 256, 512, 512), layers_per_block=2,
                                                     down_block_types=("DownEncoderBlock2D",) * 4)
    vae_shapes = {_vae_name(k, 4): tuple(v.shape[:2] if ".attn_1." in _vae_name(k, 4) else v.shape)
                  for k, v in reference_vae.state_dict().items() if not k.startswith("quant_conv.")}
    assert vae_shapes == {k: tuple(v.shape[:2] if ".attn_1." in k else v.shape) for k, v in vae.state_dict().items()}
