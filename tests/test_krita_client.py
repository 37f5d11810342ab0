"""graphflow as the server of the Krita AI Diffusion plugin (Acly/krita-ai-diffusion), checked
against what the plugin asks of a ComfyUI server, read from its newest source in the code index:

- ai_diffusion/comfy_client.py at 75331532: on connect GET /system_stats (devices[0]'s name, type,
  vram_total), a websocket at /ws?clientId=..., GET /object_info (the required classes, then the
  file choices of the loaders it reads with nodes.options), GET /api/etn/languages, GET
  /api/etn/model_info/{folder}?offset&limit; per job PUT /api/etn/image/{id}, POST /prompt with its
  own prompt_id (a reply with another id fails the job), GET /api/etn/image/{id} for each executed
  output image with source "http"; POST /queue {"delete"}, POST /interrupt; POST
  /api/etn/workflow/subscribe at each websocket connect and /unsubscribe at disconnect (the
  etn_workflow_published message shown as "name (id)"); PUT /api/etn/upload/loras/{id} for a LoRA
  the server lacks; GET /api/etn/translate/{lang}/{text} where languages were listed; on the websocket
  status, execution_start, executing (node None ends a job), execution_cached, progress, executed,
  execution_error, execution_interrupted, and binary frames of event 1, format 2 (PNG previews).
- ai_diffusion/resources.py, version "1.48.0" (older copies: 575356fe, 1.35.0): required_custom_nodes,
  and Arch.from_string, by which _refresh_models' parse_model_info reads model_info's answers
  (PLUGIN_ARCH below, written out from the copy with Flux 2 Klein, Qwen and Z-Image).
- ai_diffusion/comfy_workflow.py, the version with Flux2Scheduler, ZImageFunControlnet, EasyCache
  and ETN_LoadImageCache / ETN_SaveImageCache for images (9c8dfc0a is an older one, with
  ETN_LoadImageBase64 / ETN_SendImageWebSocket): every class_type its builder emits, with the inputs
  it sets (EMITTED below).

The emitted classes graphflow lacks are in LEFT_OUT, each with why; the rest must hold."""

import asyncio
import io

import numpy as np
import pytest
import torch
from PIL import Image

from graphflow import testing
from graphflow.server.comfyui_object_info import object_info
from test_server import home, start  # noqa: F401

