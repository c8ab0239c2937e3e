"""LPIPS from its formula with seeded random backbones; weight files and the missing-weights error."""

import math

import pytest
import torch
import torch.nn.functional as F

from bench.metrics.lpips import LPIPS, LPIPSWeightsMissing, NETS, masked_lpips
from bench.metrics.pixel import MetricInputError


def rand_image(seed, b=1, h=32, w=32):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, h, w, 3, generator=g)


@pytest.fixture(scope="module", params=["alex", "vgg"])
def model(request):
    return LPIPS.from_random(seed=0, net=request.param)


@pytest.fixture(scope="module")
def alex():
    return LPIPS.from_random(seed=0, net="alex")


@pytest.fixture
def no_default_weights(tmp_path, monkeypatch):
    """Make sure no real cache or installed package is found."""
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    monkeypatch.delenv("EMS_LPIPS_DIR", raising=False)
    import bench.metrics.lpips as mod

    monkeypatch.setattr(mod, "_package_dir", lambda name: None)


def test_zero_for_identical_images(model):
    a = rand_image(0, b=2)
    assert torch.allclose(model(a, a), torch.zeros(2, dtype=torch.float64), atol=1e-7)


def test_symmetric_and_positive_for_different_images(model):
    a, b = rand_image(1, b=2), rand_image(2, b=2)
    ab, ba = model(a, b), model(b, a)
    assert (ab > 0).all()
    assert torch.allclose(ab, ba, rtol=1e-5)


def test_small_perturbation_is_closer_than_another_image(model):
    a = rand_image(3)
    near = (a + 0.02 * (rand_image(4) - 0.5)).clamp(0, 1)
    assert 0 < model(a, near).item() < model(a, rand_image(5)).item()


def test_first_layer_term_by_hand(alex):
    """relu1 of AlexNet is relu(conv1(scaled input)); compute LPIPS's first term from the
    formula directly: unit-normalise channels, squared difference, 1×1 weights, spatial mean."""
    a, b = rand_image(6), rand_image(7)
    conv = alex.features[0]
    shift = torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1)
    scale = torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1)

    def feat(x):
        x = (x.permute(0, 3, 1, 2) * 2 - 1 - shift) / scale
        f = torch.relu(F.conv2d(x, conv.weight, conv.bias, stride=4, padding=2))
        return f / (f.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)

    w = alex.lins[0].weight.view(1, -1, 1, 1)
    expected = ((feat(a) - feat(b)) ** 2 * w).sum(1).mean().item()
    terms = alex.layer_distances(a, b)
    assert len(terms) == 5
    assert terms[0].item() == pytest.approx(expected, rel=1e-5)
    assert alex(a, b).item() == pytest.approx(sum(t.item() for t in terms), rel=1e-12)


def test_linear_weights_scale_the_distance(alex):
    a, b = rand_image(8), rand_image(9)
    m = LPIPS.from_random(seed=0, net="alex")
    with torch.no_grad():
        for lin in m.lins:
            lin.weight.mul_(3.0)
    assert m(a, b).item() == pytest.approx(3.0 * alex(a, b).item(), rel=1e-5)


def test_from_random_is_seeded_and_leaves_the_global_rng_alone():
    torch.manual_seed(123)
    expected = torch.rand(1)
    torch.manual_seed(123)
    m1 = LPIPS.from_random(seed=4)
    after = torch.rand(1)
    m2 = LPIPS.from_random(seed=4)
    m3 = LPIPS.from_random(seed=5)
    assert torch.equal(after, expected)
    assert torch.equal(m1.features[0].weight, m2.features[0].weight)
    assert not torch.equal(m1.features[0].weight, m3.features[0].weight)


def torchvision_style(model):
    """State dicts as the real files hold them: torchvision backbone (with classifier keys) and
    the lpips package's linear layers (linK.model.1.weight)."""
    backbone = {f"features.{k}": v.clone() for k, v in model.features.state_dict().items()}
    backbone["classifier.1.weight"] = torch.zeros(4, 4)
    linear = {f"lin{i}.model.1.weight": lin.weight.clone() for i, lin in enumerate(model.lins)}
    return backbone, linear


