"""The toy world's frozen text encoders are rebuilt from a seed and checked by what they compute
(fixed probe captions' embeddings against those recorded at training; toyworld/model.py), with the
weights' hash as the fallback. Checked here on a stand-in encoder, including simulated upstream layout
changes; the real encoders are loaded against the shipped weights in tests/integration/test_toyworld.py."""

from __future__ import annotations

import json

import pytest
import torch

from comfyui_ems.toyworld import model as M


def _module(seed: int) -> torch.nn.Module:
    net = torch.nn.ModuleDict(
        {
            "embedding": torch.nn.Embedding(50, 8),
            "final_layer_norm": torch.nn.LayerNorm(8),
            "proj": torch.nn.Linear(8, 4),
        }
    )
    return M.seeded_parameters(net, seed)


def test_rebuilding_from_the_seed_gives_the_same_weights():
    assert M.parameters_sha256(_module(3)) == M.parameters_sha256(_module(3))
    assert torch.equal(_module(3)["final_layer_norm"].weight, _module(3)["final_layer_norm"].weight)
    assert torch.allclose(_module(3)["final_layer_norm"].weight, torch.ones(8), atol=0.1)  # norm weights start near 1


def test_a_changed_generator_fails_loudly():
    expected = M.parameters_sha256(_module(3))
    M.verify_checksum(_module(3), expected, "test weights")
    with pytest.raises(M.ChecksumMismatch, match="Retrain with `make toy-train`"):
        M.verify_checksum(_module(4), expected, "test weights")


def test_any_changed_weight_changes_the_hash():
    net = _module(3)
    before = M.parameters_sha256(net)
    with torch.no_grad():
        net["proj"].bias[0] += 1e-7
    assert M.parameters_sha256(net) != before


def test_shipped_weights_record_the_encoders_checksum():
    meta_path = M.WEIGHTS / M.META_FILE
    if not meta_path.exists():
        pytest.skip("no trained toy weights in toyworld/weights (run python -m toyworld.train)")
    meta = json.loads(meta_path.read_text())
    assert len(meta["text_encoders"]["sha256"]) == 64
    assert meta["text_encoders"]["seed"] == M.TEXT_ENCODER_SEED
    assert meta["text_encoders"]["config"] == M.TEXT_ENCODER_CONFIG
    assert meta["mmdit_config"] == M.MMDIT_CONFIG and meta["vae_ddconfig"] == M.VAE_DDCONFIG
    # small enough to ship in the pack: three diffusion models (SD3 toy, Flux toy, toy world v3's)
    # of ~10 MB and two VAEs of ~6 MB, in fp16
    sizes = sum(p.stat().st_size for p in M.WEIGHTS.iterdir())
    assert sizes <= 45 * 2**20


# -- verified by what the encoders compute ----------------------------------------------------------


class Encoder(torch.nn.Module):
    """A stand-in text encoder with ComfyUI's shape of output: (tokens (1, T, D), pooled (1, P))."""

    def __init__(self, names=("embedding", "final_layer_norm", "proj"), buffer=False):
        super().__init__()
        self.names = names
        setattr(self, names[0], torch.nn.Embedding(50, 8))
        setattr(self, names[1], torch.nn.LayerNorm(8))
        setattr(self, names[2], torch.nn.Linear(8, 4))
        if buffer:  # an upstream addition that computes nothing new
            self.register_buffer("position_ids", torch.arange(77))

    def encode(self, text: str):
        ids = torch.tensor([[ord(c) % 50 for c in text or " "]])
        tokens = getattr(self, self.names[1])(getattr(self, self.names[0])(ids))
        return tokens, getattr(self, self.names[2])(tokens.mean(dim=1))


def rebuilt(**layout) -> Encoder:
    return M.seeded_parameters(Encoder(**layout), M.TEXT_ENCODER_SEED)


def test_an_added_buffer_or_a_rename_that_keeps_the_order_still_loads():
    trained = rebuilt()
    recorded = M.probe_fingerprint(trained.encode)
    for layout in ({"buffer": True}, {"names": ("embedding", "final_layer_norm", "projection")}):
        upstream = rebuilt(**layout)
        M.verify_probes(M.probe_fingerprint(upstream.encode), recorded, "test encoders")
    # the parameter-bytes hash would have refused the rename for nothing
    renamed = rebuilt(names=("embedding", "final_layer_norm", "projection"))
    assert M.parameters_sha256(renamed) != M.parameters_sha256(trained)


def test_a_layout_change_that_changes_the_computation_fails_naming_the_caption_and_the_fix():
    recorded = M.probe_fingerprint(rebuilt().encode)
    moved = rebuilt(names=("token_embedding", "final_layer_norm", "proj"))  # now seeded after 'proj'
    with pytest.raises(M.ChecksumMismatch) as e:
        M.verify_probes(M.probe_fingerprint(moved.encode), recorded, "test encoders")
    message = str(e.value)
    assert repr(M.PROBE_CAPTIONS[0]) in message and "away (relative)" in message
    assert "0.3.64" in message and "make toy-train" in message


def test_float_noise_is_within_the_tolerance():
    recorded = M.probe_fingerprint(rebuilt().encode)
    noisy = {k: [x * (1 + 1e-6) for x in v] for k, v in recorded.items()}
    M.verify_probes(noisy, recorded, "test encoders")


def test_shipped_weights_record_the_encoders_probes():
    meta = json.loads((M.WEIGHTS / M.META_FILE).read_text())
    probes = meta["text_encoders"]["probes"]
    assert tuple(probes) == M.PROBE_CAPTIONS and all(len(v) == 2 * M.PROBE_SIZE for v in probes.values())