# class_type -> the inputs comfy_workflow.py sets on it
EMITTED = {
    "KSampler": ["seed", "sampler_name", "scheduler", "model", "positive", "negative", "latent_image", "steps", "cfg",
                 "denoise"],
    "KSamplerAdvanced": ["noise_seed", "sampler_name", "scheduler", "model", "positive", "negative", "latent_image",
                         "steps", "start_at_step", "end_at_step", "cfg", "add_noise", "return_with_leftover_noise"],
    "SamplerCustomAdvanced": ["noise", "guider", "sampler", "sigmas", "latent_image"],
    "AlignYourStepsScheduler": ["steps", "model_type", "denoise"],
    "GITSScheduler": ["steps", "coeff", "denoise"],
    "PolyexponentialScheduler": ["steps", "sigma_max", "sigma_min", "rho"],
    "LaplaceScheduler": ["steps", "sigma_max", "sigma_min", "mu", "beta"],
    "BasicScheduler": ["model", "scheduler", "steps", "denoise"],
    "SplitSigmas": ["sigmas", "step"],
    "BasicGuider": ["model", "conditioning"],
    "CFGGuider": ["model", "positive", "negative", "cfg"],
    "FluxGuidance": ["conditioning", "guidance"],
    "RandomNoise": ["noise_seed"],
    "SamplerEulerCFGpp": ["version"],
    "KSamplerSelect": ["sampler_name"],
    "DifferentialDiffusion": ["model"],
    "ModelSamplingDiscrete": ["model", "sampling", "zsnr"],
    "ModelSamplingSD3": ["model", "shift"],
    "RescaleCFG": ["model", "multiplier"],
    "CheckpointLoaderSimple": ["ckpt_name"],
    "UNETLoader": ["unet_name", "weight_dtype"],
    "UnetLoaderGGUF": ["unet_name"],
    "CLIPLoader": ["clip_name", "type"],
    "DualCLIPLoader": ["clip_name1", "clip_name2", "type"],
    "DualCLIPLoaderGGUF": ["clip_name1", "clip_name2", "type"],
    "TripleCLIPLoader": ["clip_name1", "clip_name2", "clip_name3"],
    "TripleCLIPLoaderGGUF": ["clip_name1", "clip_name2", "clip_name3"],
    "VAELoader": ["vae_name"],
    "ControlNetLoader": ["control_net_name"],
    "CLIPVisionLoader": ["clip_name"],
    "IPAdapterModelLoader": ["ipadapter_file"],
    "UpscaleModelLoader": ["model_name"],
    "StyleModelLoader": ["style_model_name"],
    "LoraLoaderModelOnly": ["model", "lora_name", "strength_model"],
    "LoraLoader": ["model", "clip", "lora_name", "strength_model", "strength_clip"],
    "IPAdapterInsightFaceLoader": ["provider", "model_name"],
    "INPAINT_LoadInpaintModel": ["model_name"],
    "INPAINT_LoadFooocusInpaint": ["head", "patch"],
    "EmptySD3LatentImage": ["width", "height", "batch_size"],
    "EmptyLatentImage": ["width", "height", "batch_size"],
    "CLIPSetLastLayer": ["clip", "stop_at_clip_layer"],
    "CLIPTextEncode": ["clip", "text"],
    "ConditioningSetArea": ["conditioning", "x", "y", "width", "height", "strength"],
    "ConditioningSetMask": ["conditioning", "mask", "strength", "set_cond_area"],
    "ConditioningCombine": ["conditioning_1", "conditioning_2"],
    "ConditioningAverage": ["conditioning_to", "conditioning_from", "conditioning_to_strength"],
    "ConditioningSetTimestepRange": ["conditioning", "start", "end"],
    "ConditioningZeroOut": ["conditioning"],
    "InstructPixToPixConditioning": ["positive", "negative", "vae", "pixels"],
    "ETN_BackgroundRegion": ["conditioning"],
    "ETN_DefineRegion": ["regions", "mask", "conditioning"],
    "ETN_ListRegionMasks": ["regions"],
    "ETN_AttentionMask": ["model", "regions"],
    "ControlNetApplyAdvanced": ["positive", "negative", "control_net", "image", "vae", "strength", "start_percent",
                                "end_percent"],
    "ControlNetInpaintingAliMamaApply": ["positive", "negative", "control_net", "vae", "image", "mask", "strength",
                                         "start_percent", "end_percent"],
    "SetUnionControlNetType": ["control_net", "type"],
    "CLIPVisionEncode": ["clip_vision", "image"],
    "StyleModelApply": ["conditioning", "style_model", "clip_vision_output"],
    "IPAdapterEncoder": ["image", "weight", "ipadapter", "clip_vision"],
    "IPAdapterCombineEmbeds": ["method", "embed1", "embed2"],
    "IPAdapterEmbeds": ["model", "ipadapter", "pos_embed", "clip_vision", "weight", "weight_type", "embeds_scaling",
                        "start_at", "end_at", "attn_mask"],
    "IPAdapterFaceID": ["model", "ipadapter", "image", "clip_vision", "insightface", "weight", "weight_faceidv2",
                        "weight_type", "combine_embeds", "start_at", "end_at", "attn_mask", "embeds_scaling"],
    "SelfAttentionGuidance": ["model", "scale", "blur_sigma"],
    "InpaintPreprocessor": ["image", "mask", "black_pixel_for_xinsir_cn"],
    "INPAINT_ApplyFooocusInpaint": ["model", "patch", "latent"],
    "INPAINT_VAEEncodeInpaintConditioning": ["vae", "pixels", "mask", "positive", "negative"],
    "VAEEncode": ["vae", "pixels"],
    "VAEEncodeForInpaint": ["vae", "pixels", "mask", "grow_mask_by"],
    "VAEEncodeTiled": ["vae", "pixels", "tile_size", "overlap", "temporal_size", "temporal_overlap"],
    "VAEDecode": ["vae", "samples"],
    "VAEDecodeTiled": ["vae", "samples", "tile_size", "overlap", "temporal_size", "temporal_overlap"],
    "SetLatentNoiseMask": ["samples", "mask"],
    "RepeatLatentBatch": ["samples", "amount"],
    "LatentCrop": ["samples", "x", "y", "width", "height"],
    "EmptyImage": ["width", "height", "color", "batch_size"],
    "ImageCrop": ["image", "x", "y", "width", "height"],
    "ImageScale": ["image", "width", "height", "upscale_method", "crop"],
    "HintImageEnchance": ["hint_image", "image_gen_width", "image_gen_height", "resize_mode"],
    "ImageUpscaleWithModel": ["upscale_model", "image"],
    "ImageInvert": ["image"],
    "ImageBatch": ["image1", "image2"],
    "ImageFromBatch": ["image", "batch_index", "length"],
    "INPAINT_InpaintWithModel": ["inpaint_model", "image", "mask", "seed"],
    "CropMask": ["mask", "x", "y", "width", "height"],
    "ImageToMask": ["image", "channel"],
    "ImageCompositeMasked": ["source", "destination", "mask", "x", "y", "resize_source"],
    "MaskToImage": ["mask"],
    "SolidMask": ["width", "height", "value"],
    "INPAINT_MaskedFill": ["image", "mask", "fill", "falloff"],
    "INPAINT_MaskedBlur": ["image", "mask", "blur", "falloff"],
    "INPAINT_ExpandMask": ["mask", "grow", "blur", "blur_type"],
    "ETN_ApplyMaskToImage": ["image", "mask"],
    "ETN_Translate": ["text"],
    "ETN_NSFWFilter": ["image", "sensitivity"],
    "ETN_InjectImage": ["id"],
    "ETN_InjectMask": ["id"],
    "ETN_ReturnImage": ["images"],
    "SaveImage": ["images", "filename_prefix"],
    "ETN_TileLayout": ["image", "min_tile_size", "padding", "blending", "multiple"],
    "ETN_ExtractImageTile": ["image", "layout", "index"],
    "ETN_ExtractMaskTile": ["mask", "layout", "index"],
    "ETN_MergeImageTile": ["layout", "index", "tile", "image"],
    "ETN_GenerateTileMask": ["layout", "index"],
    "ETN_ReferenceImage": ["image", "weight", "range_start", "range_end", "reference_images"],
    "ETN_ApplyReferenceImages": ["conditioning", "clip_vision", "style_model", "references"],
    "DWPreprocessor": ["image", "resolution", "detect_hand", "detect_body", "detect_face", "bbox_detector",
                       "pose_estimator"],
    "CreateHookLora": ["lora_name", "strength_model", "strength_clip", "prev_hooks"],
    "SetClipHooks": ["clip", "hooks", "apply_to_conds", "schedule_clip"],
    "PairConditioningSetDefaultCombine": ["positive", "negative", "positive_DEFAULT", "negative_DEFAULT"],
    "PairConditioningSetProperties": ["positive_NEW", "negative_NEW", "mask", "strength", "set_cond_area"],
    "PairConditioningSetPropertiesAndCombine": ["positive", "negative", "positive_NEW", "negative_NEW", "mask",
                                                "strength", "set_cond_area"],
    "CLIPLoaderGGUF": ["clip_name", "type"],
    "ModelPatchLoader": ["name"],
    "NunchakuFluxDiTLoader": ["model_path", "cache_threshold"],
    "NunchakuQwenImageDiTLoader": ["model_name", "cpu_offload", "num_blocks_on_gpu", "use_pin_memory"],
    "NunchakuZImageDiTLoader": ["model_name", "cpu_offload", "num_blocks_on_gpu", "use_pin_memory"],
    "NunchakuFluxLoraLoader": ["model", "lora_name", "lora_strength"],
    "T5TokenizerOptions": ["clip", "min_padding", "min_length"],
    "EmptyFlux2LatentImage": ["width", "height", "batch_size"],
    "EmptyHunyuanLatentVideo": ["width", "height", "length", "batch_size"],
    "LatentCutToBatch": ["samples", "dim", "slice_size"],
    "ReferenceLatent": ["conditioning", "latent"],
    "TextEncodeQwenImageEdit": ["clip", "vae", "image", "prompt"],
    "TextEncodeQwenImageEditPlus": ["clip", "vae", "image1", "image2", "image3", "prompt"],
    "ZImageFunControlnet": ["model", "model_patch", "vae", "image", "inpaint_image", "mask", "strength"],
    "Flux2Scheduler": ["steps", "width", "height"],
    "ImageStitch": ["image1", "image2", "direction", "match_image_size", "spacing_width", "spacing_color"],
    "INPAINT_ColorMatch": ["target", "reference", "exclude_mask", "strength"],
    "ThresholdMask": ["mask", "value"],
    "INPAINT_ShrinkMask": ["mask", "shrink", "blur", "blur_type"],
    "INPAINT_StabilizeMask": ["mask", "epsilon"],
    "ETN_LoadImageCache": ["id"],
    "ETN_SaveImageCache": ["images", "format"],
    "EasyCache": ["model", "reuse_threshold", "start_percent", "end_percent", "verbose"],
}

