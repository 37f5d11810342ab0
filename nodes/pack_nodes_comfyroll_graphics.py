"""Comfyroll Studio's (Suzie1/ComfyUI_Comfyroll_CustomNodes) image-layout nodes that draw no
text, under the pack's class names, inputs, defaults and outputs: CR Color Panel, CR Image Border
and CR Overlay Transparent Image (the pack's other nodes are in nodes/pack_nodes_comfyroll.py,
whose docstring says which are left out and why). Read from nodes_graphics_layout.py at 14391b2b
and config.py at 60202e5b (the colour table) as the search index stores them. The pack draws
through 8-bit Pillow pictures; so do these, giving its values to the bit."""

from __future__ import annotations

from graphflow.api import IMAGE, STRING, Choice, ComfyAlias, Estimate, Float, Int, Node, NodeInputError, Size, Text
from nodes.pack_nodes_comfyroll import _help


# The pack's colour names and their RGB (its config.py); "custom" takes the *_hex input instead.
COLOR_MAPPING = {
    "white": (255, 255, 255), "black": (0, 0, 0), "red": (255, 0, 0), "green": (0, 255, 0), "blue": (0, 0, 255),
    "yellow": (255, 255, 0), "cyan": (0, 255, 255), "magenta": (255, 0, 255), "orange": (255, 165, 0),
    "purple": (128, 0, 128), "pink": (255, 192, 203), "brown": (160, 85, 15), "gray": (128, 128, 128),
    "lightgray": (211, 211, 211), "darkgray": (169, 169, 169), "olive": (128, 128, 0), "lime": (0, 128, 0),
    "teal": (0, 128, 128), "navy": (0, 0, 128), "maroon": (128, 0, 0), "fuchsia": (255, 0, 128),
    "aqua": (0, 255, 128), "silver": (192, 192, 192), "gold": (255, 215, 0), "turquoise": (64, 224, 208),
    "lavender": (230, 230, 250), "violet": (238, 130, 238), "coral": (255, 127, 80), "indigo": (75, 0, 130),
}
COLORS = ("custom", *COLOR_MAPPING)


def cr_color(name: str, hex_color: str, hex_input: str) -> tuple[int, int, int]:
    """The pack's get_color_values: a named colour's RGB, or for "custom" the hex input's
    (#rrggbb, the # optional)."""
    if name != "custom":
        return COLOR_MAPPING[name]
    digits = hex_color.lstrip("#")
    try:
        if len(digits) < 6:
            raise ValueError("too short")
        return int(digits[0:2], 16), int(digits[2:4], 16), int(digits[4:6], 16)
    except ValueError:
        raise NodeInputError(hex_input, f"expected a colour as #rrggbb, got {hex_color!r}") from None


def _pil_frames(images, input_name: str) -> list:
    from graphflow.images import image_to_pil
    if getattr(images, "ndim", 0) != 4 or images.shape[-1] != 3:
        raise NodeInputError(input_name, f"expected an RGB IMAGE [B, H, W, 3], got shape "
                                         f"{tuple(getattr(images, 'shape', ()))}")
    return [image_to_pil(frame) for frame in images]


def _tensor(picture):
    """A picture as one IMAGE frame [H, W, C], its 8-bit values over 255, as the pack's pil2tensor."""
    import numpy as np
    import torch
    return torch.from_numpy(np.asarray(picture, dtype=np.float32) / 255.0)


class CRColorPanel(Node):
    """An image of one colour (a named one, or fill_color_hex for "custom"), as Comfyroll's CR
    Color Panel makes it."""
    category = "Comfyroll Studio/Graphics/Layout"
    panel_width: int = Int(512, min=8, max=4096, resource="width")
    panel_height: int = Int(512, min=8, max=4096, resource="height")
    fill_color: str = Choice(COLORS, "custom")
    fill_color_hex: str = Text("#000000")
    outputs = {"image": IMAGE, "show_help": STRING}
    comfy = ComfyAlias(("CR Color Panel",), optional=("fill_color_hex",))

    def run(self):
        import torch
        color = torch.tensor(cr_color(self.fill_color, self.fill_color_hex, "fill_color_hex"), dtype=torch.float32)
        image = (color / 255.0).expand(1, self.panel_height, self.panel_width, 3).clone()
        return image, _help("Layout-Nodes", "cr-color-panel")


