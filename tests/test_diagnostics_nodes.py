"""The diagnostics nodes: run through the executor (progress, interrupt, shown text), their input
errors, LPIPS without and with local backbone weights, and the two example workflows end to end."""

import json
import threading
from pathlib import Path

import pytest
import torch

import nodes.diagnostics as diag
import nodes.primitives
from graphflow.api import LATENT, VAE, Bool, Int, Node, NodeInputError
from graphflow.diagnostics import image_metrics
from graphflow.executor import Executor
from graphflow.models import AutoencoderKL
from graphflow.registry import Registry
from graphflow.testing import write_checkpoint
from graphflow.workflow import load_workflow, parse_workflow
from test_diagnostics import LATENT_HW, SPOT, GlobalSpotVAE, LogvarSpotVAE, build, random_latent, smooth_image

WORKFLOWS = Path(__file__).parent.parent / "workflows"


class TinyVAE(Node):
    """Test source: a tiny random VAE, plain or with a planted global latent location."""
    category = "test"
    planted: bool = Bool(False)
    outputs = {"vae": VAE}

    def run(self):
        return build(GlobalSpotVAE if self.planted else AutoencoderKL)


class RandomLatent(Node):
    category = "test"
    seed: int = Int(3)
    outputs = {"latent": LATENT}

    def run(self):
        return {"samples": random_latent(seed=self.seed)}


@pytest.fixture
def registry():
    r = Registry()
    r.add_module(diag)
    r.add_module(nodes.primitives)
    r.add(TinyVAE, "tests")
    r.add(RandomLatent, "tests")
    return r


def run_node(cls, **inputs):
    """Run a node outside the executor, with its widget defaults filled in."""
    node = cls.__new__(cls)
    node.__dict__.update({name: spec.default for name, spec in cls.input_specs.items()})
    node.__dict__.update(inputs)
    return node.run()


def sensitivity_workflow(planted=True, **widgets):
    return parse_workflow({"nodes": {
        "vae": {"type": "TinyVAE", "inputs": {"planted": planted}},
        "z": {"type": "RandomLatent", "inputs": {}},
        "map": {"type": "VAESensitivityMap", "inputs": {"vae": ["vae", 0], "latent": ["z", 0], "batch_size": 129,
                                                        **widgets}},
        "show": {"type": "ShowText", "inputs": {"text": ["map", "top_locations"]}},
    }})


def test_sensitivity_node_in_a_run(registry):
    events = []
    result = Executor(registry).run(sensitivity_workflow(), on_event=events.append)
    assert result.ok, result.error
    heatmap, overlay, top, score, report = result.values["map"]
    assert heatmap.shape == (1, LATENT_HW, LATENT_HW, 3) and 0 <= heatmap.min() and heatmap.max() <= 1
    assert overlay.shape == (1, 128 + 30, 128, 3)  # the 32 px decode upscaled x4, and its legend
    assert score > 10
    assert f"most global location: latent row {SPOT[0]}, col {SPOT[1]}" in report
    assert result.outputs["map"]["text"] == [report]
    listed = json.loads(top)
    assert len(listed) == 5 and listed[0]["effect"] >= listed[-1]["effect"] and listed[0]["x_median"] == pytest.approx(score)
    assert result.outputs["show"]["text"] == [top]
    steps = [(e["value"], e["max"]) for e in events if e["type"] == "progress" and e["node"] == "map"]
    assert steps == [(1, 2), (2, 2)]
    # the brightest heatmap cell is the top location
    brightest = heatmap[0].sum(-1).flatten().argmax().item()
    assert divmod(brightest, LATENT_HW) == (listed[0]["row"], listed[0]["col"])


def test_sensitivity_node_can_be_interrupted(registry):
    stop = threading.Event()
    seen = []

    def on_event(event):
        if event["type"] == "progress":
            seen.append(event["value"])
            stop.set()

    result = Executor(registry).run(sensitivity_workflow(batch_size=16), on_event=on_event, interrupt=stop)
    assert result.status == "interrupted" and result.error["node_id"] == "map"
    assert seen == [1]  # the next batch's progress call raised: 1 of 17 batches decoded