# emitted classes graphflow lacks, and why each is left out here
LEFT_OUT = {
    "ETN_InjectImage": "runtime mode only (the plugin's in-process runtime, never sent to a server)",
    "ETN_InjectMask": "runtime mode only",
    "ETN_ReturnImage": "runtime mode only",
    "IPAdapterFaceID": "face reference: needs InsightFace (IPAdapter_plus' FaceID), not built",
    "IPAdapterInsightFaceLoader": "face reference: loads InsightFace's buffalo_l, not built",
    "ETN_NSFWFilter": "needs the pack's NSFW classifier model, not built",
    "DWPreprocessor": "pose control layers: DWPose (YOLOX + RTMPose ONNX models), not built",
    "NunchakuFluxDiTLoader": "ComfyUI-nunchaku (SVDQuant 4-bit kernels), an optional pack the plugin checks for",
    "NunchakuQwenImageDiTLoader": "ComfyUI-nunchaku",
    "NunchakuZImageDiTLoader": "ComfyUI-nunchaku",
    "NunchakuFluxLoraLoader": "ComfyUI-nunchaku",
    "EmptyFlux2LatentImage": "FLUX.2 (Klein): ComfyUI newer than our catalogue (v0.3.64), no FLUX.2 model here",
    "Flux2Scheduler": "FLUX.2: newer than our catalogue",
    "LatentCutToBatch": "Qwen-Image-Layered: newer than our catalogue",
    "ZImageFunControlnet": "Z-Image's Fun ControlNet patch: newer than our catalogue, no Z-Image model here",
    "INPAINT_ColorMatch": "comfyui-inpaint-nodes' newest node: its source is not in the code index",
}

