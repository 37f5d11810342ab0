"""Stable Video Diffusion: the spatio-temporal UNet against diffusers' UNetSpatioTemporalConditionModel
and the temporal-decoder VAE against diffusers' AutoencoderKLTemporalDecoder, on identical tiny
random weights mapped to Stability's checkpoint names."""

import re
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
                 ("spatial_res_block.conv2.", "out_layers.3."), ("spatial_res_block.conv_shortcut.", "skip_connection."),
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


def tiny_reference():
    from diffusers import UNetSpatioTemporalConditionModel

    torch.manual_seed(0)
    reference = UNetSpatioTemporalConditionModel(
        in_channels=8, out_channels=4, down_block_types=("CrossAttnDownBlockSpatioTemporal", "DownBlockSpatioTemporal"),
        up_block_types=("UpBlockSpatioTemporal", "CrossAttnUpBlockSpatioTemporal"), block_out_channels=(32, 64),
        layers_per_block=1, cross_attention_dim=24, num_attention_heads=(2, 4), num_frames=3).eval()
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
    temporal = {"temporal_res_block.norm1.": "time_stack.in_layers.0.", "temporal_res_block.conv1.": "time_stack.in_layers.2.",
                "temporal_res_block.norm2.": "time_stack.out_layers.0.", "temporal_res_block.conv2.": "time_stack.out_layers.3.",
                "time_mixer.mix_factor": "mix_factor"}
    for a, b in temporal.items():
        if a in name:
            head, _, tail = name.partition(a)
            return vae_key(head + "norm1.weight", num_up).rpartition("norm1.")[0] + b + tail
    return vae_key(name.replace("spatial_res_block.", ""), num_up)


def test_temporal_vae_decode_matches_diffusers():
    from diffusers import AutoencoderKLTemporalDecoder

    from graphflow.models.configs import VAEConfig
    from graphflow.models.video_vae import AutoencoderKLTemporal, VideoVAE

    torch.manual_seed(0)
    reference = AutoencoderKLTemporalDecoder(block_out_channels=(32, 64), layers_per_block=2,  # its mid block has this many ResBlocks
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

    torch.manual_seed(1)
    z = torch.randn(5, 4, 6, 5)
    with torch.no_grad():
        expected = reference.decode(z, num_frames=5).sample
        torch.testing.assert_close(ours.decode(z), expected, atol=1e-4, rtol=1e-4)
        pixels = torch.rand(2, 3, 16, 24) * 2 - 1
        torch.testing.assert_close(ours.encode(pixels)[0], reference.encode(pixels).latent_dist.mean, atol=1e-4, rtol=1e-4)

    # the socket decodes in chunks, each chunk one video (as diffusers' decode_chunk_size)
    socket = VideoVAE(ours)
    socket.chunk_frames = 2
    with torch.no_grad():
        chunked = torch.cat([reference.decode(z[i:i + 2], num_frames=len(z[i:i + 2])).sample for i in (0, 2, 4)])
    frames = socket.decode(z)
    assert frames.shape == (5, 12, 10, 3)  # this tiny VAE downscales by 2
    torch.testing.assert_close(frames, ((chunked + 1) / 2).clamp(0, 1).permute(0, 2, 3, 1), atol=1e-4, rtol=1e-4)
