"""ComfyUI's workflow formats: reading its API-format and UI-format graphs, and writing both.

API format: `{"<id>": {"class_type": ..., "inputs": {...}, "_meta": {"title": ...}}}`.
UI format (what ComfyUI's editor saves and its PNGs carry): `nodes` (list), `links` (list),
positional `widgets_values` in the order of each class's `input_order`, Primitive and Reroute
nodes, muted (mode 2) and bypassed (mode 4) nodes, groups, and `definitions.subgraphs`. A pack's
forceInput input (ComfyAlias.force_input) had a value there in saves from editors before ComfyUI
frontend 1.16; such a save is read without those values, as the frontend migrates it.

A UI graph is first resolved into an API graph as ComfyUI's editor does when it queues, then
renamed onto our nodes through the registry's ComfyAlias table. The editor's parts of the UI
format live in our `ui` block, where the editor shows and edits them: positions, widths, titles,
muted and bypassed nodes (`ui.nodes[id].mode`, graphflow/node_modes.py), collapsed nodes and
node colours, groups (`ui.groups`, in ComfyUI's shape), notes (`ui.notes`) and Reroute points
(`ui.reroutes`, with each link's path through them in `ui.nodes[id].via`). What our format has
no place for (sizes, Primitives, the original links) goes into `ui.comfyui`, so that writing
the graph back as a UI graph gives the same nodes, links, values and layout.

The widget order of ComfyUI's core classes comes from comfy_catalogue.json (made by
tools/make_comfy_catalogue.py from ComfyUI's /object_info); for our own nodes it is their
declaration order.

Where several of our nodes claim one ComfyUI class name (two packs register "Blur";
Registry.claimants), a node is read as the claimant its save names: a UI node's properties cnr_id /
aux_id (the pack's Comfy registry id / GitHub repo, ComfyAlias.pack), else its input names (an
API prompt's inputs, a UI node's inputs[]); else the default. The choice is made once, as the
node's class is first read (_claimant_class), by renaming it to the claimant's
Registry.claimant_key (Registry.claimant_node looks it up; a key typed into a save is not one),
which every later step looks up; messages and writing back give the class name and, in a UI
graph, the pack ids.
"""

import copy
import json
import math
import random
import re
from datetime import datetime
from functools import cache
from importlib import resources
from typing import Any

from graphflow import comfy_pack_nodes
from graphflow.folders import split_annotation
from graphflow.node_modes import apply_modes, bypass_input
from graphflow.registry import KEY_SEP, claimant_key
from graphflow.workflow import (FORMAT_VERSION, Problem, Workflow, WorkflowFormatError, _short, _validated,
                                comfy_aliases, is_comfy_api_graph, is_link, literal, parse_workflow)

MUTED, BYPASSED = 2, 4
# the editor-only notes a UI save may hold: ComfyUI's, and comfy_mtb's Note Plus (its editor's own
# node class: its text, then its Mode, CSS and Theme widgets), kept in `ui.notes`
NOTE_TYPES = ("Note", "MarkdownNote", "Note Plus (mtb)")
# Note Plus's CSS and Theme widgets as its editor makes them (comfy_mtb web/note_plus.constants.js at
# 177b6ee: DEFAULT_CSS, DEFAULT_THEME), written for a Note Plus saved without its original node
NOTE_PLUS_CSS, NOTE_PLUS_THEME = "/** here you can write css**/\nh1 {\n    color: whitesmoke;\n}", "one_dark"
VIRTUAL_TYPES = {"Reroute", "PrimitiveNode", *NOTE_TYPES}
UPLOAD_INPUTS = ("upload", "choose file to upload")  # the editor's upload button, which some exports write
CONTROL_DEFAULT = "fixed"
CONTROL_VALUES = ("fixed", "increment", "decrement", "randomize")  # control_after_generate's choices
# Saves from before March 2023 hold a toggle's true/false there; ComfyUI's editor reads them as these
# (for KSampler, KSamplerAdvanced and PrimitiveNode; other nodes keep the boolean, which acts as fixed).
OLD_CONTROLS = {True: "randomize", False: "fixed"}
# Class names ComfyUI's editor renames when it loads a workflow (app.ts loadGraphData), and the
# KSampler samplers once saved with a "sample_" prefix, which it strips.
RENAMED_TYPES = {"T2IAdapterLoader": "ControlNetLoader", "ConditioningAverage ": "ConditioningAverage",
                 "SDV_img2vid_Conditioning": "SVD_img2vid_Conditioning"}
SAMPLE_PREFIXED = ("KSampler", "KSamplerAdvanced")
# (class, input, folder): the class a node is read as when its file name is annotated with that
# folder, since ours load from one folder each (ComfyUI's LoadImage reads "x.png [output]" too)
FOLDER_CLASSES = {("LoadImage", "image", "output"): "LoadImageOutput"}

# WAS Node Suite's classes held in nodes/pack_nodes_was*.py, matched by whole name only: as prefixes
# they would claim other packs' classes ("Random Number Generator", "Image Rotate (mtb)", "Mask Invert
# (Segment)"); "Lora Loader", "Checkpoint Loader" and "Text List" are left out for that reason too
WAS_CLASSES = ("CLIP Input Switch", "Checkpoint Loader (Simple)", "Conditioning Input Switch", "Constant Number",
               "Image Aspect Ratio", "Image Input Switch", "Image Size to Number", "Integer place counter",
               "Latent Input Switch", "Latent Size to Number", "Load Text File", "Logic Boolean",
               "Model Input Switch", "Number Input Condition", "Number Input Switch", "Number Multiple Of",
               "Number Operation", "Number PI", "Number to Float", "Number to Seed", "Number to String",
               "Number to Text", "Random Number", "Save Text File", "Seed (Legacy)", "String to Text",
               "Text Dictionary Update", "Text Find and Replace", "Text Input Switch", "Text List Concatenate",
               "Text Load Line From File", "Text Parse A1111 Embeddings", "Text Parse Tokens", "Text Random Line",
               "Text to Conditioning", "Text to Number", "Text to String", "Upscale Model Switch", "VAE Input Switch",
               "Image Crop Location", "Image Crop Square Location", "Image Filter Adjustments", "Image Blank",
               "Image Flip", "Image Rotate", "Image Levels Adjustment", "Image Threshold", "Image Remove Color",
               "Mask Invert", "Masks Add", "Masks Subtract", "Masks Combine Regions", "Mask Dilate Region",
               "Mask Erode Region", "Mask Fill Holes", "Mask Threshold Region", "Mask Gaussian Region",
               "Mask Floor Region", "Mask Ceiling Region", "Image to Latent Mask", "Image Select Channel",
               "Image Mix RGB Channels", "KSampler (Legacy)", "Image Paste Crop", "Image Bounds",
               "Inset Image Bounds", "Bounded Image Crop", "Bounded Image Blend", "Latent Upscale by Factor (WAS)",
               "Image Padding", "Image Edge Detection Filter", "Image High Pass Filter", "Image Bloom Filter",
               "Image Stitch", "Image Transpose", "Text Compare", "Text to Console", "Debug Number to Console",
               "Images to RGB", "Tensor Batch to Image", "Mask Batch to Mask", "Convert Masks to Images",
               "Text Add Tokens", "Text Add Token by Input", "Bounded Image Crop with Mask",
               "Bounded Image Blend with Mask", "Text Find and Replace Input", "Text Find and Replace by Dictionary")
# masquerade-nodes-comfyui's classes (nodes/pack_nodes_masquerade.py; Mask By Text and Create QR Code
# are left out there): generic names, matched whole only ("Blur" must not claim "Blur Image (Fast)")
MASQUERADE_CLASSES = ("Mask By Text", "Mask Morphology", "Combine Masks", "Unary Mask Op", "Unary Image Op", "Blur",
                      "Image To Mask", "Mix Images By Mask", "Mix Color By Mask", "Mask To Region", "Cut By Mask",
                      "Paste By Mask", "Get Image Size", "Change Channel Count", "Constant Mask", "Prune By Mask",
                      "Separate Mask Components", "Create Rect Mask", "Make Image Batch", "Create QR Code",
                      "Convert Color Space", "MasqueradeIncrementer")
# ComfyUI-Logic's generic bare class names (and its later "-🔬" ones): whole names only, never prefixes
LOGIC_CLASSES = ("Compare", "Int", "Float", "Bool", "String", "If ANY execute A else B", "DebugPrint",
                 "Compare-🔬", "Int-🔬", "Float-🔬", "Bool-🔬", "String-🔬", "If ANY return A else B-🔬",
                 "DebugPrint-🔬")
# ComfyUI-Image-Saver's classes (nodes/pack_nodes_image_saver.py) without its "(Image Saver)" suffix:
# giriss' older bare names ("String Literal", "Seed Generator") and the saver's own, whole names only
IMAGE_SAVER_CLASSES = ("Image Saver", "Image Saver Simple", "Image Saver Metadata", "Make Image Saver Pipe",
                       "Edit Image Saver Pipe", "Read Image Saver Pipe", "Image Saver (From Pipe)",
                       "Save Image w/Metadata", "Checkpoint Selector", "Sampler Selector", "Scheduler Selector",
                       "Seed Generator", "String Literal", "Width/Height Literal", "Cfg Literal", "Int Literal")
# FizzleDorf's ComfyUI_FizzNodes classes (nodes/pack_nodes_fizz.py; the two commented out of the pack's
# table are left out there): generic names, matched whole only ("Lerp" must not claim another pack's
# "LerpLatents"). Its StringConcatenate is not here: ComfyUI's core class took it.
FIZZ_CLASSES = ("BatchPromptSchedule", "PromptSchedule", "BatchPromptScheduleLatentInput", "ValueSchedule",
                "BatchValueSchedule", "BatchValueScheduleLatentInput", "StringSchedule", "BatchStringSchedule",
                "PromptScheduleNodeFlow", "PromptScheduleNodeFlowEnd", "BatchPromptScheduleNodeFlowEnd",
                "PromptScheduleEncodeSDXL", "BatchPromptScheduleEncodeSDXL", "BatchPromptScheduleSDXLLatentInput",
                "BatchGLIGENSchedule", "ImagesFromBatchSchedule", "Init FizzFrame", "FizzFrame", "FizzFrameConcatenate",
                "ConcatStringSingle", "convertKeyframeKeysToBatchKeys", "CalculateFrameOffset", "Lerp", "SinWave",
                "InvSinWave", "CosWave", "InvCosWave", "SquareWave", "SawtoothWave", "TriangleWave", "AbsCosWave",
                "AbsSinWave")
# BlenderNeko's ComfyUI_ADV_CLIP_emb (nodes/pack_nodes_adv_clip.py) with its early BNK_MixCLIPEmbeddings, whole
# names only: "BNK_" is also the prefix of his Tiled KSampler, Noise and Cutoff packs' classes
ADV_CLIP_CLASSES = ("BNK_CLIPTextEncodeAdvanced", "BNK_CLIPTextEncodeSDXLAdvanced", "BNK_AddCLIPSDXLParams",
                    "BNK_AddCLIPSDXLRParams", "BNK_MixCLIPEmbeddings")
# BlenderNeko's ComfyUI_Noise (nodes/pack_nodes_bnk_noise.py), whole names only for the same reason
NOISE_CLASSES = ("BNK_NoisyLatentImage", "BNK_DuplicateBatchIndex", "BNK_SlerpLatent", "BNK_GetSigma",
                 "BNK_InjectNoise", "BNK_Unsampler")
# BlenderNeko's ComfyUI_TiledKSampler (nodes/pack_nodes_tiled_ksampler.py), whole names only (see above)
TILED_KSAMPLER_CLASSES = ("BNK_TiledKSampler", "BNK_TiledKSamplerAdvanced")
# BlenderNeko's ComfyUI_Cutoff (nodes/pack_nodes_cutoff.py), whole names only (see above): listed so that
# its module's COMFY_PACK is a known pack (docs/comfyui.md groups its classes under it)
CUTOFF_CLASSES = ("BNK_CutoffBasePrompt", "BNK_CutoffSetRegions", "BNK_CutoffRegionsToConditioning",
                  "BNK_CutoffRegionsToConditioning_ADV")
# shiimizu's ComfyUI_smZNodes (nodes/pack_nodes_smz.py), whole names: "smZ " starts no other pack's classes we know
SMZ_CLASSES = ("smZ CLIPTextEncode", "smZ Settings")
# lquesada's ComfyUI-Inpaint-CropAndStitch (nodes/pack_nodes_crop_stitch.py and _old.py), its Improved nodes and old
# ones; whole names only: "InpaintCrop" is a prefix of the Improved node's name
CROP_STITCH_CLASSES = ("InpaintCropImproved", "InpaintStitchImproved", "InpaintCrop", "InpaintStitch",
                       "InpaintExtendOutpaint", "InpaintResize")
# comfyanonymous' ComfyUI_experiments (nodes/pack_nodes_experiments.py), whole names: its ModelMergeSDXL is
# not here (ComfyUI's core class of that name wins), and "ModelMergeBlockNumber" must not claim longer names
EXPERIMENTS_CLASSES = ("ReferenceOnlySimple", "RescaleClassifierFreeGuidanceTest", "ModelSamplerTonemapNoiseTest",
                       "TonemapNoiseWithRescaleCFG", "ModelMergeBlockNumber", "ModelMergeSDXLTransformers",
                       "ModelMergeSDXLDetailedTransformers")
# Derfuu's first layout, from when the pack was "Derfuu_ComfyUI_CustomNodes" (__init__.py at dd6557a):
# "_DF"-suffixed classes with other inputs than today's, none of them ours (nodes/pack_nodes_derfuu.py)
DERFUU_FIRST_CLASSES = (
    "FloatNode_DF", "IntegerNode_DF", "StringNode_DF", "TupleNode_DF", "MultilineStringNode_DF", "FloatDebugPrint_DF",
    "IntDebugPrint_DF", "TupleDebugPrint_DF", "RandomFloat_DF", "Float2Tuple_DF", "Tuple2Float_DF", "Int2Float_DF",
    "CeilNode_DF", "FloorNode_DF", "ABSNode_DF", "GetLatentSize_DF", "GetImageSize_DF", "SumNode_DF",
    "SubtractNode_DF", "MultiplyNode_DF", "DivideNode_DF", "PowNode_DF", "SqrtNode_DF", "SinNode_DF", "CosNode_DF",
    "TanNode_DF", "EmptyLatentImage_DF", "LatentScale_Ratio_DF", "LatentScale_Side_DF", "ImageScale_Ratio_DF",
    "ImageScale_Side_DF", "ConditioningSetArea_DF", "ConditioningSetAreaEXT_DF")
# Jonseed's ComfyUI-Detail-Daemon (nodes/pack_nodes_detail_daemon.py), its forks' class names too (their
# Advanced Lying Sigma and Wan 2.1 sampler are not ours), whole names only
DETAIL_DAEMON_CLASSES = ("DetailDaemonSamplerNode", "DetailDaemonGraphSigmasNode", "MultiplySigmas", "LyingSigmaSampler",
                         "DetailDaemonSampler", "DetailDaemonGraphSigmas", "DetailDaemonSamplerGUINode",
                         "AdvancedLyingSigmaSamplerNode", "DetailDaemonWan21Sampler")
# M1kep's ComfyLiterals (nodes/pack_nodes_comfy_literals.py) but its bare Int / Float / String, which
# ComfyUI-Logic's names claim (its nodes answer them, reading ComfyLiterals' inputs too)
LITERALS_CLASSES = ("Operation", "Checkpoint", "Lora", "KepStringLiteral")
# bash-j's mikey_nodes (nodes/pack_nodes_mikey.py holds its model-free ones), whole names only
MIKEY_CLASSES = ("Empty Latent Ratio Select SDXL", "Empty Latent Ratio Custom SDXL", "Ratio Advanced",
                 "Resize Image for SDXL", "Upscale Tile Calculator", "Seed String", "Int to String",
                 "Float to String", "Range Float", "Range Integer", "TextConcat", "TextCombinations",
                 "Wildcard Processor", "Prompt With Style", "Prompt With SDXL", "Style Conditioner", "Mikey Sampler",
                 "Mikey Sampler Base Only", "Save Image With Prompt Data",
                 "Save Images Mikey", "Save Images No Display", "HaldCLUT ", "Batch Resize Image for SDXL",
                 "Batch Crop Image", "Batch Load Images", "ImageOverlay", "Image Caption",
                 "Checkpoint Loader Simple Mikey")
