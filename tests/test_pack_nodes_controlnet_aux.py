"""comfyui_controlnet_aux's model-free preprocessors (nodes/pack_nodes_controlnet_aux.py), checked
against the pack's pipeline rebuilt here from OpenCV calls as the pack's source documents them
(utils.common_annotator_call, util.HWC3 and resize_image_with_pad, each detector's algorithm, the
crop back), plus properties that could fail, and UI / API graphs with the pack's class names."""

import json

import cv2  # opencv-python-headless: a dependency of graphflow (pyproject.toml), not an optional one
import numpy as np
import pytest
import torch

from graphflow.comfy_format import export_api, export_ui
from graphflow.context import NodeInputError
from graphflow.registry import Registry
from graphflow.workflow import parse_workflow
from tests.test_nodes_image_mask import call as call_ours
from tests.test_pack_nodes import run_graph, ui_graph, ui_node


@pytest.fixture(scope="module")
def registry():
    return Registry().load_builtin()


def call(registry, class_type, **inputs):
    """Run the node the pack's class maps onto (its run(), defaults filled in)."""
    return call_ours(registry, registry.comfy_node(class_type).node_type, **inputs)


def picture(height, width, seed=0):
    """A batch of one picture with edges: a few flat rectangles over a smooth ramp, plus noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    img = np.stack([x / width, y / height, 0.5 + 0 * x], axis=2) * 0.5
    for _ in range(4):
        top, left = rng.integers(0, height // 2), rng.integers(0, width // 2)
        img[top:top + height // 3, left:left + width // 3] = rng.uniform(0, 1, 3)
    img = (img + rng.normal(0, 0.01, img.shape)).clip(0, 1)
    return torch.from_numpy(img.astype(np.float32))[None]


# -- the pack's pipeline, rebuilt from its source ------------------------------------------------


def to_uint8(image):
    return np.asarray(image[0] * 255.0, dtype=np.uint8)  # common_annotator_call: truncating cast


def to_image(result):
    return torch.from_numpy(result.astype(np.float32) / 255.0)[None]


def HWC3(x):
    if x.ndim == 2:
        x = x[:, :, None]
    return np.concatenate([x, x, x], axis=2) if x.shape[2] == 1 else x


def resize_image_with_pad(img, resolution, upscale):
    img = HWC3(img)
    H_raw, W_raw, _ = img.shape
    k = float(resolution) / float(min(H_raw, W_raw))
    H_target, W_target = int(np.round(float(H_raw) * k)), int(np.round(float(W_raw) * k))
    img = cv2.resize(img, (W_target, H_target), interpolation=upscale if k > 1 else cv2.INTER_AREA)
    H_pad = int(np.ceil(float(H_target) / 64.0) * 64 - H_target)
    W_pad = int(np.ceil(float(W_target) / 64.0) * 64 - W_target)
    padded = np.pad(img, [[0, H_pad], [0, W_pad], [0, 0]], mode="edge")
    return padded, lambda x: x[:H_target, :W_target, ...].copy()


def pack_canny(img, low, high, res):
    m, remove_pad = resize_image_with_pad(img, res, cv2.INTER_CUBIC)
    return HWC3(remove_pad(cv2.Canny(m, low, high)))


def pack_binary(img, thr, res):
    m, remove_pad = resize_image_with_pad(img, res, cv2.INTER_CUBIC)
    gray = cv2.cvtColor(m, cv2.COLOR_RGB2GRAY)
    if thr == 0 or thr == 255:
        _, b = cv2.threshold(gray, 0, 255, cv2.THRESH_BINARY_INV + cv2.THRESH_OTSU)
    else:
        _, b = cv2.threshold(gray, thr, 255, cv2.THRESH_BINARY_INV)
    return HWC3(remove_pad(255 - cv2.cvtColor(b, cv2.COLOR_GRAY2RGB)))


def pack_color(img, res):
    h, w = img.shape[:2]
    size = (int(round(w / h * res)), res) if h < w else (res, int(round(h / w * res)))
    img = cv2.resize(img, size, interpolation=cv2.INTER_AREA)
    h, w = img.shape[:2]
    small = cv2.resize(img, (w // 64, h // 64), interpolation=cv2.INTER_CUBIC)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_NEAREST)


def make_noise_disk(H, W, C, F, rng):
    noise = rng.uniform(low=0, high=1, size=((H // F) + 2, (W // F) + 2, C))
    noise = cv2.resize(noise, (W + 2 * F, H + 2 * F), interpolation=cv2.INTER_CUBIC)
    noise = noise[F: F + H, F: F + W]
    noise -= np.min(noise)
    noise /= np.max(noise)
    return noise[:, :, None] if C == 1 else noise


def pack_shuffle(img, res, seed):
    m, remove_pad = resize_image_with_pad(img, res, cv2.INTER_CUBIC)
    H, W, _ = m.shape
    rng = np.random.default_rng(seed)
    x = make_noise_disk(H, W, 1, 256, rng) * float(W - 1)
    y = make_noise_disk(H, W, 1, 256, rng) * float(H - 1)
    flow = np.concatenate([x, y], axis=2).astype(np.float32)
    return remove_pad(cv2.remap(m, flow, None, cv2.INTER_LINEAR))


def pack_tile(img, iters):
    H = int(np.round(img.shape[0] / 64.0)) * 64
    W = int(np.round(img.shape[1] / 64.0)) * 64
    m = cv2.resize(img, (W // (2 ** iters), H // (2 ** iters)), interpolation=cv2.INTER_AREA)
    for _ in range(iters):
        m = cv2.pyrUp(m)
    return m


def pack_tile_simple(img, scale, blur):
    bgr = img[:, :, ::-1]
    h, w = bgr.shape[:2]
    down = cv2.resize(bgr, (int(w / scale), int(h / scale)), interpolation=cv2.INTER_AREA)
    up = cv2.resize(down, (w, h), interpolation=cv2.INTER_LANCZOS4)
    k = int(blur) + (1 if int(blur) % 2 == 0 else 0)
    return cv2.GaussianBlur(up, (k, k), sigmaX=blur / 2)[:, :, ::-1]


def pack_scribble(img, res):
    m, remove_pad = resize_image_with_pad(img, res, cv2.INTER_AREA)
    d = np.zeros_like(m, dtype=np.uint8)
    d[np.min(m, axis=2) < 127] = 255
    return remove_pad(255 - d)


def pack_xdog(img, thr, res):
    m, remove_pad = resize_image_with_pad(img, res, cv2.INTER_CUBIC)
    g1 = cv2.GaussianBlur(m.astype(np.float32), (0, 0), 0.5)
    g2 = cv2.GaussianBlur(m.astype(np.float32), (0, 0), 5.0)
    dog = (255 - np.min(g2 - g1, axis=2)).clip(0, 255).astype(np.uint8)
    result = np.zeros_like(m, dtype=np.uint8)
    result[2 * (255 - dog) > thr] = 255  # numpy's uint8 arithmetic, as in the pack
    return HWC3(remove_pad(result))


def pack_recolor(img, gamma, res, code, channel):
    m, remove_pad = resize_image_with_pad(img, res, cv2.INTER_CUBIC)
    r = cv2.cvtColor(HWC3(m), code)[:, :, channel].astype(np.float32) / 255.0
    r = ((r ** gamma) * 255.0).clip(0, 255).astype(np.uint8)
    return HWC3(remove_pad(cv2.cvtColor(r, cv2.COLOR_GRAY2RGB)))


# -- each preprocessor against the pack's pipeline ---------------------------------------------


SIZES = [(96, 128, 512), (200, 150, 512), (67, 101, 64), (513, 301, 256), (64, 64, 128)]


@pytest.mark.parametrize("height, width, resolution", SIZES)
def test_canny_matches_the_packs_pipeline_and_size_rule(registry, height, width, resolution):
    image = picture(height, width)
    out = call(registry, "CannyEdgePreprocessor", image=image, low_threshold=50, high_threshold=120,
               resolution=resolution)
    want = pack_canny(to_uint8(image), 50, 120, resolution)
    k = resolution / min(height, width)
    assert out.shape == (1, round(height * k), round(width * k), 3) == (1, *want.shape)
    assert torch.equal(out, to_image(want))
    assert out.max() == 1.0 and out.min() == 0.0  # edges where the picture has them, none elsewhere


def test_canny_finds_a_squares_outline_only():
    from nodes.pack_nodes_controlnet_aux import canny_map
    img = np.zeros((128, 128, 3), np.uint8)
    img[32:96, 32:96] = 255
    edges = canny_map(img, 128, 100, 200)[:, :, 0] > 0
    assert edges[30:34, 40:90].any(axis=0).all() and not edges[45:80, 45:80].any() and not edges[:20].any()


@pytest.mark.parametrize("threshold", [0, 90, 255])
def test_binary_matches_the_pack_with_and_without_otsu(registry, threshold):
    image = picture(120, 90, seed=1)
    out = call(registry, "BinaryPreprocessor", image=image, bin_threshold=threshold, resolution=256)
    assert torch.equal(out, to_image(pack_binary(to_uint8(image), threshold, 256)))
    assert set(out.unique().tolist()) == {0.0, 1.0}


@pytest.mark.parametrize("height, width, resolution", [(100, 300, 512), (300, 100, 128), (64, 64, 64)])
def test_color_palette_matches_the_pack(registry, height, width, resolution):
    image = picture(height, width, seed=2)
    out = call(registry, "ColorPreprocessor", image=image, resolution=resolution)
    assert torch.equal(out, to_image(pack_color(to_uint8(image), resolution)))
    assert min(out.shape[1:3]) == resolution
    block = out[0, :64, :64]
    assert torch.equal(block, block[:1, :1].expand_as(block))  # one colour per 64x64 cell


def test_shuffle_is_the_packs_for_a_seed_and_reproducible(registry):
    image = picture(150, 200, seed=3)
    first = call(registry, "ShufflePreprocessor", image=image, resolution=256, seed=7)
    assert torch.equal(first, to_image(pack_shuffle(to_uint8(image), 256, 7)))
    assert torch.equal(first, call(registry, "ShufflePreprocessor", image=image, resolution=256, seed=7))
    other = call(registry, "ShufflePreprocessor", image=image, resolution=256, seed=8)
    assert first.shape == other.shape == (1, 256, 341, 3) and not torch.equal(first, other)
    assert not torch.equal(first, call(registry, "ColorPreprocessor", image=image, resolution=256))


@pytest.mark.parametrize("height, width, iters", [(100, 150, 3), (512, 512, 1), (200, 330, 4)])
def test_tile_matches_the_pack_and_rounds_sides_to_64(registry, height, width, iters):
    image = picture(height, width, seed=4)
    out = call(registry, "TilePreprocessor", image=image, pyrUp_iters=iters, resolution=1024)
    want = pack_tile(to_uint8(image), iters)
    assert out.shape[1:3] == (round(height / 64) * 64, round(width / 64) * 64) == want.shape[:2]
    assert torch.equal(out, to_image(want))


def test_tile_refuses_more_halvings_than_the_picture_has(registry):
    with pytest.raises(NodeInputError) as caught:
        call(registry, "TilePreprocessor", image=picture(64, 64), pyrUp_iters=7)
    assert caught.value.input == "pyrUp_iters"


@pytest.mark.parametrize("scale, blur", [(1.0, 2.0), (2.5, 3.0), (4.0, 5.5)])
def test_ttplanet_tile_simple_matches_the_pack(registry, scale, blur):
    image = picture(90, 130, seed=5)
    out = call(registry, "TTPlanet_TileSimple_Preprocessor", image=image, scale_factor=scale, blur_strength=blur)
    assert out.shape == image.shape
    assert torch.equal(out, to_image(pack_tile_simple(to_uint8(image), scale, blur)))


@pytest.mark.parametrize("black", [False, True])
def test_inpaint_marks_the_masked_pixels(registry, black):
    image = picture(64, 48, seed=6)
    mask = torch.zeros(1, 16, 12)
    mask[:, 4:10, 2:8] = 1.0
    out = call(registry, "InpaintPreprocessor", image=image, mask=mask, black_pixel_for_xinsir_cn=black)
    big = torch.nn.functional.interpolate(mask[:, None], size=(64, 48), mode="bilinear")[:, 0] > 0.5
    assert torch.equal(out[big], torch.full_like(out[big], 0.0 if black else -1.0))
    assert torch.equal(out[~big], image[~big]) and big.any() and (~big).any()


@pytest.mark.parametrize("height, width, resolution", SIZES[:3])
def test_scribble_and_xdog_match_the_pack(registry, height, width, resolution):
    image = picture(height, width, seed=7)
    out = call(registry, "ScribblePreprocessor", image=image, resolution=resolution)
    assert torch.equal(out, to_image(pack_scribble(to_uint8(image), resolution)))
    for threshold in (1, 32, 64):
        out = call(registry, "Scribble_XDoG_Preprocessor", image=image, threshold=threshold, resolution=resolution)
        assert torch.equal(out, to_image(pack_xdog(to_uint8(image), threshold, resolution)))


@pytest.mark.parametrize("gamma", [0.5, 1.0, 1.7])
def test_luminance_and_intensity_match_the_pack(registry, gamma):
    image = picture(80, 120, seed=8)
    lum = call(registry, "ImageLuminanceDetector", image=image, gamma_correction=gamma, resolution=128)
    assert torch.equal(lum, to_image(pack_recolor(to_uint8(image), gamma, 128, cv2.COLOR_BGR2LAB, 0)))
    hsv = call(registry, "ImageIntensityDetector", image=image, gamma_correction=gamma, resolution=128)
    assert torch.equal(hsv, to_image(pack_recolor(to_uint8(image), gamma, 128, cv2.COLOR_BGR2HSV, 2)))
    assert torch.equal(lum[..., 0], lum[..., 2]) and not torch.equal(lum, hsv)


def test_a_batch_is_each_image_in_turn(registry):
    batch = torch.cat([picture(64, 96, seed=1), picture(64, 96, seed=2)])
    out = call(registry, "CannyEdgePreprocessor", image=batch, resolution=64)
    for i in range(2):
        assert torch.equal(out[i:i + 1], call(registry, "CannyEdgePreprocessor", image=batch[i:i + 1], resolution=64))


def test_resolution_below_64_counts_as_512():
    from nodes.pack_nodes_controlnet_aux import detect_resolution
    assert [detect_resolution(r) for r in (0, 63, 64, 700, 512.0)] == [512, 512, 64, 700, 512]


# -- resolution helpers and the hint resizer ----------------------------------------------------


@pytest.mark.parametrize("mode, want", [("Just Resize", 1024), ("Crop and Resize", 1024), ("Resize and Fill", 683)])
def test_pixel_perfect_resolution(registry, mode, want):
    # a 300x200 picture for a 1024x1536 (w x h) generation: k = max or min of 1536/200, 1024/300
    out = call(registry, "PixelPerfectResolution", original_image=torch.zeros(1, 200, 300, 3),
               image_gen_width=1024, image_gen_height=1536, resize_mode=mode)
    k = (min if mode == "Resize and Fill" else max)(1536 / 200, 1024 / 300)
    assert out == round(k * 200) == (want if mode == "Resize and Fill" else 1536)


def test_generation_resolution_from_image_and_latent(registry):
    assert call(registry, "ImageGenResolutionFromImage", image=torch.zeros(2, 40, 70, 3)) == (70, 40)
    assert call(registry, "ImageGenResolutionFromLatent", latent={"samples": torch.zeros(1, 4, 9, 13)}) == (104, 72)


def test_hint_enchance_resizes_as_lvmins_rules(registry):
    image = picture(100, 160, seed=9)  # many colours: INTER_CUBIC up, INTER_AREA down
    x = to_uint8(image)
    out = call(registry, "HintImageEnchance", hint_image=image, image_gen_width=320, image_gen_height=256,
               resize_mode="Just Resize")
    assert torch.equal(out, to_image(cv2.resize(x, (320, 256), interpolation=cv2.INTER_CUBIC)))
    out = call(registry, "HintImageEnchance", hint_image=image, image_gen_width=64, image_gen_height=64,
               resize_mode="Crop and Resize")  # k = max(0.64, 0.4): 102x64, centre-cropped
    cover = cv2.resize(x, (102, 64), interpolation=cv2.INTER_AREA)
    assert torch.equal(out, to_image(cover[:, 19:83]))
    out = call(registry, "HintImageEnchance", hint_image=image, image_gen_width=200, image_gen_height=200,
               resize_mode="Resize and Fill")  # k = min(2, 1.25): 200x125, on the borders' median colour
    fitted = cv2.resize(x, (200, 125), interpolation=cv2.INTER_CUBIC)
    borders = np.concatenate([x[0], x[-1], x[:, 0], x[:, -1]])
    assert torch.equal(out[0, 37:162], to_image(fitted)[0])
    assert torch.equal(out[0, 0, 0], torch.from_numpy(np.median(borders, axis=0).astype(np.uint8) / np.float32(255)))


def test_hint_enchance_keeps_line_maps_binary_and_thin(registry):
    lines = np.zeros((64, 64, 3), np.uint8)
    cv2.line(lines, (5, 5), (60, 40), (255, 255, 255), 1)
    cv2.circle(lines, (32, 32), 20, (255, 255, 255), 1)
    out = call(registry, "HintImageEnchance", hint_image=to_image(lines), image_gen_width=192, image_gen_height=192,
               resize_mode="Just Resize")
    assert out.shape == (1, 192, 192, 3) and set(out.unique().tolist()) == {0.0, 1.0}
    white = (out[0, :, :, 0] > 0).numpy().astype(np.uint8)
    cubic = (cv2.resize(lines, (192, 192), interpolation=cv2.INTER_CUBIC)[:, :, 0] > 127).astype(np.uint8)

    def blocks(x):  # 2x2 squares all white: what a line more than one pixel wide is made of
        return (x[:-1, :-1] & x[1:, :-1] & x[:-1, 1:] & x[1:, 1:]).sum()
    # thinned back to lines about one pixel wide (the plain cubic upscale's are three wide)
    assert 0 < white.sum() < cubic.sum() / 2 and blocks(white) < white.sum() / 20 < blocks(cubic) / 20


# -- AIO and the graphs --------------------------------------------------------------------------


def test_aio_runs_the_chosen_preprocessor_with_its_defaults(registry):
    image = picture(96, 128, seed=10)
    canny = call(registry, "AIO_Preprocessor", image=image, preprocessor="CannyEdgePreprocessor", resolution=192)
    assert torch.equal(canny, call(registry, "CannyEdgePreprocessor", image=image, resolution=192))
    tile = call(registry, "AIO_Preprocessor", image=image, preprocessor="TTPlanet_TileSimple_Preprocessor")
    assert torch.equal(tile, call(registry, "TTPlanet_TileSimple_Preprocessor", image=image))
    assert call(registry, "AIO_Preprocessor", image=image, preprocessor="none") is image
    with pytest.raises(NodeInputError) as caught:
        call(registry, "AIO_Preprocessor", image=image, preprocessor="HEDPreprocessor")
    assert caught.value.input == "preprocessor" and "HEDPreprocessor" in str(caught.value)


def test_bad_inputs_are_named(registry):
    with pytest.raises(NodeInputError) as caught:
        call(registry, "CannyEdgePreprocessor", image=torch.zeros(4, 4))
    assert caught.value.input == "image"
    with pytest.raises(NodeInputError) as caught:
        call(registry, "InpaintPreprocessor", image=picture(8, 8), mask=torch.zeros(2, 3, 8, 8, 1))
    assert caught.value.input == "mask"
    with pytest.raises(NodeInputError) as caught:
        call(registry, "ImageGenResolutionFromLatent", latent={})
    assert caught.value.input == "latent"


def write_picture(tmp_folders, name, image):
    from PIL import Image
    Image.fromarray(np.asarray(image[0] * 255.0, dtype=np.uint8)).save(tmp_folders.inputs / name)


def test_ui_graph_with_the_packs_nodes_reads_and_runs(registry, tmp_folders):
    """As the editor saves it: widgets in the pack's order, Shuffle's seed followed by its
    control_after_generate, PixelPerfectResolution's INT linked into Canny's resolution."""
    image = picture(100, 150, seed=11)
    write_picture(tmp_folders, "in.png", image)
    nodes = [
        ui_node(1, "LoadImage", ["in.png", "image"], outputs=[("IMAGE", "IMAGE", [1, 2, 3, 4]), ("MASK", "MASK", [])]),
        ui_node(2, "PixelPerfectResolution", [1024, 768, "Just Resize"], [("original_image", "IMAGE", 1, False)],
                [("RESOLUTION (INT)", "INT", [5])]),
        ui_node(3, "CannyEdgePreprocessor", [80, 160, 512],
                [("image", "IMAGE", 2, False), ("resolution", "INT", 5, True)], [("IMAGE", "IMAGE", [])]),
        ui_node(4, "ShufflePreprocessor", [256, 42, "fixed"], [("image", "IMAGE", 3, False)],
                [("IMAGE", "IMAGE", [])]),
        ui_node(5, "AIO_Preprocessor", ["Scribble_XDoG_Preprocessor", 320], [("image", "IMAGE", 4, False)],
                [("IMAGE", "IMAGE", [])]),
    ]
    links = [[1, 1, 0, 2, 0, "IMAGE"], [2, 1, 0, 3, 0, "IMAGE"], [3, 1, 0, 4, 0, "IMAGE"], [4, 1, 0, 5, 0, "IMAGE"],
             [5, 2, 0, 3, 1, "INT"]]
    graph = ui_graph(nodes, links)
    saved = parse_workflow(graph, registry).to_json()["nodes"]
    assert saved["4"]["inputs"]["seed"] == 42 and saved["3"]["inputs"]["low_threshold"] == 80
    result = run_graph(registry, graph, outputs=["3", "4", "5"])
    loaded = to_uint8(image)
    assert result.values["2"][0] == 768  # max(768/100, 1024/150) * 100
    assert torch.equal(result.values["3"][0], to_image(pack_canny(loaded, 80, 160, 768)))
    assert torch.equal(result.values["4"][0], to_image(pack_shuffle(loaded, 256, 42)))
    assert torch.equal(result.values["5"][0], to_image(pack_xdog(loaded, 32, 320)))
    written = export_ui(parse_workflow(graph, registry), registry)
    by_id = {n["id"]: n for n in written["nodes"]}
    assert by_id[4]["widgets_values"] == [256, 42, "fixed"]
    assert by_id[5]["widgets_values"] == ["Scribble_XDoG_Preprocessor", 320]
    assert parse_workflow(written, registry).to_json()["nodes"] == saved


def test_api_prompt_with_the_packs_class_names_runs_and_round_trips(registry, tmp_folders):
    image = picture(80, 64, seed=12)
    write_picture(tmp_folders, "in.png", image)
    prompt = {
        "1": {"class_type": "LoadImage", "inputs": {"image": "in.png"}},
        "2": {"class_type": "TilePreprocessor", "inputs": {"image": ["1", 0], "pyrUp_iters": 2, "resolution": 512}},
        "3": {"class_type": "ImageLuminanceDetector", "inputs": {"image": ["1", 0], "gamma_correction": 0.8,
                                                                 "resolution": 128}},
        "4": {"class_type": "HintImageEnchance", "inputs": {"hint_image": ["3", 0], "image_gen_width": 96,
                                                            "image_gen_height": 96, "resize_mode": "Crop and Resize"}},
        "5": {"class_type": "ImageGenResolutionFromImage", "inputs": {"image": ["4", 0]}},
        "6": {"class_type": "ControlNetPreprocessorSelector", "inputs": {"preprocessor": "BinaryPreprocessor"}},
        "7": {"class_type": "AIO_Preprocessor", "inputs": {"image": ["1", 0], "preprocessor": ["6", 0],
                                                           "resolution": 64}},
        "8": {"class_type": "InpaintPreprocessor", "inputs": {"image": ["1", 0], "mask": ["1", 1],
                                                              "black_pixel_for_xinsir_cn": True}},
    }
    result = run_graph(registry, prompt, outputs=["2", "5", "7", "8"])
    loaded = to_uint8(image)
    assert torch.equal(result.values["2"][0], to_image(pack_tile(loaded, 2)))
    assert tuple(result.values["5"]) == (96, 96)
    assert torch.equal(result.values["7"][0], to_image(pack_binary(loaded, 100, 64)))
    assert torch.equal(result.values["8"][0], to_image(loaded))  # no alpha: LoadImage's mask is empty
    api = export_api(parse_workflow(prompt, registry), registry)
    assert {k: v["class_type"] for k, v in api.items()} == {k: v["class_type"] for k, v in prompt.items()}
    for node_id in prompt:
        assert api[node_id]["inputs"] == prompt[node_id]["inputs"], node_id
    assert json.loads(json.dumps(export_ui(parse_workflow(prompt, registry), registry)))["nodes"]


def test_validation_refuses_a_huge_resolution_before_running(registry, tmp_folders):
    from graphflow.resource_limits import RunLimits
    from graphflow.validation import validate
    prompt = {"1": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 4096, "batch_size": 1,
                                                           "color": 0}},
              "2": {"class_type": "CannyEdgePreprocessor", "inputs": {"image": ["1", 0], "resolution": 16384}},
              "3": {"class_type": "PreviewImage", "inputs": {"images": ["2", 0]}}}
    problems = validate(parse_workflow(prompt, registry), registry, limits=RunLimits(max_pixels=8192 * 8192))
    assert any(p.node_id == "2" for p in problems), problems


def pack_pyracanny(img, low, high, res):
    m, remove_pad = resize_image_with_pad(img, res, cv2.INTER_CUBIC)
    H, W, _ = m.shape
    acc = None
    for k in [0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]:
        small = cv2.resize(m, (int(W * k), int(H * k)), interpolation=cv2.INTER_AREA)
        edge = np.stack([cv2.Canny(small[..., i], low, high).astype(np.float32) / 255.0 for i in range(3)], axis=2)
        if acc is None:
            acc = edge
        else:
            acc = cv2.resize(acc, (edge.shape[1], edge.shape[0]), interpolation=cv2.INTER_LINEAR) * 0.75 + edge * 0.25
    x = np.sum(acc, axis=2)
    v_min, v_max = np.percentile(x, 1), np.percentile(x, 99)
    with np.errstate(divide="ignore", invalid="ignore"):
        x = (x - v_min) / (v_max - v_min) * 255.0
        return HWC3(remove_pad(x.clip(0, 255).astype(np.uint8)))


@pytest.mark.parametrize("height, width, resolution, low, high", [(96, 128, 256, 64, 128), (150, 100, 128, 20, 60)])
def test_pyracanny_matches_the_pack(registry, height, width, resolution, low, high):
    image = picture(height, width, seed=13)
    out = call(registry, "PyraCannyPreprocessor", image=image, low_threshold=low, high_threshold=high,
               resolution=resolution)
    assert torch.equal(out, to_image(pack_pyracanny(to_uint8(image), low, high, resolution)))
    assert len(out.unique()) > 2  # grey levels: the scales blended, not one Canny's black and white


def test_pyracanny_of_sparse_edges_is_black_and_white(registry):
    # a lone square: edges cover under 1% of the picture, where the pack's percentile stretch divides by 0
    image = torch.zeros(1, 512, 512, 3)
    image[:, 100:108, 100:108] = 1.0
    out = call(registry, "PyraCannyPreprocessor", image=image, resolution=512)
    assert torch.equal(out, to_image(pack_pyracanny(to_uint8(image), 64, 128, 512)))
    assert set(out.unique().tolist()) == {0.0, 1.0} and out[0, 100, 100:108].any() and not out[0, :90].any()


def pack_lineart_standard(img, sigma, thr, res):
    m, remove_pad = resize_image_with_pad(img, res, cv2.INTER_CUBIC)
    x = m.astype(np.float32)
    g = cv2.GaussianBlur(x, (0, 0), sigma)
    intensity = np.min(g - x, axis=2).clip(0, 255)
    intensity /= max(16, np.median(intensity[intensity > thr]))
    intensity *= 127
    return HWC3(remove_pad(intensity.clip(0, 255).astype(np.uint8)))


@pytest.mark.parametrize("sigma, threshold, resolution", [(6.0, 8, 256), (2.5, 0, 128), (12.0, 16, 192)])
def test_lineart_standard_matches_the_pack(registry, sigma, threshold, resolution):
    image = picture(100, 140, seed=14)
    out = call(registry, "LineartStandardPreprocessor", image=image, guassian_sigma=sigma,
               intensity_threshold=threshold, resolution=resolution)
    assert torch.equal(out, to_image(pack_lineart_standard(to_uint8(image), sigma, threshold, resolution)))
    assert out.max() > 0.4 and out.min() == 0.0


def test_lineart_standard_of_a_flat_picture_and_a_zero_sigma(registry):
    flat = torch.full((1, 64, 64, 3), 0.5)
    assert not call(registry, "LineartStandardPreprocessor", image=flat, resolution=64).any()  # nothing to scale by
    with pytest.raises(NodeInputError) as caught:
        call(registry, "LineartStandardPreprocessor", image=flat, guassian_sigma=0.0)
    assert caught.value.input == "guassian_sigma"


# -- linked values, run-time limits and estimates ------------------------------------------------


def thin_image_graph(node):
    """A 64x4096 picture, a Pixel Perfect Resolution for an 8192x8192 generation (8192) linked into
    `node`'s resolution: validation cannot see it; the run must refuse it before resizing."""
    return {"1": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 4096, "batch_size": 1, "color": 0}},
            "2": {"class_type": "PixelPerfectResolution", "inputs": {
                "original_image": ["1", 0], "image_gen_width": 8192, "image_gen_height": 8192,
                "resize_mode": "Just Resize"}},
            "3": {"class_type": node["class_type"], "inputs": {"image": ["1", 0], "resolution": ["2", 0],
                                                                **node.get("inputs", {})}}}


