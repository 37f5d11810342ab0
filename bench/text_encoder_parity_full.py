"""Full-size text-encoder parity: graphflow vs diffusers' single-file loader + transformers.

Writes random-weight, real-size text encoders in the checkpoint layout (SD1.5's CLIP-L;
SDXL's CLIP-L + OpenCLIP bigG), loads them with graphflow and with diffusers'
`create_diffusers_clip_model_from_ldm` (configs given locally, no hub), encodes the same token
ids the way diffusers' pipelines do, and prints max abs differences (fp32, CPU) and timings as
ratios against the reference measured in the same run.

    .venv/bin/python bench/text_encoder_parity_full.py [--threads 2] [--keep DIR]
"""

import argparse
import tempfile
import time
from pathlib import Path

import torch
from diffusers.loaders.single_file_utils import create_diffusers_clip_model_from_ldm
from safetensors.torch import load_file
from transformers import CLIPTextModel, CLIPTextModelWithProjection

from graphflow.models.checkpoint import load_text_encoder
from graphflow.models.tokenizer import EOS, tokenize_prompt
from graphflow.testing import text_config, write_checkpoint

PROMPTS = [
    "a photograph of an astronaut riding a horse on mars, highly detailed, 8k",
    "portrait of an old fisherman, dramatic lighting, oil painting",
    ", ".join(f"intricate detail {i}" for i in range(45)),  # three 77-token windows
]


def reference_model(cls, tower, checkpoint, root):
    config_dir = root / f"config_{tower}"
    text_config(tower, scaled_down=False).save_pretrained(config_dir)
    return create_diffusers_clip_model_from_ldm(cls, checkpoint, config=str(config_dir), torch_dtype=torch.float32,
                                                local_files_only=True).eval()


def timed(fn, repeat=3):
    fn()  # warm-up
    start = time.perf_counter()
    for _ in range(repeat):
        result = fn()
    return result, (time.perf_counter() - start) / repeat


def diff(a, b):
    return (a.float() - b.float()).abs().max().item()


@torch.no_grad()
def bench_sd1(root):
    path = write_checkpoint(root / "sd15_text.safetensors", "sd1", scaled_down=False, components=("text",), seed=1)
    t0 = time.perf_counter()
    ours = load_text_encoder(path, device="cpu", dtype=torch.float32)
    t_ours = time.perf_counter() - t0
    t0 = time.perf_counter()
    ref = reference_model(CLIPTextModel, "clip_l", load_file(str(path)), root)
    t_ref = time.perf_counter() - t0
    print(f"SD1.5 CLIP-L ({sum(p.numel() for p in ref.parameters()) / 1e6:.1f}M params): "
          f"load {t_ours:.2f}s vs diffusers {t_ref:.2f}s ({t_ours / t_ref:.2f}x)")
    worst = 0.0
    for prompt in PROMPTS:
        windows = torch.tensor(tokenize_prompt(prompt, EOS).ids)
        for clip_skip in (-1, -2):
            (cond, pooled), t_enc = timed(lambda: ours.encode(prompt, clip_skip=clip_skip))

            def reference():
                out = ref(windows, output_hidden_states=True)
                h = out.last_hidden_state if clip_skip == -1 else ref.final_layer_norm(out.hidden_states[-2])
                return h.reshape(1, -1, h.shape[-1]), out.pooler_output[:1]

            (ref_cond, ref_pooled), t_r = timed(reference)
            d = max(diff(cond, ref_cond), diff(pooled, ref_pooled))
            worst = max(worst, d)
            print(f"  {len(windows)} window(s), clip_skip {clip_skip}: max|diff| {d:.2e}  "
                  f"encode {t_enc * 1e3:.0f} ms vs reference forward {t_r * 1e3:.0f} ms ({t_enc / t_r:.2f}x)")
    return worst


@torch.no_grad()
def bench_sdxl(root):
    path = write_checkpoint(root / "sdxl_text.safetensors", "sdxl", scaled_down=False, components=("text",), seed=2)
    t0 = time.perf_counter()
    ours = load_text_encoder(path, device="cpu", dtype=torch.float32)
    t_ours = time.perf_counter() - t0
    t0 = time.perf_counter()
    checkpoint = load_file(str(path))
    ref_l = reference_model(CLIPTextModel, "clip_l", checkpoint, root)
    ref_g = reference_model(CLIPTextModelWithProjection, "clip_g", checkpoint, root)
    del checkpoint
    t_ref = time.perf_counter() - t0
    params = sum(p.numel() for m in (ref_l, ref_g) for p in m.parameters())
    print(f"SDXL CLIP-L + bigG ({params / 1e6:.1f}M params): load {t_ours:.2f}s vs diffusers {t_ref:.2f}s "
          f"({t_ours / t_ref:.2f}x)")
    worst = 0.0
    for prompt in PROMPTS:
        ids_l = torch.tensor(tokenize_prompt(prompt, EOS).ids)
        ids_g = torch.tensor(tokenize_prompt(prompt, 0).ids)  # SDXL's tokenizer_2 pads with '!' (id 0)
        (cond, pooled), t_enc = timed(lambda: ours.encode(prompt), repeat=2)

        def reference():  # StableDiffusionXLPipeline.encode_prompt, window by window
            out_l = ref_l(ids_l, output_hidden_states=True)
            out_g = ref_g(ids_g, output_hidden_states=True)
            h = torch.cat([out_l.hidden_states[-2], out_g.hidden_states[-2]], dim=-1)
            return h.reshape(1, -1, h.shape[-1]), out_g.text_embeds[:1]

        (ref_cond, ref_pooled), t_r = timed(reference, repeat=2)
        d = max(diff(cond, ref_cond), diff(pooled, ref_pooled))
        worst = max(worst, d)
        print(f"  {len(ids_l)} window(s): cond {tuple(cond.shape)}, pooled {tuple(pooled.shape)}, max|diff| {d:.2e}  "
              f"encode {t_enc * 1e3:.0f} ms vs reference forward {t_r * 1e3:.0f} ms ({t_enc / t_r:.2f}x)")
    return worst


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--keep", type=Path, help="write the random checkpoints here instead of a temp dir")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        root = args.keep or Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        worst = max(bench_sd1(root), bench_sdxl(root))
    print(f"worst max|diff| over all cases: {worst:.2e} (fp32; budget 1e-4) -> {'OK' if worst <= 1e-4 else 'FAIL'}")


if __name__ == "__main__":
    main()