# mikey_nodes' classes left out on purpose, with why
MIKEY_LEFT_OUT = {
    **dict.fromkeys(("AddMetaData", "SaveMetaData"),
                    "it changes ComfyUI's hidden extra_pnginfo, which graphflow's nodes do not reach"),
    **dict.fromkeys(("OobaPrompt", "WildcardOobaPrompt", "LMStudioPrompt"),
                    "it asks a local LLM web service (text-generation-webui / LM Studio) for the prompt"),
    # not built this round: each needs more than the nodes here give
    **dict.fromkeys(("Prompt With Style V2", "Prompt With Style V3"),
                    "not built yet: it loads the <lora:name:weight> LoRAs named in the prompt onto the model and "
                    "clip and encodes base and refiner prompts several ways (needs LoRA-in-prompt parsing and "
                    "its encode chain)"),
    "Mikey Sampler Tiled": "not built yet: its hires pass samples the upscaled picture tile by tile with the "
                           "pack's own tile split, blending and histogram matching, which no core node does",
    "Mikey Sampler Base Only Advanced": "not built yet: its upscale choice mixes upscale-model files with "
                                        "ImageScaleBy's methods and its hires pass can sample tile by tile (the "
                                        "pack's own tiling); it needs both written first",
}
# adieyal's comfyui-dynamicprompts: the classes nodes/pack_nodes_dynamic_prompts.py leaves out, with why
DYNAMIC_PROMPTS_LEFT_OUT = {
    "DPJinja": "the library renders its Jinja2 template outside jinja2's sandbox, so a template could run "
               "code; graphflow refuses it (write the template with Random or Combinatorial Prompts' syntax)",
    "DPFeelingLucky": "it asks a web service (lexica.art) for prompts, which graphflow does not call",
    "DPMagicPrompt": "it downloads a GPT-2 prompt model from the Hugging Face hub at run time",
}
# spacepxl's ComfyUI-Image-Filters classes graphflow leaves out (nodes/pack_nodes_image_filters.py says why)
IMAGE_FILTERS_LEFT_OUT = ("AlphaMatte", "BatchAlign", "ModelTest")
# WAS Node Suite's classes left out of nodes/pack_nodes_was*.py because they need model weights or a
# web service, with why (read from the suite's WAS_Node_Suite.py; the modules' docstrings name the rest)
WAS_LEFT_OUT = {
    **dict.fromkeys(("BLIP Model Loader", "BLIP Analyze Image"),
                    "it downloads Salesforce's BLIP captioning / question models from the Hugging Face hub"),
    **dict.fromkeys(("MiDaS Model Loader", "MiDaS Depth Approximation", "MiDaS Mask Image"),
                    "it downloads the MiDaS depth model through torch.hub (intel-isl/MiDaS) at run time"),
    **dict.fromkeys(("SAM Model Loader", "SAM Image Mask"),
                    "it clones Meta's segment-anything and downloads its weights at run time"),
    # two small text-to-points nodes, but their SAM_PARAMETERS go only to SAM Image Mask (above)
    **dict.fromkeys(("SAM Parameters", "SAM Parameters Combine"),
                    "its SAM_PARAMETERS points feed only SAM Image Mask, which needs Meta's SAM weights"),
    "Image Rembg (Remove Background)": "it needs the rembg package, which downloads its U^2-Net models at run time",
    "Diffusers Model Loader": "it calls comfy.diffusers_convert.load_diffusers, which ComfyUI no longer has "
                              "(ComfyUI's own DiffusersLoader loads such folders here)",
    "Diffusers Hub Model Down-Loader": "it downloads a diffusers model from the Hugging Face hub",
    **dict.fromkeys(("CLIPSeg Model Loader", "CLIPSeg Masking", "CLIPSeg Batch Masking", "CLIPSEG2"),
                    "it needs the CLIPSeg model's weights"),
    "True Random.org Number Generator": "it asks random.org's web service for its numbers",
    "Image Send HTTP": "it sends the images to a web address",
}
# Nourepide's ComfyUI-Allor (nodes/pack_nodes_allor*.py): the classes left out on purpose, with why;
# ALLOR_LATER are those not built yet (named so an unknown one is named as the pack's)
ALLOR_LEFT_OUT = dict.fromkeys(
    ("ImageSegmentation", "ImageSegmentationCustom", "ImageSegmentationCustomAdvanced"),
    "it needs the rembg package, which downloads its background-removal models at run time")
ALLOR_LATER = ("ImageEffectsLensBokeh", "ImageEffectsLensZoomBurst", "ImageEffectsChromaticAberration",
               "ImageBatchCopy", "ImageBatchRemoveByMask")
# sipherxyz's comfyui-art-venture (nodes/pack_nodes_art_venture.py): its model-free classes built so far (whole
# names: "ImageRepeat", "RandomInt" ... as prefixes would claim other packs' classes); its "AV_" classes by prefix
ART_VENTURE_CLASSES = ("ImageMuxer", "ImageScaleDown", "ImageScaleDownBy", "ImageScaleDownToSize",
                       "ImageScaleToMegapixels", "ImageAlphaComposite", "ImageGaussianBlur", "ImageRepeat",
                       "ImageExtractChannel", "ImageApplyChannel", "ColorBlend", "OverlayInpaintedLatent",
                       "StringToInt", "StringToNumber",
                       "BooleanPrimitive", "NumberScaler", "RandomInt", "RandomFloat", "SeedSelector",
                       "AspectRatioSelector", "SDXLAspectRatioSelector", "CheckpointNameSelector",
                       "TextRandomMultiline", "TextSwitchCase", "LoadJsonFromText", "GetObjectFromJson",
                       "GetTextFromJson", "GetFloatFromJson", "GetIntFromJson", "GetBoolFromJson",
                       # round 2 (nodes/pack_nodes_art_venture2.py)
                       "PrepareImageAndMaskForInpaint", "OverlayInpaintedImage", "CreateExpandedCanvasForOutpaint",
                       "MergeModels", "Fooocus_KSampler", "Fooocus_KSamplerAdvanced", "Fooocus_KSamplerEfficient")
# comfyui-art-venture's classes graphflow leaves out, with why (read from the NODE_CLASS_MAPPINGS of its modules:
# utility_nodes.py at 8e83109a4ea8507beb5cf79476fde9a94d4cd840 and the other modules' as the code index holds them)
ART_VENTURE_LEFT_OUT = {
    **dict.fromkeys(("LoadImageFromUrl", "LoadImageAsMaskFromUrl"),
                    "it loads pictures from web addresses, data: URLs and file:// paths anywhere on the machine; "
                    "graphflow fetches nothing and reads pictures only from its inputs folder (LoadImage, "
                    "LoadImageMask)"),
    "LoadJsonFromUrl": "it downloads the JSON from a web address (LoadJsonFromText reads it from text)",
    "AV_UploadImage": "it uploads the images to Art Venture's web service",
    "QRCodeGenerator": "it pip-installs the qrcode package at run time, which graphflow neither does nor depends on",
    **dict.fromkeys(("ISNetLoader", "ISNetSegment", "DownloadISNetModel"),
                    "it runs (or downloads) the ISNet / DIS background-segmentation model"),
    **dict.fromkeys(("AV_SAMLoader", "GetSAMEmbedding", "SAMEmbeddingToImage"),
                    "it runs Meta's segment-anything model through the pack's own loader"),
    **dict.fromkeys(("LaMaInpaint", "LoadLaMaModel", "LaMaLoader"),
                    "it runs LaMa through the pack's own loader, which downloads its weights "
                    "(INPAINT_LoadInpaintModel / INPAINT_InpaintWithModel run LaMa files here)"),
    **dict.fromkeys(("BLIPLoader", "BLIPCaption", "DownloadAndLoadBlip"),
                    "it runs (or downloads) Salesforce's BLIP captioning model"),
    "DeepDanbooruCaption": "it runs (and downloads) the DeepDanbooru tagging model",
    **dict.fromkeys(("AV_OpenAIApi", "AV_OpenRouterApi", "AV_ClaudeApi", "AV_GeminiApi", "AV_AwsBedrockClaudeApi",
                     "AV_AwsBedrockMistralApi", "AV_LLMApiConfig", "AV_NanoBananaApiConfig", "AV_LLMMessage",
                     "AV_LLMTextMessage", "AV_LLMImageMessage", "AV_LLMChat", "AV_LLMCompletion"),
                    "it asks (or sets up a call to) a language-model web service"),
    "DependenciesEdit": "it unpacks an 8-entry DEPENDENCIES tuple (Efficiency Nodes' early loaders'); the Efficient "
                        "Loader's today, graphflow's too, has 16 entries, which it cannot unpack",
    # in older versions of its ip_adapter_nodes.py only (AV_IPAdapter / AV_IPAdapterPipe are
    # nodes/pack_nodes_art_venture3.py)
    # both read the pictures of their JSON's urls with the pack's load_images_from_url (utility_nodes.py)
    "AV_StyleApply": "it loads the pictures its JSON names (web addresses, data: URLs, file:// paths anywhere on "
                     "the machine, ComfyUI /view references) as LoadImageFromUrl does; graphflow fetches nothing "
                     "and reads pictures only from its inputs folder (IPAdapterUnifiedLoader, IPAdapterEncoder per "
                     "picture, IPAdapterCombineEmbeds \"average\" two at a time and IPAdapterEmbeds do its work on "
                     "LoadImage's pictures)",
    "AV_IPAdapterEncodeFromJson": "it loads the pictures its JSON names (web addresses, data: URLs, file:// paths "
                                  "anywhere on the machine, ComfyUI /view references) as LoadImageFromUrl does, "
                                  "which graphflow does not; and it makes IPAdapter_plus v1's stacked (positive, "
                                  "negative) EMBEDS, which no graphflow node takes (IPAdapterEncoder's are one "
                                  "side), with v1's noise (a seeded elastic transform) and squared per-picture "
                                  "weights; its version of the pack loads only beside IPAdapter_plus v1",
    "AV_IPAdapterApplyEncoded": "it applies the stacked (positive, negative) embeds of AV_IPAdapterEncodeFromJson "
                                "(left out) or IPAdapter_plus v1's encoder, which nothing in graphflow makes; its "
                                "weight types original / linear / channel penalty are IPAdapterEmbeds' scalings "
                                "V only / K+V / K+mean(V) w/ C penalty, and its version of the pack loads only "
                                "beside IPAdapter_plus v1",
    "Fooocus_KSamplerEfficientAdvanced": "the pack gives it KSampler (Efficient)'s inputs but calls KSampler Adv. "
                                         "(Efficient)'s function with them, so it cannot run there (Fooocus_KSampler"
                                         "Advanced has the sharpness with KSamplerAdvanced's inputs)",
}
# filliptm's ComfyUI_Fill-Nodes (nodes/pack_nodes_fill.py, round 1; nodes/pack_nodes_fill2.py, round 2;
# nodes/pack_nodes_fill3.py, round 3): its classes left out on purpose, with
# why, and FILL_LATER, those not built yet; from its __init__.py at 003fd21a70528c707c34178543948fa992458781
# (the web-API classes also from its __init__.py at ce59dd105619de8c336a7fa0df30f4400069339e)
# (every class is "FL_..."; CUSTOM_PACKS claims the prefix)
_FILL_CALLS = "it calls {}'s web service"
FILL_LEFT_OUT = {
    **dict.fromkeys(("FL_GeminiVideoCaptioner", "FL_GeminiImageEditor", "FL_GeminiTextAPI", "FL_GeminiImageGenADV"),
                    _FILL_CALLS.format("Google's Gemini")),
    **dict.fromkeys(("FL_VertexGemini25FlashImage", "FL_Veo3VideoGen"), _FILL_CALLS.format("Google Vertex AI")),
    **dict.fromkeys(("FL_GPT_Image1", "FL_GPT_Image1_ADV", "FL_GPT_Vision", "FL_SimpleGPTVision", "FL_GPT_Text",
                     "FL_Dalle3"), _FILL_CALLS.format("OpenAI")),
    "FL_PixVerseAPI": _FILL_CALLS.format("PixVerse"),
    **dict.fromkeys(("FL_Fal_Pixverse", "FL_Fal_Pixverse_LipSync", "FL_Fal_Pixverse_Transition", "FL_Fal_Kontext",
                     "FL_Fal_Sora", "FL_Fal_Seedance_i2v", "FL_Fal_Seedream_Edit", "FL_Fal_SeedVR_Upscale",
                     "FL_Fal_Kling_AIAvatar", "FL_Fal_Gemini_ImageEdit"), _FILL_CALLS.format("fal.ai")),
    "FL_Hedra_API": _FILL_CALLS.format("Hedra"),
    **dict.fromkeys(("FL_RunwayAct2", "FL_RunwayImageAPI"), _FILL_CALLS.format("Runway")),
    **dict.fromkeys(("FL_CodeNode", "FL_JS"), "it runs code typed into the workflow (Python / JavaScript): a saved "
                                              "workflow would run whatever it holds"),
    **dict.fromkeys(("FL_NodeLoader", "FL_NodePackLoader"), "it loads other code into the server while it runs"),
    "FL_SendToDiscordWebhook": "it posts the images to a Discord webhook",
    **dict.fromkeys(("FL_HFHubModelUploader", "FL_HF_UploaderAbsolute", "FL_HF_Character", "FL_HFDatasetDownloader"),
                    "it uploads to or downloads from the Hugging Face hub"),
    **dict.fromkeys(("FL_GoogleDriveDownloader", "FL_GoogleDriveImageDownloader"),
                    "it downloads from Google Drive"),
    "FL_GoogleCloudStorage": "it uploads to Google Cloud Storage",
    "FL_OllamaCaptioner": "it asks an Ollama server's language model for captions",
    "FL_Glitch": "it needs the glitch_this package, which graphflow does not declare",
    **dict.fromkeys(("FL_InfiniteZoom", "FL_Shadertoy", "FL_PaperDrawn"),
                    "it renders with an OpenGL shader (PyOpenGL and glfw, a window on a display)"),
    **dict.fromkeys(("FL_ImageCaptionLayoutPDF", "FL_PDFLoader", "FL_PDFToImages", "FL_PDFSaver", "FL_ImagesToPDF",
                     "FL_PDFMerger", "FL_PDFTextExtractor", "FL_PDFImageExtractor", "FL_BulkPDFLoader", "FL_TextToPDF",
                     "FL_PDFEncryptor"),
                    "it reads, writes or renders PDF files with PyPDF2, PyMuPDF (fitz), pdf2image or reportlab, which "
                    "graphflow does not declare (its PDF socket passes only between these nodes)"),
    "FL_HunyuanDelight": "it downloads Hunyuan3D's delight model from the Hugging Face hub and runs it with diffusers",
    "FL_WF_Agent": "it asks Google's Gemini for JavaScript and runs it on the workflow in the editor",
}
FILL_LATER = ("FL_BatchAlign", "FL_TimeLine")
# Acly's comfyui-tooling-nodes (nodes/pack_nodes_etn.py): its classes left out on purpose, with why, and
# ETN_LATER, those not built yet; from its __init__.py at b08b3779bf0288bf3a83b697b553c3eaf2a89573
# (every class is "ETN_..."; CUSTOM_PACKS claims the prefix)
ETN_LEFT_OUT = {
    "ETN_NSFWFilter": "it runs the Stable Diffusion safety checker model (a CLIP image classifier the pack downloads)",
    "ETN_KritaStyle": "Krita alone answers it (Krita's chosen style's model, prompts and sampler); the pack's own node "
                      "only fails, \"This workflow must be started from Krita!\"",
}
ETN_LATER = {
    "ETN_KritaCanvasResize": "not built yet: the index holds the class name in the pack's list, not its source",
}
# twri's sdxl_prompt_styler (nodes/pack_nodes_sdxl_styler.py), whole names only: other packs' stylers
# (wolfden's "SDXLPromptStylerbyMood" ...) start with "SDXLPromptStyler" too
SDXL_STYLER_CLASSES = ("SDXLPromptStyler", "SDXLPromptStylerAdvanced",
                       *(name + suffix for name in ("ArtistStyler", "CameraStyler", "CompositionStyler", "DepthStyler",
                                                    "EnvironmentStyler", "FilterStyler", "FocusStyler",
                                                    "LightingStyler", "MilehighStyler", "MoodStyler", "SubjectStyler",
                                                    "ThemeStyler", "TimeofdayStyler", "PerfectionStyler")
                         for suffix in ("", "Advanced")))
# chflame163's ComfyUI_LayerStyle_Advance: the model-running classes that moved there from ComfyUI_LayerStyle
# (whole names, the same "LayerMask: " / "LayerUtility: " prefixes as the pack's), with why graphflow has none of
# them; from the NODE_CLASS_MAPPINGS of its py/ files, read at commits 68493c1a9e4b615b2afe9b4c3f069348ce5a6a6f
# (segment_anything_ultra_v2.py) and 089c3d8bb616c450d49aad416621c3b683ef0bb2 (birefnet_ultra_v2.py) of
# chflame163's repository, and in the yukselyusuf/ComfyUI_LayerStyle_Advance mirror at
# b9757d4988cb4351fe2c9a5bea16015b01601a25 (most files), 61660a4b557bcd4399262e18a3f02392baea0b65 (ben_ultra.py),
# a4f3112cbeacef74b7ad2266fed5d7f65e52aeb1 (florence2_ultra.py), 4250df99ed9b01b90e16c3dcef6b83abd69d4196
# (human_parts_ultra.py, object_detector.py), 4d9a819dbb35eb99f51c2e685aea91bf983517ec (joycaption_alpha_2.py),
# b17bfc5e2dbd325292802da1a86ec71e8f9af595 (segment_anything_ultra_v3.py), 25a6931c34b12ab897653d9ca5ea567e6f97e5dd
# (smol.py). Its classes that run no model (BBox joins and drawing, ...) and its online-API ones are not listed.
_ADVANCE_RUNS = "it runs {} ComfyUI_LayerStyle_Advance downloads"
LAYERSTYLE_ADVANCE_LEFT_OUT = {
    **dict.fromkeys(("LayerMask: SegmentAnythingUltra", "LayerMask: SegmentAnythingUltra V2",
                     "LayerMask: SegmentAnythingUltra V3", "LayerMask: LoadSegmentAnythingModels"),
                    _ADVANCE_RUNS.format("(or loads) the SAM and GroundingDINO segmentation models")),
    **dict.fromkeys(("LayerMask: SAM2Ultra", "LayerMask: SAM2VideoUltra"),
                    _ADVANCE_RUNS.format("the SAM2 segmentation model")),
    "LayerMask: EVFSAMUltra": _ADVANCE_RUNS.format("the EVF-SAM segmentation model"),
    **dict.fromkeys(("LayerMask: BiRefNetUltra", "LayerMask: BiRefNetUltraV2", "LayerMask: LoadBiRefNetModel",
                     "LayerMask: LoadBiRefNetModelV2"),
                    _ADVANCE_RUNS.format("(or loads) the BiRefNet segmentation model")),
    **dict.fromkeys(("LayerMask: BenUltra", "LayerMask: LoadBenModel"),
                    _ADVANCE_RUNS.format("(or loads) the BEN background-removal model")),
    **dict.fromkeys(("LayerMask: PersonMaskUltra", "LayerMask: PersonMaskUltra V2",
                     "LayerMask: MediapipeFacialSegment"),
                    _ADVANCE_RUNS.format("MediaPipe's segmentation models")),
    **dict.fromkeys(("LayerMask: HumanPartsUltra", "LayerMask: HumanPartsUltraLoadModel"),
                    _ADVANCE_RUNS.format("(or loads) a human-parts segmentation model")),
    "LayerMask: TransparentBackgroundUltra": _ADVANCE_RUNS.format("the transparent-background segmentation model"),
    **dict.fromkeys(("LayerMask: YoloV8Detect", "LayerMask: ObjectDetectorYOLO8", "LayerMask: ObjectDetectorYOLOWorld",
                     "LayerMask: ObjectDetectorYOLOWorldLoadModel"),
                    _ADVANCE_RUNS.format("(or loads) YOLO detection models")),
    **dict.fromkeys(("LayerMask: Florence2Ultra", "LayerMask: LoadFlorence2Model", "LayerMask: ObjectDetectorFL2",
                     "LayerUtility: Florence2Image2Prompt"),
                    _ADVANCE_RUNS.format("(or loads) the Florence-2 vision-language model")),
    "LayerUtility: LaMa": _ADVANCE_RUNS.format("the inpainting models (LaMa and others)"),
    **dict.fromkeys(("LayerUtility: QWenImage2Prompt", "LayerUtility: LlamaVision", "LayerUtility: PhiPrompt",
                     "LayerUtility: LoadJoyCaption2Model", "LayerUtility: JoyCaption2",
                     "LayerUtility: JoyCaption2Split", "LayerUtility: JoyCaption2ExtraOptions",
                     "LayerUtility: LoadSmolLM2Model", "LayerUtility: LoadSmolVLMModel", "LayerUtility: SmolLM2",
                     "LayerUtility: SmolVLM"),
                    _ADVANCE_RUNS.format("(or loads, or sets up) a language or vision-language model")),
}
# kijai's ComfyUI-IC-Light (nodes/pack_nodes_iclight.py): all its classes are ours; whole names, as
# "LightSource" / "DetailTransfer" would claim other packs' longer names
ICLIGHT_CLASSES = ("LoadAndApplyICLightUnet", "ICLightConditioning", "LightSource", "CalculateNormalsFromImages",
                   "LoadHDRImage", "BackgroundScaler", "DetailTransfer")