# resources.py's required_custom_nodes (DepthAnythingV2Preprocessor among them: built, on a weight
# file the user brings); INPAINT_ColorMatch (above) is required too, so the plugin refuses the server
# unless its "check server resources" setting is off
REQUIRED_NODES = ["InpaintPreprocessor", "IPAdapterModelLoader", "IPAdapter", "ETN_LoadImageCache",
                  "ETN_SaveImageCache", "ETN_Translate", "INPAINT_LoadFooocusInpaint", "INPAINT_ShrinkMask",
                  "INPAINT_StabilizeMask", "DepthAnythingV2Preprocessor"]

# (class, input) whose choices connect() reads as the server's model files (nodes.options)
MODEL_LISTS = [("DualCLIPLoader", "clip_name1"), ("VAELoader", "vae_name"), ("ControlNetLoader", "control_net_name"),
               ("CLIPVisionLoader", "clip_name"), ("IPAdapterModelLoader", "ipadapter_file"),
               ("ModelPatchLoader", "name"), ("StyleModelLoader", "style_model_name"),
               ("UpscaleModelLoader", "model_name"), ("INPAINT_LoadInpaintModel", "model_name"),
               ("LoraLoader", "lora_name"), ("CheckpointLoaderSimple", "ckpt_name"), ("UNETLoader", "unet_name")]


