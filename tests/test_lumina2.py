"""Lumina Image 2.0 (and Neta Lumina): Gemma-2 2B against transformers' Gemma2Model on the same
tiny random weights (ComfyUI's variant: no soft-capping, no sliding window, the second-to-last
layer's state unnormed)."""

import pytest
import torch
from transformers import Gemma2Config as HFGemma2Config
from transformers import Gemma2Model

from graphflow.models.gemma2 import gemma2_config_from_state_dict, gemma2_from_state_dict, gemma2_prefix
from graphflow.testing import gemma2_config, gemma2_state

TOL = 1e-4


def transformers_gemma2(state):
    """transformers' Gemma2Model with the tiny config, set as ComfyUI runs Gemma-2 (attention scaled
    by 1/sqrt(256), no logit soft-capping, no sliding window at these lengths)."""
    cfg = gemma2_config_from_state_dict({k: tuple(v.shape) for k, v in state.items()})
    hf = HFGemma2Config(vocab_size=cfg.vocab_size, hidden_size=cfg.hidden_size, intermediate_size=cfg.intermediate_size,
                        num_hidden_layers=cfg.num_layers, num_attention_heads=cfg.num_heads,
                        num_key_value_heads=cfg.num_kv_heads, head_dim=cfg.head_dim, query_pre_attn_scalar=cfg.head_dim,
                        attn_logit_softcapping=None, final_logit_softcapping=None, sliding_window=4096,
                        rms_norm_eps=cfg.eps, rope_theta=cfg.rope_theta, attn_implementation="eager")
    model = Gemma2Model(hf).eval()
    model.load_state_dict({k.removeprefix("model."): v for k, v in state.items() if k.startswith("model.")})
    return model


def test_gemma2_config_from_shapes():
    state = gemma2_state()
    assert gemma2_config_from_state_dict({k: tuple(v.shape) for k, v in state.items()}) == gemma2_config()
    assert gemma2_prefix(state) == ""
    assert gemma2_prefix({"text_encoders.gemma2_2b.transformer." + k: v for k, v in state.items()}) == \
        "text_encoders.gemma2_2b.transformer."


@pytest.mark.parametrize("prefix", ["", "text_encoders.gemma2_2b.transformer."])
def test_gemma2_matches_transformers(prefix):
    state = gemma2_state()
    ours = gemma2_from_state_dict({prefix + k: v for k, v in state.items()} | {prefix + "spiece_model": torch.zeros(3, dtype=torch.uint8)})
    theirs = transformers_gemma2(state)
    ids = torch.randint(0, 300, (2, 9), generator=torch.Generator().manual_seed(0))
    mask = torch.ones(2, 9, dtype=torch.long)
    mask[1, 6:] = 0  # the second prompt padded: its pads are masked as keys
    with torch.no_grad():
        hidden = theirs(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states
        penultimate, last = ours(ids, mask), ours(ids, mask, layer=None)
    keep = mask.bool()
    assert hidden[-2].abs().max() > 1  # not vanishing
    assert (penultimate - hidden[-2])[keep].abs().max() < TOL  # ComfyUI's layer_idx -2, no final norm
    assert (last - hidden[-1])[keep].abs().max() < TOL
    assert not torch.allclose(penultimate, last)
    with torch.no_grad():  # a prompt alone equals its row in the padded batch
        assert (ours(ids[1:, :6]) - penultimate[1:, :6]).abs().max() < TOL


def test_gemma2_rejects_other_files():
    with pytest.raises(ValueError, match="no Gemma-2 weights"):
        gemma2_from_state_dict({"encoder.block.0.layer.0.SelfAttention.q.weight": torch.zeros(4, 4)})