def test_sensitivity_node_errors(registry):
    vae = build()
    with pytest.raises(NodeInputError) as e:
        run_node(diag.VAESensitivityMap, vae=vae, latent={"samples": torch.zeros(1, 3, 4, 4)})
    assert e.value.input == "latent" and "3 channels" in str(e.value)
    with pytest.raises(NodeInputError) as e:
        run_node(diag.VAESensitivityMap, vae=vae, latent={"samples": torch.zeros(1, 4, 4, 4)}, batch_index=1)
    assert e.value.input == "batch_index"
    with pytest.raises(NodeInputError) as e:
        run_node(diag.VAESensitivityMap, vae=vae, latent=torch.zeros(1, 4, 4, 4))
    assert e.value.input == "latent" and "LATENT" in str(e.value)


def test_logvar_node_marks_the_planted_anomaly():
    logvar_map, mean_map, report = run_node(diag.VAELogVarMap, vae=build(LogvarSpotVAE), image=smooth_image().repeat(2, 1, 1, 1))
    assert logvar_map.shape[0] == 2 and mean_map.shape[0] == 2
    assert logvar_map.shape[2] > mean_map.shape[2]  # 4 logvar tiles + the anomaly tile vs 4 mean tiles
    first = report.split("\n\n")[0]
    assert first.startswith("image 0: posterior of a 16x16 latent, 4 channels")
    assert f"1. ({SPOT[0]}, {SPOT[1]}) [pixels y {2 * SPOT[0]}, x {2 * SPOT[1]}]" in first and "in c2" in first
    # the anomaly tile (the 5th) outlines the spot in the marker colour
    tile_w = (logvar_map.shape[2] - 4 * 4) // 5
    factor = tile_w // LATENT_HW
    tile = logvar_map[0, :, 4 * (tile_w + 4):4 * (tile_w + 4) + tile_w]
    marker = torch.tensor([0, 1, 128 / 255])
    hits = (tile[: LATENT_HW * factor] - marker).abs().sum(-1) < 0.01
    rows, cols = hits.nonzero(as_tuple=True)
    assert rows.float().mean().item() == pytest.approx((SPOT[0] + 0.5) * factor, abs=1.5)
    assert cols.float().mean().item() == pytest.approx((SPOT[1] + 0.5) * factor, abs=1.5)


def test_latent_stats_node():
    vae = build()
    latent = {"samples": torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(0))}  # raw std 1
    report, chart = run_node(diag.LatentStats, latent=latent, vae=vae)
    assert "scale 0.18215" in report and "WARNING: scaled std" in report
    assert chart.dim() == 4 and chart.shape[0] == 1 and chart.shape[-1] == 3
    report, _ = run_node(diag.LatentStats, latent=latent, scale_factor=1.0)
    assert "OK: no problems found" in report
    with pytest.raises(NodeInputError) as e:
        run_node(diag.LatentStats, latent=latent)
    assert e.value.input == "vae"


def test_perturb_and_interpolate_nodes():
    z = random_latent(6, 6)
    latent = {"samples": z, "batch_index": [0]}
    out = run_node(diag.LatentPerturb, latent=latent, x=4, y=1, width=5, height=2)
    assert out["batch_index"] == [0]
    assert torch.all(out["samples"][:, :, 1:3, 4:] == 0) and torch.equal(out["samples"][:, :, 3:], z[:, :, 3:])
    with pytest.raises(NodeInputError) as e:
        run_node(diag.LatentPerturb, latent=latent, mode="replace")
    assert e.value.input == "source"
    with pytest.raises(NodeInputError) as e:
        run_node(diag.LatentPerturb, latent=latent, x=6)
    assert e.value.input == "x"
    other = {"samples": -z}
    mid = run_node(diag.LatentInterpolate, latent_a=latent, latent_b={"samples": torch.flip(z, (3,))}, t=0.0)
    assert torch.allclose(mid["samples"], z)
    assert torch.allclose(run_node(diag.LatentInterpolate, latent_a=latent, latent_b=other, t=0.5, method="lerp")["samples"],
                          torch.zeros_like(z))
    with pytest.raises(NodeInputError) as e:
        run_node(diag.LatentInterpolate, latent_a=latent, latent_b={"samples": torch.zeros(1, 4, 5, 6)})
    assert e.value.input == "latent_b"


def test_image_difference_node():
    a = smooth_image()
    b = (a + 0.1).clamp(max=1.0)
    heatmap, psnr, ssim, report = run_node(diag.ImageDifference, image_a=a, image_b=b)
    assert psnr == pytest.approx(image_metrics.psnr(a, b).item()) and 20 <= psnr < 30
    assert ssim == pytest.approx(image_metrics.ssim(a, b).item()) and 0 < ssim < 1
    assert heatmap.shape[0] == 1 and heatmap.shape[2] == 128  # a 32 px image shown at least 128 wide
    assert "PSNR" in report and "LPIPS" not in report
    with pytest.raises(NodeInputError) as e:
        run_node(diag.ImageDifference, image_a=a, image_b=a[:, :16])
    assert e.value.input == "image_b"


