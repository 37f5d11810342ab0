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


# -- WanAnimateToVideo ------------------------------------------------------------------------------

def fitted(video, width, height):
    """ComfyUI's common_upscale(..., "area", "center") of IMAGE frames."""
    from graphflow.images import center_crop_to_aspect, resize_nchw

    return resize_nchw(center_crop_to_aspect(video.movedim(-1, 1), width, height), width, height, "area").movedim(1, -1)


def test_wan_animate_to_video_conditioning():
    """WanAnimateToVideo as ComfyUI's: the reference image's latent first, then the video (the
    background where given, else grey) through the VAE; the mask fixes the reference frame and follows
    the character mask (1: generate); the pose video, its last frame held, encoded; the face video at
    512x512 in [-1, 1], the negative's a blank face (-1); an empty latent one frame longer."""
    from tests.test_nodes_image_mask import call
    from tests.test_wan import registry, wan_vae

    gen = torch.Generator().manual_seed(0)
    cond = [(torch.randn(1, 512, 32), {"a": 1})]
    vae = wan_vae()
    reference = torch.rand(1, 40, 48, 3, generator=gen)
    pose = torch.rand(3, 32, 32, 3, generator=gen)
    face = torch.rand(9, 40, 40, 3, generator=gen)
    background = torch.rand(9, 32, 32, 3, generator=gen)
    character = (torch.rand(9, 32, 32, generator=gen) > 0.5).float()
    pos, neg, latent, trim_latent, trim_image, offset = call(
        registry(), "WanAnimateToVideo", positive=cond, negative=cond, vae=vae, width=32, height=32, length=9,
        batch_size=2, continue_motion_max_frames=5, video_frame_offset=0, reference_image=reference, pose_video=pose,
        face_video=face, background_video=background, character_mask=character)
    assert latent["samples"].shape == (2, 16, 4, 4, 4) and latent["samples"].abs().max() == 0
    assert (trim_latent, trim_image, offset) == (1, 0, 9)
    want_concat = torch.cat([vae.encode(fitted(reference, 32, 32)), vae.encode(background)], dim=2)
    held = torch.cat([pose, pose[-1:].expand(6, -1, -1, -1)])
    want_face = fitted(face, 512, 512).movedim(-1, 0)[None] * 2 - 1
    assert pos[0][1]["a"] == 1
    for side in (pos, neg):
        options = side[0][1]
        assert torch.allclose(options["concat_latent_image"], want_concat, atol=1e-5)
        assert torch.allclose(options["pose_video_latent"], vae.encode(held), atol=1e-5)
        mask = options["concat_mask"]
        assert mask.shape == (1, 4, 4, 4, 4) and mask[:, :, 0].abs().max() == 0
        # pixel frame 4 t + c of the character mask (nearest, at latent size) is latent frame t + 1's channel c
        small = character[:, 4::8, 4::8]  # nearest-exact: pixel 8 i + 4
        assert torch.equal(mask[0, :, 1:3].transpose(0, 1).flatten(0, 1)[:8], small[:8])
        assert mask[0, 1:, 3].eq(1).all()  # past the 9 frames of the mask: generate
    assert pos[0][1]["face_video_pixels"].shape == (1, 3, 9, 512, 512)
    assert torch.allclose(pos[0][1]["face_video_pixels"], want_face, atol=1e-6)
    assert neg[0][1]["face_video_pixels"].eq(-1).all()