# huchenlei's ComfyUI-IC-Light-Native (nodes/pack_nodes_iclight_native.py, ic_light_nodes.py 22d923a811ff):
# its helpers are ours; its apply node is left out, with why
ICLIGHT_NATIVE_CLASSES = ("ICLightApplyMaskGrey", "VAEEncodeArgMax")
ICLIGHT_NATIVE_LEFT_OUT = {
    "ICLightAppply": "it takes the IC-Light UNet as a second MODEL and sets its concat latent on every model call "
                     "through a UNet wrapper; graphflow runs IC-Light through kijai's LoadAndApplyICLightUnet and "
                     "ICLightConditioning (the same offset, the latent carried by the conditioning)",
}
# kijai's ComfyUI-DepthAnythingV2 (nodes/pack_nodes_depth_anything_v2.py, nodes.py 047a4ecf): both its classes
DEPTH_ANYTHING_V2_CLASSES = ("DownloadAndLoadDepthAnythingV2Model", "DepthAnything_V2")
# shiimizu's ComfyUI-TiledDiffusion (nodes/pack_nodes_tiled_diffusion.py), whole names: "TiledDiffusion" starts
# its other classes' names
TILED_DIFFUSION_CLASSES = ("TiledDiffusion", "SpotDiffusionParams_TiledDiffusion", "TiledDiffusionParams_TiledDiffusion",
                           # its Tiled VAE (nodes/pack_nodes_tiled_vae.py)
                           "VAEEncodeTiled_TiledDiffusion", "VAEDecodeTiled_TiledDiffusion")
TILED_DIFFUSION_LEFT_OUT: dict[str, str] = {}
# welltop-cn's ComfyUI-TeaCache (nodes/pack_nodes_teacache.py, nodes.py 3657f7f5): both its classes are ours;
# whole names, "CompileModel" being generic
TEACACHE_CLASSES = ("TeaCache", "CompileModel")
# chengzeyi's Comfy-WaveSpeed (nodes/pack_nodes_wavespeed.py; its class list from __init__.py ff9e0699)
WAVESPEED_CLASSES = ("ApplyFBCacheOnModel",)
WAVESPEED_LEFT_OUT = dict.fromkeys(
    ("VelocatorLoadAndQuantizeDiffusionModel", "VelocatorLoadAndQuantizeClip", "VelocatorQuantizeModel",
     "VelocatorCompileModel"),
    "it quantizes or compiles through WaveSpeed's closed `velocator` package, which graphflow does not carry")
WAVESPEED_LATER = dict.fromkeys(
    ("ApplyFBCacheOnModelAdvanced", "EnhancedLoadDiffusionModel", "EnhancedCompileModel"),
    "not built yet: the index holds the class name in the pack's list; its source was not read for this round")
WHOLE_NAMES = frozenset((*TILED_DIFFUSION_CLASSES, *TILED_DIFFUSION_LEFT_OUT,
                         *WAS_CLASSES, *WAS_LEFT_OUT, *MASQUERADE_CLASSES, *LOGIC_CLASSES, *IMAGE_SAVER_CLASSES,
                         *IMAGE_FILTERS_LEFT_OUT, *DERFUU_FIRST_CLASSES, *FIZZ_CLASSES, *ADV_CLIP_CLASSES,
                         *DETAIL_DAEMON_CLASSES, *LITERALS_CLASSES, *MIKEY_CLASSES, *MIKEY_LEFT_OUT, *NOISE_CLASSES,
                         *TILED_KSAMPLER_CLASSES, *SMZ_CLASSES, *CUTOFF_CLASSES, *CROP_STITCH_CLASSES,
                         *DYNAMIC_PROMPTS_LEFT_OUT, *EXPERIMENTS_CLASSES, *SDXL_STYLER_CLASSES, *ALLOR_LEFT_OUT,
                         *ALLOR_LATER, *LAYERSTYLE_ADVANCE_LEFT_OUT,
                         *ART_VENTURE_CLASSES, *ART_VENTURE_LEFT_OUT,
                         *ICLIGHT_CLASSES, *ICLIGHT_NATIVE_CLASSES, *ICLIGHT_NATIVE_LEFT_OUT,
                         *DEPTH_ANYTHING_V2_CLASSES,
                         *TEACACHE_CLASSES, *WAVESPEED_CLASSES, *WAVESPEED_LEFT_OUT, *WAVESPEED_LATER))

# Well-known custom node packs, by a class-name prefix or whole name, so that an unknown class
# can be named as coming from its pack rather than just being unknown.
CUSTOM_PACKS = {
    "ComfyUI Impact Pack": ("FaceDetailer", "DetailerForEach", "SAMLoader", "UltralyticsDetectorProvider",
                            "BboxDetectorSEGS", "SegmDetectorSEGS", "ImpactWildcardProcessor",
                            "ImpactWildcardEncode", "ImpactSwitch", "ImpactInt", "ImpactFloat", "ImpactString",
                            "ToBasicPipe", "FromBasicPipe", "BasicPipeToDetailerPipe", "SEGSDetailer",
                            "SEGSPaste", "SEGSPreview", "ImpactSimpleDetectorSEGS", "MaskToSEGS", "Impact",
                            # nodes/pack_nodes_impact.py's classes without the Impact prefix
                            "EditBasicPipe", "ImageBatchToImageList", "ImageListToImageBatch", "ImageMaskSwitch",
                            "LatentSwitch", "StringListToString"),
    # melMass's comfy_mtb (nodes/pack_nodes_mtb.py): every class ends " (mtb)", a marker, which custom_pack
    # takes before WAS's "Image Resize" prefix ("Image Resize Factor (mtb)")
    "comfy_mtb": ("(mtb)",),
    # whole names, which custom_pack takes before WAS's "Image Save" prefix
    "ComfyUI-Image-Saver": ("(Image Saver)", *IMAGE_SAVER_CLASSES),
    # JPS-GER's ComfyUI_JPS-Nodes (nodes/pack_nodes_jps.py): every class name ends in " (JPS)", a marker,
    # which custom_pack takes before WAS's "Text Concatenate" prefix ("Text Concatenate (JPS)")
    "ComfyUI_JPS-Nodes": ("(JPS)",),
    "WAS Node Suite": ("Image Blend", "Text Multiline", "Text Concatenate", "Number to Int", "Image Resize",
                       "Text String", "Image Save", "Load Image Batch", "CLIPTextEncode (NSP)", "WAS_", *WAS_CLASSES,
                       *WAS_LEFT_OUT),
    "rgthree-comfy": ("Power Lora Loader (rgthree)", "Seed (rgthree)", "Context (rgthree)",
                      "Fast Groups Muter (rgthree)", "Fast Groups Bypasser (rgthree)", "Display Any (rgthree)",
                      "Image Comparer (rgthree)", "Lora Loader Stack (rgthree)", "(rgthree)"),
    "ComfyUI-Custom-Scripts (pysssss)": ("ShowText|pysssss", "CheckpointLoader|pysssss", "LoraLoader|pysssss",
                                         "StringFunction|pysssss", "|pysssss"),
    "Efficiency Nodes": ("Efficient Loader", "KSampler (Efficient)", "KSampler Adv. (Efficient)",
                         "Eff. Loader SDXL", "KSampler SDXL (Eff.)", "LoRA Stacker", "Control Net Stacker",
                         "Apply ControlNet Stack", "Pack SDXL Tuple", "Unpack SDXL Tuple", "XY Plot", "XY Input: ",
                         "Join XY Inputs of Same Type", "Manual XY Entry Info",
                         "HighRes-Fix Script", "Noise Control Script", "Tiled Upscaler Script", "AnimateDiff Script",
                         "LoRA Stack to String converter", "Image Overlay"),
    # the Image-Filters classes graphflow leaves out (nodes/pack_nodes_image_filters.py says why)
    "ComfyUI-Image-Filters": IMAGE_FILTERS_LEFT_OUT,
    "ComfyUI_Comfyroll_CustomNodes": ("CR ",),
    "ComfyUI_tinyterraNodes": ("ttN ",),
    "comfyui_controlnet_aux": ("CannyEdgePreprocessor", "DWPreprocessor", "OpenposePreprocessor",
                               "DepthAnythingPreprocessor", "LineArtPreprocessor", "AIO_Preprocessor",
                               "Zoe-DepthMapPreprocessor", "MiDaS-DepthMapPreprocessor", "HEDPreprocessor",
                               "BinaryPreprocessor", "ColorPreprocessor", "ShufflePreprocessor", "TilePreprocessor",
                               "TTPlanet_Tile", "InpaintPreprocessor", "ScribblePreprocessor", "Scribble_XDoG_Preprocessor",
                               "ImageLuminanceDetector", "ImageIntensityDetector", "PixelPerfectResolution",
                               "ImageGenResolutionFrom", "HintImageEnchance", "ControlNetPreprocessorSelector",
                               "PyraCannyPreprocessor", "LineartStandardPreprocessor", "DepthAnythingV2Preprocessor"),
    "ComfyUI_IPAdapter_plus": ("IPAdapter", "PrepImageForClipVision", "PrepImageForInsightFace", "IPAAdapterFaceIDBatch"),
    "ComfyUI-KJNodes": ("GetNode", "SetNode", "ImageResizeKJ", "ConditioningMultiCombine", "GetImageSizeAndCount",
                        "INTConstant", "FloatConstant", "StringConstant", "BOOLConstant", "GetImageRangeFromBatch",
                        "GetLatentRangeFromBatch", "InsertImagesToBatchIndexed", "ReplaceImagesInBatch",
                        "GetImagesFromBatchIndexed", "GetLatentsFromBatchIndexed", "ReverseImageBatch",
                        "ImageBatchRepeatInterleaving", "ImagePass", "ModelPassThrough", "CondPassThrough",
                        "MaskBatchMulti", "ImageBatchMulti", "ImageConcanate", "ImageConcatMulti", "ImagePadKJ",
                        "GrowMaskWithBlur", "ResizeMask", "CreateShapeMask", "ColorMatch", "PathchSageAttentionKJ",
                        "TorchCompileModelWanVideo", "TorchCompileModelAdvanced", "TorchCompileModelQwenImage",
                        "TorchCompileModelFlux", "DiffusionModelLoaderKJ", "VAELoaderKJ", "TorchCompileVAE",
                        "ModelPatchTorchSettings"),
    "ComfyUI-VideoHelperSuite": (comfy_pack_nodes.VHS_PREFIX,),
    "ComfyUI_UltimateSDUpscale": ("UltimateSDUpscale",),
    "ComfyUI-AnimateDiff-Evolved": ("ADE_", "AnimateDiff"),
    "ComfyUI-Advanced-ControlNet": ("ACN_", "ControlNetLoaderAdvanced"),
    "ComfyUI_essentials": ("ImageResize+", "GetImageSize+", "SimpleMath+", "+"),
    "cg-use-everywhere": ("Anything Everywhere",),
    "ComfyUI-Easy-Use": ("easy ",),
    "comfyui-inspire-pack": ("Inspire", "KSampler //Inspire", "//Inspire"),
    "ComfyUI-Crystools": ("[Crystools]",),
    # city96's GGUF loaders (nodes/gguf.py); prefixes: their DynamicVRAM and Advanced versions too
    "ComfyUI-GGUF": ("UnetLoaderGGUF", "CLIPLoaderGGUF", "DualCLIPLoaderGGUF", "TripleCLIPLoaderGGUF",
                     "QuadrupleCLIPLoaderGGUF", "VAELoaderGGUF", "LTXVLatentUpscaleModelLoaderGGUF", "GGUFLoraImport",
                     "TargetedQuantizationGGUF"),
    "masquerade-nodes-comfyui": MASQUERADE_CLASSES,
    "ComfyMath": ("CM_",),
    "ComfyUI-mxToolkit": ("mx",),
    "ComfyUI-Logic": LOGIC_CLASSES,
    # its current "DF_" classes and its first layout's "_DF" ones (whole names); the bare names between
    # ("Sum", "Text" ...) are too generic to claim for it when unknown, and are all ours
    # (nodes/pack_nodes_derfuu.py) but "Float": ComfyUI-Logic's Float answers it (reading Derfuu's Value,
    # written back in Logic's shape, `value`)
    "Derfuu_ComfyUI_ModdedNodes": ("DF_", *DERFUU_FIRST_CLASSES),
    "ComfyUI_FizzNodes": FIZZ_CLASSES,
    "ComfyUI_ADV_CLIP_emb": ADV_CLIP_CLASSES,
    "ComfyUI-Detail-Daemon": DETAIL_DAEMON_CLASSES,
    "ComfyLiterals": LITERALS_CLASSES,
    "mikey_nodes": (*MIKEY_CLASSES, *MIKEY_LEFT_OUT),
    "ComfyUI_Noise": NOISE_CLASSES,
    "ComfyUI_TiledKSampler": TILED_KSAMPLER_CLASSES,
    "ComfyUI-TiledDiffusion": (*TILED_DIFFUSION_CLASSES, *TILED_DIFFUSION_LEFT_OUT),
    "ComfyUI_smZNodes": SMZ_CLASSES,
    # mcmonkey's sd-dynamic-thresholding (nodes/pack_nodes_dynamic_thresholding.py): both its classes are ours;
    # named so the docs list them under the pack
    "sd-dynamic-thresholding": ("DynamicThresholdingFull", "DynamicThresholdingSimple"),
    "ComfyUI_Cutoff": CUTOFF_CLASSES,
    "ComfyUI-Inpaint-CropAndStitch": CROP_STITCH_CLASSES,
    "comfyui-dynamicprompts": tuple(DYNAMIC_PROMPTS_LEFT_OUT),
    "ComfyUI_experiments": EXPERIMENTS_CLASSES,
    # EllangoK's ComfyUI-post-processing-nodes (nodes/pack_nodes_post_processing.py): every class is ours;
    # its "Blur" is Masquerade's too (whole names: in WHOLE_NAMES through MASQUERADE_CLASSES), which is
    # the default, and PostProcBlur where a save names this pack (ComfyAlias.pack)
    "ComfyUI-post-processing-nodes": ("Blur",),
    # Acly's comfyui-inpaint-nodes (nodes/pack_nodes_inpaint.py): all its classes are ours; named so the
    # docs list them under the pack, and a class of a later version is named as the pack's
    "comfyui-inpaint-nodes": ("INPAINT_",),
    "sdxl_prompt_styler": SDXL_STYLER_CLASSES,
    # Nourepide's ComfyUI-Allor (nodes/pack_nodes_allor*.py): its model-free classes are ours (named so the
    # docs list them under the pack); whole names, as its ImageText... / ImageBatch... would claim others'
    "ComfyUI-Allor": (*ALLOR_LEFT_OUT, *ALLOR_LATER),
    # whole names, which custom_pack takes before ComfyUI_LayerStyle's prefixes (its names share them)
    # filliptm's ComfyUI_Fill-Nodes (nodes/pack_nodes_fill.py): every class starts "FL_"
    "ComfyUI_Fill-Nodes": ("FL_",),
    # before ComfyUI_LayerStyle's prefixes, which its names share
    "ComfyUI_LayerStyle_Advance": tuple(LAYERSTYLE_ADVANCE_LEFT_OUT),
    # chflame163's ComfyUI_LayerStyle (nodes/pack_nodes_layerstyle*.py hold its model-free nodes, rounds 1 to 4);
    # its classes carry these prefixes ("LayerStyle_" in its first versions)
    "ComfyUI_LayerStyle": ("LayerStyle: ", "LayerUtility: ", "LayerMask: ", "LayerColor: ", "LayerFilter: ",
                           "LayerStyle_"),
    # sipherxyz's comfyui-art-venture (nodes/pack_nodes_art_venture.py; its ColorCorrect is the post-processing
    # pack's, which answers it)
    "comfyui-art-venture": ("AV_", *ART_VENTURE_CLASSES, *ART_VENTURE_LEFT_OUT),
    "ComfyUI-IC-Light": ICLIGHT_CLASSES,
    "ComfyUI-IC-Light-Native": (*ICLIGHT_NATIVE_CLASSES, *ICLIGHT_NATIVE_LEFT_OUT),
    "ComfyUI-DepthAnythingV2": DEPTH_ANYTHING_V2_CLASSES,
    # Acly's comfyui-tooling-nodes (nodes/pack_nodes_etn.py): every class starts "ETN_"
    "comfyui-tooling-nodes": ("ETN_",),
    "ComfyUI-TeaCache": TEACACHE_CLASSES,
    "Comfy-WaveSpeed": (*WAVESPEED_CLASSES, *WAVESPEED_LEFT_OUT, *WAVESPEED_LATER),
}
# ComfyUI_LayerStyle's classes left out on purpose (nodes/pack_nodes_layerstyle.py), names as its
# NODE_CLASS_MAPPINGS give them (its model classes now live in ComfyUI_LayerStyle_Advance, above)
LAYERSTYLE_LEFT_OUT = {
    "LayerFilter: LightLeak": "it overlays light-leak pictures the pack ships in its own model file",
    # round 2 (nodes/pack_nodes_layerstyle2.py)
    "LayerMask: PixelSpread": "it runs pymatting's foreign-colour estimation, which needs numba (not a graphflow "
                              "dependency)",
    # round 3 (nodes/pack_nodes_layerstyle3.py): the model classes the pack still holds
    **dict.fromkeys(("LayerMask: RemBgUltra", "LayerMask: RmBgUltra V2"),
                    "it runs the RMBG background-removal model the pack downloads"),
    **dict.fromkeys(("LayerMask: SegformerB2ClothesUltra", "LayerMask: SegformerUltraV2",
                     "LayerMask: SegformerUltraV3", "LayerMask: LoadSegformerModel",
                     "LayerMask: SegformerClothesPipelineLoader", "LayerMask: SegformerFashionPipelineLoader",
                     "LayerMask: SegformerClothesSetting", "LayerMask: SegformerFashionSetting"),
                    "it runs (or loads, or sets up) the Segformer clothes / fashion segmentation models the pack "
                    "downloads"),
    **dict.fromkeys(("LayerUtility: LoadVQAModel", "LayerUtility: VQAPrompt"),
                    "it runs (or loads) the BLIP visual-question-answering model the pack downloads"),
    # round 4 (nodes/pack_nodes_layerstyle4.py)
    **dict.fromkeys(("LayerMask: MaskEdgeUltraDetail", "LayerMask: MaskEdgeUltraDetail V2",
                     "LayerMask: MaskEdgeUltraDetail V3"),
                    "its edge matting runs pymatting (which needs numba), OpenCV-contrib's guided filter or the VITMatte "
                    "model the pack downloads, none of them graphflow dependencies"),
}
# ComfyUI_LayerStyle's model-free classes not built yet: their sources were not in the code index rounds 1 to 4
# read from (only the pack's class list and third-party documentation pages name them)
LAYERSTYLE_LATER = ("LayerUtility: NameToColor", "LayerColor: ColorofShadowHighlightV2")
# JPS-GER's ComfyUI_JPS-Nodes' classes left out of nodes/pack_nodes_jps.py, with why
JPS_LEFT_OUT = {"SDXL Prompt Styler (JPS)": "it reads the pack's own style files (styles/main, artists, movies), "
                                            "which graphflow does not carry (twri's SDXLPromptStyler is graphflow's)"}
