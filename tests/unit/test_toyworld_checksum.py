"""The toy world's frozen text encoders are rebuilt from a seed and must hash to the recorded value
(toyworld/model.py). Checked here on a small module; the real encoders are checked against the
shipped weights in tests/integration/test_toyworld.py."""

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
    with pytest.raises(M.ChecksumMismatch, match="Retrain with `python -m toyworld.train`"):
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
    sizes = sum(p.stat().st_size for p in M.WEIGHTS.iterdir())
    assert sizes <= 25 * 2**20