@pytest.mark.parametrize("node", [{"class_type": "CannyEdgePreprocessor"}, {"class_type": "ColorPreprocessor"},
                                  {"class_type": "ShufflePreprocessor"},
                                  {"class_type": "AIO_Preprocessor", "inputs": {"preprocessor": "ScribblePreprocessor"}}])
def test_a_linked_resolution_too_big_for_the_picture_is_refused_when_it_runs(registry, node):
    from graphflow.executor import Executor
    result = Executor(registry).run(parse_workflow(thin_image_graph(node), registry), outputs=["3"])
    assert result.values.get("2") == (8192,)  # round(max(8192/4096, 8192/64) * 64)
    assert not result.ok and result.error["node_id"] == "3" and result.error["input"] == "resolution"
    # refused as the linked value arrives, by the memory the size would take (the engine's linked-size
    # check), or on a machine with the RAM for it by the node's own size check
    message = result.error["message"]
    assert "linked value: a batch of 1 × 8192×524288" in message or "64x4096" in message and "16384" in message


def test_a_typed_resolution_too_big_for_the_picture_is_refused_too(registry):
    with pytest.raises(NodeInputError) as caught:  # 64x128 at 16384: 16384x32768
        call(registry, "CannyEdgePreprocessor", image=picture(128, 64), resolution=16384)
    assert caught.value.input == "resolution"
    from nodes.pack_nodes_controlnet_aux import check_scaled
    check_scaled(16384, 8192, 8192, 128, 64)  # 16384 a side is allowed (the pack's own widget maximum)
    with pytest.raises(NodeInputError):
        check_scaled(16385, 8193, 8193, 128, 64)


