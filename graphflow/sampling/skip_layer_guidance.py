"""Skip Layer Guidance for the diffusion transformers (SD3 / SD3.5's MM-DiT, FLUX, Chroma, Wan,
LTX-Video, Mochi, Qwen-Image), as ComfyUI's SkipLayerGuidanceSD3 / SkipLayerGuidanceDiT /
SkipLayerGuidanceDiTSimple (Stability AI's experiment for SD3.5, after Perturbed-Attention
Guidance):

    D = D_cfg + scale * (D_cond - D_cond,skipped)

where the skipped prediction runs the positive prompt with the listed transformer blocks left out
(each passes its image and text tokens through unchanged). It applies while
sigma_end <= sigma <= sigma_start, the percents turned into sigmas by the model's schedule as
ComfyUI's percent_to_sigma does (0% = the noisiest, 100% = sigma 0). diffusers'
StableDiffusion3Pipeline (skip_guidance_layers) instead applies it at the steps i with
start * steps < i < stop * steps, a fraction of the step count: the same guidance, a different
window rule. rescaling_scale (the DiT node) then multiplies the result by
rescaling_scale * std(D_cond) / std(D) + 1 - rescaling_scale (std over the whole batch).

The simple variant instead evaluates the negative prompt with the blocks skipped, inside plain CFG
(guidance.CFGDenoiser's uncond_patch; other guiders do not apply it).

Whether a step lies in the window is read from the device once a step (one host sync, as
ComfyUI), except when the window covers the whole run (0% to 100%)."""

import contextlib
import copy
import re



def parse_layers(text: str) -> list[int]:
    """Block indices in a string such as "7, 8, 9" (every run of digits, as ComfyUI reads it)."""
    return [int(n) for n in re.findall(r"\d+", text or "")]


def block_lists(unet) -> tuple[list, list]:
    """(double-stream blocks, single-stream blocks) of a diffusion transformer, as ComfyUI's
    ("double_block", i) / ("single_block", i) replacements reach them: MM-DiT's joint blocks count
    as double blocks and it has no single ones; Wan's, Mochi's, LTX-Video's and Qwen-Image's
    blocks are all double blocks."""
    from graphflow.models.ltxv import LTXV
    from graphflow.models.mochi import Mochi
    from graphflow.models.qwen_image import QwenImage
    from graphflow.models.wan import Wan
    if hasattr(unet, "joint_blocks"):
        return list(unet.joint_blocks), []
    if hasattr(unet, "double_blocks"):
        return list(unet.double_blocks), list(getattr(unet, "single_blocks", []))
    if isinstance(unet, (Wan, Mochi)):
        return list(unet.blocks), []
    if isinstance(unet, (LTXV, QwenImage)):
        return list(unet.transformer_blocks), []
    return [], []


def _pass_double(first, second, *rest, **options):
    return first, second


def _pass_single(x, *rest, **options):
    return x


@contextlib.contextmanager
def skipped_blocks(unet, double: list[int], single: list[int]):
    """Within the block, the listed blocks return their token inputs unchanged (the instances'
    forward is swapped and restored, so the shared network is left as it was)."""
    from graphflow.models.ltxv import LTXV
    from graphflow.models.wan import Wan
    doubles, singles = block_lists(unet)
    # Wan's and LTX-Video's blocks carry the video tokens alone, the others image and text tokens
    pass_double = _pass_single if isinstance(unet, (Wan, LTXV)) else _pass_double
    swapped = []
    for blocks, layers, passthrough in ((doubles, double, pass_double), (singles, single, _pass_single)):
        for i in layers:
            if i < len(blocks):
                blocks[i].forward = passthrough
                swapped.append(blocks[i])
    try:
        yield swapped
    finally:
        for block in swapped:
            del block.forward


def check_layers(unet, double: list[int], single: list[int]) -> str | None:
    """A message when the network has no blocks to skip or a listed index is past its blocks; None
    when fine. Single layers are ignored for MM-DiT, which has none (ComfyUI's DiT nodes' default
    single_layers are meant for FLUX)."""
    doubles, singles = block_lists(unet)
    if not doubles:
        return ("skip layer guidance needs a diffusion transformer (SD3, SD3.5, FLUX, Chroma, Wan, LTX-Video, Mochi, "
                "Qwen-Image)")
    for name, layers, blocks in (("double", double, doubles), ("single", single if singles else [], singles)):
        beyond = [i for i in layers if i >= len(blocks)]
        if beyond:
            return (f"{name} block {beyond[0]} does not exist: this model has {len(blocks)} {name} blocks "
                    f"(0 to {len(blocks) - 1})")
    return None


def _window(model, start_percent: float, end_percent: float):
    """in_window(sigma tensor) -> bool for sigma_end <= sigma <= sigma_start (ComfyUI's rule)."""
    from .flow_sampling import model_sampling_for
    from .model_sampling import in_sigma_window

    if start_percent <= 0.0 and end_percent >= 1.0:
        return lambda sigma: True  # the whole run: no need to read sigma back
    schedule = model_sampling_for(model)
    sigma_start, sigma_end = schedule.percent_to_sigma(start_percent), schedule.percent_to_sigma(end_percent)

    return lambda sigma: in_sigma_window(sigma, sigma_start, sigma_end)


def skip_layer_guidance(model, double: list[int], single: list[int], scale: float, start_percent: float,
                        end_percent: float, rescaling_scale: float = 0.0):
    """A shallow copy of the MODEL with the SLG post-CFG function appended (the model itself when
    there is nothing to skip or scale is 0)."""
    if not (double or single) or scale == 0:
        return model
    in_window = _window(model, start_percent, end_percent)

    def post_cfg(args):
        denoised = args["denoised"]
        if not in_window(args["sigma"]):
            return denoised
        with skipped_blocks(args["model"].unet, double, single):
            skipped = args["predict"](args["cond"], args["x"], args["sigma"])
        cond = args["cond_denoised"]
        denoised = denoised + (cond - skipped) * scale
        if rescaling_scale != 0:
            factor = cond.std() / denoised.std()
            denoised = denoised * (rescaling_scale * factor + (1 - rescaling_scale))
        return denoised

    patched = copy.copy(model)
    patched.post_cfg_functions = (*getattr(model, "post_cfg_functions", ()), post_cfg)
    return patched


def skip_layer_uncond(model, double: list[int], single: list[int], start_percent: float, end_percent: float):
    """A shallow copy of the MODEL whose negative prediction, within the window, comes from the
    network with the listed blocks skipped (its `uncond_patch`: inside the window the positive and
    negative run as two calls, as in ComfyUI; the model itself when there is nothing to skip)."""
    if not (double or single):
        return model
    in_window = _window(model, start_percent, end_percent)

    def uncond_patch(model_denoiser, sigma):
        if not in_window(sigma):
            return None
        return skipped_blocks(model_denoiser.model.unet, double, single)

    patched = copy.copy(model)
    patched.uncond_patch = uncond_patch
    return patched