# why a class of a pack listed above is left out, where it is left out on purpose
LEFT_OUT = {**DYNAMIC_PROMPTS_LEFT_OUT, **WAS_LEFT_OUT, **JPS_LEFT_OUT, **MIKEY_LEFT_OUT, **ALLOR_LEFT_OUT,
            **LAYERSTYLE_LEFT_OUT, **LAYERSTYLE_ADVANCE_LEFT_OUT,
            **ART_VENTURE_LEFT_OUT,
            **ICLIGHT_NATIVE_LEFT_OUT, **TILED_DIFFUSION_LEFT_OUT,
            **FILL_LEFT_OUT, **ETN_LEFT_OUT, **ETN_LATER, **WAVESPEED_LEFT_OUT, **WAVESPEED_LATER}
# what docs/comfyui.md's pack list says of a pack beyond its names
PACK_NOTES = {
    "ComfyUI-post-processing-nodes": "its `Blur` is graphflow's `PostProcBlur`, read so where a UI save's node "
                                     "properties name this pack (cnr_id / aux_id) or a save gives its inputs "
                                     "(blur_radius, sigma); else a saved `Blur` runs Masquerade's Blur, that "
                                     "name's default",
    "ComfyUI_Fill-Nodes": "rounds 1 to 3; left out on purpose, with why in the error a save of one gets: "
                          + ", ".join(f"`{n}`" for n in FILL_LEFT_OUT) + "; its other classes are not built yet",
    "comfyui-tooling-nodes": "the nodes the Krita AI Diffusion plugin's workflows use; left out on purpose: "
                             + ", ".join(f"`{n}`" for n in ETN_LEFT_OUT) + "; not built yet: "
                             + ", ".join(f"`{n}`" for n in ETN_LATER),
    "ComfyUI-TeaCache": "TeaCache with model_type `flux`, `ltxv`, `hidream_i1_full` and the `wan2.1_*` ones "
                        "(`hunyuan_video` is refused by name, not built yet; so are the later pack versions' "
                        "`flux-kontext`, `lumina_2`, `hidream_i1_dev` and `hidream_i1_fast`, whose coefficients "
                        "were not read); `CompileModel` is TorchCompileModel with the pack's inputs at graphflow's "
                        "settings",
    "Comfy-WaveSpeed": "`ApplyFBCacheOnModel` for FLUX, SD1 / SD2 / SDXL UNets, LTX-Video and SD3 (Wan and HiDream "
                       "refused: the pack's generic path fails on them); left out on purpose: "
                       + ", ".join(f"`{n}`" for n in WAVESPEED_LEFT_OUT) + "; not built yet: "
                       + ", ".join(f"`{n}`" for n in WAVESPEED_LATER),
}


REPLACE_PROPERTY = "Run widget replace on values"  # a PrimitiveNode property: fill in %...% patterns
# Classes whose pack's editor saves widgets_values as a dict by name (VideoHelperSuite's, each with a
# "videopreview" entry): written back so, as their editor reads only that shape.
NAMED_WIDGETS = (comfy_pack_nodes.VHS_PREFIX,)
EXTRA_PROPERTY = "graphflow_inputs"  # UI node property holding the values of our inputs ComfyUI lacks


@cache
def _catalogue_file() -> dict:
    text = resources.files("graphflow").joinpath("comfy_catalogue.json").read_text(encoding="utf-8")
    return json.loads(text)


def comfy_catalogue() -> dict:
    """ComfyUI's core classes: {class: {inputs: [...], outputs: [...], output_node, category}}."""
    return _catalogue_file()["nodes"]


def comfy_version() -> str:
    """The ComfyUI version whose interface graphflow follows: the catalogue's ("0.3.64")."""
    return re.search(r"ComfyUI v(\d+(?:\.\d+)+)", _catalogue_file()["source"]).group(1)


def custom_pack(class_type: str) -> str | None:
    """The well-known custom node pack a ComfyUI class name comes from, if it is one: a whole
    name, else a marker suffix such as "|pysssss" or "(rgthree)", else a prefix (the names in
    WHOLE_NAMES only whole). A pack's marker beats another's prefix ("Text Concatenate (JPS)" is
    JPS's, not WAS's "Text Concatenate..."), a longer affix a shorter one; between equals, the
    pack listed first in CUSTOM_PACKS."""
    whole, suffixes, prefixes = _pack_names()
    if class_type in whole:
        return whole[class_type]
    for name, pack in suffixes:
        if class_type.endswith(name):
            return pack
    for name, pack in prefixes:
        if class_type.startswith(name):
            return pack
    return None


@cache
def _pack_names() -> tuple[dict[str, str], tuple[tuple[str, str], ...], tuple[tuple[str, str], ...]]:
    """CUSTOM_PACKS as custom_pack searches it: whole name -> pack, then (suffix, pack) and
    (prefix, pack), longest first (a stable sort: CUSTOM_PACKS' order between equal lengths)."""
    whole, affixes = {}, []
    for pack, names in CUSTOM_PACKS.items():
        for name in names:
            whole.setdefault(name, pack)
            if name not in WHOLE_NAMES:
                affixes.append((name, pack))
    affixes.sort(key=lambda entry: -len(entry[0]))
    return whole, tuple(e for e in affixes if e[0][0] in "|(+[/"), tuple(affixes)


# A ComfyUI class this registry does not know whose name is a graphflow node's own name: that node
# answers to the ComfyUI classes it declares only, so the class is read as this unknown type, never
# run as our namesake (Efficiency's "Image Overlay" is our ImageOverlay; some pack's "ImageOverlay" is not).
NAMESAKE_PREFIX = "comfyui:"


def comfy_class_name(node_type: str) -> str:
    """The ComfyUI class an unknown node type stands for."""
    return node_type.removeprefix(NAMESAKE_PREFIX)


def unknown_type_hint(node_type: str) -> str:
    """Why a node type is unknown, for the validation message."""
    if node_type.startswith(NAMESAKE_PREFIX):
        name = comfy_class_name(node_type)
        why = unknown_type_hint(name) or f"'{name}' is a ComfyUI class graphflow does not know"
        return (f"{why} (graphflow's own {name} node is a different node: it answers only to the ComfyUI "
                f"classes it declares)")
    if node_type in comfy_catalogue():
        return f"'{node_type}' is a ComfyUI core node that graphflow does not support yet (see docs/comfyui.md)"
    pack = custom_pack(node_type)
    if pack:
        why = f": {LEFT_OUT[node_type]}" if node_type in LEFT_OUT else ""
        return f"'{node_type}' is a ComfyUI custom node from {pack}, not one of graphflow's nodes{why}"
    return ""


# --- reading ----------------------------------------------------------------------------------


def is_api_graph(data: Any) -> bool:
    return is_comfy_api_graph(data)


def is_ui_graph(data: Any) -> bool:
    return isinstance(data, dict) and isinstance(data.get("nodes"), list) and isinstance(data.get("links", []), list)


def _alias_for(cls, class_type: str):
    """The alias by which node `cls` reads ComfyUI class `class_type` (a name or its claimant_key)."""
    if cls is None:
        return None
    return next((a for a in comfy_aliases(cls)
                 if class_type in a.class_types or class_type in {claimant_key(t, cls) for t in a.class_types}), None)


PACK_PROPERTIES = ("cnr_id", "aux_id")  # a UI node's properties naming its pack: Comfy registry id, GitHub repo


def _claimant_class(class_type, registry, properties: dict | None = None, inputs=None):
    """The name a node of ComfyUI class `class_type` is read under where several of our nodes
    claim that class (Registry.claimants; else the class itself). A UI save's node (`properties`)
    whose cnr_id / aux_id names a claimant's pack is that claimant; else a node giving input
    names (`inputs`: an API prompt's, or the names of a UI node's inputs[]) its default claimant
    does not read is the one other claimant that reads every name given, if exactly one does.
    Else the default claimant. The answer (Registry.claimant_key) is what every later step looks
    the node's class up by (Registry.claimant_node)."""
    claims = registry.claimants(class_type) if isinstance(class_type, str) else []
    if len(claims) < 2:
        return class_type
    chosen = None
    if properties is not None:
        ids = [value for key in PACK_PROPERTIES if isinstance(value := properties.get(key), str)]
        chosen = next((c for c in claims if c.names_pack(ids)), None)
    if chosen is None:
        chosen = claims[0]
        names = set(inputs or ()) - set(UPLOAD_INPUTS)
        if not names <= _read_names(class_type, chosen.node, default=True):
            fits = [c for c in claims[1:] if names <= _read_names(class_type, c.node, default=False)]
            chosen = fits[0] if len(fits) == 1 else chosen
    return registry.claimant_key(class_type, chosen.node)


def _read_names(class_type: str, cls, default: bool) -> set[str]:
    """The ComfyUI input names node `cls` reads for class `class_type`: its own inputs, its
    alias's current and old names and those it ignores, and for the class's `default` claimant
    the catalogue's (a core class). Another claimant is chosen by names of its own only, so a
    plugin's claimant of a core class does not take over a core prompt giving one stray input."""
    alias = _alias_for(cls, class_type)
    catalogue = comfy_catalogue()
    declared = {i["name"] for i in catalogue[class_type]["inputs"]} \
        if default and alias and class_type in catalogue else set()
    written = alias.written_names() if alias else {}
    return declared | {written.get(name, name) for name in cls.input_specs} | \
        set(alias.inputs if alias else ()) | set(alias.ignore if alias else ())


def _raw_class(class_type: str) -> str:
    """A class name as a save gives it: a claimant_key's separator (no ComfyUI class carries it)
    typed into a save is not a claimant choice, so the name is read as the unknown class it is."""
    return class_type.replace(KEY_SEP, " ")


def _ui_type(node: dict, registry):
    """The class a UI save's node (as saved) is read as: a renamed class's current name
    (RENAMED_TYPES), and where several of our nodes claim the class, the one its pack ids or
    its inputs[] names name (_claimant_class)."""
    node_type = node.get("type")
    if not isinstance(node_type, str):
        return node_type
    node_type = RENAMED_TYPES.get(node_type, _raw_class(node_type))
    properties = comfy_pack_nodes.node_properties(node)
    names = [(i.get("widget") or {}).get("name") or i.get("name") for i in node.get("inputs") or []
             if isinstance(i, dict) and isinstance(i.get("widget") or {}, dict)]
    return _claimant_class(node_type, registry, properties=properties,
                           inputs=[n for n in names if isinstance(n, str)]) if registry is not None else node_type


def _api_class(class_type: str, raw_inputs, registry, by_inputs: bool) -> str:
    """The class an API graph's node is read as: by its file names' folders (FOLDER_CLASSES), a
    queued pysssss Primitive's value, and (`by_inputs`: a prompt not read from a UI save, whose
    nodes' claimants were chosen by their pack ids) its input names (_claimant_class)."""
    raw_inputs = raw_inputs if isinstance(raw_inputs, dict) else {}
    if not by_inputs:  # a UI save's node, its class already read (_ui_type)
        return comfy_pack_nodes.primitive_class(_folder_class(class_type, raw_inputs), raw_inputs)
    class_type = comfy_pack_nodes.primitive_class(_folder_class(_raw_class(class_type), raw_inputs), raw_inputs)
    return _claimant_class(class_type, registry, inputs=raw_inputs)


def _output_names(alias, specs) -> list[str]:
    """The names a UI save gives a class's outputs: ComfyUI's where the alias lists them, else ours."""
    names = list(alias.output_names) if alias is not None else []
    return names if len(names) == len(specs) else [o.name for o in specs]


def _gathered(raw_inputs: dict, alias) -> dict:
    """The inputs with those the alias gathers (ComfyAlias.gather) put together as JSON lists."""
    if alias is None or not alias.gather:
        return raw_inputs
    out, lists = {}, {}
    for name, value in raw_inputs.items():
        prefix = next((p for p in alias.gather if name.startswith(p) and name[len(p):].isdigit()), None)
        if prefix is None:
            out[name] = value
        else:
            lists.setdefault(alias.gather[prefix], []).append((int(name[len(prefix):]), value))
    for ours, numbered in lists.items():
        out[ours] = json.dumps([value for _, value in sorted(numbered, key=lambda item: item[0])])
    return out


def _folder_class(class_type, raw_inputs) -> str:
    """The class to read a node as, given its file names' folder annotations (FOLDER_CLASSES)."""
    if not isinstance(raw_inputs, dict):
        return class_type
    for (name, key, folder), other in FOLDER_CLASSES.items():
        value = raw_inputs.get(key)
        if name == class_type and isinstance(value, str) and split_annotation(value)[1] == folder:
            return other
    return class_type