def test_a_linked_resolution_under_64_counts_as_512_as_in_the_pack(registry, tmp_folders):
    # Pixel Perfect for a 64x64 generation of a 300x200 picture, "Resize and Fill": round(64/300 * 200) = 43
    image = picture(200, 300, seed=15)
    write_picture(tmp_folders, "in.png", image)
    prompt = {"1": {"class_type": "LoadImage", "inputs": {"image": "in.png"}},
              "4": {"class_type": "PixelPerfectResolution", "inputs": {
                  "original_image": ["1", 0], "image_gen_width": 64, "image_gen_height": 64,
                  "resize_mode": "Resize and Fill"}},
              "2": {"class_type": "CannyEdgePreprocessor", "inputs": {"image": ["1", 0], "resolution": ["4", 0]}}}
    result = run_graph(registry, prompt, outputs=["2", "4"])
    assert result.values["4"] == (43,)
    assert torch.equal(result.values["2"][0], to_image(pack_canny(to_uint8(image), 100, 200, 512)))
    from graphflow.validation import validate
    typed = {**prompt, "2": {"class_type": "CannyEdgePreprocessor", "inputs": {"image": ["1", 0], "resolution": 43}},
             "3": {"class_type": "PreviewImage", "inputs": {"images": ["2", 0]}}}
    problems = validate(parse_workflow(typed, registry), registry)
    assert any(p.node_id == "2" and p.input == "resolution" for p in problems), problems  # typed: still >= 64


