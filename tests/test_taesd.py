"""TAESD: our tiny autoencoder against diffusers' AutoencoderTiny on identical random weights,
loading the original file layout, and TAESD previews during sampling."""

import pytest
import torch
from safetensors.torch import save_file

from graphflow.models.taesd import Decoder, Encoder, TAESDConfig, TinyVAE, load_half, load_tiny_vae
from graphflow.models.latent_formats import SD1
from graphflow.models.weight_files import CheckpointError


def _random_halves(latent_channels, seed=0):
    torch.manual_seed(seed)
    cfg = TAESDConfig(latent_channels=latent_channels)
    enc, dec = Encoder(cfg), Decoder(cfg)
    for p in list(enc.parameters()) + list(dec.parameters()):
        p.data = torch.randn_like(p) * (1.0 / p[0].numel()) ** 0.5
    return enc, dec


def _to_diffusers(enc, dec, latent_channels):
    from diffusers import AutoencoderTiny

    ref = AutoencoderTiny(latent_channels=latent_channels).eval()
    state = {f"encoder.layers.{k}": v for k, v in enc.state_dict().items()}
    for k, v in dec.state_dict().items():  # the original decoder starts with the (parameter-free) clamp
        index, rest = k.split(".", 1)
        state[f"decoder.layers.{int(index) - 1}.{rest}"] = v
    ref.load_state_dict(state)
    return ref


@pytest.mark.parametrize("latent_channels", [4, 16])  # TAESD/TAESDXL and TAESD3/TAEF1
def test_parity_with_diffusers_autoencoder_tiny(tmp_path, latent_channels):
    enc, dec = _random_halves(latent_channels)
    save_file(enc.state_dict(), str(tmp_path / "enc.safetensors"))
    save_file(dec.state_dict(), str(tmp_path / "dec.safetensors"))
    ours_enc, ours_dec = load_half(tmp_path / "enc.safetensors", "encoder"), load_half(tmp_path / "dec.safetensors", "decoder")
    ref = _to_diffusers(enc, dec, latent_channels)
    torch.manual_seed(1)
    image = torch.rand(2, 3, 32, 48)
    with torch.no_grad():
        ours_latent = ours_enc(image)
        # diffusers: images in -1..1; its encode returns the latent as is (scaling_factor 1)
        ref_latent = ref.encode(image * 2 - 1).latents
        assert ours_latent.shape == (2, latent_channels, 4, 6)
        assert (ours_latent - ref_latent).abs().max() <= 1e-4
        latent = torch.randn(2, latent_channels, 4, 6) * 2
        ours_image = ours_dec(latent)
        ref_image = (ref.decode(latent).sample + 1) / 2
        assert ours_image.shape == (2, 3, 32, 48)
        assert (ours_image - ref_image).abs().max() <= 1e-4
        assert ours_image.std() > 1e-3


def test_tiny_vae_maps_raw_latents_through_the_format(tmp_path):
    enc, dec = _random_halves(4)
    vae = TinyVAE(enc, dec, SD1)
    raw = torch.randn(1, 4, 3, 5)
    with torch.no_grad():
        expected = dec(raw * SD1.scale_factor).clamp(0, 1).permute(0, 2, 3, 1)
    assert torch.allclose(vae.decode(raw), expected, atol=1e-6)
    image = torch.rand(1, 24, 40, 3)
    with torch.no_grad():
        expected = enc(image.permute(0, 3, 1, 2)) / SD1.scale_factor
    assert torch.allclose(vae.encode(image), expected, atol=1e-5)


def test_refuses_wrong_files(tmp_path):
    enc, dec = _random_halves(4)
    save_file(enc.state_dict(), str(tmp_path / "taesd_encoder.safetensors"))
    with pytest.raises(CheckpointError, match="taesd_encoder.safetensors is not a TAESD decoder"):
        load_half(tmp_path / "taesd_encoder.safetensors", "decoder")
    save_file(dec.state_dict(), str(tmp_path / "taesd_decoder.safetensors"))
    with pytest.raises(CheckpointError, match="taesd_decoder.safetensors: a 4-channel TAESD decoder, but taef1"):
        load_tiny_vae({"decoder": tmp_path / "taesd_decoder.safetensors"}, "taef1")
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes((tmp_path / "taesd_decoder.safetensors").read_bytes()[:3000])
    with pytest.raises(CheckpointError, match="cut.safetensors .*truncated"):
        load_half(cut, "decoder")