# -- LPIPS -----------------------------------------------------------------------------------
@pytest.fixture
def no_lpips_weights(tmp_folders, tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    return tmp_folders


def test_lpips_without_weights_is_a_clear_input_error(no_lpips_weights):
    with pytest.raises(NodeInputError) as e:
        run_node(diag.VAESensitivityMap, vae=build(), latent={"samples": random_latent(2, 2)}, metric="lpips")
    assert e.value.input == "metric"
    message = str(e.value)
    assert "alexnet-owt-7be5be79.pth" in message and str(no_lpips_weights.models / "lpips") in message
    assert "never downloads" in message
    with pytest.raises(NodeInputError) as e:
        run_node(diag.ImageDifference, image_a=smooth_image(), image_b=smooth_image(), lpips=True)
    assert e.value.input == "lpips"


def test_lpips_with_a_local_backbone_matches_the_package(no_lpips_weights, monkeypatch):
    import lpips
    import torchvision

    torch.manual_seed(0)
    backbone = torchvision.models.alexnet(weights=None)
    folder = no_lpips_weights.models / "lpips"
    folder.mkdir(parents=True)
    torch.save(backbone.state_dict(), folder / image_metrics.LPIPS_BACKBONES["alex"])

    a = smooth_image()
    b = torch.flip(a, (2,))
    ours = image_metrics.image_distance("lpips")(a, torch.cat([a, b]))
    # the oracle: the package's own pretrained path, with torchvision handing it this backbone
    monkeypatch.setattr(lpips.pretrained_networks.tv, "alexnet", lambda **kwargs: backbone)
    reference = lpips.LPIPS(net="alex", verbose=False)
    expected = reference(a.permute(0, 3, 1, 2), b.permute(0, 3, 1, 2), normalize=True).item()
    assert ours[0].item() == pytest.approx(0.0, abs=1e-6)
    assert ours[1].item() == pytest.approx(expected, rel=1e-5) and expected > 0

    _, _, _, report = run_node(diag.ImageDifference, image_a=a, image_b=b, lpips=True)
    assert f"LPIPS {expected:.4f}" in report


# -- the example workflows -------------------------------------------------------------------
@pytest.fixture(scope="module")
def checkpoint_dir(tmp_path_factory):
    models = tmp_path_factory.mktemp("models")
    (models / "checkpoints").mkdir()
    write_checkpoint(models / "checkpoints" / "tiny_sd1.safetensors", "sd1")
    return models


def example(name, folders, checkpoint_dir):
    folders.models = checkpoint_dir
    wf = load_workflow(WORKFLOWS / f"{name}.json")
    wf.nodes["1"].inputs["checkpoint"] = "tiny_sd1.safetensors"  # the demo checkpoint's stand-in
    return wf


def test_vae_black_hole_workflow_runs(builtin_registry, tmp_folders, checkpoint_dir):
    wf = example("vae_black_hole", tmp_folders, checkpoint_dir)
    wf.nodes["5"].inputs["stride"] = 2  # 17 decodes instead of 65: the test checks the wiring, not the map
    result = Executor(builtin_registry).run(wf)
    assert result.ok, result.error or result.problems
    saved = {node: result.outputs[node]["images"] for node in ("6", "7", "8")}
    for images in saved.values():
        assert len(images) == 1 and (tmp_folders.outputs / images[0]["subfolder"] / images[0]["filename"]).is_file()
    assert "black-hole score" in result.outputs["5"]["text"][0]
    assert "most anomalous log-variance" in result.outputs["4"]["text"][0]
    assert len(json.loads(result.outputs["9"]["text"][0])) == 5


def test_latent_health_workflow_runs(builtin_registry, tmp_folders, checkpoint_dir):
    result = Executor(builtin_registry).run(example("latent_health", tmp_folders, checkpoint_dir))
    assert result.ok, result.error or result.problems
    assert result.outputs["4"]["text"][0].startswith("latent [1, 4, 8, 8], scale 0.18215")
    assert "PSNR" in result.outputs["7"]["text"][0]
    assert len(result.outputs["5"]["images"]) == 1 and len(result.outputs["8"]["images"]) == 1
