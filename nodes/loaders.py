"""Model loaders: checkpoints, diffusion models alone, standalone VAEs (and TAESD), LoRAs. Files
are found in the models folder (checkpoints/, diffusion_models/ or unet/, vae/, vae_approx/,
loras/) and, for checkpoints, among the bundled demo models."""

from graphflow.api import CLIP, MODEL, VAE, Choice, ComfyAlias, Float, Node, NodeInputError, folders, warn

# graphflow.models is imported inside run(): it pulls in transformers (seconds of start-up),
# which `graphflow nodes`, `validate` and the server's start shouldn't pay for.

DEMO_CHECKPOINT = "graphflow-demo.safetensors"


def _find(kind: str, name: str, input_name: str):
    try:
        return folders.find_model(kind, name)
    except (FileNotFoundError, ValueError) as e:
        raise NodeInputError(input_name, str(e)) from None


class LoadCheckpoint(Node):
    """Load a single-file checkpoint (SD1.x, SD2.x, SDXL, all-in-one SD3/SD3.5/FLUX.1 files, and
    ComfyUI's all-in-one Stable Cascade Stage C / Stage B files;
    .safetensors, or .ckpt through PyTorch's restricted unpickler) and split it into its diffusion
    model, text encoder and VAE. The architecture is detected from the weights."""
    category = "loaders"
    checkpoint: str = Choice(lambda: folders.list_models("checkpoints"), DEMO_CHECKPOINT, model_folder="checkpoints")
    outputs = {"model": MODEL, "clip": CLIP, "vae": VAE}
    # CheckpointLoader's config file is not needed: the architecture is detected from the weights
    comfy = (ComfyAlias(("CheckpointLoaderSimple",), inputs={"ckpt_name": "checkpoint"}),
             ComfyAlias(("CheckpointLoader",), inputs={"ckpt_name": "checkpoint"}, ignore=("config_name",)))

    @classmethod
    def fingerprint(cls, checkpoint):
        return folders.model_state("checkpoints", checkpoint)

    def run(self):
        from graphflow.models.checkpoint import CheckpointError, load_checkpoint

        path = _find("checkpoints", self.checkpoint, "checkpoint")
        try:
            loaded = load_checkpoint(path)
        except CheckpointError as e:
            raise NodeInputError("checkpoint", str(e)) from None
        return loaded.model, loaded.clip, loaded.vae


class LoadDiffusers(Node):
    """Load a diffusers-format model folder as downloaded from Hugging Face (model_index.json and
    one subfolder per part) from models/diffusers/: SD1.x, SD2.x and SDXL (base and refiner:
    unet/, vae/, text_encoder/, text_encoder_2/, scheduler/), the SD2 x4 upscaler (its
    StableDiffusionUpscalePipeline folder, for SD_4XUpscale_Conditioning), SD3 / SD3.5 (transformer/, vae/,
    text_encoder/ CLIP-L, text_encoder_2/ CLIP-G, text_encoder_3/ T5-XXL if present) and FLUX.1
    dev / schnell (transformer/, vae/, text_encoder/ CLIP-L, text_encoder_2/ T5-XXL). Weights may
    be sharded (*.safetensors.index.json or *.bin.index.json with its shards). From scheduler/scheduler_config.json:
    the prediction type (epsilon or v_prediction) and zero-terminal SNR (rescale_betas_zero_snr),
    or for SD3/FLUX the sampling shift (FLUX dev's resolution-dependent one where
    use_dynamic_shifting is set)."""
    category = "advanced/loaders/deprecated"
    model_path: str = Choice(lambda: folders.list_model_folders("diffusers"), model_folder="diffusers")
    outputs = {"model": MODEL, "clip": CLIP, "vae": VAE}
    comfy = ComfyAlias(("DiffusersLoader",))

    @classmethod
    def fingerprint(cls, model_path):
        return _folder_state(model_path)

    def run(self):
        from graphflow.models.diffusers_folder import load_diffusers
        from graphflow.models.weight_files import CheckpointError

        try:
            path = folders.find_model_folder("diffusers", self.model_path)
        except (FileNotFoundError, ValueError) as e:
            raise NodeInputError("model_path", str(e)) from None
        try:
            loaded = load_diffusers(path)
        except CheckpointError as e:
            raise NodeInputError("model_path", str(e)) from None
        return loaded.model, loaded.clip, loaded.vae


def _folder_state(name: str) -> str:
    """A diffusers folder's identity for the cache: its files' names, sizes and modification times."""
    try:
        base = folders.find_model_folder("diffusers", name)
    except (FileNotFoundError, ValueError):
        return f"{name}:missing"
    from graphflow.models.weight_files import file_state

    files = sorted(p for p in base.rglob("*") if p.is_file())
    return name + "".join(f":{p.relative_to(base)}:{file_state(p)}" for p in files)


