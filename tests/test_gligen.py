"""GLIGEN text boxes: the gated self-attention and the position net against diffusers'
GatedSelfAttentionDense / GLIGENTextBoundingboxProjection on the weights of our file, the fuser's
place in the UNet transformer block, ComfyUI's box arithmetic, and end to end through the nodes."""

import pytest
import torch
from diffusers.models.attention import GatedSelfAttentionDense
from diffusers.models.embeddings import GLIGENTextBoundingboxProjection

from graphflow.models.checkpoint import CheckpointError, load_checkpoint
from graphflow.models.gligen import GligenBoxes, GligenError, fuser_heads, load_gligen
from graphflow.testing import write_checkpoint, write_gligen

TOL = 1e-5


@pytest.fixture(scope="module")
def sd1(tmp_path_factory):
    folder = tmp_path_factory.mktemp("gligen")
    ckpt = load_checkpoint(write_checkpoint(folder / "sd1.safetensors", "sd1", dtype=torch.float32), device="cpu",
                           dtype=torch.float32)
    return ckpt, load_gligen(write_gligen(folder / "gligen.safetensors", seed=1))


def theirs_fuser(gligen, path):
    ours = gligen.fusers[path.replace(".", "/")]
    dim, token_dim = ours.linear.weight.shape
    heads = fuser_heads(dim, token_dim)
    ref = GatedSelfAttentionDense(dim, token_dim, heads, dim // heads)
    ref.load_state_dict(ours.state_dict())  # same key names as the original file's fuser.*
    return ref.eval()


def test_position_net_and_tokens_match_diffusers(sd1):
    _, gligen = sd1
    ref = GLIGENTextBoundingboxProjection(gligen.text_dim, gligen.position_net.linears[-1].out_features).eval()
    ref.load_state_dict(gligen.position_net.state_dict())
    g = torch.Generator().manual_seed(0)
    pooled = [torch.randn(1, gligen.text_dim, generator=g) for _ in range(2)]
    latent_hw = (12, 16)
    # ComfyUI's boxes: (pooled, height, width, y, x) in latent units -> x1 = x / w, y1 = y / h, ...
    boxes = [(pooled[0], 4, 8, 2, 3), (pooled[1], 12, 16, 0, 0)]
    ours = gligen.tokens(boxes, batch=2, latent_hw=latent_hw)
    coords = torch.zeros(1, 30, 4)
    coords[0, 0] = torch.tensor([3 / 16, 2 / 12, 11 / 16, 6 / 12])
    coords[0, 1] = torch.tensor([0.0, 0.0, 1.0, 1.0])
    masks = torch.zeros(1, 30)
    masks[0, :2] = 1
    embeddings = torch.zeros(1, 30, gligen.text_dim)
    embeddings[0, 0], embeddings[0, 1] = pooled[0][0], pooled[1][0]
    with torch.no_grad():
        expected = ref(boxes=coords, masks=masks, positive_embeddings=embeddings)
    assert ours.shape == (2, 30, expected.shape[-1])
    torch.testing.assert_close(ours, expected.expand(2, -1, -1), atol=TOL, rtol=TOL)
    with pytest.raises(GligenError, match="64-wide pooled"):
        gligen.tokens([(torch.zeros(1, 32), 1, 1, 0, 0)], 1, latent_hw)


def test_fuser_runs_after_self_attention_as_diffusers_gated_self_attention(tmp_path, sd1):
    ckpt, gligen = sd1
    unet = ckpt.model.unet
    path = "input_blocks.1.1.transformer_blocks.0"
    block = unet.get_submodule(path)
    g = torch.Generator().manual_seed(2)
    x = torch.randn(1, 4, 8, 8, generator=g)
    objs = torch.randn(1, 30, gligen.position_net.linears[-1].out_features, generator=g)
    tokens = torch.randn(1, 64, block.attn1.to_q.in_features, generator=g)
    context = torch.randn(1, 7, block.attn2.to_k.in_features, generator=g)
    patched = gligen.patched_unet(unet, objs)
    ref = theirs_fuser(gligen, path)
    with torch.no_grad():
        h = tokens + block.attn1(block.norm1(tokens))
        h = ref(h, objs)
        h = h + block.attn2(block.norm2(h), context)
        expected = h + block.ff(block.norm3(h))
        got = patched.get_submodule(path)(tokens, context)
        torch.testing.assert_close(got, expected, atol=TOL, rtol=TOL)
        assert (got - block(tokens, context)).abs().max() > 1e-3
        # every fuser of the file is in place, and the input UNet is untouched
        assert all(patched.get_submodule(p).gated_self_attention is not None for p in gligen.fuser_paths())
        assert all(unet.get_submodule(p).gated_self_attention is None for p in gligen.fuser_paths())
        t = torch.tensor([400.0])
        assert not torch.equal(patched(x, t, context), unet(x, t, context))
        closed = load_gligen(write_gligen(tmp_path / "closed.safetensors", seed=1, alpha=0.0))
        assert torch.equal(closed.patched_unet(unet, objs)(x, t, context), unet(x, t, context))


def test_prefixed_file_loads_the_same_and_wrong_files_are_refused(tmp_path, sd1):
    _, gligen = sd1
    prefixed = load_gligen(write_gligen(tmp_path / "p.safetensors", seed=1, prefix="model.diffusion_model."))
    assert prefixed.fuser_paths() == gligen.fuser_paths()
    for (k, a), b in zip(gligen.state_dict().items(), prefixed.state_dict().values()):
        assert torch.equal(a, b), k
    write_checkpoint(tmp_path / "ckpt.safetensors", "sd1")
    with pytest.raises(GligenError, match=r"ckpt\.safetensors is no GLIGEN text-box model"):
        load_gligen(tmp_path / "ckpt.safetensors")


def graph(boxes, negative_boxes=False):
    nodes = {"4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "tiny.safetensors"}},
             "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a park", "clip": ["4", 1]}},
             "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry", "clip": ["4", 1]}},
             "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
             "3": {"class_type": "KSampler", "inputs": {
                 "seed": 5, "steps": 3, "cfg": 4.0, "sampler_name": "euler", "scheduler": "normal", "denoise": 1.0,
                 "model": ["4", 0], "positive": ["6", 0], "negative": ["7", 0], "latent_image": ["5", 0]}},
             "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
             "9": {"class_type": "PreviewImage", "inputs": {"images": ["8", 0]}}}
    previous = ["6", 0]
    for n, (file, text, (w, h, x, y)) in enumerate(boxes):
        nodes[f"l{n}"] = {"class_type": "GLIGENLoader", "inputs": {"gligen_name": file}}
        nodes[f"b{n}"] = {"class_type": "GLIGENTextBoxApply", "inputs": {
            "conditioning_to": previous, "clip": ["4", 1], "gligen_textbox_model": [f"l{n}", 0], "text": text,
            "width": w, "height": h, "x": x, "y": y}}
        previous = [f"b{n}", 0]
        if negative_boxes:  # the same box on the negative prompt, through its own GLIGENTextBoxApply
            nodes[f"nb{n}"] = {"class_type": "GLIGENTextBoxApply", "inputs": {
                **nodes[f"b{n}"]["inputs"], "conditioning_to": nodes["3"]["inputs"]["negative"]}}
            nodes["3"]["inputs"]["negative"] = [f"nb{n}", 0]
    nodes["3"]["inputs"]["positive"] = previous
    return nodes