def test_wan_animate_to_video_continue_motion():
    """A later chunk: the last continue_motion_max_frames frames of the previous one open the video and
    are kept (mask 0 on their latent frames), the driving videos are read from video_frame_offset less
    those frames, and the trims and next offset say what to cut and where the next chunk starts."""
    from tests.test_nodes_image_mask import call
    from tests.test_wan import registry, wan_vae

    gen = torch.Generator().manual_seed(1)
    cond = [(torch.randn(1, 512, 32), {})]
    vae = wan_vae()
    previous = torch.rand(7, 32, 32, 3, generator=gen)
    pose = torch.rand(30, 32, 32, 3, generator=gen)
    pos, _, latent, trim_latent, trim_image, offset = call(
        registry(), "WanAnimateToVideo", positive=cond, negative=cond, vae=vae, width=32, height=32, length=9,
        batch_size=1, continue_motion_max_frames=5, video_frame_offset=12, pose_video=pose, continue_motion=previous)
    assert latent["samples"].shape == (1, 16, 4, 4, 4)
    assert (trim_latent, trim_image, offset) == (1, 5, 7 + 9)  # 5 kept frames: 2 latent frames, 8 - 3 images
    video = torch.full((9, 32, 32, 3), 0.5)
    video[:5] = previous[-5:]
    want = torch.cat([vae.encode(torch.zeros(1, 32, 32, 3)), vae.encode(video)], dim=2)
    options = pos[0][1]
    assert torch.allclose(options["concat_latent_image"], want, atol=1e-5)
    assert torch.allclose(options["pose_video_latent"], vae.encode(pose[7:16]), atol=1e-5)
    assert options["concat_mask"][0, :, :3].eq(0).all() and options["concat_mask"][0, :, 3].eq(1).all()
    # a pose video that has ended by the offset is left out
    pos, *_ = call(registry(), "WanAnimateToVideo", positive=cond, negative=cond, vae=vae, width=32, height=32,
                   length=9, batch_size=1, continue_motion_max_frames=5, video_frame_offset=40, pose_video=pose)
    assert "pose_video_latent" not in pos[0][1]