def size_of(out):
    from graphflow.api import Size
    return Size(out.shape[0], out.shape[1], out.shape[2])


@pytest.mark.parametrize("preprocessor", ["CannyEdgePreprocessor", "ColorPreprocessor", "TilePreprocessor",
                                          "ShufflePreprocessor", "TTPlanet_TileSimple_Preprocessor", "none"])
def test_aio_estimates_the_size_its_preprocessor_gives(registry, preprocessor):
    image = torch.cat([picture(150, 330, seed=16)] * 2)
    out = call(registry, "AIO_Preprocessor", image=image, preprocessor=preprocessor, resolution=192)
    cls = registry.comfy_node("AIO_Preprocessor")
    estimate = cls.estimate({"preprocessor": preprocessor, "resolution": 192}, {"image": size_of(image)})
    assert estimate.size == size_of(out)


def test_aio_with_a_linked_preprocessor_estimates_the_least_of_them(registry):
    from graphflow.api import Size
    cls = registry.comfy_node("AIO_Preprocessor")
    image = Size(1, 1024, 2048)
    linked = cls.estimate({"resolution": 128}, {"image": image})
    # Canny at 128 gives 128x256, the least of: none and TTPlanet (the input), Tile (1024x2048), Color (128x256)
    assert linked.size == Size(1, 128, 256)
    sizes = [cls.estimate({"preprocessor": p, "resolution": 128}, {"image": image}).size
             for p in ("none", "CannyEdgePreprocessor", "ColorPreprocessor", "TilePreprocessor")]
    assert linked.size.pixels == min(s.pixels for s in sizes)
    # a linked resolution too: at the least one, 64
    assert cls.estimate({}, {"image": image}).size == Size(1, 64, 128)


