"""Wan Fun Control-Camera (Wan2.1-Fun-V1.1-*-Control-Camera): WanCameraEmbedding, the model's
camera adapter (control_adapter) and WanCameraImageToVideo.

There is no diffusers (or transformers) reference for this model: diffusers has neither the camera
adapter nor the camera presets. So the camera path is checked against closed forms derived here
(identity poses for Static, translations along the axes scaled by speed, rotations about the view
axis, rays as unit directions through the pixel centres with moments origin x direction), the
adapter against a plain-torch rewrite of its layer list (8x8 pixel unshuffle, patch conv, one
residual block), and the whole camera model against diffusers' WanTransformer3DModel (the I2V
backbone, which diffusers has) with that rewrite's output added to its patch embedding.
"""

import math

import pytest
import torch
import torch.nn.functional as F

from tests.test_nodes_image_mask import call
from tests.test_wan import diffusers_transformer, diffusers_velocity, registry, wan_vae

POSES = ("Static", "Pan Up", "Pan Down", "Pan Left", "Pan Right", "Zoom In", "Zoom Out", "Anti Clockwise (ACW)",
         "ClockWise (CW)")
# camera-to-world translation per unit of motion (x right, y down, z ahead), reached at speed 1 by
# the video's end: pans move 1.5, zooms 3 (the camera moves ahead to zoom in)
SHIFTS = {"Pan Up": (0, -1.5, 0), "Pan Down": (0, 1.5, 0), "Pan Left": (-1.5, 0, 0), "Pan Right": (1.5, 0, 0),
          "Zoom In": (0, 0, 3.0), "Zoom Out": (0, 0, -3.0)}
TURNS = {"Anti Clockwise (ACW)": -math.pi / 3, "ClockWise (CW)": math.pi / 3}  # about the view axis (z)


def pixel_directions(width, height, fx, fy, cx, cy):
    """[H, W, 3] float64 unit rays through the pixel centres of a pinhole camera (pixels)."""
    v, u = torch.meshgrid(torch.arange(height, dtype=torch.float64) + 0.5,
                          torch.arange(width, dtype=torch.float64) + 0.5, indexing="ij")
    d = torch.stack([(u - cx) / fx, (v - cy) / fy, torch.ones_like(u)], dim=-1)
    return d / d.norm(dim=-1, keepdim=True)


def cross(a, b):
    ax, ay, az = a.unbind(-1)
    bx, by, bz = b.unbind(-1)
    return torch.stack([ay * bz - az * by, az * bx - ax * bz, ax * by - ay * bx], dim=-1)


def rays_of(pose, width, height, length, speed=1.0, fx=0.5, fy=0.5, cx=0.5, cy=0.5):
    from nodes.wan import camera_intrinsics, camera_poses, plucker_rays

    return plucker_rays(camera_poses(pose, speed, length), camera_intrinsics(width, height, fx, fy, cx, cy), height,
                        width).double()


# -- WanCameraEmbedding ---------------------------------------------------------------------------

@pytest.mark.parametrize("width,height,fx_px,fy_px", [
    (64, 32, 32.0, 64 * 9 / 16 * 0.5),  # wider than 16:9: the width keeps its focal length, the height's is fitted
    (32, 32, 32 * 16 / 9 * 0.5, 16.0),  # narrower: the height keeps its own, the width's is the 16:9 frame's
])
def test_static_rays_are_the_pixel_directions(width, height, fx_px, fy_px):
    """Static: every pose the identity, so every frame's rays start at the origin (zero moment) and
    point through the pixel centres of a pinhole camera whose focal lengths are those of a 1280 x 720
    frame fitted to this one (principal point at the centre)."""
    from nodes.wan import camera_poses

    assert torch.equal(camera_poses("Static", 1.0, 5), torch.eye(4, dtype=torch.float64).expand(5, 4, 4))
    rays = rays_of("Static", width, height, 5)
    assert rays.shape == (5, height, width, 6)
    want = pixel_directions(width, height, fx_px, fy_px, width / 2, height / 2)
    for frame in rays:
        assert frame[..., :3].abs().max() == 0
        assert torch.allclose(frame[..., 3:], want, atol=1e-6)
    # the centre pixels look almost straight ahead, symmetric about the axis
    assert torch.allclose(rays[0, 0, 0, 3:5], -rays[0, -1, -1, 3:5], atol=1e-6)