def import_api(graph: dict, registry, ui: dict | None = None) -> Workflow:
    """Our workflow from a ComfyUI API graph, renaming classes, inputs and values by the aliases.

    Inputs ComfyUI itself ignores (ones the class does not declare, the upload button) are
    dropped with a note (Workflow.notes). Classes without an equivalent keep their name, so
    validation reports them by node."""
    nodes, titles, notes, classes, problems, type_of, missing = {}, {}, [], {}, [], {}, {}
    catalogue = comfy_catalogue()
    output_maps = {}  # node id -> our output index for each of its ComfyUI class's outputs
    for key, entry in graph.items():
        class_type = entry.get("class_type") if isinstance(entry, dict) else None
        if isinstance(class_type, str):
            class_type = _api_class(class_type, entry.get("inputs"), registry, ui is None)
        alias = _alias_for(registry.claimant_node(class_type), class_type) if isinstance(class_type, str) else None
        if alias is not None and alias.outputs is not None:
            output_maps[str(key)] = alias.outputs
    for key, entry in graph.items():
        node_id = str(key)
        if not isinstance(entry, dict):
            problems.append(Problem(node_id, None, None, f"expected a node object with 'class_type', got {_short(entry)}"))
            continue
        class_type = entry.get("class_type")
        if not isinstance(class_type, str) or not class_type:
            problems.append(Problem(node_id, None, None,
                                    f"'class_type' must be a node class name (text), got {_short(class_type)}"))
            continue
        raw_inputs = entry.get("inputs")
        if raw_inputs is None:
            raw_inputs = {}
        if not isinstance(raw_inputs, dict):
            problems.append(Problem(node_id, class_type, None,
                                    f"'inputs' must be an object of input name to value, got {_short(raw_inputs)}"))
            continue
        class_type = _api_class(class_type, raw_inputs, registry, ui is None)
        cls = registry.claimant_node(class_type)
        shown = registry.comfy_class(class_type)  # messages name the ComfyUI class, never a claimant_key
        alias = _alias_for(cls, class_type)
        declared = {i["name"] for i in catalogue[class_type]["inputs"]} if class_type in catalogue else None
        inputs = dict(alias.fixed) if alias is not None else {}
        if alias is not None and alias.api_inputs is not None:
            raw_inputs = alias.api_inputs(dict(raw_inputs))
        read_as = {}  # our input name -> the ComfyUI name its value was read under
        for name, value in _gathered(raw_inputs, alias).items():
            raw_name = name
            value = comfy_pack_nodes.combo_value(class_type, name, value)
            ours = alias.inputs.get(name, name) if alias is not None else name
            undeclared = declared is not None and name not in declared and not (cls and ours in cls.input_specs)
            if name in UPLOAD_INPUTS or undeclared:  # graphflow's own extra inputs are kept
                what = "the editor's upload button" if name in UPLOAD_INPUTS else f"an input {shown} does not declare"
                notes.append({"node_id": node_id, "node_type": shown, "input": name,
                              "message": f"ignored, as ComfyUI does: {what}"})
                continue
            if alias is not None:
                if name in alias.ignore:
                    continue
                name = ours
                if name in alias.force_input and not is_link(value) and ui is not None:
                    # an editor before frontend 1.16 sent the hidden widget's value (the pack's
                    # default: a forceInput widget was never shown) for an unlinked forceInput
                    # input; it is read as unlinked, as a later editor sends it
                    notes.append({"node_id": node_id, "node_type": shown, "input": raw_name,
                                  "message": f"the value {_short(value)} an older editor sent for this socket-only "
                                             "input is ignored; it is read as unconnected"})
                    continue
                mapping = alias.values.get(name)
                if mapping is not None and isinstance(value, (str, int, float)) and value in mapping:
                    value = mapping[value]
                if name in alias.folders and isinstance(value, str):  # "x.png [output]": ours knows its folder
                    plain, folder = split_annotation(value)
                    value = plain if folder == alias.folders[name] else value
            spec = cls.input_specs.get(name) if cls is not None else None
            if spec is not None and spec.widget is not None and spec.widget.kind == "STRING" \
                    and isinstance(value, (int, float)):
                value = str(value)  # ComfyUI's validation turns a number given for a text widget into its text
            if spec is not None and spec.widget is not None and spec.widget.kind == "INT" \
                    and isinstance(value, float) and math.isfinite(value) and not value.is_integer():
                # ComfyUI's validation takes int() of an integer widget's value: 64.5 runs as 64
                notes.append({"node_id": node_id, "node_type": shown, "input": raw_name,
                              "message": f"{value!r} is read as {int(value)}, as ComfyUI does (an integer input)"})
                value = int(value)
            if is_link(value) and str(value[0]) in output_maps and isinstance(value[1], int):
                outputs = output_maps[str(value[0])]
                value = [value[0], outputs[value[1]] if 0 <= value[1] < len(outputs) else value[1]]
            if read_as.get(name, raw_name) != raw_name:  # two of ComfyUI's names for one input of ours
                if ui is not None and is_link(inputs[name]) and not is_link(value):
                    # a UI save: a linked input's widget value is unused, as in ComfyUI's editor, also
                    # where the save links it under the pack's earlier name and its widgets, read by
                    # position, give the current one (Image Saver's scheduler / scheduler_name). A
                    # deviation: ComfyUI's editor with the pack's current version may not reconnect a
                    # link saved under a name the node no longer has; here the wiring saved is kept
                    continue
                given = {read_as[name]: inputs[name], raw_name: value}
                old = [theirs for theirs in given if theirs not in _current_names(cls, alias, declared)]
                if ui is None and len(old) == 1:
                    # an API prompt giving an old and the current name: ComfyUI drops an undeclared widget
                    # value but passes an undeclared link on to the pack's function, which may prefer it
                    # (alias.old_links_first); else the name the class declares today is read. The other
                    # is dropped with a note
                    old = old[0]
                    [current] = [theirs for theirs in given if theirs != old]
                    if old in alias.old_links_first and is_link(given[old]):
                        kept, dropped = old, current
                        message = f"ignored: also linked under its earlier name {old!r}, which the pack's function takes"
                    else:
                        kept, dropped = current, old
                        message = f"ignored: an earlier name of {current!r}, also given; the current name is read"
                    notes.append({"node_id": node_id, "node_type": shown, "input": dropped, "message": message})
                    inputs[name], read_as[name] = given[kept], kept
                    continue
            inputs[name], read_as[name] = value, raw_name
        node_type = cls.node_type if cls is not None else \
            NAMESAKE_PREFIX + class_type if registry.get(class_type) is not None else class_type
        if ui is None and cls is not None and class_type in catalogue:
            left_out = _missing_widgets(catalogue[class_type], raw_inputs, cls, alias)
            if left_out:
                missing[node_id] = {"type": cls.node_type, "inputs": left_out}
        nodes[node_id], type_of[node_id] = {"type": node_type, "inputs": inputs}, node_type
        classes[node_id] = registry.comfy_class(class_type)
        meta = entry.get("_meta")
        title = meta.get("title") if isinstance(meta, dict) else None
        if isinstance(title, str) and title:
            titles[node_id] = title
    if problems:
        raise WorkflowFormatError("malformed ComfyUI graph: " + "; ".join(map(str, problems)), problems)
    if ui is None:
        ui = {"imported_from": "comfyui-api"}
        if titles:
            ui["titles"] = titles
    ui.setdefault("comfyui", {})["classes"] = classes  # the class each node was, for writing it back
    if missing:
        ui["comfyui"]["missing"] = missing
    workflow = _validated({"version": FORMAT_VERSION, "nodes": nodes, "ui": ui}, type_of)
    workflow.notes.extend(notes)
    return workflow


def _missing_widgets(entry: dict, raw_inputs: dict, cls, alias) -> list[str]:
    """Our names of the required widgets of a core class that an API prompt leaves out: ComfyUI
    refuses such a node (required_input_missing) rather than run it on the widget's default, and so
    does validation (it reads them back with prompt_left_out). A text widget with the catalogue's
    "dynamic" flag (the editor's {a|b} prompts) is required as any other."""
    left_out = []
    for given in entry["inputs"]:
        name = given["name"]
        if given.get("optional") or not given.get("widget") or name in raw_inputs:
            continue
        if alias is not None and (name in alias.ignore or alias.inputs.get(name, name) in alias.fixed):
            continue
        ours = alias.inputs.get(name, name) if alias is not None else name
        if ours in cls.input_specs:
            left_out.append(ours)
    return left_out


def prompt_left_out(workflow: Workflow, node_id: str) -> list[str]:
    """The required widgets the ComfyUI API prompt a node was read from left out (import_api notes
    them in ui.comfyui.missing), while the node is still of that type and still lacks them. A
    workflow of ours may leave any widget out for its default."""
    kept = workflow.ui.get("comfyui") if isinstance(workflow.ui, dict) else None
    missing = kept.get("missing") if isinstance(kept, dict) else None
    entry = missing.get(node_id) if isinstance(missing, dict) else None
    node = workflow.nodes.get(node_id)
    if not isinstance(entry, dict) or node is None or entry.get("type") != node.type \
            or not isinstance(entry.get("inputs"), list):
        return []
    return [name for name in entry["inputs"] if isinstance(name, str) and name not in node.inputs]


def _current_names(cls, alias, declared: set | None) -> set:
    """The input names a ComfyUI class declares today: the catalogue's, else (a pack's class) those
    export writes for our node's inputs."""
    if declared is not None:
        return declared
    written = alias.written_names() if alias is not None else {}
    return {written.get(ours, ours) for ours in (cls.input_specs if cls is not None else ())}


def _hashable(value) -> bool:
    try:
        hash(value)
        return True
    except TypeError:
        return False


def _widget_order(class_type: str, registry) -> list[dict] | None:
    """The inputs of a class in widgets_values order: [{name, type, widget, control, upload}]."""
    catalogue = comfy_catalogue()
    if class_type in catalogue:
        return catalogue[class_type]["inputs"]
    # the class ComfyUI's name stands for, as importing reads it: an alias before a node of ours
    # that happens to have that name (essentials' "DisplayAny" is not rgthree's, our DisplayAny)
    cls = registry.claimant_node(class_type)
    if cls is None:
        return None
    alias = _alias_for(cls, class_type)
    back = alias.written_names() if alias else {}
    order = []
    for spec in cls.input_specs.values():
        entry = {"name": back.get(spec.name, spec.name), "type": spec.type}
        if spec.socket is None:
            entry["widget"] = True
            # the editor adds control_after_generate after a seed, and after an INT object_info marks so
            if spec.type == "INT" and (spec.name in ("seed", "noise_seed")
                                       or spec.widget.hints.get("control_after_generate")):
                entry["control"] = True
            if spec.widget.hints.get("dynamic_prompts"):  # a pack's text the editor resolves {a|b} in
                entry["dynamic"] = True
            if spec.widget.hints.get("upload") == "image":  # the editor's upload button saves "image" after it
                entry["upload"] = True
        elif alias is not None and spec.name in alias.force_input:  # a socket older editors saved a value for
            entry["force_input"] = True
        elif alias is not None and spec.name in alias.legacy:  # a socket only an older layout has
            entry["legacy"] = True
        if alias is not None and spec.name in alias.optional:  # the pack's optional inputs, as ComfyUI lists them
            entry["optional"] = True
        order.append(entry)
    return order


def _node_id(value) -> str:
    return str(value)


def _links_of(raw_links) -> dict[str, tuple]:
    """{link id: (from id, from slot, to id, to slot, type)} from either link shape."""
    links = {}
    for link in raw_links or []:
        if isinstance(link, dict):
            links[_node_id(link["id"])] = (_node_id(link["origin_id"]), int(link["origin_slot"]),
                                           _node_id(link["target_id"]), int(link["target_slot"]), link.get("type"))
        elif isinstance(link, (list, tuple)) and len(link) >= 5:
            links[_node_id(link[0])] = (_node_id(link[1]), int(link[2]), _node_id(link[3]), int(link[4]),
                                        link[5] if len(link) > 5 else None)
    return links


def group_node_name(node_type, data: dict) -> str | None:
    """The name of the legacy group node (`extra.groupNodes`) a node type stands for, if any."""
    groups = (data.get("extra") or {}).get("groupNodes") or {}
    for separator in (">", "/"):
        prefix = "workflow" + separator
        if isinstance(node_type, str) and node_type.startswith(prefix) and node_type[len(prefix):] in groups:
            return node_type[len(prefix):]
    return None


def _expand_group_node(instance: dict, definition: dict, links: dict, registry, notes: list) -> list[dict]:
    """The inner nodes of a legacy group node instance (ids "instance:index"), wired to the
    instance's inputs, which turns into a forwarder of its visible outputs. The group's inputs
    are its inner nodes' unlinked sockets, node by node, then their unlinked converted widgets;
    its outputs, their outputs not used only inside; its widgets_values, their widgets in turn,
    then their converted widgets not fed inside (as ComfyUI's group nodes lay them out)."""
    inst, inner = instance["id"], instance["id"] + ":"
    made = []
    for i, raw in enumerate(definition.get("nodes") or []):
        node = copy.deepcopy(raw)
        node["id"] = inner + str(i)
        if isinstance(node.get("type"), str):  # as _flatten reads it, so its widgets are laid out as that class's
            node["type"] = _ui_type(node, registry)
        node["inputs"] = [dict(x, link=None) for x in raw.get("inputs") or []]
        made.append(node)
    inner_links = [l for l in definition.get("links") or [] if isinstance(l, list) and len(l) >= 4
                   and l[0] is not None and l[2] is not None]
    linked_to = {(l[2], l[3]) for l in inner_links}
    linked_from = {(l[0], l[1]) for l in inner_links}
    external = {(e[0], e[1]) for e in definition.get("external") or []}
    for k, l in enumerate(inner_links):
        link_id = f"{inner}L{k}"
        links[link_id] = (inner + str(l[0]), l[1], inner + str(l[2]), l[3], l[5] if len(l) > 5 else None)
        if l[2] < len(made) and l[3] < len(made[l[2]]["inputs"]):
            made[l[2]]["inputs"][l[3]]["link"] = link_id
    free = [(i, s) for converted in (False, True) for i, n in enumerate(made)
            for s, x in enumerate(n["inputs"]) if bool(x.get("widget")) == converted and (i, s) not in linked_to]
    for outer, (i, s) in zip(instance.get("inputs") or [], free):
        made[i]["inputs"][s]["link"] = outer.get("link")
    forwards = []
    for i, node in enumerate(made):
        for o, output in enumerate(node.get("outputs") or []):
            if (i, o) in linked_from and (i, o) not in external:
                continue
            link_id = f"{inner}O{len(forwards)}"
            links[link_id] = (inner + str(i), o, inst, len(forwards), output.get("type"))
            forwards.append({"name": output.get("name"), "type": output.get("type"), "link": link_id})
    values = instance.get("widgets_values")
    if isinstance(values, list) and values:
        plan = []  # (inner node index, position in its widgets_values) for each of the group's values
        trailing = []  # converted widgets fed from outside: the group's own widgets, after all others
        for i, node in enumerate(made):
            if node.get("type") == "PrimitiveNode":
                if (i, 0) in linked_from:  # its value, then (INT, COMBO) control_after_generate and
                    # (COMBO) the control's filter list, by the type of its first inner link
                    kind = next((l[5] for l in inner_links if (l[0], l[1]) == (i, 0) and len(l) > 5), None)
                    output = (node.get("outputs") or [None])[0]
                    kind = kind or (output.get("type") if isinstance(output, dict) else None)
                    plan += [(i, k) for k in range({"INT": 2, "COMBO": 3}.get(kind if isinstance(kind, str) else "", 1))]
                continue
            order = _widget_order(node.get("type"), registry) if node.get("type") not in VIRTUAL_TYPES else []
            if order is None:
                plan = None
                break
            sockets = {(x.get("widget") or {}).get("name"): s for s, x in enumerate(node["inputs"]) if x.get("widget")}
            slots = list(enumerate(_widget_slots(order)))
            plan += [(i, at) for at, (entry, _) in slots if entry["name"] not in sockets]
            for name, s in sorted(sockets.items(), key=lambda item: item[1]):
                if (i, s) not in linked_to:
                    trailing += [(i, at) for at, (entry, role) in slots if entry["name"] == name and role != "upload"]
        if plan is not None:
            plan += trailing
            # By position, as ComfyUI's editor configures the group node's widgets.
            for (i, position), value in zip(plan, values):
                saved = made[i].setdefault("widgets_values", [])
                saved.extend([None] * (position + 1 - len(saved)))
                saved[position] = value
        if plan is None or len(plan) != len(values):
            what = f"its {len(values)} values were given by position to its {len(plan)} widgets, as ComfyUI's " \
                   "editor does; widgets left without one keep its definition's value (the editor: the default)" \
                if plan is not None else "its widget values could not be matched to its inner nodes (a class " \
                                         "graphflow does not know); the values saved in its definition were used"
            notes.append({"node_id": inst, "node_type": instance.get("type"), "input": None,
                          "message": "the group node's widget values don't line up with its inner nodes: " + what})
    instance.update({"type": "__forward", "inputs": forwards, "group_node": instance.get("type"), "boundary": True,
                     "outer_inputs": instance.get("inputs") or []})
    return made


def _flatten(data: dict, registry=None, notes: list | None = None) -> tuple[dict[str, dict], dict[str, tuple], set[str]]:
    """Every node of the graph with subgraph and group node instances expanded (inner ids
    "instance:inner"), the links by id, and the ids of subgraph instances (their nodes forward
    values in and out)."""
    subgraphs = {s["id"]: s for s in (data.get("definitions") or {}).get("subgraphs", []) if "id" in s}
    group_nodes = (data.get("extra") or {}).get("groupNodes") or {}
    nodes: dict[str, dict] = {}
    links = _links_of(data.get("links"))
    instances: set[str] = set()
    notes = [] if notes is None else notes

    def add(node_list, prefix, depth, read=False):
        for raw in node_list:
            node = dict(raw)
            node["id"] = prefix + _node_id(raw["id"])
            if isinstance(node.get("type"), str) and not read:
                node["type"] = _ui_type(node, registry)
            if prefix:  # inner link ids are local to their subgraph
                node["inputs"] = [{**i, "link": None if i.get("link") is None else prefix + _node_id(i["link"])}
                                  for i in raw.get("inputs") or []]
            nodes[node["id"]] = node
            group = group_node_name(node.get("type"), data)
            if group is not None and depth <= 8:
                # (their classes read as the group's definition was expanded)
                add(_expand_group_node(node, group_nodes[group], links, registry, notes), "", depth + 1, read=True)
                continue
            definition = subgraphs.get(node.get("type"))
            if definition is None:
                continue
            if depth > 8:
                raise WorkflowFormatError(f"node {node['id']}: subgraphs nested too deeply")
            instances.add(node["id"])
            inner = node["id"] + ":"
            for link_id, (a, a_slot, b, b_slot, kind) in _links_of(definition.get("links")).items():
                a = node["id"] + ":in" if a == "-10" else inner + a
                b = node["id"] + ":out" if b == "-20" else inner + b
                links[inner + link_id] = (a, a_slot, b, b_slot, kind)
            # The input proxy forwards what feeds the instance; the instance forwards its outputs.
            nodes[node["id"] + ":in"] = {"id": node["id"] + ":in", "type": "__forward", "boundary": True,
                                         "inputs": _promoted(node.get("inputs") or [], node.get("widgets_values"))}
            nodes[node["id"] + ":out"] = {"id": node["id"] + ":out", "type": "__forward", "inputs": [
                {"name": o.get("name"), "type": o.get("type"), "link": None} for o in definition.get("outputs", [])]}
            add(definition.get("nodes", []), inner, depth + 1)
            if node.get("mode") in (MUTED, BYPASSED):  # a muted or bypassed instance runs none of its nodes
                for inner_node in nodes.values():
                    if inner_node["id"].startswith(inner) and inner_node.get("type") != "__forward" and \
                            inner_node.get("mode") not in (MUTED, BYPASSED):
                        inner_node["mode"] = MUTED
        return nodes

    add(data.get("nodes", []), "", 0)
    # Inner links into the output proxy become its inputs; the instance then forwards them.
    for link_id, (a, a_slot, b, b_slot, kind) in links.items():
        if b.endswith(":out") and b[:-4] in instances:
            slots = nodes[b]["inputs"]
            if b_slot < len(slots):
                slots[b_slot]["link"] = link_id
    for instance in instances:
        nodes[instance] = {**nodes[instance], "type": "__forward", "inputs": nodes[instance + ":out"]["inputs"],
                           "subgraph": nodes[instance].get("type"), "boundary": True}
    return nodes, links, instances


def _promoted(inputs: list, values) -> list[dict]:
    """A subgraph instance's inputs, each unlinked widget input (a widget promoted from inside)
    with its value from the instance's widgets_values, which hold one value per widget input in
    turn: ComfyUI sends that value, not the inner node's own."""
    out, at = [], 0
    for socket in inputs:
        socket = dict(socket)
        if socket.get("widget"):
            if socket.get("link") is None and isinstance(values, list) and at < len(values):
                socket["value"] = values[at]
            at += 1
        out.append(socket)
    return out


