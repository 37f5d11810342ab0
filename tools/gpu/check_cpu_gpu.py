"""Same seed, same graph on CPU and on CUDA: the starting noise must be identical, the images close."""
import torch
from graphflow.sampling.noise import initial_noise
from graphflow.testing import write_checkpoint
from graphflow.models.checkpoint import load_checkpoint
from graphflow.sampling import sample

write_checkpoint("/tmp/tiny.safetensors", "sd1")
x = torch.zeros(2, 4, 8, 8)
print("initial noise identical CPU vs CUDA path:", torch.equal(initial_noise(x, 7), initial_noise(x.cuda(), 7).cpu()))
images = {}
for device, dtype in (("cpu", torch.float32), ("cuda", torch.float32), ("cuda", torch.float16)):
    ck = load_checkpoint("/tmp/tiny.safetensors", device=device, dtype=dtype)
    pos = [(ck.clip.encode("a red circle")[0], {})]
    neg = [(ck.clip.encode("")[0], {})]
    out = sample(ck.model, 7, 10, 5.0, "dpmpp_2m", "karras", pos, neg, {"samples": x})
    images[(device, str(dtype))] = ck.vae.decode(out["samples"])
ref = images[("cpu", "torch.float32")]
for key, img in images.items():
    print(key, "max |diff| vs CPU fp32:", float((img - ref).abs().max()))
