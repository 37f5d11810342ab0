"""kijai's ComfyUI-IC-Light: lllyasviel's IC-Light relighting models on an SD1.5 MODEL, and the pack's
light-map and image helpers, under the pack's class names, inputs (order, defaults, ranges), outputs
and category ("IC-Light"). Read at nodes.py 22811d903af8a90100dccef1c4b579526649a6ab,
utils/image.py e113fb7dfb570438e79b54e5d0296cda532a8818 and utils/convert_unet.py
b7c3d8b9807cc187a2e274b75347e28d6e4f41a0.

Nodes: LoadAndApplyICLightUnet (graphflow.models.iclight: the file's offset as weight patches, conv_in
widened to 8 / 12 channels), ICLightConditioning (the foreground's / background's latent as the
conditioning's "concat_latent_image", which the sampler sets beside the noisy latent as for
InstructPix2Pix), LightSource, CalculateNormalsFromImages, LoadHDRImage, BackgroundScaler,
DetailTransfer.

huchenlei's ComfyUI-IC-Light-Native's helpers are in nodes/pack_nodes_iclight_native.py; its apply node
is left out (graphflow/comfy_format.py ICLIGHT_NATIVE_LEFT_OUT).
"""

from __future__ import annotations

from graphflow.api import (CONDITIONING, IMAGE, LATENT, MASK, MODEL, VAE, Bool, Choice, ComfyAlias, Estimate, Float,
                           Int, Node, NodeInputError, Size, Text, check_interrupted, check_run_memory, folders)
from nodes.image import MAX_SIZE, _image

COMFY_PACK = "ComfyUI-IC-Light"  # the custom node pack this module's ComfyUI classes come from

LIGHT_POSITIONS = ("Left Light", "Right Light", "Top Light", "Bottom Light", "Top Left Light", "Top Right Light",
                   "Bottom Left Light", "Bottom Right Light")
BLEND_MODES = ("add", "multiply", "screen", "overlay", "soft_light", "hard_light", "color_dodge", "color_burn",
               "difference", "exclusion", "divide")
HDR_EXTENSIONS = (".hdr", ".pic")  # Radiance RGBE, which OpenCV always reads
MAX_EXPOSURES = 64  # LoadHDRImage: pictures one exposure list may ask for (each a copy of the picture)
LIGHT_ROWS = 64  # LightSource: rows of the light map computed at once (float64, as the pack)
MAX_EXPOSURE = 126  # |stops|: 2 ** stops stays a finite float32 factor


class ICLightLoadAndApply(Node):
    """Load And Apply IC-Light: the SD1.5 MODEL relit by an IC-Light file from models/unet/ (or
    diffusion_models/): lllyasviel's iclight_sd15_fc / fcon (8 input channels) or fbc (12)
    .safetensors in their diffusers key layout, or an LDM-keyed conversion of one. The file holds an
    offset for every UNet weight, added to the model's as weight patches (the input MODEL is left as
    it is, and LoRAs applied before still act, as in the pack); conv_in is widened by zeros for the
    new channels before its offset is added. Use it with IC-Light Conditioning: the fc models take
    the foreground alone, fbc the foreground and opt_background. A file of another layout, or for
    another model, is refused naming model_path (the pack says only "Could not patch model"); a model
    that is not SD1.x, or whose UNet is stored in fp8 (UNETLoader's weight_dtype) or as GGUF blocks, is
    refused naming model (the pack's SD15 check; the pack patches fp8 weights, rounding each sum
    into fp8: left out here). The pack's in-place change of the model config's in_channels becomes a
    copy's."""
    category = "IC-Light"
    model: MODEL
    model_path: str = Choice(lambda: folders.list_models("diffusion_models"))
    outputs = {"MODEL": MODEL}
    comfy = ComfyAlias(("LoadAndApplyICLightUnet",))

    @classmethod
    def fingerprint(cls, model_path, **widgets):
        return folders.model_state("diffusion_models", model_path)

    def run(self):
        from graphflow.memory import manager
        from graphflow.models.iclight import apply_offset, check_model, read_offset
        from graphflow.models.weight_files import CheckpointError

        if getattr(self.model, "arch", None) != "sd1" or getattr(self.model, "is_flow", True):
            arch = getattr(self.model, "arch", None)
            raise NodeInputError("model", f"IC-Light is for SD1.5 models; this is {arch!r}")
        if self.model.in_channels != self.model.latent_format.channels:
            raise NodeInputError("model", f"the model already takes {self.model.in_channels} input channels "
                                          f"(inpainting / IC-Light applied): IC-Light goes on a plain SD1.5 model")
        try:
            check_model(self.model.unet)
        except ValueError as e:
            raise NodeInputError("model", str(e)) from None
        try:
            path = folders.find_model("diffusion_models", self.model_path)
        except (FileNotFoundError, ValueError) as e:
            raise NodeInputError("model_path", str(e)) from None
        # the offsets are held in RAM as stored (a LoRA's are too): the file's bytes
        need = path.stat().st_size
        if not manager().ram_fits(need):
            raise NodeInputError("model_path", f"{self.model_path}: its offsets need {need / 2**30:.1f} GiB of RAM, "
                                               f"more than is free")
        try:
            offset = read_offset(path)
            return apply_offset(self.model, offset, self.model_path)
        except CheckpointError as e:
            raise NodeInputError("model_path", str(e)) from None