def test_nodes_end_to_end(builtin_registry, tmp_folders):
    from graphflow.executor import Executor
    from graphflow.workflow import parse_workflow

    for sub in ("checkpoints", "gligen"):
        (tmp_folders.models / sub).mkdir(exist_ok=True)
    write_checkpoint(tmp_folders.models / "checkpoints" / "tiny.safetensors", "sd1")
    write_gligen(tmp_folders.models / "gligen" / "g.safetensors", seed=3, alpha=0.8)
    write_gligen(tmp_folders.models / "gligen" / "closed.safetensors", seed=3, alpha=0.0)  # tanh(0): gates shut
    executor = Executor(builtin_registry)

    def image(boxes, negative_boxes=False):
        result = executor.run(parse_workflow(graph(boxes, negative_boxes), builtin_registry))
        assert result.status == "success", (result.problems, result.error)
        return result.values["8"][0], result

    plain, _ = image([])
    one, run = image([("g.safetensors", "a red ball", (32, 32, 0, 16))])
    moved, _ = image([("g.safetensors", "a red ball", (32, 32, 32, 16))])
    two, _ = image([("g.safetensors", "a red ball", (32, 32, 0, 16)), ("g.safetensors", "a tree", (16, 48, 48, 8))])
    closed, _ = image([("closed.safetensors", "a red ball", (32, 32, 0, 16))])
    assert (one - plain).abs().max() > 1e-3
    assert (moved - one).abs().max() > 1e-3  # where the box is matters
    assert (two - one).abs().max() > 1e-3  # a second box adds to the first
    # closed gates: the fusers add nothing (not bitwise: the positive prompt no longer batches with the
    # negative, and a batch of 1 rounds differently from a batch of 2)
    assert (closed - plain).abs().max() <= 1e-5
    # ComfyUI gives a box-less negative the positive's boxes (apply_empty_x_to_equal_area): as if the
    # negative had the same box of its own (not bitwise: two box sets do not batch together)
    both, _ = image([("g.safetensors", "a red ball", (32, 32, 0, 16))], negative_boxes=True)
    assert (both - one).abs().max() <= 1e-4
    boxes = run.values["b0"][0][0][1]["gligen"]
    assert isinstance(boxes, GligenBoxes) and [b[1:] for b in boxes.boxes] == [(4, 4, 2, 0)]
    write_checkpoint(tmp_folders.models / "gligen" / "ckpt.safetensors", "sd1")
    bad = executor.run(parse_workflow(graph([("ckpt.safetensors", "x", (8, 8, 0, 0))]), builtin_registry))
    # validation names the file's kind before anything runs; the loader refuses it too
    [problem] = bad.problems
    assert bad.status == "invalid" and (problem.node_id, problem.input) == ("l0", "gligen_name")
    assert "looks like a checkpoint" in problem.message and "models/checkpoints/" in problem.message
    with pytest.raises(CheckpointError, match="ckpt.safetensors is no GLIGEN text-box model"):
        load_gligen(tmp_folders.models / "gligen" / "ckpt.safetensors")
