"""Image distances: MSE, L1, PSNR, SSIM and LPIPS between IMAGE batches [B, H, W, 3] in 0..1.

SSIM follows Wang et al. 2004 as scikit-image computes it with `gaussian_weights=True`: an
11x11 Gaussian window (sigma 1.5), population covariances, K1 = 0.01, K2 = 0.03, per colour
channel, averaged over the positions where the window fits entirely inside the image.

LPIPS (Zhang et al. 2018) comes from the `lpips` package, which ships its calibrated linear
layers but takes the AlexNet/VGG/SqueezeNet backbone from torchvision's model download. We never
download: the backbone is read from a local file (the torchvision file name) in the models
folder's `lpips/` directory or the torch hub cache, else `LPIPSWeightsMissing` says where to put it.
"""

import functools
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F

from graphflow.choices import IMAGE_METRICS as METRICS
from graphflow.folders import folders

# torchvision's own file names for the ImageNet backbones LPIPS uses
LPIPS_BACKBONES = {
    "alex": "alexnet-owt-7be5be79.pth",
    "vgg": "vgg16-397923af.pth",
    "squeeze": "squeezenet1_1-b8a52dec.pth",
}


class LPIPSWeightsMissing(FileNotFoundError):
    """The LPIPS backbone weights are not on this machine (they are never downloaded)."""


def _pairs(reference: torch.Tensor, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if reference.dim() != 4 or images.dim() != 4 or reference.shape[1:] != images.shape[1:]:
        raise ValueError(f"images must be [B, H, W, C] of the same size, got {tuple(reference.shape)} "
                         f"and {tuple(images.shape)}")
    if reference.shape[0] not in (1, images.shape[0]) and images.shape[0] != 1:
        raise ValueError(f"batch sizes {reference.shape[0]} and {images.shape[0]} don't match (nor is one 1)")
    return torch.broadcast_tensors(reference.float(), images.float())


def mse(reference: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
    """Mean squared error per image [B]."""
    a, b = _pairs(reference, images)
    return (a - b).pow(2).mean(dim=(1, 2, 3))


def l1(reference: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
    """Mean absolute error per image [B]."""
    a, b = _pairs(reference, images)
    return (a - b).abs().mean(dim=(1, 2, 3))


def psnr(reference: torch.Tensor, images: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB per image [B]; inf for identical images."""
    a, b = _pairs(reference, images)
    err = (a.double() - b.double()).pow(2).mean(dim=(1, 2, 3))
    return (10 * torch.log10(data_range**2 / err)).float()


def gaussian_window(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-x**2 / (2 * sigma**2))
    g /= g.sum()
    return g[:, None] * g[None, :]


def ssim_map(reference: torch.Tensor, images: torch.Tensor, data_range: float = 1.0,
             size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """Local SSIM [B, C, H - size + 1, W - size + 1] (the positions where the window fits)."""
    a, b = _pairs(reference, images)
    if min(a.shape[1:3]) < size:
        raise ValueError(f"SSIM needs images of at least {size}x{size} pixels, got {a.shape[2]}x{a.shape[1]}")
    x, y = a.double().permute(0, 3, 1, 2), b.double().permute(0, 3, 1, 2)
    channels = x.shape[1]
    window = gaussian_window(size, sigma).expand(channels, 1, size, size)
    blur = lambda t: F.conv2d(t, window, groups=channels)  # noqa: E731
    mu_x, mu_y = blur(x), blur(y)
    var_x = blur(x * x) - mu_x**2
    var_y = blur(y * y) - mu_y**2
    cov = blur(x * y) - mu_x * mu_y
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    return ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))


def ssim(reference: torch.Tensor, images: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Mean SSIM per image [B] (1 = identical)."""
    return ssim_map(reference, images, data_range).mean(dim=(1, 2, 3)).float()


# -- LPIPS ------------------------------------------------------------------------------
def lpips_backbone_dirs() -> list[Path]:
    return [*folders.model_dirs("lpips"), Path(torch.hub.get_dir()) / "checkpoints"]


def find_lpips_backbone(net: str = "alex") -> Path:
    if net not in LPIPS_BACKBONES:
        raise ValueError(f"unknown LPIPS network {net!r}; expected one of {', '.join(LPIPS_BACKBONES)}")
    name = LPIPS_BACKBONES[net]
    for base in lpips_backbone_dirs():
        if (base / name).is_file():
            return base / name
    raise LPIPSWeightsMissing(
        f"LPIPS needs torchvision's ImageNet {net} weights, file {name!r}, and graphflow never downloads: "
        f"put that file in {lpips_backbone_dirs()[0]} (or the torch hub cache "
        f"{lpips_backbone_dirs()[-1]}), or choose the mse or l1 metric")


def load_lpips(net: str = "alex", device: torch.device | str = "cpu"):
    """An LPIPS model with its backbone read from the local file (see find_lpips_backbone)."""
    path = find_lpips_backbone(net)
    return _load_lpips(net, str(path), path.stat().st_mtime_ns, str(device))


@functools.lru_cache(maxsize=2)
def _load_lpips(net: str, path: str, mtime: int, device: str):
    import lpips

    with warnings.catch_warnings():  # torchvision's deprecation note for pretrained=False
        warnings.simplefilter("ignore")
        # pnet_rand: build the backbone without fetching ImageNet weights; the package's own
        # calibrated linear layers still load (pretrained=True), then the backbone from `path`.
        model = lpips.LPIPS(pretrained=True, net=net, pnet_rand=True, verbose=False)
    state = torch.load(path, map_location="cpu", weights_only=True)
    # lpips splits torchvision's `features` into slices but keeps each layer's index:
    # net.slice2.3.weight is features.3.weight
    wanted = {}
    for key in model.net.state_dict():
        source = "features." + key.split(".", 1)[1]
        if source not in state:
            raise ValueError(f"{path} is not torchvision's {net} state dict: {source!r} is missing")
        wanted[key] = state[source]
    model.net.load_state_dict(wanted)
    return model.eval().requires_grad_(False).to(device)


@torch.no_grad()
def lpips_distance(model, reference: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
    """LPIPS per image [B] (0 = identical; larger = more different to a human)."""
    a, b = _pairs(reference, images)
    device = next(model.parameters()).device
    to_nchw = lambda t: t.permute(0, 3, 1, 2).to(device)  # noqa: E731
    return model(to_nchw(a), to_nchw(b), normalize=True).flatten().float().cpu()




def image_distance(metric: str, device: torch.device | str = "cpu"):
    """The distance function (reference [1 or B, H, W, 3], images [B, H, W, 3]) -> [B] named `metric`;
    LPIPS raises LPIPSWeightsMissing here, before any work, when its backbone isn't available."""
    if metric == "mse":
        return mse
    if metric == "l1":
        return l1
    if metric == "lpips":
        return functools.partial(lpips_distance, load_lpips("alex", device))
    raise ValueError(f"unknown metric {metric!r}; expected one of {', '.join(METRICS)}")