WEIGHT_DTYPES = ("default", "fp8_e4m3fn", "fp8_e4m3fn_fast", "fp8_e5m2")


class LoadDiffusionModel(Node):
    """Load a diffusion model alone: a SD3/SD3.5/FLUX.1/Mochi/Wan 2.1 transformer file as distributed
    (flux1-dev.safetensors, sd3.5_large.safetensors, mochi_preview_bf16.safetensors,
    wan2.1_t2v_1.3B_fp16.safetensors, ...) or the
    UNet of a SD1/SD2/SDXL checkpoint, from models/unet/ or models/diffusion_models/. weight_dtype
    fp8_* keeps the transformer's weights in 8 bits (half the memory of bf16), upcast layer by
    layer as it runs; its other tensors (biases, norms, embeddings) hold fp8-rounded values, as
    ComfyUI builds the whole network in that dtype. A SD1/SD2/SDXL UNet or PixArt gets the same
    fp8-rounded numbers, kept in the compute dtype (no memory saved). fp8_e4m3fn_fast is taken as fp8_e4m3fn."""
    category = "loaders"
    unet_name: str = Choice(lambda: folders.list_models("diffusion_models"))
    weight_dtype: str = Choice(WEIGHT_DTYPES, "default")
    outputs = {"model": MODEL}
    comfy = ComfyAlias(("UNETLoader",))

    @classmethod
    def fingerprint(cls, unet_name, **widgets):
        return folders.model_state("diffusion_models", unet_name)

    def run(self):
        return load_unet(self.unet_name, self.weight_dtype, "unet_name")


def load_unet(name: str, weight_dtype: str, input_name: str):
    """The diffusion model `name` from diffusion_models/ as UNETLoader loads it (fp8_e4m3fn_fast is
    plain fp8_e4m3fn); a file it cannot read is reported on `input_name`."""
    from graphflow.models.checkpoint import CheckpointError, load_diffusion_model

    path = _find("diffusion_models", name, input_name)
    weight_dtype = "fp8_e4m3fn" if weight_dtype == "fp8_e4m3fn_fast" else weight_dtype
    try:
        return load_diffusion_model(path, weight_dtype=weight_dtype)
    except CheckpointError as e:
        raise NodeInputError(input_name, str(e)) from None


# TAESD releases offered by LoadVAE when both halves are in models/vae_approx/ (ComfyUI's names)
TAESD_NAMES = ("taesd", "taesdxl", "taesd3", "taef1")


def _taesd_halves(name: str) -> dict:
    """{"encoder": file name, "decoder": file name} of a TAESD release in vae_approx/ (missing: absent).
    As in ComfyUI, a half is the first file (by name) at the folder's top named NAME_encoder.* /
    NAME_decoder.*, whatever its model extension (.pth, .safetensors, ...)."""
    present = folders.list_models("vae_approx")
    halves = {}
    for part in ("encoder", "decoder"):
        found = [f for f in present if f.startswith(f"{name}_{part}.")]
        if found:
            halves[part] = found[0]
    return halves


PIXEL_SPACE = "pixel_space"  # ComfyUI's weightless VAE for pixel-space models, last in its list


def _vae_choices() -> list[str]:
    return folders.list_models("vae") + [n for n in TAESD_NAMES if len(_taesd_halves(n)) == 2] + [PIXEL_SPACE]


class LoadVAE(Node):
    """Load a standalone VAE file to use instead of a checkpoint's own (SD1/SDXL VAEs, the
    16-channel SD3 VAE, FLUX's ae.safetensors, Mochi's mochi_vae.safetensors, Wan 2.1's video VAE
    wan_2.1_vae, Cosmos 1.0's video tokenizer cosmos_cv8x8x8_1.0). "taesd", "taesdxl",
    "taesd3" and "taef1" are the tiny autoencoders (fast, approximate decodes and encodes), offered
    when both their files (NAME_encoder.* / NAME_decoder.*, .pth or .safetensors) are in models/vae_approx/.
    "pixel_space" is no file: the VAE of pixel-space models (Chroma Radiance), whose latents are
    the image itself as [B, 3, H, W] in -1..1."""
    category = "loaders"
    vae_name: str = Choice(_vae_choices, model_folder="vae", not_files=(*TAESD_NAMES, PIXEL_SPACE))
    outputs = {"vae": VAE}
    comfy = ComfyAlias(("VAELoader",))

    @classmethod
    def fingerprint(cls, vae_name):
        if vae_name == PIXEL_SPACE:
            return PIXEL_SPACE
        if vae_name in TAESD_NAMES:
            return ";".join(folders.model_state("vae_approx", f) for f in _taesd_halves(vae_name).values())
        return folders.model_state("vae", vae_name)

    def run(self):
        from graphflow.models.checkpoint import CheckpointError, load_vae

        if self.vae_name == PIXEL_SPACE:
            from graphflow.models.vae import PixelSpaceVAE

            return PixelSpaceVAE()
        try:
            if self.vae_name in TAESD_NAMES:
                return self._tiny()
            return load_vae(_find("vae", self.vae_name, "vae_name"))
        except CheckpointError as e:
            raise NodeInputError("vae_name", str(e)) from None

    def _tiny(self):
        from graphflow.models.taesd import load_tiny_vae

        halves = _taesd_halves(self.vae_name)
        if len(halves) < 2:
            raise NodeInputError("vae_name", f"{self.vae_name} needs {self.vae_name}_encoder.* and "
                                             f"{self.vae_name}_decoder.* (.safetensors or .pth) in models/vae_approx/; "
                                             f"found {sorted(halves.values()) or 'neither'}")
        paths = {part: _find("vae_approx", f, "vae_name") for part, f in halves.items()}
        return load_tiny_vae(paths, self.vae_name)  # on the CPU: the memory manager moves it in to run