def test_detector_and_colour_estimates_take_a_linked_resolution_as_64(registry):
    from graphflow.api import Size
    canny, color = registry.comfy_node("CannyEdgePreprocessor"), registry.comfy_node("ColorPreprocessor")
    for cls in (canny, color):
        assert cls.estimate({}, {"image": Size(2, 300, 200)}).size == Size(2, 96, 64)
    image = picture(300, 200, seed=17)
    out = call(registry, "ColorPreprocessor", image=image, resolution=320)
    assert color.estimate({"resolution": 320}, {"image": size_of(image)}).size == size_of(out)


@pytest.mark.parametrize("height, width, iters", [(200, 330, 7), (1000, 700, 8), (100, 150, 3)])
def test_tile_estimate_is_the_size_the_pyramid_gives(registry, height, width, iters):
    image = picture(height, width, seed=18)
    out = call(registry, "TilePreprocessor", image=image, pyrUp_iters=iters)
    assert torch.equal(out, to_image(pack_tile(to_uint8(image), iters)))
    tile = registry.comfy_node("TilePreprocessor")
    assert tile.estimate({"pyrUp_iters": iters}, {"image": size_of(image)}).size == size_of(out)


def test_hint_crop_and_resize_counts_and_caps_its_intermediate(registry):
    from graphflow.api import Size
    from graphflow.resource_limits import RunLimits
    from graphflow.validation import validate
    hint = registry.comfy_node("HintImageEnchance")
    widgets = {"image_gen_width": 8192, "image_gen_height": 8192}
    crop = hint.estimate({**widgets, "resize_mode": "Crop and Resize"}, {"hint_image": Size(1, 64, 4096)})
    assert crop.size == Size(1, 8192, 8192) and crop.memory == 524288 * 8192 * 3  # k = 128: 524288x8192 uint8
    assert hint.estimate({**widgets, "resize_mode": "Just Resize"}, {"hint_image": Size(1, 64, 4096)}).memory == 0
    prompt = {"1": {"class_type": "EmptyImage", "inputs": {"width": 4096, "height": 64, "batch_size": 1, "color": 0}},
              "2": {"class_type": "HintImageEnchance", "inputs": {"hint_image": ["1", 0], **widgets,
                                                                  "resize_mode": "Crop and Resize"}},
              "3": {"class_type": "PreviewImage", "inputs": {"images": ["2", 0]}}}
    limits = RunLimits(ram_bytes=8 * 2 ** 30, device_bytes=8 * 2 ** 30)
    assert any(p.node_id == "2" for p in validate(parse_workflow(prompt, registry), registry, limits=limits))
    with pytest.raises(NodeInputError) as caught:  # 1024x4 to cover 256x256: 65536x256 first
        call(registry, "HintImageEnchance", hint_image=torch.rand(1, 4, 1024, 3), image_gen_width=256,
             image_gen_height=256, resize_mode="Crop and Resize")
    assert caught.value.input == "resize_mode" and "65536x256" in str(caught.value)
    fit = call(registry, "HintImageEnchance", hint_image=torch.rand(1, 4, 1024, 3), image_gen_width=256,
               image_gen_height=256, resize_mode="Resize and Fill")
    assert fit.shape == (1, 256, 256, 3)