class ICLightConditioning(Node):
    """IC-Light Conditioning: positive and negative with the foreground's latent (and
    opt_background's after it, for the fbc model) times multiplier as their concat latent, and an
    empty latent of the foreground's size to sample. multiplier 0.18215 is SD1.5's latent scale: the
    IC-Light UNet was trained on scaled latents. A background of another size is resized to the
    foreground's (bilinear), and a batch of one side repeated to the other's when it divides it, as
    in the pack; batches that don't divide are refused naming opt_background (the pack fails). vae is
    not used (as in the pack). The concat latent's channels must match the model's (8: foreground
    alone, 12: with a background): a mismatch is refused when sampling."""
    category = "IC-Light"
    positive: CONDITIONING
    negative: CONDITIONING
    vae: VAE
    foreground: LATENT
    multiplier: float = Float(0.18215, min=0.0, max=1.0, step=0.001)
    opt_background: LATENT = None
    outputs = {"positive": CONDITIONING, "negative": CONDITIONING, "empty_latent": LATENT}
    comfy = ComfyAlias(("ICLightConditioning",))

    def run(self):
        import torch
        from graphflow.images import resize_nchw
        from nodes.latent import _samples
        from nodes.wan import both_with

        fg = _samples(self.foreground, "foreground")
        concat = fg
        if self.opt_background is not None:
            bg = _samples(self.opt_background, "opt_background")
            big, small = max(fg.shape[0], bg.shape[0]), min(fg.shape[0], bg.shape[0])
            if big % small:
                raise NodeInputError("opt_background", f"a batch of {bg.shape[0]} with a foreground batch of "
                                                       f"{fg.shape[0]}: one must divide the other")
            if bg.shape[1:] != fg.shape[1:]:
                bg = resize_nchw(bg, fg.shape[-1], fg.shape[-2], "bilinear")
            fg = fg.repeat(big // fg.shape[0], 1, 1, 1)
            concat = torch.cat([fg, bg.repeat(big // bg.shape[0], 1, 1, 1)], dim=1)
        positive, negative = both_with(self.positive, self.negative, concat_latent_image=concat * self.multiplier)
        return positive, negative, {"samples": torch.zeros_like(fg)}


def _rgb(text: str, name: str) -> tuple:
    """The pack's colour: "#RRGGBB" or "R,G,B" (whole numbers)."""
    try:
        if text.startswith("#") and len(text) == 7:
            return tuple(int(text[i:i + 2], 16) for i in (1, 3, 5))
        values = tuple(int(part) for part in text.split(",", 3))
    except ValueError:
        values = ()
    if len(values) != 3:
        raise NodeInputError(name, f"{text[:40]!r}: expected a colour as #RRGGBB or R,G,B")
    return values


def light_gradient(position: str, width: int, height: int, exponent: float, rows: slice = slice(None)):
    """The pack's light map [height, width] in 0..1 (its `rows` only): 0 at the lit side (the start
    colour's) to 1 across, raised to `exponent`; corners: the length of the two axes' ramps / sqrt(2)."""
    import numpy as np
    across = {"Left": np.linspace(0, 1, width), "Right": np.linspace(1, 0, width)}
    down = {"Top": np.linspace(0, 1, height)[rows], "Bottom": np.linspace(1, 0, height)[rows]}
    sides = position.removesuffix(" Light").split()
    if len(sides) == 1:
        ramp = across.get(sides[0])
        if ramp is not None:
            return np.tile(ramp ** exponent, (len(down["Top"]), 1))
        return np.tile(down[sides[0]] ** exponent, (width, 1)).T
    y, x = np.meshgrid(down[sides[0]] ** exponent, across[sides[1]] ** exponent, indexing="ij")
    return np.sqrt(x ** 2 + y ** 2) / np.sqrt(2.0)


class ICLightLightSource(Node):
    """Simple Light Source: a gradient picture to use as a light map, from start_color at the lit
    side to end_color away from it (colours as #RRGGBB or R,G,B), the ramp raised to the power
    multiplier; corner lights fade by the distance from the lit corner. Whole 8-bit levels, as the
    pack's uint8 picture. batch_size copies, after prev_image's pictures when it is given (which
    must have the same size). A width or height of 0 is refused (the pack gives an empty picture);
    so is a colour of four parts, "R,G,B,A" (the pack uses its first three)."""
    category = "IC-Light"
    light_position: str = Choice(LIGHT_POSITIONS, LIGHT_POSITIONS[0])
    multiplier: float = Float(1.0, min=0.0, max=100.0, step=0.001)
    start_color: str = Text("#FFFFFF")
    end_color: str = Text("#000000")
    width: int = Int(512, min=0, max=MAX_SIZE, step=8, resource="width")
    height: int = Int(512, min=0, max=MAX_SIZE, step=8, resource="height")
    batch_size: int = Int(1, min=1, max=4096, step=1, resource="batch")
    prev_image: IMAGE = None
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("LightSource",))

    @classmethod
    def estimate(cls, widgets, inputs):
        prev = inputs.get("prev_image")
        try:
            batch = int(widgets.get("batch_size", 1)) + (prev.batch if prev else 0)
            return Estimate(Size(batch, int(widgets["height"]), int(widgets["width"])))
        except (KeyError, TypeError, ValueError):
            return Estimate(None)

    def run(self):
        import numpy as np
        import torch
        for name in ("width", "height"):
            if getattr(self, name) == 0:
                raise NodeInputError(name, "0: the light map needs at least one pixel")
        start, end = _rgb(self.start_color, "start_color"), _rgb(self.end_color, "end_color")
        prev = None if self.prev_image is None else _image(self.prev_image, "prev_image")
        if prev is not None and tuple(prev.shape[1:3]) != (self.height, self.width):
            raise NodeInputError("prev_image", f"{prev.shape[2]}×{prev.shape[1]}: expected the light map's "
                                               f"{self.width}×{self.height}")
        before = prev.shape[0] if prev is not None else 0
        # the batch and one picture in float32; the pack's float64 colours only a band of rows at a time
        check_run_memory("batch_size", "the light maps", images=Size(before + self.batch_size + 1, self.height,
                                                                     self.width))
        levels = np.empty((self.height, self.width, 3), np.uint8)
        for top in range(0, self.height, LIGHT_ROWS):
            check_interrupted()
            rows = slice(top, top + LIGHT_ROWS)
            ramp = light_gradient(self.light_position, self.width, self.height, self.multiplier, rows)
            for i in range(3):
                colour = (start[i] + (end[i] - start[i]) * ramp).astype(np.float32)  # the pack's float32 picture
                levels[rows, :, i] = np.clip(colour, 0, 255).astype(np.uint8)
        image = torch.empty(before + self.batch_size, self.height, self.width, 3)
        if prev is not None:
            image[:before] = prev
        image[before:] = torch.from_numpy(levels).float() / 255.0
        return image


def _stretched(low: "torch.Tensor", high: "torch.Tensor", x: "torch.Tensor") -> "torch.Tensor":
    """(x - low) / (high - low); 0 where high == low (the pack divides by zero there)."""
    import torch
    span = high - low
    return torch.where(span > 0, (x - low) / torch.where(span > 0, span, 1), torch.zeros_like(x))


class ICLightCalculateNormalsFromImages(Node):
    """Calculate Normals From Images: a normal map from four pictures of the same thing lit from the
    left, right, bottom and top. The batch is the four lights in that order, each a run of N
    pictures (N groups: left 1..N, right 1..N, ...), giving N normal maps and 4 N "divided"
    pictures. Per group, as the pack: each light divided by the four's mean ((a + 1e-5) / (mean +
    1e-5) - 1), u = (right - left) / 2, v = (top - bottom) / 2 (averaged over colour), h = max(1 -
    u² - v², 0) ^ (sigma / 2), the normal (u, v, h) made unit length, times the mask if given, with
    1 added to its third part, then stretched to 0..1 over the whole map; "divided" is the four
    quotients stretched to 0..1 together, their brightest colour channel as grey. center_input_range
    reads the pictures as -1..1. A batch that is not a multiple of 4 is refused (the pack fails or
    reads pictures twice); a mask is resized to the pictures (bilinear) and needs one per group; a
    flat result is 0 (the pack divides by zero)."""
    category = "IC-Light"
    images: IMAGE
    sigma: float = Float(10.0, min=0.01, max=100.0, step=0.01)
    center_input_range: bool = Bool(False)
    mask: MASK = None
    outputs = {"normal": IMAGE, "divided": IMAGE}
    comfy = ComfyAlias(("CalculateNormalsFromImages",))

    @classmethod
    def estimate(cls, widgets, inputs):
        # the input's size: "divided" is a whole batch of it (Estimate.size counts each output at it)
        return Estimate(inputs.get("images"))

    def run(self):
        import torch
        import torch.nn.functional as F
        images = _image(self.images, "images").float()
        count, height, width = images.shape[0], images.shape[1], images.shape[2]
        if count < 4 or count % 4:
            raise NodeInputError("images", f"a batch of {count}: expected left, right, bottom and top lights, "
                                           f"a multiple of 4 pictures")
        groups = count // 4
        if self.center_input_range:
            images = images * 0.5 + 0.5
        mask = None
        if self.mask is not None:
            mask = self.mask.float().reshape(-1, *self.mask.shape[-2:])
            if mask.shape[0] < groups:
                raise NodeInputError("mask", f"{mask.shape[0]} masks for {groups} groups of four pictures")
            if tuple(mask.shape[-2:]) != (height, width):
                mask = F.interpolate(mask[None], size=(height, width), mode="bilinear")[0]
        normals, divided = [], []
        for g in range(groups):
            check_interrupted()
            left, right, bottom, top = images[g::groups][:4]
            ambient = (left + right + bottom + top) / 4.0
            quotients = [(light + 1e-5) / (ambient + 1e-5) - 1.0 for light in (left, right, bottom, top)]
            u = ((quotients[1] - quotients[0]) * 0.5).mean(-1)
            v = ((quotients[3] - quotients[2]) * 0.5).mean(-1)
            h = (1.0 - u ** 2 - v ** 2).clamp(0, 1e5) ** (0.5 * self.sigma)
            normal = torch.stack([u, v, h], dim=-1)
            normal = normal / normal.pow(2).sum(-1, keepdim=True).sqrt()
            if mask is not None:
                normal = normal * mask[g][..., None]
            normal = normal + torch.tensor([0.0, 0.0, 1.0])
            normals.append(_stretched(normal.min(), normal.max(), normal)[None])
            stacked = torch.stack(quotients)
            stacked = _stretched(stacked.min(), stacked.max(), stacked)
            divided.append(stacked.amax(-1, keepdim=True).expand(-1, -1, -1, 3))
        return torch.cat(normals), torch.cat(divided)


class ICLightLoadHDRImage(Node):
    """Load HDR Image: a Radiance .hdr picture from the inputs folder, read by OpenCV in colour,
    given as a batch of 8-bit pictures, one per exposure in stops (whole numbers, comma-separated:
    the picture times 2^stops, clipped to 0..1, cut to whole 8-bit levels). The pack reads with
    IMREAD_ANYDEPTH alone, which gives one grey channel: on OpenCV 4 its BGR -> RGB step then fails;
    on OpenCV 5 (which this project ships) that step succeeds and the pack gives grey pictures (the
    luma in all three channels). Here the picture's colours, as the pack's BGR -> RGB step means. The
    pack declares a MASK output it never gives: here it is an empty 64×64 mask (LoadImage's for a
    picture without alpha). At most 64 exposures of ±126 stops."""
    category = "IC-Light"
    image: str = Choice(lambda: folders.list_inputs(HDR_EXTENSIONS), description="a .hdr file in the inputs folder")
    exposures: str = Text("-2,-1,0,1,2")
    outputs = {"IMAGE": IMAGE, "MASK": MASK}
    comfy = ComfyAlias(("LoadHDRImage",), folders={"image": "input"})

    @classmethod
    def fingerprint(cls, image, **widgets):
        from graphflow.models.weight_files import file_state
        return file_state(folders.input_path(image))

    def run(self):
        import cv2
        import numpy as np
        import torch
        parts = self.exposures.split(",", MAX_EXPOSURES)
        try:
            stops = [int(part) for part in parts]
        except ValueError:
            stops = []
        if not stops or len(stops) > MAX_EXPOSURES or any(abs(s) > MAX_EXPOSURE for s in stops):
            raise NodeInputError("exposures", f"{self.exposures[:40]!r}: expected 1 to {MAX_EXPOSURES} whole numbers "
                                              f"of stops within ±{MAX_EXPOSURE}, comma-separated")
        path = folders.input_path(self.image)
        if not path.is_file():
            raise NodeInputError("image", f"{self.image!r}: no such file in the inputs folder")
        picture = cv2.imread(str(path), cv2.IMREAD_ANYDEPTH | cv2.IMREAD_COLOR)
        if picture is None:
            raise NodeInputError("image", f"can't read {self.image!r} as an HDR picture")
        check_run_memory("exposures", "the exposures", images=Size(len(stops), *picture.shape[:2]))
        rgb = picture[..., ::-1].astype(np.float32)
        frames = []
        for s in stops:
            check_interrupted()
            levels = (np.clip(rgb * np.float32(2.0 ** s), 0, 1) * 255).astype(np.uint8)
            frames.append(torch.from_numpy(levels.astype(np.float32) / 255.0))
        return torch.stack(frames), torch.zeros(1, 64, 64)


class ICLightBackgroundScaler(Node):
    """Background Scaler: where the mask is 0 the picture is set to the grey level scale (image ×
    mask + (1 - mask) × scale, clamped to 0..1); invert flips the mask first. The mask must have the
    picture's size; a mask batch of one serves each picture."""
    category = "IC-Light"
    image: IMAGE
    mask: MASK
    scale: float = Float(0.5, min=-10.0, max=10.0, step=0.001)
    invert: bool = Bool(False)
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("BackgroundScaler",))

    def run(self):
        image = _image(self.image, "image")
        mask = self.mask.float().reshape(-1, *self.mask.shape[-2:])
        if tuple(mask.shape[-2:]) != tuple(image.shape[1:3]) or mask.shape[0] not in (1, image.shape[0]):
            raise NodeInputError("mask", f"{mask.shape[0]} × {mask.shape[2]}×{mask.shape[1]}: expected one mask or "
                                         f"one a picture, at {image.shape[2]}×{image.shape[1]}")
        mask = mask[..., None].to(image)
        if self.invert:
            mask = 1 - mask
        return (image * mask + (1 - mask) * self.scale).clamp(0, 1).float()


def torchvision_gaussian(sigma: float):
    """torchvision's GaussianBlur weights for the pack's kernel size int(6 int(sigma) + 1): over
    -(size - 1) / 2 .. (size - 1) / 2, exp(-x² / 2 sigma²), normalised."""
    import torch
    size = int(6 * int(sigma) + 1)
    x = torch.linspace(-(size - 1) / 2, (size - 1) / 2, size)
    weights = torch.exp(-0.5 * (x / sigma) ** 2)
    return weights / weights.sum()


def blend(mode: str, source, blurred_source, blurred_target):
    """The pack's blend of the source with the blurred target (its formulas, as written)."""
    import torch
    s, t = source, blurred_target
    if mode == "add":
        return (s - blurred_source) + t
    if mode == "multiply":
        return s * t
    if mode == "screen":
        return 1 - (1 - s) * (1 - t)
    if mode == "overlay":
        return torch.where(t < 0.5, 2 * s * t, 1 - 2 * (1 - s) * (1 - t))
    if mode == "soft_light":
        return (1 - 2 * t) * s ** 2 + 2 * t * s
    if mode == "hard_light":
        return torch.where(s < 0.5, 2 * s * t, 1 - 2 * (1 - s) * (1 - t))
    if mode == "difference":
        return (t - s).abs()
    if mode == "exclusion":
        return 0.5 - 2 * (t - 0.5) * (s - 0.5)
    if mode == "color_dodge":
        return t / (1 - s)
    if mode == "color_burn":
        return 1 - (1 - t) / s
    return (s / blurred_source) * t  # divide


class ICLightDetailTransfer(Node):
    """Detail Transfer: the source's fine detail put on the target. Both are blurred with
    torchvision's Gaussian (sigma blur_sigma, kernel 6·int(sigma) + 1 wide: under 1 no blur, as in
    the pack; mirrored borders), then blended by mode (add: source - its blur + the target's blur;
    the others the pack's blend of the source over the blurred target), mixed with the target by
    blend_factor (and the mask, if given), clamped to 0..1. A source of another size is resized to
    the target's (bilinear); a source batch of one serves each target picture, and a source batch
    other than 1 or the target's is refused naming source (the pack broadcasts a larger one to the
    source's batch). A kernel wider than the picture mirrors the borders again and again (torchvision's
    padding, which the pack uses, fails there: sigma 100 on a picture under 301 pixels). color_dodge /
    color_burn / divide give inf / nan where the pack's do (then clamped)."""
    category = "IC-Light"
    target: IMAGE
    source: IMAGE
    mode: str = Choice(BLEND_MODES, "add")
    blur_sigma: float = Float(1.0, min=0.1, max=100.0, step=0.01)
    blend_factor: float = Float(1.0, min=-10.0, max=10.0, step=0.001, round=0.001)
    mask: MASK = None
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("DetailTransfer",))

    def run(self):
        import torch
        from graphflow.images import resize_nchw
        from nodes.image_ops import separable_blur

        target = _image(self.target, "target").float().movedim(-1, 1)
        source = _image(self.source, "source").float().movedim(-1, 1)
        batch, channels, height, width = target.shape
        if source.shape[0] not in (1, batch):
            raise NodeInputError("source", f"a batch of {source.shape[0]}: expected 1 or the target's {batch}")
        if source.shape[1] != channels:
            raise NodeInputError("source", f"{source.shape[1]} channels: expected the target's {channels}")
        if source.shape[2:] != target.shape[2:]:
            source = resize_nchw(source, width, height, "bilinear")
        weights = torchvision_gaussian(self.blur_sigma)
        blurred_target = separable_blur(target, weights)
        blurred_source = separable_blur(source, weights)
        out = torch.lerp(target, blend(self.mode, source, blurred_source, blurred_target), self.blend_factor)
        if self.mask is not None:
            mask = self.mask.float().reshape(-1, 1, *self.mask.shape[-2:])
            if tuple(mask.shape[-2:]) != (height, width) or mask.shape[0] not in (1, batch):
                raise NodeInputError("mask", f"{mask.shape[0]} × {mask.shape[-1]}×{mask.shape[-2]}: expected one "
                                             f"mask or one a picture, at the target's {width}×{height}")
            out = torch.lerp(target, out, mask.to(out))
        return out.clamp(0, 1).movedim(1, -1)
