"""Cosmos nodes (ComfyUI's names and inputs). Cosmos 1.0: an empty video latent of its CV8x8x8
tokenizer and Video2World's start / end frames in the latent. Cosmos-Predict2: video2world's
start / end frames (text to image needs none of its own: EmptySD3LatentImage's 16-channel latent
is sampled as one frame)."""

from __future__ import annotations

from graphflow.api import IMAGE, LATENT, VAE, ComfyAlias, Int, Node, NodeInputError

MAX_SIZE = 16384


def _encode_padded(vae, image, width: int, height: int, length: int, padding: int, name: str):
    """ComfyUI's vae_encode_with_padding: the images scaled to width x height (cropped around the
    centre), followed by grey frames up to (latent frames + padding) * 8 - 7 frames (Cosmos 1's
    8-frame arithmetic, kept by ComfyUI for Predict2), encoded; the latent frames of the images
    alone are kept."""
    import torch

    from graphflow.images import center_crop_to_aspect, resize_nchw

    pixels = image[..., :3].movedim(-1, 1)
    pixels = resize_nchw(center_crop_to_aspect(pixels, width, height), width, height, "bilinear").movedim(1, -1)
    count = min(pixels.shape[0], length)
    padded = torch.full((min(length, ((count - 1) // 8 + 1 + padding) * 8 - 7), height, width, 3), 0.5)
    if count > padded.shape[0]:  # ComfyUI fails here too (an end clip of 2 to 8 frames)
        raise NodeInputError(name, f"{count} frames do not fit the {padded.shape[0]} ComfyUI encodes here; "
                                   f"give 1 frame or 8k + 1")
    padded[:count] = pixels[:count]
    return vae.encode(padded)[:, :, :(count - 1) // 8 + 1]


def _place_given_frames(node, latent, check=None):
    """Encode the node's start_image (its first latent frames, one grey frame of padding beyond)
    and end_image (its last) into `latent` in place; `check(given)` may refuse an encoding. The
    noise mask: 0 on the given frames, 1 elsewhere."""
    import torch

    mask = torch.ones(1, 1, *latent.shape[2:])
    for name, padding in (("start_image", 1), ("end_image", 0)):
        image = getattr(node, name)
        if image is None:
            continue
        if image.ndim != 4 or image.shape[0] == 0:
            raise NodeInputError(name, f"expected an IMAGE batch [frames, H, W, C], got {tuple(image.shape)}")
        given = _encode_padded(node.vae, image, node.width, node.height, node.length, padding, name)
        if check is not None:
            check(given)
        frames = slice(None, given.shape[2]) if name == "start_image" else slice(-given.shape[2], None)
        latent[:, :, frames] = given
        mask[:, :, frames] = 0.0
    return mask


def cosmos1_latent_frames(length: int) -> int:
    """Cosmos 1.0's tokenizer: one latent frame for the first picture and one for each 8 after it."""
    return (length - 1) // 8 + 1


class EmptyCosmosLatentVideo(Node):
    """A blank Cosmos 1.0 latent: 16 channels, (length - 1) / 8 + 1 latent frames, 1/8 of the width
    and height (the CV8x8x8 tokenizer's)."""
    category = "latent/video"
    width: int = Int(1280, min=16, max=MAX_SIZE, step=16, resource="width")
    height: int = Int(704, min=16, max=MAX_SIZE, step=16, resource="height")
    length: int = Int(121, min=1, max=MAX_SIZE, step=8, resource="frames", frame_stride=8)
    batch_size: int = Int(1, min=1, max=4096, resource="batch")
    outputs = {"latent": LATENT}
    comfy = ComfyAlias(("EmptyCosmosLatentVideo",))

    def run(self):
        import torch

        return {"samples": torch.zeros(self.batch_size, 16, cosmos1_latent_frames(self.length), self.height // 8,
                                       self.width // 8)}


class CosmosImageToVideoLatent(Node):
    """A Cosmos 1.0 Video2World latent: length frames ((length - 1) / 8 + 1 latent frames) at 1/8 of
    the width and height, with the start image encoded as its first latent frames and / or the end
    image as its last (each scaled and centre-cropped to the size, followed by grey frames for the
    encoder), kept by a noise mask (0 there); the model is told they are given (its mask channel).
    Without images: an empty video latent. The VAE is Cosmos' CV8x8x8 tokenizer (16 channels)."""
    category = "conditioning/inpaint"
    vae: VAE
    width: int = Int(1280, min=16, max=MAX_SIZE, step=16, resource="width")
    height: int = Int(704, min=16, max=MAX_SIZE, step=16, resource="height")
    length: int = Int(121, min=1, max=MAX_SIZE, step=8, resource="frames", frame_stride=8)
    batch_size: int = Int(1, min=1, max=4096, resource="batch")
    start_image: IMAGE = None
    end_image: IMAGE = None
    outputs = {"latent": LATENT}
    comfy = ComfyAlias(("CosmosImageToVideoLatent",), optional=("start_image", "end_image"))

    def run(self):
        import torch

        latent = torch.zeros(1, 16, cosmos1_latent_frames(self.length), self.height // 8, self.width // 8)
        if self.start_image is None and self.end_image is None:
            return {"samples": latent}  # batch 1 (ComfyUI's)

        def check(given):
            if given.ndim != 5 or given.shape[1] != 16 or given.shape[3:] != latent.shape[3:]:
                raise NodeInputError("vae", f"CosmosImageToVideoLatent needs Cosmos' 16-channel video tokenizer "
                                            f"(CV8x8x8); this VAE gave a {tuple(given.shape)} latent for "
                                            f"{self.width}x{self.height}")

        mask = _place_given_frames(self, latent, check)
        return {"samples": latent.repeat(self.batch_size, 1, 1, 1, 1),
                "noise_mask": mask.repeat(self.batch_size, 1, 1, 1, 1)}


class CosmosPredict2ImageToVideoLatent(Node):
    """A Cosmos-Predict2 video2world latent: length frames ((length - 1) / 4 + 1 latent frames) at
    1/8 of the width and height, with the start image encoded as its first frame and / or the
    end image as its last, kept by a noise mask; the model is told they are given (its mask
    channel, timestep 0 there). Without images: an empty video latent."""
    category = "conditioning/inpaint"
    vae: VAE
    width: int = Int(848, min=16, max=MAX_SIZE, step=16, resource="width")
    height: int = Int(480, min=16, max=MAX_SIZE, step=16, resource="height")
    length: int = Int(93, min=1, max=MAX_SIZE, step=4, resource="frames", frame_stride=4)
    batch_size: int = Int(1, min=1, max=4096, resource="batch")
    start_image: IMAGE = None
    end_image: IMAGE = None
    outputs = {"latent": LATENT}
    comfy = ComfyAlias(("CosmosPredict2ImageToVideoLatent",), optional=("start_image", "end_image"))

    def run(self):
        import torch

        latent = torch.zeros(1, 16, (self.length - 1) // 4 + 1, self.height // 8, self.width // 8)
        if self.start_image is None and self.end_image is None:
            return {"samples": latent}
        fmt = getattr(self.vae, "latent_format", None)
        if fmt is None or fmt.name != "wan21":
            raise NodeInputError("vae", "CosmosPredict2ImageToVideoLatent needs the Wan 2.1 VAE (wan_2.1_vae)")
        mask = _place_given_frames(self, latent)
        # the frames to generate hold the latent of model-space zero (ComfyUI's)
        latent = fmt.process_out(latent) * mask + latent * (1.0 - mask)
        return {"samples": latent.repeat(self.batch_size, 1, 1, 1, 1),
                "noise_mask": mask.repeat(self.batch_size, 1, 1, 1, 1)}