MUTED_SOURCE = ("muted",)


class _Resolver:
    """Follows a link back through Reroutes, dropped (muted or bypassed unknown) nodes and
    subgraph boundaries to a real node's output ("link", id, slot), a Primitive's value
    ("value", v), a muted node (MUTED_SOURCE), or nothing (None). A Primitive's value arrives
    only over a direct link: ComfyUI's editor (PrimitiveNode.applyToGraph) copies it into the
    widgets its own links end at, and resolving a link to a Primitive through anything else (a
    Reroute, a bypass, a subgraph's boundary) finds nothing, so the reader keeps its own value."""

    def __init__(self, nodes, links, dropped=frozenset(), replace=None):
        """`replace`: fills in a Primitive's text as the editor does where its "Run widget replace
        on values" property is set (%date:...%, %Node.widget%)."""
        self.nodes, self.links, self.dropped, self.replace = nodes, links, dropped, replace

    def link(self, link_id, depth=0, kind=None, relayed=False):
        """`kind`: the type of the input being fed, which picks what a bypass passes (a link's
        own type may be "*" after a Reroute); `relayed`: whether the path went through a node
        (Reroute, bypass, subgraph boundary) rather than straight from its source."""
        if link_id is None or depth > 100:
            return None
        link = self.links.get(_node_id(link_id))
        if link is None:
            return None
        return self.output(link[0], link[1], kind or link[4], depth, relayed)

    def output(self, node_id, slot, kind, depth, relayed=False):
        node = self.nodes.get(node_id)
        if node is None:
            return None
        node_type, mode = node.get("type"), node.get("mode", 0) if node_id in self.dropped else 0
        if mode == MUTED:
            return MUTED_SOURCE
        inputs = node.get("inputs") or []
        if node.get("subgraph") is not None and node.get("mode") in (MUTED, BYPASSED):
            # A muted subgraph instance gives nothing; a bypassed one passes its own inputs through.
            if node["mode"] == MUTED:
                return MUTED_SOURCE
            node_type, mode, inputs = None, BYPASSED, self.nodes[node_id + ":in"]["inputs"]
        if node.get("group_node") is not None and node.get("mode") == BYPASSED:
            # A bypassed legacy group node passes on its first input of exactly the reader's type,
            # that output's own position first (ExecutableGroupNodeDTO); its inner nodes still run.
            outer = [i if isinstance(i, dict) else {} for i in node.get("outer_inputs") or []]
            chosen = next((i for i in [slot, *range(len(outer))] if i < len(outer) and outer[i].get("type") == kind), None)
            return self.link(outer[chosen].get("link"), depth + 1, outer[chosen].get("type"), True) \
                if chosen is not None else None
        if node_type in ("Reroute", "__forward"):
            index = 0 if node_type == "Reroute" else slot
            if node_type == "Reroute" and node.get("mode") == BYPASSED and inputs:
                # ComfyUI resolves a bypassed Reroute as any bypass: on through its input, read
                # as that input's own type ("*"), no longer the type of the input it feeds.
                kind = inputs[0].get("type") or "*"
            if index < len(inputs) and inputs[index].get("link") is None and "value" in inputs[index]:
                return ("value", inputs[index]["value"])  # a subgraph instance's promoted widget
            # Only the packs' forwarders (comfy_pack_nodes) pass a Primitive's value on, as before.
            relayed = relayed or node_type == "Reroute" or node.get("boundary", False)
            return self.link(inputs[index].get("link"), depth + 1, kind, relayed) if index < len(inputs) else None
        if node_type == "PrimitiveNode":
            values = node.get("widgets_values") or []
            if not values or relayed:
                return None
            value = values[0]
            properties = comfy_pack_nodes.node_properties(node)
            if self.replace and properties.get(REPLACE_PROPERTY) and value and isinstance(value, str):
                value = self.replace(value)
            return ("value", value)
        if mode == BYPASSED:
            out_type = _slot_type(node.get("outputs"), slot)
            pairs = [(k, i.get("type")) for k, i in enumerate(inputs)]
            chosen = bypass_input(pairs, pairs, slot, kind or out_type, out_type)
            # Past the bypass, the chosen input's own type picks (ComfyUI resolves it as that input).
            return self.link(inputs[chosen].get("link"), depth + 1, inputs[chosen].get("type"), True) \
                if chosen is not None else None
        if node_type in NOTE_TYPES:
            return None
        return ("link", node_id, slot)


def _slot_type(outputs, slot):
    outputs = outputs or []
    return outputs[slot].get("type") if slot < len(outputs) else None


def _widget_values(node: dict, order: list[dict]) -> tuple[dict, dict]:
    """{input name: value} and {input name: control_after_generate value} from widgets_values."""
    raw = node.get("widgets_values")
    if isinstance(raw, dict):  # some nodes save their widgets by name
        return {k: v for k, v in raw.items() if any(i["name"] == k for i in order)}, {}
    values, controls, at = {}, {}, 0
    raw = raw or []
    for entry, role in _widget_slots(order):
        if role == "control":  # a control word, or an old save's true/false (the editor reads
            # any value there as the control; a save lacking it is read unshifted here, not shifted),
            # or the null of Efficiency Nodes' seed button, which its editor puts in the control's place
            if at < len(raw) and (raw[at] in CONTROL_VALUES or isinstance(raw[at], bool) or raw[at] is None):
                if raw[at] is not None:
                    old = isinstance(raw[at], bool) and node.get("type") in SAMPLE_PREFIXED + ("PrimitiveNode",)
                    controls[entry["name"]] = OLD_CONTROLS[raw[at]] if old else raw[at]
                at += 1
            continue
        if role == "value" and at < len(raw):
            values[entry["name"]] = raw[at]
        at += 1
    return values, controls


def _saved_widgets(node: dict, order: list[dict], registry, note=None) -> tuple[dict, dict]:
    """_widget_values of a node as the editor loads it: an older layout read through its alias
    (ComfyAlias.widgets; its note, if any, passed to note), and KSampler's old 'sample_' sampler
    names without the prefix."""
    values, controls = _widget_values(_current_widgets(node, registry, note), order)
    sampler = values.get("sampler_name")
    if node.get("type") in SAMPLE_PREFIXED and isinstance(sampler, str) and sampler.startswith("sample_"):
        values["sampler_name"] = sampler[len("sample_"):]
    return values, controls


def _current_widgets(node: dict, registry, note=None) -> dict:
    """The node with its widgets_values as its class's current editor saves them: without the
    values an older editor kept for the pack's forceInput inputs (ComfyAlias.force_input), and
    where its alias reads an older layout (ComfyAlias.widgets), a list, or the dict of a class
    saved by name (NAMED_WIDGETS: VideoHelperSuite's renamed and migrated widgets). A note the
    alias gives with its reading goes to note(message), when given."""
    class_type, raw = node.get("type"), node.get("widgets_values")
    alias = _alias_for(registry.claimant_node(class_type), class_type) if isinstance(class_type, str) else None
    if alias is not None and alias.force_input and isinstance(raw, list):
        raw = _without_force_input(node, raw, alias, _widget_order(class_type, registry) or [])
        node = {**node, "widgets_values": raw}
    if alias is None or alias.widgets is None:
        return node
    try:
        if isinstance(raw, dict) and class_type.startswith(NAMED_WIDGETS):
            read = alias.widgets(dict(raw))
        elif isinstance(raw, list):
            read = alias.widgets(list(raw))
        else:
            return node
    except ValueError as e:  # the alias can't read this save (ComfyAlias.widgets): refused, by the node
        shown = registry.comfy_class(class_type)
        raise WorkflowFormatError(f"{shown}: {e}", [Problem(None, shown, None, str(e))]) from None
    if isinstance(read, tuple):  # (values, a note on what the reading dropped)
        read, message = read
        if message and note is not None:
            note(message)
    return {**node, "widgets_values": read}


def _without_force_input(node: dict, raw: list, alias, order: list[dict]) -> list:
    """widgets_values without the values an editor before ComfyUI frontend 1.16 saved for the
    pack's forceInput inputs (each a widget converted to an input then). The frontend since 1.16
    drops them when the save is as long as that layout (its migrateWidgetsValues); the save's
    inputs also tell: such an input was listed as a converted widget ("widget": {"name": ...}),
    which a later editor never does for a bare socket. A save of another length (a layout our
    own extra widgets make longer, WAS Text Concatenate's linebreak_addition) is read as older
    only when it is so marked and holds more values than the current layout has places: a newer
    save may keep a stale mark, and its values must not lose one (CR Text Replace's text)."""
    full = _widget_slots(order, force_input=True)
    places = {at for at, (_, role) in enumerate(full) if role == "forced"}
    if not places:
        return raw
    theirs = alias.written_names()
    forced = {theirs.get(name, name) for name in alias.force_input}
    converted = any(isinstance(socket, dict) and socket.get("widget") and socket.get("name") in forced
                    for socket in node.get("inputs") or [])
    if len(raw) != len(full) and not (converted and len(raw) > len(_widget_slots(order))):
        return raw
    return [value for at, value in enumerate(raw) if at not in places]


def _widget_slots(order: list[dict], force_input: bool = False) -> list[tuple[dict, str]]:
    """The places of widgets_values: (input, "value" | "control" | "upload"). A seed's
    control_after_generate follows it; the upload button is a widget the editor adds after the
    required inputs (LoadImageMask saves [image, channel, "image"]), so before optional ones.
    `force_input`: the layout of editors before ComfyUI frontend 1.16, with a place (input,
    "forced") for each of the pack's forceInput inputs (ComfyAlias.force_input)."""
    slots, upload = [], None
    for entry in order:
        if not entry.get("widget") and not (force_input and entry.get("force_input")):
            continue
        if entry.get("optional") and upload is not None:
            slots.append(upload)
            upload = None
        if not entry.get("widget"):
            slots.append((entry, "forced"))
            continue
        slots.append((entry, "value"))
        if entry.get("control"):
            slots.append((entry, "control"))
        if entry.get("upload"):
            upload = (entry, "upload")
    return slots + ([upload] if upload is not None else [])


def _dropped(nodes: dict, registry) -> set[str]:
    """Muted and bypassed nodes of classes we don't know: left out on reading, as ComfyUI runs
    them (links rewired past a bypass by the UI's socket types), since our engine can't apply a
    mode to a node it can't describe. Muted and bypassed nodes we know stay, with their mode."""
    return {node_id for node_id, node in nodes.items()
            if node.get("mode") in (MUTED, BYPASSED) and node.get("type") not in VIRTUAL_TYPES
            and node.get("type") not in comfy_pack_nodes.TYPES
            and node.get("type") != "__forward" and registry.claimant_node(node.get("type")) is None}


# Classes whose filename_prefix ComfyUI's editor fills in when it queues (%date:yyyy-MM-dd%,
# %KSampler.seed%); an API graph sent to ComfyUI directly keeps such text as it is.
SAVE_TYPES = {"SaveImage", "SaveAnimatedWEBP", "SaveAnimatedPNG", "SaveWEBM", "SaveVideo", "SaveAudio",
              "SaveAudioMP3", "SaveAudioOpus", "SaveGLB", "SaveSVGNode", "CLIPSave", "VAESave", "ModelSave",
              "LoraSave", "SaveLatent", "VHS_VideoCombine"}  # VideoHelperSuite's editor dates its prefix too
DATE_PARTS = re.compile(r"dd?|MM?|hh?|mm?|ss?|yyy?y?")


def _replaced(text: str, ui_nodes: list[dict], registry, now: datetime) -> str:
    """A filename_prefix as ComfyUI's editor queues it: %date:FORMAT% (tokens yyyy, yy, MM, M,
    dd, d, hh, h (0-23), mm, m, ss, s) becomes the date, %Node.widget% the widget's value ('/' and
    '\\' as '_') of the first top-level node whose "Node name for S&R" property, else title, is
    Node; anything else stays."""
    def date(match):
        token = match.group(0)
        if token in ("yy", "yyyy"):
            return str(now.year)[-len(token):]
        if token[0] == "y":
            return token
        part = {"d": now.day, "M": now.month, "h": now.hour, "m": now.minute, "s": now.second}[token[0]]
        return str(part).zfill(len(token))

    def search_name(node):  # the editor gives every node but the save nodes its class as this name
        default = None if node.get("type") in SAVE_TYPES else node.get("type")
        return comfy_pack_nodes.node_properties(node).get("Node name for S&R", default)

    def one(match):
        inner = match.group(1)
        split = inner.split(".")
        if len(split) != 2:
            return DATE_PARTS.sub(date, split[0][5:]) if split[0].startswith("date:") else match.group(0)
        found = [n for n in ui_nodes if search_name(n) == split[0]] or \
                [n for n in ui_nodes if (n.get("title") or n.get("type")) == split[0]]
        if not found:
            return match.group(0)
        node = {**found[0], "type": _ui_type(found[0], registry)}  # the claimant its pack ids / inputs name
        try:
            values, _ = _saved_widgets(node, _widget_order(node["type"], registry) or [], registry)
        except WorkflowFormatError:  # a save its class can't read: refused on that node itself, by its id
            return match.group(0)
        if split[1] not in values:
            return match.group(0)
        value = values[split[1]]
        text = "" if value is None else ("true" if value else "false") if isinstance(value, bool) else \
            str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)
        return text.replace("/", "_").replace("\\", "_")

    return re.sub(r"%([^%]+)%", one, text)


def _dynamic_prompt(text: str, rng: random.Random) -> str:
    """A prompt widget's text as ComfyUI's editor queues it: // and /* */ comments removed, each
    {a|b|...} (nested too) replaced by one of its options at random; \\{ \\| \\} stay as
    the plain characters and other backslash pairs as they are."""
    text = re.sub(r"/\*[\s\S]*?\*/|//[^\n\r\u2028\u2029]*", "", text)

    def resolve(source: str) -> str:
        out, i = [], 0
        while i < len(source):
            c = source[i]
            i += 1
            if c == "\\":
                out.append("\\" + source[i:i + 1])
                i += 1
            elif c == "{":
                options, current, depth = [], "", 0
                while i < len(source):
                    c = source[i]
                    i += 1
                    if c == "\\":
                        current += "\\" + source[i:i + 1]
                        i += 1
                        continue
                    if c == "{":
                        depth += 1
                    elif c == "}":
                        if not depth:
                            break
                        depth -= 1
                    elif c == "|" and not depth:
                        options.append(current)
                        current = ""
                        continue
                    current += c
                options.append(current)
                out.append(resolve(options[int(rng.random() * len(options))]))
            else:
                out.append(c)
        return "".join(out)

    return re.sub(r"\\([{}|])", r"\1", resolve(text))


def ui_to_api(data: dict, registry, now: datetime | None = None,
              rng: random.Random | None = None) -> tuple[dict, dict, list[dict]]:
    """An API graph from a UI graph, the UI-only facts kept for writing it back (`ui.comfyui`),
    and notes on what was left out. `now` and `rng`: the time ComfyUI's editor would queue it at
    and its random choices of {a|b} prompts."""
    now = now or datetime.now()
    rng = rng or random.Random()
    notes = []
    nodes, links, _ = _flatten(data, registry, notes)
    problems = comfy_pack_nodes.resolve(nodes, links)  # SetNode/GetNode, rgthree's, Use Everywhere
    dropped = _dropped(nodes, registry)
    resolver = _Resolver(nodes, links, dropped, lambda text: _replaced(text, data.get("nodes") or [], registry, now))
    graph, resolved_inputs = {}, {}
    for node_id, node in nodes.items():
        node_type = node.get("type")
        if node_type in VIRTUAL_TYPES or node_type == "__forward" or node_id in dropped:
            continue
        order = _widget_order(node_type, registry)
        inputs, seen, cut = {}, {}, set()
        try:
            values, controls = _saved_widgets(node, order or [], registry, lambda message: notes.append(
                {"node_id": node_id, "node_type": registry.comfy_class(node_type), "input": None, "message": message}))
        except WorkflowFormatError as e:
            problems.extend(Problem(node_id, registry.comfy_class(node_type), p.input, p.message) for p in e.problems)
            continue
        for socket in node.get("inputs") or []:
            name = (socket.get("widget") or {}).get("name") or socket.get("name")
            target = resolver.link(socket.get("link"), kind=socket.get("type"))
            if target == MUTED_SOURCE:  # ComfyUI links it, then drops the link: not even the widget's value
                target = None
                cut.add(name)
            seen[name] = {"link": socket.get("saved_link", socket.get("link")), "resolved": target}
            if "saved_link" in socket:  # a Use Everywhere broadcast: written back unlinked
                seen[name]["broadcast"] = True
            if name in cut:
                seen[name]["cut"] = True
            source = links.get(_node_id(socket.get("link"))) if socket.get("link") is not None else None
            if target is not None and target[0] == "value" and source is not None and order is not None and \
                    (nodes.get(source[0]) or {}).get("type") == "PrimitiveNode" and \
                    not any(e["name"] == name and e.get("widget") for e in order):
                target = None  # a socket-only input (forceInput) has no widget for the Primitive to set
                seen[name]["resolved"] = None
            if target is None:
                continue
            value = target[1] if target[0] == "value" else [target[1], target[2]]
            inputs[name] = {"__value__": value} if target[0] == "value" and isinstance(value, list) else value
        for name, value in values.items():
            if name not in cut:
                inputs.setdefault(name, {"__value__": value} if isinstance(value, list) else value)
        if node_type in comfy_catalogue() and isinstance(node.get("widgets_values"), list):
            # A widget the save has no value for (a shorter widgets_values) keeps its default, which
            # the editor queues too; not a combo's, whose default is the first file of one machine.
            for entry in order:
                if entry.get("widget") and entry["type"] != "COMBO" and "default" in entry and entry["name"] not in cut:
                    inputs.setdefault(entry["name"], entry["default"])
        extra = comfy_pack_nodes.node_properties(node).get(EXTRA_PROPERTY)
        if isinstance(extra, dict):
            for name, value in extra.items():
                inputs.setdefault(str(name), value)
        if order is None:
            notes.append({"node_id": node_id, "node_type": registry.comfy_class(node_type), "input": None,
                          "message": "its widget values can't be named without the node's definition; "
                                     "only its links were read"})
        entry = {"class_type": node_type, "inputs": inputs}
        if node.get("title"):
            entry["_meta"] = {"title": node["title"]}
        graph[node_id] = entry
        resolved_inputs[node_id] = {"inputs": {k: _jsonable(v) for k, v in seen.items()}, "controls": controls}
        for entry in order or []:
            text = inputs.get(entry["name"]) if entry.get("dynamic") else None
            if isinstance(text, str) and ("{" in text or "/" in text):
                inputs[entry["name"]] = _dynamic_prompt(text, rng)
                if inputs[entry["name"]] != text:
                    resolved_inputs[node_id].setdefault("patterns", {})[entry["name"]] = [text, inputs[entry["name"]]]
        prefix = inputs.get("filename_prefix")
        if node_type in SAVE_TYPES and isinstance(prefix, str) and "%" in prefix:
            inputs["filename_prefix"] = _replaced(prefix, data.get("nodes") or [], registry, now)
            if inputs["filename_prefix"] != prefix:  # the pattern is what the editor shows and saves
                resolved_inputs[node_id].setdefault("patterns", {})["filename_prefix"] = [prefix, inputs["filename_prefix"]]
    if problems:
        raise WorkflowFormatError("ComfyUI UI-format graph: " + "; ".join(map(str, problems)), problems)
    return graph, resolved_inputs, notes