@pytest.fixture(scope="module")
def info(builtin_registry):
    return object_info(builtin_registry)


@pytest.fixture
def registry(builtin_registry):  # the server fixture's registry: every built-in node, as Krita's server has
    return builtin_registry


def _inputs(entry):
    return {**entry["input"]["required"], **entry["input"].get("optional", {})}


@pytest.mark.parametrize("class_type", sorted(set(EMITTED) - set(LEFT_OUT)))
def test_every_emitted_class_takes_the_inputs_the_plugin_sets(info, class_type):
    assert class_type in info, f"{class_type}: not in /object_info"
    missing = [name for name in EMITTED[class_type] if name not in _inputs(info[class_type])]
    assert not missing, f"{class_type}: no input {missing}"


def test_left_out_classes_are_truly_missing(info):
    # once one is built it belongs in the checked list above
    assert not [c for c in LEFT_OUT if c in info]


def test_required_custom_nodes_and_model_lists(info):
    assert [c for c in REQUIRED_NODES if c not in info] == []
    for class_type, name in MODEL_LISTS:
        choices = info[class_type]["input"]["required"][name][0]
        assert isinstance(choices, list), f"{class_type}.{name}: expected a list of files"


def _png(rgb: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rgb, "RGB").save(buffer, format="PNG")
    return buffer.getvalue()


async def test_connect_routes_answer_with_the_fields_read(start):
    client = await start()
    stats = await (await client.get("/system_stats")).json()
    device = stats["devices"][0]
    assert isinstance(device["name"], str) and isinstance(device["type"], str)
    assert isinstance(device["vram_total"], int)
    ws = await client.ws_connect("/ws?clientId=krita")
    assert (await ws.receive_json())["type"] == "status"
    await ws.close()
    nodes = await (await client.get("/object_info")).json()
    assert all(c in nodes for c in REQUIRED_NODES)
    assert all(isinstance(nodes[c]["input"]["required"][n][0], list) for c, n in MODEL_LISTS)
    languages = await client.get("/api/etn/languages")
    assert languages.status == 200 and await languages.json() == []


async def test_a_job_as_the_plugin_runs_it(start):
    """The picture PUT to the cache, POST /prompt with the plugin's own prompt_id, the websocket
    messages it reads (the id echoed in execution_start and the final executing), the result
    fetched by the id in executed's output."""
    client = await start()
    rgb = (np.arange(4 * 6 * 3, dtype=np.uint8).reshape(4, 6, 3) * 3)
    assert (await client.put("/api/etn/image/0a1b2c3d", data=_png(rgb))).status == 201
    ws = await client.ws_connect("/ws?clientId=krita")
    assert (await ws.receive_json())["type"] == "status"
    prompt = {"1": {"class_type": "ETN_LoadImageCache", "inputs": {"id": "0a1b2c3d"}},
              "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
              "3": {"class_type": "ETN_SaveImageCache", "inputs": {"images": ["2", 0], "format": "PNG"}}}
    job = "5b1c2b36-0f0e-4a39-9d3e-7c1f2a9b8e01"
    body = {"prompt": prompt, "client_id": "krita", "prompt_id": job}
    reply = await (await client.post("/prompt", json=body)).json()
    assert reply["prompt_id"] == job
    started, outputs = False, []
    while True:
        message = await asyncio.wait_for(ws.receive_json(), 30)
        if message["type"] == "execution_start":
            started = message["data"]["prompt_id"] == job
        if message["type"] == "executed" and message["data"]["prompt_id"] == job:
            outputs.extend(message["data"]["output"].get("images", []))
        if message["type"] == "executing" and message["data"]["node"] is None:
            assert message["data"]["prompt_id"] == job
            break
    await ws.close()
    assert started
    (image,) = [o for o in outputs if o.get("source") == "http"]
    result = await client.get(f"/api/etn/image/{image['id']}")
    assert result.status == 200
    # ImageInvert's 1 - x on the float picture, then 8-bit truncation as the pack's save does
    inverted = 1.0 - rgb.astype(np.float32) / 255.0
    expected = np.clip(255.0 * inverted, 0, 255).astype(np.uint8)
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(await result.read())).convert("RGB")), expected)
    assert (await client.post("/queue", json={"delete": [job]})).status == 200
    assert (await client.post("/interrupt", json={})).status == 200