@pytest.mark.parametrize("class_type, name", [("CannyEdgePreprocessor", "image"), ("ColorPreprocessor", "image"),
                                              ("TilePreprocessor", "image"), ("HintImageEnchance", "hint_image"),
                                              ("PixelPerfectResolution", "original_image"),
                                              ("InpaintPreprocessor", "image")])
def test_an_empty_batch_or_side_is_refused_naming_the_image(registry, class_type, name):
    extra = {"mask": torch.zeros(1, 8, 8)} if class_type == "InpaintPreprocessor" else {}
    for empty in (torch.zeros(0, 8, 8, 3), torch.zeros(1, 0, 8, 3), torch.zeros(1, 8, 0, 3)):
        with pytest.raises(NodeInputError) as caught:
            call(registry, class_type, **{name: empty}, **extra)
        assert caught.value.input == name


def test_tile_of_a_picture_too_small_for_its_64_rounding_names_the_image(registry):
    with pytest.raises(NodeInputError) as caught:  # 20x20 rounds to 0x0 whatever pyrUp_iters is
        call(registry, "TilePreprocessor", image=picture(20, 20), pyrUp_iters=1)
    assert caught.value.input == "image"


# -- lvmin's thinning, the seeded batch and the inpaint mask --------------------------------------


def pack_lvmin_thin(x, prunings=True):
    """lvminthin.py as the pack has it: both kernels at each of four rot90 turns, removed in turn."""
    raw = [np.array([[-1, -1, -1], [0, 1, 0], [1, 1, 1]], dtype=np.int32),
           np.array([[0, -1, -1], [1, 1, -1], [0, 1, 0]], dtype=np.int32)]
    prune_raw = [np.array([[-1, -1, -1], [-1, 1, -1], [0, 0, -1]], dtype=np.int32),
                 np.array([[-1, -1, -1], [-1, 1, -1], [-1, 0, 0]], dtype=np.int32)]
    kernels = [np.rot90(k, k=turn, axes=(0, 1)) for turn in range(4) for k in raw]
    prunings_k = [np.rot90(k, k=turn, axes=(0, 1)) for turn in range(4) for k in prune_raw]

    def once(y, ks):
        done = True
        for k in ks:
            hits = np.where(cv2.morphologyEx(y, cv2.MORPH_HITMISS, k) > 127)
            y[hits] = 0
            done = done and hits[0].shape[0] == 0
        return y, done

    for _ in range(32):
        x, done = once(x, kernels)
        if done:
            break
    if prunings:
        x, _ = once(x, prunings_k)
    return x