@pytest.mark.parametrize("pose", sorted(SHIFTS))
@pytest.mark.parametrize("speed", [1.0, 2.5])
def test_pans_and_zooms_translate_the_camera(pose, speed):
    """Pans and zooms keep the orientation and move the camera i / n x speed of the way along their
    axis in frame i of n: directions are Static's, origins the shift, moments origin x direction,
    orthogonal to the direction; the last frame is (n - 1) / n of the way."""
    from nodes.wan import camera_poses

    n, width, height = 9, 16, 16
    poses = camera_poses(pose, speed, n)
    shift = torch.tensor(SHIFTS[pose], dtype=torch.float64)
    for i in range(n):
        assert torch.equal(poses[i, :3, :3], torch.eye(3, dtype=torch.float64))
        assert torch.allclose(poses[i, :3, 3], shift * speed * i / n, atol=1e-12)
    rays = rays_of(pose, width, height, n, speed)
    static = rays_of("Static", width, height, n)
    assert torch.allclose(rays[..., 3:], static[..., 3:], atol=0)
    origins = (shift * speed * torch.arange(n, dtype=torch.float64)[:, None] / n)[:, None, None].expand(-1, height,
                                                                                                         width, -1)
    assert torch.allclose(rays[..., :3], cross(origins, rays[..., 3:]), atol=1e-5)
    assert ((rays[..., :3] * rays[..., 3:]).sum(-1)).abs().max() < 1e-5  # moment . direction = 0
    assert torch.allclose(rays[..., 3:].norm(dim=-1), torch.ones(1, dtype=torch.float64), atol=1e-6)
    # the moment's size is the distance from the origin to the ray's line: |shift| sin(angle to it)
    last = rays[-1]
    offset = shift * speed * (n - 1) / n
    sine = cross(offset.expand_as(last[..., 3:]) / offset.norm(), last[..., 3:]).norm(dim=-1)
    assert torch.allclose(last[..., :3].norm(dim=-1), offset.norm() * sine, atol=1e-5)