def _jsonable(record):
    target = record["resolved"]
    return {"link": record["link"], "resolved": list(target) if target is not None else None} | \
        {k: True for k in ("broadcast", "cut") if record.get(k)}


def _pos(node) -> list[float] | None:
    pos = node.get("pos")
    if isinstance(pos, dict):
        pos = [pos.get("0", 0), pos.get("1", 0)]
    return [pos[0], pos[1]] if isinstance(pos, (list, tuple)) and len(pos) >= 2 else None


MODE_NAMES = {MUTED: "mute", BYPASSED: "bypass"}


def _size(node) -> list | None:
    size = node.get("size")
    if isinstance(size, dict):
        size = [size.get("0"), size.get("1")]
    if isinstance(size, (list, tuple)) and size and isinstance(size[0], (int, float)):
        return list(size)
    return None


def _looks(node) -> dict:
    """A node's collapsed flag and colours, as our ui block keeps them."""
    looks = {}
    if isinstance(node.get("flags"), dict) and node["flags"].get("collapsed"):
        looks["collapsed"] = True
    for key in ("color", "bgcolor"):
        if isinstance(node.get(key), str):
            looks[key] = node[key]
    return looks


def _note(node) -> dict:
    """A ComfyUI Note/MarkdownNote (or comfy_mtb's Note Plus) as the editor keeps it in `ui.notes`."""
    values = node.get("widgets_values")
    note = {"id": _node_id(node.get("id")), "pos": _pos(node),
            "text": str(values[0] or "") if isinstance(values, list) and values else ""}
    if (size := _size(node)) is not None:
        note["width"], note["height"] = size[0], size[1] if len(size) > 1 else 80
    if node.get("type") == "MarkdownNote":
        note["markdown"] = True
    if node.get("type") == "Note Plus (mtb)":  # written back as one; its Mode says how its text reads
        note["type"] = node["type"]
        if isinstance(values, list) and len(values) > 1 and values[1] == "markdown":
            note["markdown"] = True
    if node.get("title"):
        note["title"] = node["title"]
    return {**note, **_looks(node)}


def _vias(data: dict, registry) -> dict[str, dict[str, list[str]]]:
    """{node id: {ComfyUI input name: [Reroute ids, from the source on]}} for links through Reroutes."""
    nodes = {_node_id(n.get("id")): n for n in data.get("nodes", [])}
    links = _links_of(data.get("links"))
    vias = {}
    for node_id, node in nodes.items():
        if node.get("type") in VIRTUAL_TYPES:
            continue
        for socket in node.get("inputs") or []:
            chain, link, seen = [], links.get(_node_id(socket.get("link"))), set()
            while link is not None and nodes.get(link[0], {}).get("type") == "Reroute" and link[0] not in seen:
                seen.add(link[0])
                chain.insert(0, link[0])
                inputs = nodes[link[0]].get("inputs")
                first = inputs[0] if isinstance(inputs, list) and inputs and isinstance(inputs[0], dict) else {}
                link = links.get(_node_id(first.get("link")))
            if chain:
                name = (socket.get("widget") or {}).get("name") or socket.get("name")
                vias.setdefault(node_id, {})[name] = chain
    return vias


def import_ui(data: dict, registry) -> Workflow:
    """Our workflow from a ComfyUI UI-format graph, with its layout and UI-only parts in `ui`."""
    graph, resolved, notes = ui_to_api(data, registry)
    flat = _flatten(data, registry)[0]
    layout = {}
    for node in data.get("nodes", []):
        node_id = _node_id(node.get("id"))
        if node_id not in graph:
            continue
        entry = {}
        if (pos := _pos(node)) is not None:
            entry["pos"] = pos
        if (size := _size(node)) is not None:
            entry["width"] = size[0]
        if node.get("title"):
            entry["title"] = node["title"]
        entry.update(_looks(node))
        layout[node_id] = entry
    for node_id, node in flat.items():  # subgraphs' inner nodes too
        if node_id in graph and node.get("mode") in MODE_NAMES:
            layout.setdefault(node_id, {})["mode"] = MODE_NAMES[node["mode"]]
    ui = {"imported_from": "comfyui-ui", "nodes": layout}
    if data.get("groups"):
        ui["groups"] = data["groups"]
    ds = (data.get("extra") or {}).get("ds")
    if isinstance(ds, dict) and isinstance(ds.get("offset"), (list, dict)):
        offset = ds["offset"] if isinstance(ds["offset"], list) else [ds["offset"].get("0", 0), ds["offset"].get("1", 0)]
        scale = float(ds.get("scale") or 1)
        ui["view"] = {"x": round(offset[0] * scale), "y": round(offset[1] * scale), "zoom": scale}
    ui["comfyui"] = {"workflow": {k: v for k, v in data.items()}, "converted": resolved}
    for node in data.get("nodes", []):
        if node.get("type") in NOTE_TYPES:
            ui.setdefault("notes", []).append(_note(node))
        elif node.get("type") == "Reroute":
            ui.setdefault("reroutes", {})[_node_id(node.get("id"))] = {"pos": _pos(node)}
    vias = {node_id: chains for node_id, chains in _vias(data, registry).items() if node_id in graph}
    workflow = import_api(graph, registry, ui)
    for node_id, chains in vias.items():  # ComfyUI's input names -> ours
        cls = registry.claimant_node(graph[node_id]["class_type"])
        alias = _alias_for(cls, graph[node_id]["class_type"])
        ours = {theirs: alias.inputs.get(theirs, theirs) for theirs in chains} if alias else {t: t for t in chains}
        via = {ours[name]: chain for name, chain in chains.items()
               if is_link(workflow.nodes[node_id].inputs.get(ours[name]))}
        if via:
            workflow.ui["nodes"].setdefault(node_id, {})["via"] = via
    workflow.notes.extend(notes)
    for node_id in _dropped(flat, registry):
        node = flat[node_id]
        what = "muted: it does not run" if node["mode"] == MUTED else "bypassed: its inputs pass through"
        workflow.notes.append({"node_id": node_id, "node_type": node.get("type"), "input": None,
                               "message": f"left out, {what} (as in ComfyUI; graphflow does not know this class)"})
    return workflow


# --- writing ----------------------------------------------------------------------------------


def _comfy_class(cls, inputs: dict, preferred: str | None = None) -> tuple[str, Any]:
    """The ComfyUI class our node is written as (the one it was read from, if any), and its
    alias (None: our own name)."""
    aliases = comfy_aliases(cls)
    fits = [a for a in aliases if all(literal(inputs.get(k)) == v for k, v in a.fixed.items())]
    for alias in fits:
        if preferred in alias.class_types:
            return preferred, alias
    for alias in sorted(fits, key=lambda a: not a.fixed):
        return alias.class_types[0], alias
    return cls.node_type, None


def _output_index(registry, workflow: Workflow, src: str, output, chosen: dict) -> int:
    """The output slot a link from our output `output` (index or name) of node `src` has in
    ComfyUI: where the class src is written as has only some of ours (ComfyAlias.outputs), its
    place among them (a link from our third output of "Area only", whose one output it is, is
    slot 0). chosen: node id -> (ComfyUI class, alias) each node is written as."""
    src_cls = registry.get(workflow.nodes[src].type) if src in workflow.nodes else None
    if isinstance(output, int):
        ours = output
    else:
        names = [o.name for o in src_cls.output_specs] if src_cls else []
        ours = names.index(output) if output in names else 0
    alias = chosen[src][1] if src in chosen else None
    if alias is not None and alias.outputs is not None and ours in alias.outputs:
        return list(alias.outputs).index(ours)
    return ours


def _comfy_inputs(node, cls, alias, registry, workflow, chosen: dict) -> dict:
    """A node's inputs in ComfyUI's names and values (links as [id, index])."""
    back = alias.written_names() if alias else {}
    scattered = {ours: prefix for prefix, ours in alias.gather.items()} if alias else {}
    out = {}
    for name, value in node.inputs.items():
        if alias is not None and name in alias.fixed:
            continue
        if name in scattered and isinstance(literal(value), str):
            items = _json_list(literal(value))
            if items is not None:  # back into prefix + number inputs, as the pack's editor sends them
                out.update({f"{scattered[name]}{i}": item for i, item in enumerate(items, 1)})
                continue
        if is_link(value):
            out[back.get(name, name)] = [value[0], _output_index(registry, workflow, value[0], value[1], chosen)]
            continue
        value = literal(value)
        if alias is not None and name in alias.values:
            reverse = {v: k for k, v in alias.values[name].items()}
            value = reverse.get(value, value) if _hashable(value) else value
        if alias is not None and isinstance(value, str):
            value = annotated_name(alias, name, value)
        out[back.get(name, name)] = {"__value__": value} if isinstance(value, list) else value
    return out


def _json_list(text: str) -> list | None:
    try:
        items = json.loads(text)
    except ValueError:
        return None
    return items if isinstance(items, list) else None


def annotated_name(alias, name: str, value: str) -> str:
    """A file name as ComfyUI names it: annotated with its folder unless that is ComfyUI's
    default, the inputs ("x.png" of LoadImageOutput is "x.png [output]")."""
    folder = alias.folders.get(name)
    if folder is None or folder == "input" or split_annotation(value)[1] is not None:
        return value
    return f"{value} [{folder}]"


def export_api(workflow: Workflow, registry) -> dict:
    """The workflow as a ComfyUI API graph. Widgets ComfyUI declares and we lack get ComfyUI's
    defaults, so ComfyUI accepts the graph; values of our own inputs the workflow sets are kept
    (ComfyUI ignores them); nodes with no ComfyUI equivalent keep our name. The API format has
    no modes: muted nodes are left out and links rewired past bypassed ones, as ComfyUI's
    editor does when it queues."""
    return _api_graph(apply_modes(workflow, registry), registry)


def _api_graph(workflow: Workflow, registry) -> dict:
    catalogue = comfy_catalogue()
    ui = workflow.ui
    titles = {k: v for k, v in (ui.get("titles") if isinstance(ui.get("titles"), dict) else {}).items()
              if isinstance(v, str)}
    titles.update({k: v["title"] for k, v in (ui.get("nodes") if isinstance(ui.get("nodes"), dict) else {}).items()
                   if isinstance(v, dict) and isinstance(v.get("title"), str) and v["title"]})
    kept = ui.get("comfyui") if isinstance(ui.get("comfyui"), dict) else {}
    classes = kept.get("classes") if isinstance(kept.get("classes"), dict) else {}
    # the ComfyUI class (and alias) each of our nodes is written as, chosen once: links read it too
    chosen = {node_id: _comfy_class(cls, node.inputs, classes.get(node_id)) for node_id, node in workflow.nodes.items()
              if (cls := registry.get(node.type)) is not None}
    graph = {}
    for node_id, node in workflow.nodes.items():
        cls = registry.get(node.type)
        if cls is None:
            class_type, inputs = comfy_class_name(node.type), dict(node.inputs)
        else:
            class_type, alias = chosen[node_id]
            inputs = _comfy_inputs(node, cls, alias, registry, workflow, chosen)
            left_out = prompt_left_out(workflow, node_id)  # refused, not run on the default: kept out
            cls_with_defaults = {spec.name: spec.default for spec in cls.input_specs.values()
                                 if spec.socket is None and spec.default is not None and spec.name not in left_out}
            back = alias.written_names() if alias else {}
            for name, default in cls_with_defaults.items():
                if alias is not None and (name in alias.fixed or name in alias.gather.values()):
                    continue
                inputs.setdefault(back.get(name, name), default)
            if registry.claimant_key(class_type, cls) in catalogue:  # the core class, not another claimant
                declared = catalogue[class_type]["inputs"]
                names = {i["name"] for i in declared}
                # Our own inputs ComfyUI's class lacks stay where the workflow sets them (ComfyUI
                # ignores inputs a class does not declare; we read them back).
                explicit = {back.get(name, name) for name in node.inputs}
                inputs = {k: v for k, v in inputs.items() if k in names or k in explicit}
                unwritten = {back.get(name, name) for name in left_out}
                for entry in declared:
                    if entry.get("widget") and entry["name"] not in inputs and "default" in entry \
                            and entry["name"] not in unwritten:
                        inputs[entry["name"]] = entry["default"]
        if cls is not None and registry.comfy_node(class_type) is not cls \
                and registry.claimant_node(_claimant_class(class_type, registry, inputs=inputs)) is not cls \
                and registry.comfy_node(cls.node_type) is cls:
            # an API prompt carries no pack ids: a claimant its input names can't choose (Image-Filters'
            # LatentStats) is written as its own type, which reads back as it (ComfyUI knows the class name)
            class_type = cls.node_type
        entry = {"inputs": inputs, "class_type": class_type}
        if node_id in titles:
            entry["_meta"] = {"title": titles[node_id]}
        graph[node_id] = entry
    return graph


def export_ui(workflow: Workflow, registry) -> dict:
    """The workflow as a ComfyUI UI graph. A graph read from one gets back its nodes, links
    (through its Reroutes and Primitives, where the values still agree), values and layout."""
    kept = workflow.ui.get("comfyui")
    if isinstance(kept, dict) and kept.get("workflow"):
        try:
            return _export_ui(workflow, registry, kept)
        except (KeyError, TypeError, ValueError, AttributeError, IndexError):
            pass  # the kept ComfyUI graph was edited into something unreadable: write ours afresh
    return _export_ui(workflow, registry, {})