async def test_a_failed_job_reports_as_the_plugin_reads_it(start):
    """A picture id the cache lacks: execution_error with the plugin's prompt_id and an
    exception_message (the text it shows), then executing node None."""
    client = await start()
    ws = await client.ws_connect("/ws?clientId=krita")
    assert (await ws.receive_json())["type"] == "status"
    prompt = {"1": {"class_type": "ETN_LoadImageCache", "inputs": {"id": "not-stored"}},
              "2": {"class_type": "ETN_SaveImageCache", "inputs": {"images": ["1", 0], "format": "PNG"}}}
    job = "0d6f1c9e-2b7a-4c55-8e3f-1a2b3c4d5e6f"
    await client.post("/prompt", json={"prompt": prompt, "client_id": "krita", "prompt_id": job})
    error = None
    while True:
        message = await asyncio.wait_for(ws.receive_json(), 30)
        if message["type"] == "execution_error":
            error = message["data"]
        if message["type"] == "executing" and message["data"]["node"] is None:
            break
    await ws.close()
    assert error["prompt_id"] == job
    assert "not-stored" in error["exception_message"]
    assert isinstance(error["traceback"], list)


def plugin_arch(base_model: str, model_type: str, filename: str) -> str | None:
    """resources.py's Arch.from_string, as the plugin's names of its Arch members (None: not offered)."""
    filename = filename.lower()
    if base_model == "sd15":
        return "sd15"
    if base_model == "sdxl":
        return "illu_v" if model_type == "v-prediction" else "sdxl"
    if base_model == "sd3":
        return "sd3"
    if base_model == "flux" and "kontext" in filename:
        return "flux_k"
    if base_model in ("flux", "flux-schnell"):
        return "flux"
    if base_model == "flux2":
        return {"klein-4b": "flux2_4b", "klein-9b": "flux2_9b"}.get(model_type)
    if base_model == "chroma":
        return "chroma"
    if base_model == "qwen-image":
        return "qwen"  # (edit / layered variants by file name)
    return "zimage" if base_model in ("z-image", "zimage") else None


def plugin_checkpoints(info: dict, gguf_options=()) -> dict[str, str]:
    """comfy_client.py's _refresh_models: parse_model_info's arch for each file, leaving out unknown
    ones, inpainting ones other than FLUX's, and refiners; then each UnetLoaderGGUF option not
    found so taken for FLUX."""
    found = {}
    for name, entry in info.items():
        arch = plugin_arch(entry["base_model"], entry.get("type", "eps"), name)
        if arch is None or (entry.get("is_inpaint", False) and arch != "flux") or entry.get("is_refiner", False):
            continue
        found[name] = arch
    for name in gguf_options:
        found.setdefault(name, "flux")
    return found