def test_wan_animate_graph_samples_and_matches_diffusers(tmp_folders):
    """ComfyUI's Wan Animate graph on tiny files: UNETLoader (Animate), CLIPLoader (wan), CLIPVisionEncode
    of the reference picture, VAELoader, pose and face videos (RepeatImageBatch of pictures),
    WanAnimateToVideo, KSampler, TrimVideoLatent (trim_latent), VAEDecode. The latent equals two Euler
    CFG steps of diffusers' WanAnimateTransformer3DModel on [x, 1 - mask x4, the concat latent in model
    space] with the pose latent (model space), the face video (the negative: -1) and the image tokens."""

    import numpy as np
    from PIL import Image

    from graphflow.models.latent_formats import WAN21
    from graphflow.sampling.noise import initial_noise
    from graphflow.testing import wan_animate_config, wan_animate_state, write_clip_vision, write_umt5, \
        write_wan_animate, write_wan_vae
    from tests.test_wan import reference_text, reference_umt5, run_graph

    m = tmp_folders.models
    for sub in ("diffusion_models", "text_encoders", "vae", "clip_vision"):
        (m / sub).mkdir()
    write_wan_animate(m / "diffusion_models" / "Wan2_2-Animate-14B_fp16.safetensors", seed=5, dtype=torch.float32)
    write_umt5(m / "text_encoders" / "umt5_xxl_fp16.safetensors", seed=1, dtype=torch.float32)
    write_wan_vae(m / "vae" / "wan_2.1_vae.safetensors", dtype=torch.float32)
    write_clip_vision(m / "clip_vision" / "clip_vision_h.safetensors", dtype=torch.float32)
    rng = np.random.default_rng(0)
    for name, size in (("ref.png", (40, 48)), ("pose.png", (32, 32)), ("face.png", (24, 24))):
        Image.fromarray(rng.integers(0, 255, (*size, 3), dtype=np.uint8)).save(tmp_folders.inputs / name)
    graph = {
        "1": {"class_type": "UNETLoader", "inputs": {"unet_name": "Wan2_2-Animate-14B_fp16.safetensors",
                                                     "weight_dtype": "default"}},
        "2": {"class_type": "CLIPLoader", "inputs": {"clip_name": "umt5_xxl_fp16.safetensors", "type": "wan"}},
        "3": {"class_type": "CLIPTextEncode", "inputs": {"text": "a dancer", "clip": ["2", 0]}},
        "4": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry", "clip": ["2", 0]}},
        "5": {"class_type": "CLIPVisionLoader", "inputs": {"clip_name": "clip_vision_h.safetensors"}},
        "6": {"class_type": "LoadImage", "inputs": {"image": "ref.png"}},
        "7": {"class_type": "CLIPVisionEncode", "inputs": {"clip_vision": ["5", 0], "image": ["6", 0], "crop": "none"}},
        "8": {"class_type": "VAELoader", "inputs": {"vae_name": "wan_2.1_vae.safetensors"}},
        "13": {"class_type": "LoadImage", "inputs": {"image": "pose.png"}},
        "14": {"class_type": "RepeatImageBatch", "inputs": {"image": ["13", 0], "amount": 5}},
        "15": {"class_type": "LoadImage", "inputs": {"image": "face.png"}},
        "16": {"class_type": "RepeatImageBatch", "inputs": {"image": ["15", 0], "amount": 5}},
        "9": {"class_type": "WanAnimateToVideo", "inputs": {
            "positive": ["3", 0], "negative": ["4", 0], "vae": ["8", 0], "clip_vision_output": ["7", 0],
            "reference_image": ["6", 0], "pose_video": ["14", 0], "face_video": ["16", 0], "width": 32, "height": 32,
            "length": 5, "batch_size": 1, "continue_motion_max_frames": 5, "video_frame_offset": 0}},
        "10": {"class_type": "KSampler", "inputs": {"seed": 11, "steps": 2, "cfg": 5.0, "sampler_name": "euler",
                                                    "scheduler": "simple", "denoise": 1.0, "model": ["1", 0],
                                                    "positive": ["9", 0], "negative": ["9", 1],
                                                    "latent_image": ["9", 2]}},
        "17": {"class_type": "TrimVideoLatent", "inputs": {"samples": ["10", 0], "trim_amount": ["9", 3]}},
        "11": {"class_type": "VAEDecode", "inputs": {"samples": ["17", 0], "vae": ["8", 0]}},
        "12": {"class_type": "SaveAnimatedWEBP", "inputs": {"images": ["11", 0], "filename_prefix": "wan_animate",
                                                            "fps": 16.0, "lossless": False, "quality": 90,
                                                            "method": "default"}},
    }
    result = run_graph(graph)
    assert result.values["11"][0].shape == (5, 32, 32, 3)

    positive = result.values["9"][0][0][1]
    vision = result.values["7"][0]
    theirs = diffusers_animate(wan_animate_config(), wan_animate_state(seed=5))
    umt5, tokenizer = reference_umt5(m / "text_encoders" / "umt5_xxl_fp16.safetensors")
    cond, uncond = (reference_text(umt5, tokenizer, graph[n]["inputs"]["text"])[0] for n in ("3", "4"))
    extra = torch.cat([1 - positive["concat_mask"], WAN21.process_in(positive["concat_latent_image"])], dim=1)
    assert extra.shape == (1, 20, 3, 4, 4) and extra[:, :4, 0].eq(1).all() and extra[:, :4, 1:].eq(0).all()
    pose = WAN21.process_in(positive["pose_video_latent"])
    face = positive["face_video_pixels"]
    sigma_mid = 8 * 0.5 / (1 + 7 * 0.5)
    x = initial_noise(torch.zeros(1, 16, 3, 4, 4), 11)
    for sigma, sigma_next in ((1.0, sigma_mid), (sigma_mid, 0.0)):
        s = torch.tensor([sigma * 1000])
        with torch.no_grad():
            v_cond, v_uncond = (theirs(torch.cat([x, extra], 1), s, c, encoder_hidden_states_image=
                                       vision.penultimate_hidden_states, pose_hidden_states=pose,
                                       face_pixel_values=f, return_dict=False)[0]
                                for c, f in ((cond, face), (uncond, torch.full_like(face, -1.0))))
        x = x + (v_uncond + 5.0 * (v_cond - v_uncond)) * (sigma_next - sigma)
    ours = result.values["10"][0]["samples"]
    want = WAN21.process_out(x)
    assert float((ours - want).abs().max()) < 1e-4 * float(want.abs().max())
    assert torch.equal(result.values["17"][0]["samples"], ours[:, :, 1:])


def test_context_windows_cut_the_driving_videos_after_the_reference_frame():
    """Context windows over frames (ComfyUI's WAN22_Animate slicing): latent frame i takes pose frame
    i - 1 and face frames 4 (i - 1) .. 4 i - 1, the window's first frame none; batch windows cut the
    batch; windows over rows can't cut them."""
    from graphflow.sampling.context_windows import cut_cond
    from graphflow.sampling.guidance import Cond

    pose = torch.arange(2 * 4.0).reshape(1, 1, 8, 1, 1).expand(2, 16, 8, 4, 4)  # 9 latent frames: 8 after the first
    faces = torch.arange(2 * 33.0).reshape(2, 1, 33, 1, 1).expand(2, 3, 33, 8, 8)
    cond = Cond(context=torch.zeros(2, 5, 32), pose_latents=pose, face_pixels=faces)
    cut = cut_cond(cond, 2, [3, 4, 5], (2, 16, 9, 4, 4))
    assert cut.pose_latents[0, 0, :, 0, 0].tolist() == [3.0, 4.0]
    assert cut.face_pixels[0, 0, :, 0, 0].tolist() == list(range(12, 20))
    cut = cut_cond(cond, 2, [0, 1, 2], (2, 16, 9, 4, 4))
    assert cut.pose_latents[0, 0, :, 0, 0].tolist() == [0.0, 1.0]
    assert cut.face_pixels[1, 0, :, 0, 0].tolist() == list(range(33, 41))
    cut = cut_cond(cond, 0, [1], (2, 16, 9, 4, 4))
    assert torch.equal(cut.pose_latents, pose[1:]) and torch.equal(cut.face_pixels, faces[1:])
    with pytest.raises(ValueError, match="rows or columns"):
        cut_cond(cond, 3, [0, 1], (2, 16, 9, 4, 4))