class CRImageBorder(Node):
    """Each image framed as Comfyroll's CR Image Border frames it (through 8-bit pictures, as
    there): first an outline of outline_thickness on every side in outline_color (Pillow's colour
    of that name, as the pack passes the name to Pillow), then borders of the given thickness on
    each side in border_color (the pack's colour table, or border_color_hex for "custom")."""
    category = "Comfyroll Studio/Graphics/Layout"
    image: IMAGE
    top_thickness: int = Int(0, min=0, max=4096)
    bottom_thickness: int = Int(0, min=0, max=4096)
    left_thickness: int = Int(0, min=0, max=4096)
    right_thickness: int = Int(0, min=0, max=4096)
    border_color: str = Choice(COLORS, "custom")
    outline_thickness: int = Int(0, min=0, max=1024)
    outline_color: str = Choice(COLORS[1:], "white")
    border_color_hex: str = Text("#000000")
    outputs = {"image": IMAGE, "show_help": STRING}
    comfy = ComfyAlias(("CR Image Border",), optional=("border_color_hex",))

    @classmethod
    def estimate(cls, widgets, inputs):
        size = inputs.get("image")
        try:
            outline = 2 * widgets["outline_thickness"]
            return Estimate(Size(size.batch, size.height + outline + widgets["top_thickness"]
                                 + widgets["bottom_thickness"],
                                 size.width + outline + widgets["left_thickness"] + widgets["right_thickness"]))
        except (AttributeError, KeyError, TypeError):
            return Estimate(size)

    def run(self):
        import torch
        from PIL import ImageOps

        border = cr_color(self.border_color, self.border_color_hex, "border_color_hex")
        sides = (self.left_thickness, self.top_thickness, self.right_thickness, self.bottom_thickness)
        frames = []
        for picture in _pil_frames(self.image, "image"):
            if self.outline_thickness > 0:
                picture = ImageOps.expand(picture, self.outline_thickness, fill=self.outline_color)
            if any(sides):
                picture = ImageOps.expand(picture, sides, fill=border)
            frames.append(_tensor(picture))
        return torch.stack(frames), _help("Layout-Nodes", "cr-image-border")


class CROverlayTransparentImage(Node):
    """Paste the overlay onto the back image as Comfyroll's CR Overlay Transparent Image does,
    with Pillow through 8-bit pictures: the overlay made see-through by `transparency` (0 opaque),
    rotated by rotation_angle degrees (counter-clockwise, canvas grown to fit, nearest
    neighbour), scaled by overlay_scale_factor (Lanczos), then centred on the back image and moved
    by offset_x / offset_y. The pack takes one image of each; here each back image takes the
    overlay of the same index, or the overlay's only one."""
    category = "Comfyroll Studio/Graphics/Layout"
    back_image: IMAGE
    overlay_image: IMAGE
    transparency: float = Float(0.0, min=0.0, max=1.0, step=0.1)
    offset_x: int = Int(0, min=-4096, max=4096)
    offset_y: int = Int(0, min=-4096, max=4096)
    rotation_angle: float = Float(0.0, min=-360.0, max=360.0, step=0.1)
    overlay_scale_factor: float = Float(1.0, min=0.0, max=100.0, step=0.001)
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("CR Overlay Transparent Image",))

    @classmethod
    def estimate(cls, widgets, inputs):
        back, overlay = inputs.get("back_image"), inputs.get("overlay_image")
        scale = widgets.get("overlay_scale_factor")
        if overlay is None or not isinstance(scale, (int, float)):
            return Estimate(back)
        # the rotated overlay's canvas (at most twice each side) scaled, as 8-bit RGBA
        return Estimate(back, memory=int(4 * overlay.pixels * 4 * scale * scale))

    def run(self):
        import torch
        from PIL import Image

        backs = _pil_frames(self.back_image, "back_image")
        overlays = _pil_frames(self.overlay_image, "overlay_image")
        if len(overlays) not in (1, len(backs)):
            raise NodeInputError("overlay_image", f"has {len(overlays)} images for {len(backs)} back images: give one, "
                                                  f"or one for each")
        frames = []
        for i, back in enumerate(backs):
            overlay = overlays[i if len(overlays) > 1 else 0]
            overlay.putalpha(int(255 * (1 - self.transparency)))
            overlay = overlay.rotate(self.rotation_angle, expand=True)
            size = (int(overlay.width * self.overlay_scale_factor), int(overlay.height * self.overlay_scale_factor))
            if size[0] < 1 or size[1] < 1:
                raise NodeInputError("overlay_scale_factor", f"makes the overlay {size[0]}x{size[1]} pixels")
            overlay = overlay.resize(size, Image.LANCZOS)
            position = (back.width // 2 - overlay.width // 2 + self.offset_x,
                        back.height // 2 - overlay.height // 2 + self.offset_y)
            back.paste(overlay, position, overlay)
            frames.append(_tensor(back))
        return torch.stack(frames)
