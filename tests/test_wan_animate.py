"""Wan 2.2 Animate (ComfyUI's WAN22_Animate and WanAnimateToVideo): the transformer with its pose,
face and motion parts, its detection, and the node.

Oracle: diffusers' WanAnimateTransformer3DModel on the same weights (through diffusers' converter,
which knows the original layout), fp32."""

import functools

import pytest
import torch

from tests.test_wan import TOL

FACE = 512  # the motion encoder's input size (ComfyUI's WanAnimateToVideo resizes the face video to it)


def diffusers_animate(cfg, state: dict):
    """diffusers' WanAnimateTransformer3DModel of `cfg` on original-layout `state`."""
    from diffusers.loaders.single_file_utils import convert_wan_transformer_to_diffusers
    from diffusers.models.transformers.transformer_wan_animate import WanAnimateTransformer3DModel

    sizes = [FACE // 2 ** i for i in range(len(cfg.motion_channels))]
    theirs = WanAnimateTransformer3DModel(
        patch_size=cfg.patch_size, num_attention_heads=cfg.num_heads, attention_head_dim=cfg.head_dim,
        in_channels=cfg.in_channels, latent_channels=cfg.latent_channels, out_channels=cfg.out_channels,
        text_dim=cfg.text_dim, freq_dim=cfg.freq_dim, ffn_dim=cfg.ffn_dim, num_layers=cfg.depth,
        cross_attn_norm=cfg.cross_attn_norm, image_dim=cfg.image_dim, added_kv_proj_dim=cfg.dim,
        motion_encoder_channel_sizes={str(s): c for s, c in zip(sizes, cfg.motion_channels)},
        motion_encoder_size=FACE, motion_style_dim=cfg.motion_style_dim, motion_dim=cfg.motion_dim,
        motion_encoder_dim=cfg.motion_style_dim, face_encoder_hidden_dim=cfg.face_hidden_dim,
        face_encoder_num_heads=cfg.face_heads).eval()
    # diffusers builds the blur kernels itself; the file's are the same fixed filter
    left = {k: v.clone() for k, v in state.items() if not k.endswith(".kernel")}
    converted = convert_wan_transformer_to_diffusers(left)
    assert not left
    theirs.load_state_dict(converted, strict=True)
    return theirs


@functools.lru_cache(maxsize=1)
def pair():
    from graphflow.models.wan import Wan
    from graphflow.testing import wan_animate_config, wan_animate_state

    cfg, state = wan_animate_config(), wan_animate_state(seed=0)
    ours = Wan(cfg).eval()
    ours.load_state_dict(state, strict=True)
    return cfg, ours, diffusers_animate(cfg, state), state


def inputs(cfg, seed=1, batch=1, frames=3, h=4, w=6):
    """x (latent + mask + image channels) of 1 + frames latent frames, the pose latents of `frames`,
    a face video of 4 (frames - 1) + 1 pixel frames (what the face encoder brings to `frames`), text,
    CLIP vision states."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, cfg.in_channels, frames + 1, h, w, generator=gen)
    pose = torch.randn(batch, cfg.latent_channels, frames, h, w, generator=gen)
    faces = torch.rand(batch, 3, 4 * (frames - 1) + 1, FACE, FACE, generator=gen) * 2 - 1
    context = torch.randn(batch, 512, cfg.text_dim, generator=gen)  # diffusers' image attention: the last 512 are text
    image = torch.randn(batch, 5, cfg.image_dim, generator=gen)
    return x, pose, faces, context, image


def test_animate_transformer_matches_diffusers():
    """Pose latents added from the second latent frame, the face video through the motion encoder,
    face encoder and the face adapter blocks after blocks 0 and 5, CLIP vision image tokens: equal to
    diffusers' WanAnimateTransformer3DModel on the same weights."""
    cfg, ours, theirs, _ = pair()
    x, pose, faces, context, image = inputs(cfg)
    sigma = torch.tensor([0.7])
    with torch.no_grad():
        got = ours(x, sigma, context, clip_fea=image, pose_latents=pose, face_pixel_values=faces)
        want = theirs(x, sigma * 1000, context, encoder_hidden_states_image=image, pose_hidden_states=pose,
                      face_pixel_values=faces, return_dict=False)[0]
        # each Animate input changes the output (the comparison above sees all of them)
        no_pose = ours(x, sigma, context, clip_fea=image, face_pixel_values=faces)
        other_face = ours(x, sigma, context, clip_fea=image, pose_latents=pose, face_pixel_values=faces.flip(2))
    assert got.shape == (1, 16, 4, 4, 6)
    assert float((got - want).abs().max()) < TOL * float(want.abs().max())
    assert float((no_pose - got).abs().max()) > 1e-3
    assert float((other_face - got).abs().max()) > 1e-3


def test_motion_encoder_matches_diffusers():
    """The face frames' motion vectors alone (the 512x512 encoder, QR motion basis)."""
    cfg, ours, theirs, _ = pair()
    faces = inputs(cfg, seed=3)[2][0].movedim(1, 0)
    with torch.no_grad():
        got, want = ours.motion_encoder(faces), theirs.motion_encoder(faces)
    assert got.shape == (9, cfg.motion_style_dim)
    assert float(want.abs().max()) > 1e-2
    assert float((got - want).abs().max()) < TOL * float(want.abs().max())


def test_short_face_and_pose_videos_fit_as_comfyui_does():
    """ComfyUI's AnimateWanModel: a pose latent shorter than the video adds to the frames it has, a face
    video shorter than the video leaves the later latent frames without face tokens (zeros), and
    the face tokens of the frames it covers are those of the whole video's."""
    from graphflow.models.wan_animate import face_tokens

    cfg, ours, _, _ = pair()
    x, pose, faces, context, image = inputs(cfg, seed=4)
    with torch.no_grad():
        full = face_tokens(ours.motion_encoder, ours.face_encoder, faces, 4)
        short = face_tokens(ours.motion_encoder, ours.face_encoder, faces[:, :, :5], 4)
        out = ours(x, torch.tensor([0.5]), context, pose_latents=pose[:, :, :2], face_pixel_values=faces[:, :, :5])
    assert full.shape == (1, 4, cfg.face_heads + 1, cfg.dim)
    assert float(full[:, 0].abs().max()) == 0.0 and float(full[:, 3].abs().max()) > 0
    assert torch.allclose(short[:, :3], full[:, :3], atol=1e-5) and float(short[:, 3].abs().max()) == 0.0
    assert out.shape == (1, 16, 4, 4, 6) and bool(torch.isfinite(out).all())


def test_animate_detected_and_loaded(tmp_path):
    """Recognised by pose_patch_embedding (ComfyUI's WAN22_Animate), its config read from the shapes,
    loaded whole through the diffusion model loader."""
    from graphflow.models.checkpoint import load_diffusion_model
    from graphflow.models.flow_architecture import detect_flow_model
    from graphflow.models.weight_files import WeightFile
    from graphflow.testing import wan_animate_config, write_wan_animate

    path = write_wan_animate(tmp_path / "Wan2_2-Animate-14B_fp16.safetensors", dtype=torch.float32)
    info = detect_flow_model(WeightFile(path).shapes)
    assert info.family == "wan22_animate" and info.config == wan_animate_config()
    model = load_diffusion_model(str(path), device="cpu", dtype=torch.float32)
    assert model.unet.config.face_adapter_layers == 2
    cfg, ours, _, state = pair()
    assert torch.equal(model.unet.motion_encoder.enc.net_app.convs[3].conv2[0].kernel,
                       state["motion_encoder.enc.net_app.convs.3.conv2.0.kernel"])