class LoadLoRA(Node):
    """Apply a LoRA to the diffusion model and the text encoder with separate strengths: LoRA,
    LoCon (with Tucker lora_mid), LoHa, LoKr, GLoRA, OFT, BOFT, DoRA and full-diff modules (LyCORIS norm diffs too), in kohya's key layout,
    SimpleTuner's (lycoris_...), diffusers/PEFT's (unet./text_encoder./text_encoder_2. ... lora_A/lora_B) or ComfyUI's
    (diffusion_model. ..., FLUX/Chroma/SD3 in their own module names). FLUX/Chroma/SD3 LoRAs also in diffusers'
    transformer. layout (separate to_q/to_k/to_v, proj_mlp) and kohya's (lora_unet_double_blocks_...).
    T5 modules (OneTrainer's lora_te3_...) patch SD3's / FLUX's T5 at strength_clip.
    The inputs are left untouched: new model and text encoder come out. Without a text encoder connected, only the model is changed. LoRA modules that match no
    layer, and keys that are no LoRA parts, are skipped with a warning listing them (as ComfyUI does); a LoRA that
    matches nothing fails. At strength 0 (both, with a text encoder) the inputs come out and the file is not read."""
    category = "loaders"
    model: MODEL
    clip: CLIP = None
    lora_name: str = Choice(lambda: folders.list_models("loras"), model_folder="loras")
    strength_model: float = Float(1.0, min=-100.0, max=100.0, step=0.01)
    strength_clip: float = Float(1.0, min=-100.0, max=100.0, step=0.01)
    outputs = {"model": MODEL, "clip": CLIP}
    comfy = (ComfyAlias(("LoraLoader",)), ComfyAlias(("LoraLoaderModelOnly",), optional=("clip", "strength_clip"), outputs=(0,)))

    @classmethod
    def fingerprint(cls, lora_name, **widgets):
        return folders.model_state("loras", lora_name)

    def run(self):
        from graphflow.models.checkpoint import CheckpointError
        from graphflow.models.lora import apply_lora

        path = _find("loras", self.lora_name, "lora_name")
        if self.strength_model == 0 and (self.clip is None or self.strength_clip == 0):
            return self.model, self.clip  # as ComfyUI: the file is not read (a LoRA switched off by strength 0)
        try:
            return apply_lora(self.model, self.clip, path, self.strength_model, self.strength_clip, strict=False,
                              warn=warn)
        except CheckpointError as e:
            raise NodeInputError("lora_name", str(e)) from None


class LoadHypernetwork(Node):
    """Apply an A1111 hypernetwork (.pt, read through PyTorch's restricted unpickler, or
    .safetensors) from models/hypernetworks/ to a SD1.x/SD2.x/SDXL model: in every attention whose
    key input width the file covers, keys and values get their small MLP's output added, times
    strength, before the key/value projections (as ComfyUI does). The input model is untouched."""
    category = "loaders"
    model: MODEL
    hypernetwork_name: str = Choice(lambda: folders.list_models("hypernetworks"), model_folder="hypernetworks")
    strength: float = Float(1.0, min=-10.0, max=10.0, step=0.01)
    outputs = {"model": MODEL}
    comfy = ComfyAlias(("HypernetworkLoader",))

    @classmethod
    def fingerprint(cls, hypernetwork_name, **widgets):
        return folders.model_state("hypernetworks", hypernetwork_name)

    def run(self):
        from graphflow.models.hypernetwork import apply_hypernetwork, read_hypernetwork
        from graphflow.models.weight_files import CheckpointError

        path = _find("hypernetworks", self.hypernetwork_name, "hypernetwork_name")
        try:
            layers = read_hypernetwork(path)
            return apply_hypernetwork(self.model, layers, self.strength)
        except CheckpointError as e:
            raise NodeInputError("hypernetwork_name", str(e)) from None