@pytest.mark.parametrize("prunings", [False, True])
def test_lvmin_thin_is_the_packs(prunings):
    from nodes.pack_nodes_controlnet_aux import lvmin_thin
    rng = np.random.default_rng(19)
    lines = np.zeros((96, 96), np.uint8)
    for _ in range(6):  # thick strokes and blobs: many passes of thinning, and spurs to prune
        p, q = rng.integers(0, 96, 2), rng.integers(0, 96, 2)
        cv2.line(lines, tuple(map(int, p)), tuple(map(int, q)), 255, int(rng.integers(2, 7)))
    cv2.circle(lines, (48, 48), 15, 255, -1)
    ours = lvmin_thin(lines.copy(), prunings=prunings)
    assert np.array_equal(ours, pack_lvmin_thin(lines.copy(), prunings=prunings))
    assert 0 < (ours > 0).sum() < (lines > 0).sum() / 3


def test_a_seeded_shuffle_gives_every_image_of_a_batch_the_packs_warp(registry):
    batch = torch.cat([picture(120, 160, seed=20), picture(120, 160, seed=21)])
    out = call(registry, "ShufflePreprocessor", image=batch, resolution=128, seed=5)
    for i in range(2):  # the pack seeds a fresh Generator for each image
        assert torch.equal(out[i:i + 1], to_image(pack_shuffle(to_uint8(batch[i:i + 1]), 128, 5)))
    # the same warp: a picture shuffled alone and inside a batch come out the same
    same = call(registry, "ShufflePreprocessor", image=torch.cat([batch[:1], batch[:1]]), resolution=128, seed=5)
    assert torch.equal(same[0], same[1])