@pytest.mark.parametrize("pose", sorted(TURNS))
def test_rotations_turn_the_rays_about_the_view_axis(pose):
    """Clockwise / anticlockwise: the camera stays at the origin (zero moment) and turns about z by
    i / n x speed x 60 degrees (clockwise positive): each frame's rays are the first frame's rotated."""
    n, speed, width, height = 5, 1.5, 16, 8
    rays = rays_of(pose, width, height, n, speed)
    assert rays[..., :3].abs().max() < 1e-6
    for i in range(n):
        a = TURNS[pose] * speed * i / n
        rz = torch.tensor([[math.cos(a), -math.sin(a), 0], [math.sin(a), math.cos(a), 0], [0, 0, 1]],
                          dtype=torch.float64)
        assert torch.allclose(rays[i, ..., 3:], rays[0, ..., 3:] @ rz.T, atol=1e-6)
    # clockwise: a ray to the right of the centre turns down (+y) in the first camera's frame
    right = rays[:, height // 2, -1, 3:]
    assert (right[-1, 1] - right[0, 1]) * TURNS[pose] > 0


def test_principal_point_and_focal_lengths():
    """cx, cy move the principal point (the ray straight ahead) to that fraction of the frame; fx, fy
    scale the focal lengths (in the 16:9 frame's units along the fitted axis)."""
    width, height = 64, 32  # wider than 16:9: fx stays fx x width, fy is fy x width x 9 / 16
    rays = rays_of("Static", width, height, 1, fx=0.25, fy=0.8, cx=0.25, cy=0.75)[0]
    want = pixel_directions(width, height, 0.25 * width, 0.8 * width * 9 / 16, 0.25 * width, 0.75 * height)
    assert torch.allclose(rays[..., 3:], want, atol=1e-6)
    # the pixel centred on (16, 24) is not one; its four neighbours' rays surround the axis
    block = rays[23:25, 15:17, 3:5]
    assert torch.allclose(block.sum((0, 1)), torch.zeros(2, dtype=torch.float64), atol=1e-6)


def test_embedding_groups_four_frames_per_latent_frame():
    """WanCameraEmbedding's output as ComfyUI's: [1, 24, (length - 1) / 4 + 1, H, W], the first frame
    counted 4 times, then 4 frames per latent frame; channel 4 c + k is ray component c of the
    group's frame k (latent frame g, frame k: video frame max(0, 4 g + k - 3))."""
    width, height, length = 32, 16, 9
    rays, w, h, n = call(registry(), "WanCameraEmbedding", camera_pose="Zoom In", width=width, height=height,
                         length=length, speed=1.0, fx=0.5, fy=0.5, cx=0.5, cy=0.5)
    assert (w, h, n) == (width, height, length)
    assert rays.shape == (1, 24, 3, height, width) and rays.dtype == torch.float32
    frames = rays_of("Zoom In", width, height, length).float()
    for g in range(3):
        for k in range(4):
            for c in range(6):
                assert torch.equal(rays[0, 4 * c + k, g], frames[max(0, 4 * g + k - 3), ..., c]), (g, k, c)
    # the moments grow with the zoom: zero in the first latent frame, largest in the last
    moments = rays[0, :12].abs().amax(dim=(0, 2, 3))
    assert moments[0] == 0 and moments[1] < moments[2]
    # optional inputs default as ComfyUI's
    default, *_ = call(registry(), "WanCameraEmbedding", camera_pose="Zoom In", width=width, height=height,
                       length=length)
    assert torch.equal(default, rays)


def test_embedding_refuses_partial_latent_frames():
    from graphflow.api import NodeInputError

    with pytest.raises(NodeInputError, match="4n \\+ 1") as error:
        call(registry(), "WanCameraEmbedding", camera_pose="Pan Up", width=32, height=16, length=8)
    assert error.value.input == "length"


# -- the camera adapter ------------------------------------------------------------------------------

def adapter_by_hand(state: dict, rays: torch.Tensor, prefix: str = "control_adapter.") -> torch.Tensor:
    """The control adapter in plain torch: each frame's rays [C, H, W] -> each 8x8 pixel block's C x 64
    values as channels (channel 64 c + 8 i + j: pixel (8 y + i, 8 x + j) of channel c), a conv of
    stride = kernel = the patch, then x + conv2(relu(conv1(x))) (3x3, padding 1)."""
    b, c, f, h, w = rays.shape
    x = rays.permute(0, 2, 1, 3, 4).reshape(b * f, c, h // 8, 8, w // 8, 8)
    x = x.permute(0, 1, 3, 5, 2, 4).reshape(b * f, c * 64, h // 8, w // 8)
    kernel = state[prefix + "conv.weight"]
    x = F.conv2d(x, kernel, state[prefix + "conv.bias"], stride=kernel.shape[-2:])
    inner = F.relu(F.conv2d(x, state[prefix + "residual_blocks.0.conv1.weight"],
                            state[prefix + "residual_blocks.0.conv1.bias"], padding=1))
    x = x + F.conv2d(inner, state[prefix + "residual_blocks.0.conv2.weight"],
                     state[prefix + "residual_blocks.0.conv2.bias"], padding=1)
    return x.reshape(b, f, *x.shape[1:]).permute(0, 2, 1, 3, 4)


def test_adapter_layers_and_forward():
    """control_adapter's keys and shapes as the 14B Control-Camera's (ComfyUI's WanCamAdapter: conv
    24 x 64 -> 5120 of kernel 2, one residual block of 3x3 convs), its forward the by-hand one."""
    from graphflow.models.wan import Wan
    from graphflow.testing import wan_config, wan_state

    with torch.device("meta"):
        big = {k: tuple(v.shape) for k, v in Wan(wan_config(False, camera=True)).state_dict().items()
               if k.startswith("control_adapter.")}
    assert big == {"control_adapter.conv.weight": (5120, 1536, 2, 2), "control_adapter.conv.bias": (5120,),
                   "control_adapter.residual_blocks.0.conv1.weight": (5120, 5120, 3, 3),
                   "control_adapter.residual_blocks.0.conv1.bias": (5120,),
                   "control_adapter.residual_blocks.0.conv2.weight": (5120, 5120, 3, 3),
                   "control_adapter.residual_blocks.0.conv2.bias": (5120,)}
    cfg = wan_config(camera=True)
    state = wan_state(seed=3, camera=True)
    net = Wan(cfg).eval()
    net.load_state_dict(state)
    rays = torch.randn(2, 24, 3, 32, 48, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        got = net.control_adapter(rays)
    assert got.shape == (2, cfg.dim, 3, 2, 3)
    want = adapter_by_hand(state, rays)
    assert torch.allclose(got, want, atol=1e-4 * float(want.abs().max()))


def test_camera_model_detected_from_its_adapter(tmp_path):
    """A file with control_adapter.* is a Fun Control-Camera model: the adapter's input read from its
    conv (1536 / 64 = 24), I2V (img_emb) with 32 input channels."""
    from graphflow.models.checkpoint import load_diffusion_model
    from graphflow.models.checkpoint_report import inspect_report
    from graphflow.models.flow_architecture import detect_flow_model
    from graphflow.models.weight_files import WeightFile
    from graphflow.testing import wan_config, write_wan

    path = write_wan(tmp_path / "Wan2.1-Fun-V1.1-14B-Control-Camera.safetensors", camera=True, prefixed=True,
                     dtype=torch.float32)
    with WeightFile(path) as f:
        info = detect_flow_model(f.shapes)
    assert (info.arch, info.family) == ("wan", "wan_camera")
    assert info.config == wan_config(camera=True)
    assert info.config.camera_in_channels == 24 and info.config.in_channels == 32 and info.config.i2v
    assert "camera adapter (24 Plücker ch)" in inspect_report(path)
    model = load_diffusion_model(path, device="cpu", dtype=torch.float32)
    assert model.in_channels == 32 and model.unet.control_adapter is not None


@pytest.fixture(scope="module")
def camera_net():
    from graphflow.models.wan import Wan
    from graphflow.testing import wan_config, wan_state

    cfg = wan_config(camera=True)
    state = wan_state(seed=5, camera=True)
    net = Wan(cfg).eval()
    net.load_state_dict(state)
    return cfg, net, state


def test_camera_rays_are_added_to_the_patch_embedding(camera_net):
    """The model with camera conditions = diffusers' Wan I2V backbone on the same weights with the
    by-hand adapter's output added to its patch embedding; without them, the backbone alone. A zeroed
    adapter changes nothing."""
    cfg, net, state = camera_net
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(2, 32, 3, 4, 6, generator=gen)
    rays = torch.randn(2, 24, 3, 32, 48, generator=gen)
    context = torch.randn(2, 512, cfg.text_dim, generator=gen)  # diffusers' I2V attention: the last 512 are text
    image = torch.randn(2, 5, cfg.image_dim, generator=gen)
    sigma = torch.tensor([0.9, 0.4])
    theirs = diffusers_transformer(cfg, {k: v for k, v in state.items() if not k.startswith("control_adapter.")})
    added = adapter_by_hand(state, rays)
    hook = theirs.patch_embedding.register_forward_hook(lambda module, inputs, out: out + added)
    try:
        want = diffusers_velocity(theirs, x, sigma, context, image)
    finally:
        hook.remove()
    with torch.no_grad():
        got = net(x, sigma, context, clip_fea=image, camera_conditions=rays)
        plain = net(x, sigma, context, clip_fea=image)
    assert torch.allclose(got, want, atol=1e-4 * float(want.abs().max()))
    assert torch.allclose(plain, diffusers_velocity(theirs, x, sigma, context, image), atol=1e-4)
    assert (got - plain).abs().max() > 1e-2
    zeroed = {k: (torch.zeros_like(v) if k.startswith("control_adapter.") else v) for k, v in state.items()}
    net.load_state_dict(zeroed)
    try:
        with torch.no_grad():
            assert torch.equal(net(x, sigma, context, clip_fea=image, camera_conditions=rays), plain)
    finally:
        net.load_state_dict(state)
    with pytest.raises(ValueError, match="camera_conditions"):
        net(x, sigma, context, camera_conditions=rays[..., :16, :])
    with pytest.raises(ValueError, match="camera_conditions"):
        net(x, sigma, context, camera_conditions=rays[:, :, :2])


# -- WanCameraImageToVideo, sampling --------------------------------------------------------------

def test_camera_image_to_video_node():
    """WanCameraImageToVideo as ComfyUI's: the start image's latent over model-space zeros (all latent
    frames) as concat_latent_image (none without a start image) with ComfyUI's first-last-frame
    concat_mask [1, 4, latent frames, h, w] (0 on the start frames and the 3 pixel frames after them);
    the camera rays and CLIP vision output on both sides."""
    from graphflow.api import NodeInputError
    from graphflow.images import center_crop_to_aspect, resize_nchw
    from graphflow.models.clip_vision import ClipVisionOutput
    from graphflow.models.latent_formats import WAN21

    cond = [(torch.randn(1, 512, 32), {"a": 1})]
    gen = torch.Generator().manual_seed(2)
    image = torch.rand(2, 24, 40, 3, generator=gen)
    vision = ClipVisionOutput(torch.zeros(1, 5, 64), torch.zeros(1, 8), torch.randn(1, 5, 64, generator=gen))
    rays, *_ = call(registry(), "WanCameraEmbedding", camera_pose="Pan Left", width=32, height=16, length=9)
    vae = wan_vae()
    pos, neg, latent = call(registry(), "WanCameraImageToVideo", positive=cond, negative=cond, vae=vae, width=32,
                            height=16, length=9, batch_size=2, clip_vision_output=vision, start_image=image,
                            camera_conditions=rays)
    assert latent["samples"].shape == (2, 16, 3, 2, 4) and latent["samples"].abs().max() == 0
    fitted = resize_nchw(center_crop_to_aspect(image.movedim(-1, 1), 32, 16), 32, 16, "bilinear").movedim(1, -1)
    encoded = vae.encode(fitted)  # the 2 frames alone: 1 latent frame
    assert encoded.shape == (1, 16, 1, 2, 4)
    for side in (pos, neg):
        options = side[0][1]
        concat = options["concat_latent_image"]
        assert concat.shape == (2, 16, 3, 2, 4)
        assert torch.allclose(concat[:, :, :1], encoded.expand(2, -1, -1, -1, -1), atol=1e-5)
        assert WAN21.process_in(concat[:, :, 1:]).abs().max() < 1e-6
        # the mask, derived here: pixel frames 0 .. 2 + 3 = 4 given, folded 4 per latent frame into channels
        pixel = torch.ones(3 * 4)
        pixel[:2 + 3] = 0.0
        want = pixel.view(3, 4).T.reshape(1, 4, 3, 1, 1).expand(1, 4, 3, 2, 4)
        assert torch.equal(options["concat_mask"], want) and options["a"] == 1
        assert options["camera_conditions"] is rays and options["clip_vision_output"] is vision
    bare, _, _ = call(registry(), "WanCameraImageToVideo", positive=cond, negative=cond, vae=vae, width=32, height=16,
                      length=9, batch_size=1)
    assert bare == cond
    with pytest.raises(NodeInputError, match="rays for 3 latent frames of 48 x 16") as error:
        call(registry(), "WanCameraImageToVideo", positive=cond, negative=cond, vae=vae, width=48, height=16,
             length=9, batch_size=1, camera_conditions=rays)
    assert error.value.input == "camera_conditions"


def test_camera_sampling_end_to_end(tmp_path):
    """WanCameraEmbedding -> WanCameraImageToVideo -> KSampler on a tiny Control-Camera file: two Euler
    CFG steps of the network fed [x, the start latent in model space] on the channels, the CLIP
    vision states and the rays; the camera changes the result. Models without an adapter ignore the
    rays (prepare_conds leaves them out), as ComfyUI's do."""
    from graphflow.models.checkpoint import load_diffusion_model
    from graphflow.models.clip_vision import ClipVisionOutput
    from graphflow.models.latent_formats import WAN21
    from graphflow.sampling.guidance import prepare_conds
    from graphflow.sampling.noise import initial_noise
    from graphflow.testing import write_wan

    model = load_diffusion_model(write_wan(tmp_path / "wan_camera.safetensors", seed=8, camera=True,
                                           dtype=torch.float32), device="cpu", dtype=torch.float32)
    net = model.unet
    gen = torch.Generator().manual_seed(3)
    context = [torch.randn(1, 512, 32, generator=gen) for _ in range(2)]
    cond, uncond = ([(c, {})] for c in context)
    start = torch.rand(1, 32, 32, 3, generator=gen)
    vision = ClipVisionOutput(torch.zeros(1, 5, 64), torch.zeros(1, 8), torch.randn(1, 5, 64, generator=gen))
    rays, width, height, length = call(registry(), "WanCameraEmbedding", camera_pose="ClockWise (CW)", width=32,
                                       height=32, length=5, speed=2.0)
    pos, neg, latent = call(registry(), "WanCameraImageToVideo", positive=cond, negative=uncond, vae=wan_vae(),
                            width=width, height=height, length=length, batch_size=1, clip_vision_output=vision,
                            start_image=start, camera_conditions=rays)

    def sample(positive, negative):
        return call(registry(), "KSampler", model=model, seed=3, steps=2, cfg=4.0, sampler_name="euler",
                    scheduler="simple", positive=positive, negative=negative, denoise=1.0,
                    latent_image=latent)["samples"]

    ours = sample(pos, neg)
    assert ours.shape == (1, 16, 2, 4, 4)
    y = WAN21.process_in(pos[0][1]["concat_latent_image"])
    states = vision.penultimate_hidden_states
    sigma_mid = 8 * 0.5 / (1 + 7 * 0.5)
    x = initial_noise(torch.zeros(1, 16, 2, 4, 4), 3)
    for sigma, sigma_next in ((1.0, sigma_mid), (sigma_mid, 0.0)):
        with torch.no_grad():
            v_cond, v_uncond = (net(torch.cat([x, y], dim=1), torch.tensor([sigma]), c, clip_fea=states,
                                    camera_conditions=rays) for c in context)
        x = x + (v_uncond + 4.0 * (v_cond - v_uncond)) * (sigma_next - sigma)
    want = WAN21.process_out(x)
    assert float((ours - want).abs().max()) < 1e-4 * float(want.abs().max())
    # without the camera the same graph samples something else
    strip = [(c, {k: v for k, v in o.items() if k != "camera_conditions"}) for c, o in pos]
    strip_neg = [(c, {k: v for k, v in o.items() if k != "camera_conditions"}) for c, o in neg]
    assert (sample(strip, strip_neg) - ours).abs().max() > 1e-3

    class PlainWan:  # what prepare_conds reads of a Wan MODEL without a camera adapter
        arch, prediction, is_video, adm_channels, in_channels = "wan", "flow", True, 0, 16
        dtype = torch.float32
        unet = type("Net", (), {"config": type(net.config)()})()

    (entry,) = prepare_conds(pos, PlainWan(), (1, 16, 2, 4, 4), "cpu")
    assert entry.camera_conditions is None
    (entry,) = prepare_conds(pos, model, (2, 16, 2, 4, 4), "cpu")
    assert torch.equal(entry.camera_conditions, rays.expand(2, -1, -1, -1, -1))


def test_context_windows_cut_camera_rays_by_frame_and_batch():
    """Context windows over latent frames give each window its frames' rays; over the batch its rows;
    over rows or columns they are refused (the rays are pixel-sized)."""
    from graphflow.sampling.context_windows import cut_cond
    from graphflow.sampling.guidance import Cond

    rays = torch.randn(2, 24, 5, 32, 32)
    cond = Cond(context=torch.zeros(2, 5, 8), camera_conditions=rays)
    assert torch.equal(cut_cond(cond, 2, [1, 2, 3], (2, 16, 5, 4, 4)).camera_conditions, rays[:, :, 1:4])
    assert torch.equal(cut_cond(cond, 0, [1], (2, 16, 5, 4, 4)).camera_conditions, rays[1:])
    with pytest.raises(ValueError, match="camera"):
        cut_cond(cond, 3, [0, 1], (2, 16, 5, 4, 4))


def test_wan22_camera_model_samples_with_the_start_frame_mask(tmp_path):
    """Wan 2.2 Fun Control-Camera (36 input channels): detected as a camera model, and sampled with
    the noisy latent, 4 mask channels (1 - WanCameraImageToVideo's concat_mask: 0 where the start
    image is given) and the start latent in model space on the channels, the rays to the adapter."""
    from graphflow.models.checkpoint import load_diffusion_model
    from graphflow.models.clip_vision import ClipVisionOutput
    from graphflow.models.flow_architecture import detect_flow_model
    from graphflow.models.latent_formats import WAN21
    from graphflow.models.weight_files import WeightFile
    from graphflow.sampling.noise import initial_noise
    from graphflow.testing import write_wan

    path = write_wan(tmp_path / "wan2.2_fun_camera.safetensors", seed=9, camera=True, in_channels=36,
                     dtype=torch.float32)
    with WeightFile(path) as f:
        info = detect_flow_model(f.shapes)
    assert (info.family, info.config.in_channels, info.config.camera_in_channels) == ("wan_camera", 36, 24)
    model = load_diffusion_model(path, device="cpu", dtype=torch.float32)
    gen = torch.Generator().manual_seed(4)
    context = [torch.randn(1, 512, 32, generator=gen) for _ in range(2)]
    start = torch.rand(1, 32, 32, 3, generator=gen)
    vision = ClipVisionOutput(torch.zeros(1, 5, 64), torch.zeros(1, 8), torch.randn(1, 5, 64, generator=gen))
    rays, width, height, length = call(registry(), "WanCameraEmbedding", camera_pose="Zoom In", width=32,
                                       height=32, length=5)
    pos, neg, latent = call(registry(), "WanCameraImageToVideo", positive=[(context[0], {})],
                            negative=[(context[1], {})], vae=wan_vae(), width=width, height=height, length=length,
                            batch_size=1, clip_vision_output=vision, start_image=start, camera_conditions=rays)
    ours = call(registry(), "KSampler", model=model, seed=5, steps=1, cfg=3.0, sampler_name="euler",
                scheduler="simple", positive=pos, negative=neg, denoise=1.0, latent_image=latent)["samples"]
    options = pos[0][1]
    y = torch.cat([1.0 - options["concat_mask"], WAN21.process_in(options["concat_latent_image"])], dim=1)
    assert y.shape == (1, 20, 2, 4, 4) and y[:, :4, 0].max() == 1 and y[:, :4, 1].max() == 0
    x = initial_noise(torch.zeros(1, 16, 2, 4, 4), 5)
    with torch.no_grad():
        v_cond, v_uncond = (model.unet(torch.cat([x, y], dim=1), torch.tensor([1.0]), c,
                                       clip_fea=vision.penultimate_hidden_states, camera_conditions=rays)
                            for c in context)
    want = WAN21.process_out(x - (v_uncond + 3.0 * (v_cond - v_uncond)))
    assert float((ours - want).abs().max()) < 1e-4 * float(want.abs().max())