@pytest.fixture(scope="module")
def krita_checkpoints(tmp_path_factory):
    folder = tmp_path_factory.mktemp("krita_models") / "checkpoints"
    folder.mkdir()
    for arch in ("sd1", "sd1_inpaint", "sdxl", "sdxl_refiner"):
        testing.write_checkpoint(folder / f"{arch}.safetensors", arch)
    testing.write_checkpoint(folder / "illustrious_v.safetensors", "sdxl", extra={"v_pred": torch.zeros(1)})
    testing.write_flow_checkpoint(folder / "flux_fill.safetensors", "flux_fill")
    testing.write_flow_checkpoint(folder / "flux_kontext_dev.safetensors", "flux_dev")
    testing.write_lora(folder / "a_lora.safetensors", "sd1")
    return folder


async def test_model_discovery_as_the_plugin_pages_and_reads_it(start, home, krita_checkpoints):  # noqa: F811
    """try_inspect's pages of 8 (offset, limit, _meta's total) over checkpoints, diffusion_models
    and unet_gguf, then parse_model_info's reading: each file offered under the arch it is, the SD
    inpainting model, the refiner and the LoRA left out, FLUX Fill kept."""
    (home / "models").mkdir()
    (home / "models" / "checkpoints").symlink_to(krita_checkpoints)
    diffusion = home / "models" / "diffusion_models"
    diffusion.mkdir()
    # GGUF files named by general.architecture (the pack's inspect_gguf): Z-Image under its own arch,
    # a Wan file (no Arch of the plugin's) left to the plugin's FLUX fallback, as with the pack
    testing.write_gguf(diffusion / "z_image_turbo.gguf", {"cap_embedder.1.bias": torch.zeros(3840)}, "lumina2", {})
    testing.write_gguf(diffusion / "wan.gguf", {"x.weight": torch.zeros(4, 32)}, "wan", {})
    client = await start()
    nodes = await (await client.get("/object_info/UnetLoaderGGUF")).json()
    gguf_options = nodes["UnetLoaderGGUF"]["input"]["required"]["unet_name"][0]
    assert sorted(gguf_options) == ["wan.gguf", "z_image_turbo.gguf"]
    found = {}
    for folder in ("checkpoints", "diffusion_models", "unet_gguf"):
        offset, total = 0, 100
        while offset < total:
            answer = await client.get(f"/api/etn/model_info/{folder}?offset={offset}&limit=8")
            assert answer.status == 200
            page = await answer.json()
            total = page.pop("_meta")["total"]
            found.update(page)
            offset += 8
    assert plugin_checkpoints(found, gguf_options) == {
        "sd1.safetensors": "sd15", "sdxl.safetensors": "sdxl", "illustrious_v.safetensors": "illu_v",
        "flux_fill.safetensors": "flux", "flux_kontext_dev.safetensors": "flux_k", "graphflow-demo.safetensors": "sd15",
        "z_image_turbo.gguf": "zimage", "wan.gguf": "flux"}


async def test_shared_workflows_as_the_plugin_subscribes(start):  # noqa: F811
    """_listen's subscribe after each websocket connect, the published workflow read as
    SharedWorkflow("name (id)", workflow), disconnect's unsubscribe."""
    client = await start()
    ws = await client.ws_connect("/ws?clientId=krita")
    assert (await ws.receive_json())["type"] == "status"
    assert (await client.post("/api/etn/workflow/subscribe", json={"client_id": "krita"})).status == 200
    workflow = {"4": {"class_type": "ETN_KritaCanvas", "inputs": {}}}
    await client.post("/api/etn/workflow/publish", json={"name": "ComfyUI", "client_id": "tab7", "workflow": workflow})
    while (message := await asyncio.wait_for(ws.receive_json(), 10))["type"] != "etn_workflow_published":
        pass
    data = message["data"]
    assert f"{data['publisher']['name']} ({data['publisher']['id']})" == "ComfyUI (tab7)"
    assert data["workflow"] == workflow
    await ws.close()
    assert (await client.post("/api/etn/workflow/unsubscribe", json={"client_id": "krita"})).status == 200