def test_inpaint_one_mask_serves_every_image(registry):
    batch = torch.cat([picture(40, 56, seed=22), picture(40, 56, seed=23), picture(40, 56, seed=24)])
    mask = torch.zeros(20, 28)  # [H, W]: one mask, at half the size
    mask[5:15, 3:10] = 1.0
    out = call(registry, "InpaintPreprocessor", image=batch, mask=mask)
    big = torch.nn.functional.interpolate(mask[None, None], size=(40, 56), mode="bilinear")[0, 0] > 0.5
    assert out.shape == batch.shape and big.any()
    for i in range(3):
        assert (out[i][big] == -1.0).all() and torch.equal(out[i][~big], batch[i][~big])
    with pytest.raises(NodeInputError) as caught:  # two masks for three images
        call(registry, "InpaintPreprocessor", image=batch, mask=torch.zeros(2, 20, 28))
    assert caught.value.input == "mask"


def test_a_batch_reports_progress_per_image(registry):
    from graphflow.executor import Executor
    prompt = {"1": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 3, "color": 0}},
              "2": {"class_type": "ScribblePreprocessor", "inputs": {"image": ["1", 0], "resolution": 64}}}
    events = []
    result = Executor(registry).run(parse_workflow(prompt, registry), outputs=["2"], on_event=events.append)
    assert result.ok, result.error
    assert [(e["value"], e["max"]) for e in events if e["type"] == "progress" and e["node"] == "2"] == \
        [(1, 3), (2, 3), (3, 3)]