def test_bad_inputs_are_refused_clearly():
    """A character mask that is not a MASK, and a file whose face adapter count does not fit its depth."""
    from graphflow.api import NodeInputError
    from graphflow.models.configs import wan_config_from_state_dict
    from graphflow.testing import wan_animate_state
    from tests.test_nodes_image_mask import call
    from tests.test_wan import registry, wan_vae

    cond = [(torch.zeros(1, 512, 32), {})]
    with pytest.raises(NodeInputError, match=r"expected a MASK \[frames, H, W\]") as refused:
        call(registry(), "WanAnimateToVideo", positive=cond, negative=cond, vae=wan_vae(), width=32, height=32,
             length=5, batch_size=1, continue_motion_max_frames=5, video_frame_offset=0,
             character_mask=torch.ones(1, 1, 5, 32, 32))
    assert refused.value.input == "character_mask"
    shapes = {k: tuple(v.shape) for k, v in wan_animate_state().items()
              if not k.startswith("face_adapter.fuser_blocks.1.")}
    with pytest.raises(ValueError, match="needs 2 face adapter blocks, not 1"):
        wan_config_from_state_dict(shapes)


def test_wan22_animate_workflow_runs_and_matches_diffusers(tmp_folders):
    """workflows/wan22_animate.json (ComfyUI's Wan 2.2 Animate template in Move mode, its first chunk and
    one video extend: UNETLoader, the lightx2v and relight LoRAs through LoraLoaderModelOnly,
    ModelSamplingSD3 shift 8, CLIPLoader wan, CLIPVisionEncode of the reference picture, pose and face
    videos from LoadVideo, WanAnimateToVideo, KSampler (euler, simple, cfg 1), TrimVideoLatent, VAEDecode,
    ImageFromBatch, CreateVideo + SaveVideo; the extend's WanAnimateToVideo continuing the first chunk's
    frames from its video_frame_offset, ImageBatch of both) as saved but for its size and steps: each
    chunk's latent equals two Euler steps of diffusers' WanAnimateTransformer3DModel on the file's weights
    with both LoRAs merged by hand (cfg 1: the positive alone), fed that chunk's pose latent, face video
    and the image tokens; the extension adds only the frames after the continued ones."""

    import numpy as np
    from PIL import Image

    from graphflow.models.latent_formats import WAN21
    from graphflow.sampling.noise import initial_noise
    from graphflow.testing import wan_animate_config, wan_animate_state, write_clip_vision, write_umt5, \
        write_wan_animate, write_wan_vae
    from graphflow.video import Video, read_video, write_video
    from tests.test_wan import comfy_lora, example_graph, reference_text, reference_umt5, run_graph

    m = tmp_folders.models
    for sub in ("diffusion_models", "loras", "text_encoders", "vae", "clip_vision"):
        (m / sub).mkdir(exist_ok=True)
    write_wan_animate(m / "diffusion_models" / "wan2.2_animate_14B_bf16.safetensors", seed=5, dtype=torch.float32)
    state = wan_animate_state(seed=5)
    lightx2v = comfy_lora(m / "loras" / "lightx2v_I2V_14B_480p_cfg_step_distill_rank64_bf16.safetensors", state,
                          ["blocks.0.self_attn.q", "blocks.3.cross_attn.v", "blocks.5.ffn.0"], seed=6)
    relight = comfy_lora(m / "loras" / "WanAnimate_relight_lora_fp16.safetensors", state,
                         ["blocks.0.self_attn.q", "blocks.9.self_attn.o"], seed=7)
    write_umt5(m / "text_encoders" / "umt5_xxl_fp8_e4m3fn_scaled.safetensors", seed=1, dtype=torch.float32)
    write_wan_vae(m / "vae" / "wan_2.1_vae.safetensors", dtype=torch.float32)
    write_clip_vision(m / "clip_vision" / "clip_vision_h.safetensors", dtype=torch.float32)
    gen = torch.Generator().manual_seed(0)
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (40, 48, 3), dtype=np.uint8)).save(tmp_folders.inputs / "wan_animate_reference.png")
    for name, size in (("wan_animate_pose.mp4", 32), ("wan_animate_face.mp4", 24)):
        write_video(tmp_folders.inputs / name, Video(torch.rand(14, size, size, 3, generator=gen), 16), "mp4", "libx264")

    nodes, graph = example_graph("wan22_animate")
    for n in ("62", "90"):
        graph[n]["inputs"].update(width=32, height=32, length=9)
    for n in ("63", "91"):
        graph[n]["inputs"]["steps"] = 2
    result = run_graph(graph)
    assert result.values["62"][3:] == (1, 0, 9) and result.values["90"][3:] == (1, 5, 4 + 9)
    first, more = result.values["58"][0], result.values["85"][0]
    assert first.shape == (9, 32, 32, 3) and more.shape == (4, 32, 32, 3)  # the 5 continued frames cut
    assert torch.equal(result.values["86"][0], torch.cat([first, more]))
    assert len(list(tmp_folders.outputs.rglob("wan22_animate_0*.mp4"))) == 1
    assert len(list(tmp_folders.outputs.rglob("wan22_animate_extended*.mp4"))) == 1

    vae = result.values["3"][0]
    pose_frames = read_video(tmp_folders.inputs / "wan_animate_pose.mp4").images
    assert torch.allclose(result.values["62"][0][0][1]["pose_video_latent"], vae.encode(pose_frames[:9]), atol=1e-5)
    assert torch.allclose(result.values["90"][0][0][1]["pose_video_latent"], vae.encode(pose_frames[4:13]), atol=1e-5)
    merged = dict(state)
    for deltas in (lightx2v, relight):
        for name, delta in deltas.items():
            merged[name] = merged[name] + delta  # strength 1 each
    theirs = diffusers_animate(wan_animate_config(), merged)
    plain = diffusers_animate(wan_animate_config(), state)
    umt5, tokenizer = reference_umt5(m / "text_encoders" / "umt5_xxl_fp8_e4m3fn_scaled.safetensors")
    cond = reference_text(umt5, tokenizer, nodes["21"]["inputs"]["text"])[0]
    image = result.values["9"][0].penultimate_hidden_states
    sigma_mid = 8 * 0.5 / (1 + 7 * 0.5)
    for chunk, sampler in (("62", "63"), ("90", "91")):
        positive = result.values[chunk][0][0][1]
        extra = torch.cat([1 - positive["concat_mask"], WAN21.process_in(positive["concat_latent_image"])], dim=1)
        kwargs = dict(encoder_hidden_states_image=image, pose_hidden_states=WAN21.process_in(positive["pose_video_latent"]),
                      face_pixel_values=positive["face_video_pixels"], return_dict=False)
        assert positive["face_video_pixels"].shape == (1, 3, 9, 512, 512)
        x = initial_noise(torch.zeros(1, 16, 4, 4, 4), nodes[sampler]["inputs"]["seed"])
        for sigma, sigma_next in ((1.0, sigma_mid), (sigma_mid, 0.0)):
            s = torch.tensor([sigma * 1000])
            with torch.no_grad():
                v = theirs(torch.cat([x, extra], 1), s, cond, **kwargs)[0]
                if sigma == 1.0 and chunk == "62":  # the LoRAs count
                    assert float((plain(torch.cat([x, extra], 1), s, cond, **kwargs)[0] - v).abs().max()) > 1e-3
            x = x + v * (sigma_next - sigma)  # cfg 1: the positive alone
        ours = result.values[sampler][0]["samples"]
        want = WAN21.process_out(x)
        assert ours.shape == (1, 16, 4, 4, 4)
        assert float((ours - want).abs().max()) < 1e-4 * float(want.abs().max()), chunk
    assert torch.equal(result.values["57"][0]["samples"], result.values["63"][0]["samples"][:, :, 1:])
