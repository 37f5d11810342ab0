"""The choice lists and defaults that node declarations need, free of torch.

Listing and validating nodes (`graphflow nodes`, `graphflow validate`, the editor's catalogue) imports
every node module, so whatever a declaration names must not pull in torch. The modules that implement
these choices import them from here (and tests check they implement exactly these).
"""

# KSampler's sampler_name and scheduler, in ComfyUI's order (graphflow.sampling.samplers.SAMPLERS and
# graphflow.sampling.schedules.SCHEDULERS implement them).
SAMPLER_NAMES = (
    "euler", "euler_cfg_pp", "euler_ancestral", "euler_ancestral_cfg_pp", "heun", "heunpp2",
    "dpm_2", "dpm_2_ancestral", "lms", "dpm_fast", "dpm_adaptive", "dpmpp_2s_ancestral",
    "dpmpp_2s_ancestral_cfg_pp", "dpmpp_sde", "dpmpp_sde_gpu", "dpmpp_2m", "dpmpp_2m_cfg_pp",
    "dpmpp_2m_sde", "dpmpp_2m_sde_gpu", "dpmpp_2m_sde_heun", "dpmpp_2m_sde_heun_gpu",
    "dpmpp_3m_sde", "dpmpp_3m_sde_gpu", "ddpm", "lcm", "ipndm", "ipndm_v", "deis", "res_multistep",
    "res_multistep_cfg_pp", "res_multistep_ancestral", "res_multistep_ancestral_cfg_pp",
    "gradient_estimation", "gradient_estimation_cfg_pp", "er_sde", "seeds_2", "seeds_3",
    "sa_solver", "sa_solver_pece", "ddim", "uni_pc", "uni_pc_bh2",
)
SCHEDULER_NAMES = (
    "simple", "sgm_uniform", "karras", "exponential", "ddim_uniform", "beta", "normal",
    "linear_quadratic", "kl_optimal",
)
# The custom-sampling nodes' choices (nodes/custom_sampling.py; graphflow.sampling.samplers / schedules).
NOISE_DEVICES = ("gpu", "cpu")  # where the SDE samplers' Brownian tree lives
DPMPP_2M_SDE_SOLVERS = ("midpoint", "heun")
ER_SDE_SOLVER_TYPES = ("ER-SDE", "Reverse-time SDE", "ODE")
LCM_UPSCALE_METHODS = ("bislerp", "nearest-exact", "bilinear", "area", "bicubic")
AYS_MODEL_TYPES = ("SD1", "SDXL", "SVD")  # Align Your Steps' published schedules
OPTIMAL_STEPS_MODEL_TYPES = ("FLUX", "Wan", "Chroma")
SIGMA_SPACINGS = ("linear", "cosine", "sine")  # ExtendIntermediateSigmas
DEEP_SHRINK_RESIZE_METHODS = ("bicubic", "nearest-exact", "bilinear", "area", "bislerp")  # PatchModelAddDownscale
NOISE_MODES = ("comfy", "per_image")  # how a batch's initial noise is drawn (graphflow.sampling.noise)
# ContextWindowsManual's (graphflow.sampling.context_windows), in ComfyUI's order
CONTEXT_SCHEDULES = ("standard_static", "standard_uniform", "looped_uniform", "batched")
CONTEXT_FUSE_METHODS = ("pyramid", "relative", "flat", "overlap-linear")

# FLUX's resolution-dependent shift and its default guidance (graphflow.sampling.flow_sampling).
FLUX_BASE_SHIFT, FLUX_MAX_SHIFT = 0.5, 1.15
DEFAULT_FLUX_GUIDANCE = 3.5  # ComfyUI's when the conditioning sets none

PREVIEW_METHODS = ("none", "latent2rgb", "taesd")  # how sampler previews are drawn (graphflow.sampling.preview)

RESIZE_METHODS = ("nearest-exact", "bilinear", "area", "bicubic", "lanczos")  # graphflow.images.resize_nchw

# Latent diagnostics (graphflow.diagnostics).
PATCH_MODES = ("zero", "noise")  # sensitivity: what replaces a patch
IMAGE_METRICS = ("mse", "l1", "lpips")  # image_metrics: how an image change is measured
PERTURBATIONS = ("zero", "noise", "replace")  # latent_edits: region perturbation
INTERPOLATIONS = ("lerp", "slerp")  # latent_edits: between two latents

# torch.compile's modes for --compile-mode / GRAPHFLOW_COMPILE_MODE (graphflow.models.speed)
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
# TorchCompileModel's backends and ModelComputeDtype's dtypes (ComfyUI's lists; graphflow.models.speed)
COMPILE_BACKENDS = ("inductor", "cudagraphs")
COMPUTE_DTYPES = ("default", "fp32", "fp16", "bf16")

# SetUnionControlNetType's types, in ComfyUI's order; a type's index in the list less one is the
# number ComfyUI gives the union ControlNet ("auto": none). graphflow.models.union_controlnet and
# graphflow.models.flux_controlnet read the number.
UNION_CONTROLNET_TYPES = ("auto", "openpose", "depth", "hed/pidi/scribble/ted", "canny/lineart/anime_lineart/mlsd",
                          "normal", "segment", "tile", "repaint")
# LoraSave's lora_type (graphflow.models.lora_extract): low-rank up/down pairs, or whole differences.
LORA_EXTRACT_TYPES = ("standard", "full_diff")
# TrainLoraNode's choices (graphflow.training), in ComfyUI's order.
TRAIN_OPTIMIZERS = ("AdamW", "Adam", "SGD", "RMSprop")
TRAIN_LOSSES = ("MSE", "L1", "Huber", "SmoothL1")
TRAIN_DTYPES = ("bf16", "fp32")
TRAIN_ALGORITHMS = ("LoRA", "LoHa", "LoKr", "OFT")
IMAGE_SET_RESIZE = ("None", "Stretch", "Crop", "Pad")

# ComfyUI_IPAdapter_plus's tool nodes' lists, in its order (graphflow.models.ip_adapter_images implements them)
IPADAPTER_INTERPOLATIONS = ("LANCZOS", "BICUBIC", "HAMMING", "BILINEAR", "BOX", "NEAREST")
IPADAPTER_CROP_POSITIONS = ("top", "bottom", "left", "right", "center", "pad")
IPADAPTER_NOISE_TYPES = ("fade", "dissolve", "gaussian", "shuffle")
IPADAPTER_COMBINE_METHODS = ("concat", "add", "subtract", "average", "norm average", "max", "min")
