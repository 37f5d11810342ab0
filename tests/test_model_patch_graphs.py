"""A ComfyUI API graph chaining HyperTile, TomePatchModel, the attention multipliers and
ModelComputeDtype runs on the bundled demo model and still draws what the prompt asks for."""

from test_comfy_core_demo import base_graph, described, run


def test_model_patches_in_a_comfyui_graph(builtin_registry, tmp_folders):
    graph = base_graph(width=64)
    graph.update({
        "20": {"class_type": "HyperTile", "inputs": {"model": ["4", 0], "tile_size": 32, "swap_size": 2,
                                                     "max_depth": 0, "scale_depth": False}},
        "21": {"class_type": "TomePatchModel", "inputs": {"model": ["20", 0], "ratio": 0.3}},
        "22": {"class_type": "UNetSelfAttentionMultiply", "inputs": {"model": ["21", 0], "q": 1.0, "k": 1.0,
                                                                     "v": 1.0, "out": 1.1}},
        "23": {"class_type": "UNetCrossAttentionMultiply", "inputs": {"model": ["22", 0], "q": 1.1, "k": 1.0,
                                                                      "v": 1.0, "out": 1.0}},
        "24": {"class_type": "ModelComputeDtype", "inputs": {"model": ["23", 0], "dtype": "fp32"}},
        "25": {"class_type": "CLIPAttentionMultiply", "inputs": {"clip": ["4", 1], "q": 1.0, "k": 1.0,
                                                                 "v": 1.0, "out": 1.05}},
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
    })
    graph["3"]["inputs"]["model"] = ["24", 0]
    graph["6"]["inputs"]["clip"] = ["25", 0]
    graph["7"]["inputs"]["clip"] = ["25", 0]
    image = run(builtin_registry, graph).values["8"][0][0]
    assert image.shape == (64, 64, 3)
    assert described(image) == ("red", "circle", "white")
    plain = base_graph(width=64)
    plain["8"] = {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}}
    assert (run(builtin_registry, plain).values["8"][0][0] - image).abs().max() > 0.01  # the patches acted