def _export_ui(workflow: Workflow, registry, kept: dict) -> dict:
    api = _api_graph(workflow, registry)  # every node, muted and bypassed ones too
    original = copy.deepcopy(kept.get("workflow") or {})
    converted = kept.get("converted") or {}
    layout = workflow.ui.get("nodes") if isinstance(workflow.ui.get("nodes"), dict) else {}
    originals = {_node_id(n.get("id")): n for n in original.get("nodes", [])}
    old_links = {k: list(v) for k, v in _links_of(original.get("links")).items()}
    # What each original link carried, past the packs' frontend nodes (a Reroute fed by a GetNode)
    old_nodes, old_flat_links, _ = _flatten(original, registry)
    comfy_pack_nodes.resolve(old_nodes, old_flat_links)
    old_resolver = _Resolver(old_nodes, old_flat_links, _dropped(old_nodes, registry))
    instances = {k for k, n in originals.items() if n.get("type") in
                 {s.get("id") for s in (original.get("definitions") or {}).get("subgraphs", [])}
                 or group_node_name(n.get("type"), original) is not None}

    ui = workflow.ui
    reroutes = {str(k): v for k, v in ui["reroutes"].items() if isinstance(v, dict)} \
        if isinstance(ui.get("reroutes"), dict) else None
    notes = [n for n in ui["notes"] if isinstance(n, dict)] if isinstance(ui.get("notes"), list) else None
    # UI ids are integers: keep numeric ids, number the others after the largest.
    ids, extra_ids = {}, {}
    own = list(workflow.nodes) + list(reroutes or {}) + [str(n.get("id")) for n in notes or []]
    next_id = max([int(k) for k in list(originals) + own if k.isdigit()] + [0]) + 1
    for node_id in workflow.nodes:
        if node_id.isdigit():
            ids[node_id] = int(node_id)
        elif ":" in node_id and node_id.split(":")[0] in instances:
            continue  # inside a subgraph: written by its instance, kept verbatim
        else:
            ids[node_id], next_id = next_id, next_id + 1
    for key in list(reroutes or {}) + [str(n.get("id")) for n in notes or []]:  # Reroutes and notes
        if key.isdigit():
            extra_ids[key] = int(key)
        else:
            extra_ids[key], next_id = next_id, next_id + 1
    next_link = max([int(k) for k in old_links if k.isdigit()] + [int(original.get("last_link_id") or 0)]) + 1
    links: dict[int, list] = {}
    out_nodes = []
    placed = _columns(workflow)
    classes = kept.get("classes") or (ui.get("comfyui") or {}).get("classes") or {}
    reroute_in: dict[str, tuple] = {}  # Reroute id -> (UI id of what feeds it, slot, type)

    def through_reroutes(node_id, name, value, kind):
        """The (UI id, slot) the input's link now comes from when `ui.nodes[id].via` routes it
        through Reroutes that agree with the link (else None), recording what feeds each one."""
        cls = registry.get(workflow.nodes[node_id].type)
        back = {}
        if cls is not None:
            alias = _comfy_class(cls, workflow.nodes[node_id].inputs, classes.get(node_id))[1]
            back = alias.written_names() if alias else {}
        via = (layout.get(node_id) or {}).get("via") if isinstance(layout.get(node_id), dict) else None
        chain = next((c for ours, c in via.items() if back.get(ours, ours) == name), None) \
            if isinstance(via, dict) else None
        if reroutes is None or not isinstance(chain, list) or not chain or \
                not all(str(r) in reroutes for r in chain):
            return None
        upstream = (ids[value[0]], value[1])
        for r in map(str, chain):
            if r in reroute_in and reroute_in[r][:2] != upstream:
                return None  # the Reroute feeds something else: link directly
            upstream = (extra_ids[r], 0)
        upstream = (ids[value[0]], value[1])
        for r in map(str, chain):
            reroute_in.setdefault(r, (*upstream, kind))
            upstream = (extra_ids[r], 0)
        return upstream

    for node_id, entry in api.items():
        if node_id not in ids:
            continue
        class_type, inputs = entry["class_type"], entry["inputs"]
        # what the class is looked up by: the claimant this node is, where several of ours claim it
        key = registry.claimant_key(class_type, registry.get(workflow.nodes[node_id].type))
        # gathered inputs are widgets of their own in the editor (rgthree's rows): ours again
        inputs = _gathered(inputs, _alias_for(registry.claimant_node(key), key))
        order = _widget_order(key, registry) or []
        saved_node = originals.get(node_id)
        read_as = {**saved_node, "type": _ui_type(saved_node, registry)} if saved_node else None  # as it was read
        old = saved_node if _same_class(read_as, key, workflow, node_id, registry) else None
        record = converted.get(node_id, {})
        ui_node = copy.deepcopy(old) if old else {"id": ids[node_id], "type": class_type, "pos": placed[node_id],
                                                     "size": [260, 120], "flags": {}, "order": 0, "mode": 0,
                                                     "properties": {"Node name for S&R": class_type}}
        ui_node["id"] = ids[node_id]
        ui_node["type"] = class_type  # a renamed class's current name, never a claimant_key
        place = layout.get(node_id) if isinstance(layout.get(node_id), dict) else {}
        if isinstance(place.get("pos"), list):
            ui_node["pos"] = place["pos"]
        if isinstance(place.get("width"), (int, float)):
            size = list(ui_node.get("size") or [260, 120])
            ui_node["size"] = [place["width"], size[1] if len(size) > 1 else 120]
        title = place.get("title") or (entry.get("_meta") or {}).get("title")
        if title:
            ui_node["title"] = title
        if place.get("mode") in ("mute", "bypass"):
            ui_node["mode"] = MUTED if place["mode"] == "mute" else BYPASSED
        elif ui_node.get("mode") in (MUTED, BYPASSED):
            ui_node["mode"] = 0
        _set_looks(ui_node, place)
        if not order:  # a class we can't describe: keep it as it was
            out_nodes.append(ui_node)
            continue
        old_list = [((i.get("widget") or {}).get("name") or i.get("name")) for i in (old or {}).get("inputs") or []]
        old_inputs = dict(zip(old_list, (old or {}).get("inputs") or []))
        new_inputs, shown_values = [], {}
        controls = record.get("controls") or {}
        old_values, _ = _saved_widgets({**old, "type": key}, order, registry) if old else ({}, {})
        alias = _alias_for(registry.claimant_node(key), key)
        for position, spec in enumerate(order):
            name = spec["name"]
            value = inputs.get(name)
            before = (record.get("inputs") or {}).get(name)
            if before is not None and before.get("cut") and \
                    (alias.inputs.get(name, name) if alias else name) not in workflow.nodes[node_id].inputs:
                value = None  # still cut by its muted source: not the default _api_graph filled in
            linked = not _is_value(value) and value[0] in ids
            socket = None
            before_link = old_links.get(_node_id(before["link"])) if before is not None else None
            via_reroute = reroutes is not None and before_link is not None and linked and \
                (originals.get(before_link[0]) or {}).get("type") == "Reroute"
            rerouted = through_reroutes(node_id, name, value, spec["type"]) if linked else None
            if rerouted is not None:
                if before_link is not None and (int(before_link[0]), before_link[1]) == rerouted:
                    socket = {"link": before["link"]}
                else:
                    link_id, next_link = next_link, next_link + 1
                    links[link_id] = [link_id, rerouted[0], rerouted[1], ids[node_id], 0, spec["type"]]
                    socket = {"link": link_id}
            elif before is not None and before["link"] is not None and _agrees(before["resolved"], value) \
                    and not via_reroute:
                socket = {"link": before["link"]}  # the original link, through its Primitives
            elif before is not None and before.get("broadcast") and _agrees(before["resolved"], value):
                pass  # the Use Everywhere node still sends it
            elif before is not None and before["link"] is not None and before["resolved"] is None and (
                    value is None or spec.get("widget") and not before.get("cut") and value == old_values.get(name)):
                socket = {"link": before["link"]}  # still from a muted node, or a bypass passing nothing
            elif linked:
                link_id, next_link = next_link, next_link + 1
                links[link_id] = [link_id, ids[value[0]], value[1], ids[node_id], 0, spec["type"]]
                socket = {"link": link_id}
            # Where it sits: as before, else sockets first and converted widgets after (as ComfyUI).
            rank = old_list.index(name) if name in old_list else 1000 * (2 if spec.get("widget") else 1) + position
            if spec.get("widget"):
                shown = value if value is not None and _is_value(value) else old_values.get(name, spec.get("default"))
                pattern = (record.get("patterns") or {}).get(name)
                if pattern and shown == pattern[1]:
                    shown = pattern[0]  # still what the pattern gave: the pattern again
                if isinstance(shown, dict) and set(shown) == {"__value__"}:
                    shown = shown["__value__"]
                shown_values[name] = shown
                if socket is not None or name in old_inputs:  # newer editors list every widget's socket
                    base = dict(old_inputs.get(name) or {"name": name, "type": spec["type"]})
                    base["widget"] = {"name": name}
                    new_inputs.append((rank, {**base, "link": socket["link"] if socket else None}))
            else:
                if spec.get("legacy") and socket is None and name not in old_inputs:
                    continue  # the current class lacks it: written only where linked or saved
                base = dict(old_inputs.get(name) or {"name": name, "type": spec["type"]})
                base["link"] = socket["link"] if socket else None
                if spec.get("force_input"):  # a bare socket now, as the current editor saves it
                    base.pop("widget", None)
                new_inputs.append((rank, base))
        new_inputs = [socket for _, socket in sorted(new_inputs, key=lambda pair: pair[0])]
        ui_node["inputs"] = new_inputs
        widgets = [shown_values[spec["name"]] if role == "value" else
                   controls.get(spec["name"], CONTROL_DEFAULT) if role == "control" else "image"
                   for spec, role in _widget_slots(order)]
        if alias is not None and alias.export_widgets is not None and widgets:
            widgets = alias.export_widgets(widgets)  # as the pack's editor saves them (its own widgets too)
        # A class without widgets keeps what its frontend saved there (the text pysssss's Show Text shows).
        ui_node["widgets_values"] = widgets if widgets or not old else old.get("widgets_values", widgets)
        saved = (old or {}).get("widgets_values")
        if isinstance(saved, dict) or class_type.startswith(NAMED_WIDGETS):  # kept by name, the rest (previews) too
            named = {spec["name"]: shown_values[spec["name"]] for spec, role in _widget_slots(order) if role == "value"}
            ui_node["widgets_values"] = {**(saved if isinstance(saved, dict) else {}), **named}
        # Values of inputs ComfyUI's class lacks (ours: KSampler's noise_mode, tiling sizes) have no
        # place among its positional widgets; they ride in the node's properties, which ComfyUI keeps.
        known = {spec["name"] for spec in order}
        extra = {k: v for k, v in inputs.items() if k not in known and _is_value(v)}
        properties = dict(comfy_pack_nodes.node_properties(ui_node))
        properties.pop(EXTRA_PROPERTY, None)
        # the pack ids that choose this claimant (also on a kept node: one read by its type or input
        # names may lack them); a kept node keeps any other ids it has
        properties.update(_pack_properties(registry, class_type, key))
        if extra:
            properties[EXTRA_PROPERTY] = extra
        if class_type == comfy_pack_nodes.POWER_LORA_LOADER:
            ui_node["widgets_values"] = comfy_pack_nodes.power_lora_widgets(inputs.get("loras", "[]"), properties)
        if class_type in comfy_pack_nodes.PYSSSSS_IMAGE_COMBOS:
            comfy_pack_nodes.file_item_widget(ui_node["widgets_values"], (old or {}).get("widgets_values"))
        ui_node["properties"] = properties
        if not old:
            cls = registry.claimant_node(key)
            specs, alias = (cls.output_specs if cls else ()), _alias_for(cls, key)
            if alias is not None and alias.outputs is not None:  # the class has only those of ours
                specs = [specs[i] for i in alias.outputs]
            outs = comfy_catalogue().get(key, {}).get("outputs") or \
                [{"name": name, "type": o.type} for o, name in zip(specs, _output_names(alias, specs))]
            ui_node["outputs"] = [{"name": o["name"], "type": o["type"], "links": []} for o in outs]
        out_nodes.append(ui_node)

    for key, point in (reroutes or {}).items():
        old = originals.get(key) if (originals.get(key) or {}).get("type") == "Reroute" else None
        node = copy.deepcopy(old) if old else {
            "id": extra_ids[key], "type": "Reroute", "pos": [0, 0], "size": [75, 26], "flags": {}, "order": 0,
            "mode": 0, "inputs": [{"name": "", "type": "*", "link": None}],
            "outputs": [{"name": "", "type": "*", "links": []}],
            "properties": {"showOutputText": False, "horizontal": False}}
        node["id"] = extra_ids[key]
        if isinstance(point.get("pos"), list):
            node["pos"] = point["pos"]
        if key in reroute_in:
            a, a_slot, kind = reroute_in[key]
            socket = (node.get("inputs") or [{}])[0]
            before_link = old_links.get(_node_id(socket.get("link")))
            if before_link is None or (int(before_link[0]), before_link[1]) != (a, a_slot) and \
                    old_resolver.link(socket.get("link")) != ("link", str(a), a_slot):
                link_id, next_link = next_link, next_link + 1
                links[link_id] = [link_id, a, a_slot, node["id"], 0, kind]
                node["inputs"] = [{**socket, "name": socket.get("name", ""), "type": socket.get("type", "*"),
                                   "link": link_id}]
                node["outputs"] = [{**(node.get("outputs") or [{}])[0], "name": "", "type": kind}]
        out_nodes.append(node)
    for note in notes or []:
        key = str(note.get("id"))
        old = originals.get(key) if (originals.get(key) or {}).get("type") in NOTE_TYPES else None
        kind = note["type"] if note.get("type") in NOTE_TYPES else "MarkdownNote" if note.get("markdown") else "Note"
        node = copy.deepcopy(old) if old and old.get("type") == kind else {
            "id": extra_ids[key], "type": kind, "pos": [0, 0], "size": [400, 100], "flags": {}, "order": 0,
            "mode": 0, "inputs": [], "outputs": [], "properties": {}, "widgets_values": [""]}
        node["id"] = extra_ids[key]
        if isinstance(note.get("pos"), list):
            node["pos"] = note["pos"]
        if isinstance(note.get("width"), (int, float)):
            node["size"] = [note["width"], note.get("height") or 100]
        node["widgets_values"] = [str(note.get("text") or "")] + list((node.get("widgets_values") or [""])[1:])
        if kind == "Note Plus (mtb)":  # its four widgets: text, Mode, CSS, Theme; the pack's defaults where missing
            # (Mode: markdown as the note reads; "raw", the pack's other plain mode, for a note that isn't)
            defaults = ["markdown" if note.get("markdown") else "raw", NOTE_PLUS_CSS, NOTE_PLUS_THEME]
            node["widgets_values"] += defaults[len(node["widgets_values"]) - 1:]
        if note.get("title"):
            node["title"] = note["title"]
        else:
            node.pop("title", None)
        _set_looks(node, note)
        out_nodes.append(node)

    written = {n["id"] for n in out_nodes}
    real = set(converted)
    from_ui = (("Reroute",) if reroutes is not None else ()) + (NOTE_TYPES if notes is not None else ())
    for node_id, node in originals.items():  # Primitives, dropped nodes, subgraphs
        if node.get("type") in from_ui:
            continue
        if node_id not in real and node_id not in ids and node.get("id") not in written:
            out_nodes.append(copy.deepcopy(node))
            written.add(node.get("id"))
    # Original links still used by a written node's input.
    for node in out_nodes:
        for socket in node.get("inputs") or []:
            link = socket.get("link")
            if link is not None and link not in links and _node_id(link) in old_links:
                a, a_slot, b, b_slot, kind = old_links[_node_id(link)]
                if int(a) in written:
                    links[link] = [link, int(a), a_slot, int(b), b_slot, kind]
                else:
                    socket["link"] = None
    for node in out_nodes:  # every link's target slot, from where its input now sits
        for index, socket in enumerate(node.get("inputs") or []):
            if socket.get("link") in links:
                links[socket["link"]][3], links[socket["link"]][4] = node["id"], index
    for node in out_nodes:
        for slot, output in enumerate(node.get("outputs") or []):
            now = [lid for lid, l in links.items() if l[1] == node["id"] and l[2] == slot]
            if sorted(now) != sorted(output.get("links") or []):  # else keep the saved order
                output["links"] = now or (None if output.get("links") is None else [])
            if output.get("links") is not None and "slot_index" in output:
                output["slot_index"] = slot
    result = {k: v for k, v in original.items() if k not in ("nodes", "links")}
    result.setdefault("last_node_id", 0)
    result["last_node_id"] = max([result["last_node_id"]] + [n["id"] for n in out_nodes if isinstance(n["id"], int)])
    result["last_link_id"] = max([int(original.get("last_link_id") or 0)] + list(links))
    saved_order = {n.get("id"): i for i, n in enumerate(original.get("nodes", []))}
    result["nodes"] = sorted(out_nodes, key=lambda n: (saved_order.get(n["id"], len(saved_order)), n["id"]))
    result["links"] = [links[k] for k in sorted(links)]
    if any(isinstance(link, dict) for link in original.get("links") or []):  # the schema-1 shape
        keys = ("id", "origin_id", "origin_slot", "target_id", "target_slot", "type")
        result["links"] = [dict(zip(keys, link)) for link in result["links"]]
    result["groups"] = ui["groups"] if isinstance(ui.get("groups"), list) else result.get("groups", [])
    result.setdefault("config", {})
    result.setdefault("extra", {})
    result.setdefault("version", 0.4)
    return result


def _pack_properties(registry, class_type: str, key: str) -> dict:
    """The properties naming the pack a UI node of `class_type` read as `key` comes from (cnr_id:
    the Comfy registry id, aux_id: the GitHub owner/repo), so the save reads back as that node:
    its ComfyAlias.pack, or OWN_PACK for our own node whose name a ComfyUI class shares."""
    claim = registry.claim(key)
    if claim is None or claim.own and len(registry.claimants(class_type)) < 2:
        return {}
    cnr = next((i for i in claim.pack if "/" not in i), None)
    aux = next((i for i in claim.pack if "/" in i), None)
    return {k: v for k, v in (("cnr_id", cnr), ("aux_id", aux)) if v is not None}


def _set_looks(node: dict, place: dict) -> None:
    """A UI node's collapsed flag and colours from our ui block's entry."""
    flags = dict(node["flags"]) if isinstance(node.get("flags"), dict) else {}
    if place.get("collapsed"):
        flags["collapsed"] = True
    else:
        flags.pop("collapsed", None)
    node["flags"] = flags
    for key in ("color", "bgcolor"):
        if isinstance(place.get(key), str):
            node[key] = place[key]
        else:
            node.pop(key, None)


def _columns(workflow: Workflow) -> dict[str, list[int]]:
    """Positions for nodes saved without any: a column per link depth, stacked downwards."""
    depth: dict[str, int] = {}

    def depth_of(node_id, seen=()):
        if node_id not in depth:
            sources = [v[0] for v in workflow.nodes[node_id].inputs.values()
                       if is_link(v) and v[0] in workflow.nodes and v[0] not in seen]
            depth[node_id] = 1 + max((depth_of(s, seen + (node_id,)) for s in sources), default=-1)
        return depth[node_id]

    rows: dict[int, int] = {}
    placed = {}
    for node_id in workflow.nodes:
        column = depth_of(node_id)
        placed[node_id] = [column * 360, rows.get(column, 0) * 220]
        rows[column] = rows.get(column, 0) + 1
    return placed


def _is_value(value) -> bool:
    return not (isinstance(value, list) and len(value) == 2 and isinstance(value[0], str)
                and isinstance(value[1], int))


def _agrees(resolved, value) -> bool:
    if resolved is None:
        return False
    if resolved[0] == "value":
        return _is_value(value) and resolved[1] == value
    return not _is_value(value) and str(resolved[1]) == str(value[0]) and int(resolved[2]) == int(value[1])


def _same_class(old, class_type, workflow, node_id, registry) -> bool:
    if old is None:
        return False
    if old.get("type") == class_type:
        return True
    ours = registry.claimant_node(old.get("type"))
    return ours is not None and ours.node_type == workflow.nodes[node_id].type


def convert(workflow: Workflow, to: str, registry) -> dict:
    """The workflow as JSON in one of the formats: graphflow, comfy-api, comfy-ui."""
    if to == "graphflow":
        return workflow.to_json()
    if to == "comfy-api":
        return export_api(workflow, registry)
    if to == "comfy-ui":
        return export_ui(workflow, registry)
    raise WorkflowFormatError(f"unknown format {to!r}: expected graphflow, comfy-api or comfy-ui")


FORMATS = ("graphflow", "comfy-api", "comfy-ui")


def comfy_texts(workflow_json: dict, registry, editor: bool = True) -> dict[str, str]:
    """ComfyUI's embedded texts of a workflow being run: "prompt" (API format, what ran) and, with
    `editor`, "workflow" (its editor's format), as its savers write them. Empty when the graph can't
    be written in them: a file is saved all the same, with our own text only."""
    try:
        workflow = parse_workflow(workflow_json, registry)
        texts = {"prompt": json.dumps(export_api(workflow, registry))}
        if editor:
            texts["workflow"] = json.dumps(export_ui(workflow, registry))
        return texts
    except Exception:  # metadata must never cost the user the file
        return {}