def test_from_pretrained_loads_local_files(tmp_path, no_default_weights, alex, monkeypatch):
    backbone, linear = torchvision_style(alex)
    torch.save(backbone, tmp_path / "alexnet-owt-7be5be79.pth")
    torch.save(linear, tmp_path / "alex.pth")
    a, b = rand_image(10), rand_image(11)
    ref = alex(a, b)
    assert torch.equal(LPIPS.from_pretrained("alex", weights_dir=tmp_path)(a, b), ref)
    assert torch.equal(
        LPIPS.from_pretrained(
            "alex", backbone_path=tmp_path / "alexnet-owt-7be5be79.pth", linear_path=tmp_path / "alex.pth"
        )(a, b),
        ref,
    )
    monkeypatch.setenv("EMS_LPIPS_DIR", str(tmp_path))
    assert torch.equal(LPIPS.from_pretrained("alex")(a, b), ref)


def test_from_pretrained_finds_the_torch_hub_cache_and_safetensors(tmp_path, monkeypatch, alex):
    from safetensors.torch import save_file

    monkeypatch.delenv("EMS_LPIPS_DIR", raising=False)
    hub = tmp_path / "hub"
    (hub / "checkpoints").mkdir(parents=True)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(hub))
    backbone, linear = torchvision_style(alex)
    torch.save(backbone, hub / "checkpoints" / "alexnet-owt-7be5be79.pth")
    save_file(linear, str(tmp_path / "alex_lin.safetensors"))
    m = LPIPS.from_pretrained("alex", linear_path=tmp_path / "alex_lin.safetensors")
    a, b = rand_image(12), rand_image(13)
    assert torch.equal(m(a, b), alex(a, b))


def test_missing_weights_error_names_files_urls_and_places(tmp_path, no_default_weights):
    with pytest.raises(LPIPSWeightsMissing) as e:
        LPIPS.from_pretrained("alex", weights_dir=tmp_path)
    text = str(e.value)
    for needle in (
        "alexnet-owt-7be5be79.pth",
        "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
        "alex.pth",
        "lpips/weights/v0.1/alex.pth",
        str(tmp_path / "alex.pth"),
        str(tmp_path / "hub" / "checkpoints"),
        "--lpips-dir",
    ):
        assert needle in text, needle
    with pytest.raises(LPIPSWeightsMissing, match="vgg16-397923af.pth"):
        LPIPS.from_pretrained("vgg")


def test_only_the_missing_file_is_listed(tmp_path, no_default_weights, alex):
    backbone, _ = torchvision_style(alex)
    torch.save(backbone, tmp_path / "alexnet-owt-7be5be79.pth")
    with pytest.raises(LPIPSWeightsMissing) as e:
        LPIPS.from_pretrained("alex", weights_dir=tmp_path)
    assert "alex.pth" in str(e.value) and "download.pytorch.org" not in str(e.value)


def test_wrong_weights_are_refused(alex):
    vgg_backbone, _ = torchvision_style(LPIPS.from_random(0, "vgg"))
    m = LPIPS("alex")
    with pytest.raises(MetricInputError, match="alexnet-owt-7be5be79.pth"):
        m.load_backbone(vgg_backbone)
    with pytest.raises(MetricInputError, match="layer 0"):
        m.load_linear({"something.else": torch.zeros(1)})
    with pytest.raises(ValueError, match="'alex' or 'vgg'"):
        LPIPS("squeeze")


def test_layer_layouts_match_torchvision_indices():
    alex, vgg = LPIPS("alex"), LPIPS("vgg")
    assert [k for k in alex.features.state_dict() if k.endswith("weight")] == [f"{i}.weight" for i in (0, 3, 6, 8, 10)]
    assert [lin.in_channels for lin in vgg.lins] == list(NETS["vgg"]["channels"])
    assert [i for i, m in enumerate(vgg.features) if isinstance(m, torch.nn.Conv2d)] == [
        0,
        2,
        5,
        7,
        10,
        12,
        14,
        17,
        19,
        21,
        24,
        26,
        28,
    ]


def test_masked_lpips_sees_the_background_only(alex):
    src = rand_image(14, h=64, w=64)
    edited = src.clone()
    edited[:, :, :32] = rand_image(15, h=64, w=32)
    mask = torch.zeros(1, 64, 64)
    mask[:, :, :32] = 1
    assert masked_lpips(src, edited, mask, alex).item() == pytest.approx(0.0, abs=1e-7)
    assert alex(src, edited).item() > 0
    edited[:, 40:, 40:] = 0.5
    assert masked_lpips(src, edited, mask, alex).item() > 0
    assert math.isnan(masked_lpips(src, edited, torch.ones(1, 64, 64), alex).item())
