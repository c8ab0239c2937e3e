"""LPIPS (Zhang et al. 2018, "The Unreasonable Effectiveness of Deep Features as a Perceptual
Metric"), version 0.1, implemented from its formula — no ``lpips`` package needed.

For images x, y (B, H, W, C) in [0, 1]:

1. map to [−1, 1] (``2x − 1``) and apply LPIPS's input scaling ``(x − shift) / scale`` with
   shift = (−0.030, −0.088, −0.188), scale = (0.458, 0.448, 0.450);
2. run the ImageNet backbone and take 5 feature maps f_l (B, C_l, H_l, W_l):
   AlexNet relu1…relu5 (64, 192, 384, 256, 256 channels) or VGG16 relu1_2, relu2_2, relu3_3,
   relu4_3, relu5_3 (64, 128, 256, 512, 512);
3. unit-normalise each feature vector along channels: ``f / (‖f‖₂ + 1e-10)``;
4. squared difference, weighted by the learned non-negative 1×1 linear layer w_l (1, C_l, 1, 1):
   ``d_l = Σ_c w_lc · (f̂x − f̂y)²_c``;
5. spatial mean of d_l, summed over the 5 layers → LPIPS (B,).

Weights are never downloaded. Two files are needed per network, looked up in this order:

- backbone, torchvision format (keys ``features.N.weight/bias``):
  AlexNet ``alexnet-owt-7be5be79.pth``, VGG16 ``vgg16-397923af.pth`` —
  an explicit ``backbone_path``, then ``weights_dir``, then torch hub's checkpoint folder
  (``torch.hub.get_dir()/checkpoints``, where torchvision caches them);
- linear layers, LPIPS v0.1 (keys ``linK.model.1.weight``): ``alex.pth`` / ``vgg.pth`` —
  an explicit ``linear_path``, then ``weights_dir``, then the installed ``lpips`` package
  (``lpips/weights/v0.1/``), then torchmetrics' copy (``functional/image/lpips_models/``).

``weights_dir`` defaults to the environment variable ``EMS_LPIPS_DIR``. ``.safetensors``
versions of the same state dicts work too.
"""

from __future__ import annotations

import importlib.util
import os
import re
from pathlib import Path
from typing import Optional, Sequence

import torch
import torch.nn as nn
from safetensors.torch import load_file

from .pixel import MetricInputError, check_pair, masked

SHIFT = (-0.030, -0.088, -0.188)
SCALE = (0.458, 0.448, 0.450)
EPS = 1e-10

# Layer tables mirror torchvision's `features` Sequential so state-dict keys match:
# ("conv", in, out, kernel, stride, padding) | ("relu",) | ("pool", kernel, stride)
_ALEX = [
    ("conv", 3, 64, 11, 4, 2),
    ("relu",),
    ("pool", 3, 2),
    ("conv", 64, 192, 5, 1, 2),
    ("relu",),
    ("pool", 3, 2),
    ("conv", 192, 384, 3, 1, 1),
    ("relu",),
    ("conv", 384, 256, 3, 1, 1),
    ("relu",),
    ("conv", 256, 256, 3, 1, 1),
    ("relu",),
]
_ALEX_TAPS = (1, 4, 7, 9, 11)


def _vgg16_layers() -> list:
    layers, cin = [], 3
    for v in (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512):
        if v == "M":
            layers.append(("pool", 2, 2))
        else:
            layers += [("conv", cin, v, 3, 1, 1), ("relu",)]
            cin = v
    return layers


NETS = {
    "alex": {
        "layers": _ALEX,
        "taps": _ALEX_TAPS,
        "channels": (64, 192, 384, 256, 256),
        "backbone_file": "alexnet-owt-7be5be79.pth",
        "linear_file": "alex.pth",
        "backbone_url": "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
    },
    "vgg": {
        "layers": _vgg16_layers(),
        "taps": (3, 8, 15, 22, 29),
        "channels": (64, 128, 256, 512, 512),
        "backbone_file": "vgg16-397923af.pth",
        "linear_file": "vgg.pth",
        "backbone_url": "https://download.pytorch.org/models/vgg16-397923af.pth",
    },
}
LINEAR_URL = "https://github.com/richzhang/PerceptualSimilarity/raw/master/lpips/weights/v0.1/{file}"


class LPIPSWeightsMissing(FileNotFoundError):
    """LPIPS weight files are not on this machine; the message lists what to download and where."""


def _net(net: str) -> dict:
    key = {"alexnet": "alex", "vgg16": "vgg"}.get(net, net)
    if key not in NETS:
        raise ValueError(f"LPIPS backbone {net!r} is not supported; use 'alex' or 'vgg'")
    return NETS[key] | {"name": key}


class LPIPS(nn.Module):
    """LPIPS distance between image batches: ``model(a, b) → (B,)`` for (B, H, W, C) in [0, 1].

    Build with :meth:`from_pretrained` (real weights from local files) or :meth:`from_random`
    (seeded random backbone and positive linear weights, for tests). Parameters are frozen;
    both images go through the backbone as one batch.
    """

    def __init__(self, net: str = "alex"):
        super().__init__()
        spec = _net(net)
        with torch.random.fork_rng(devices=[]):  # default layer init must not consume the global RNG
            self._build(spec)
        self.eval().requires_grad_(False)

    def _build(self, spec: dict) -> None:
        self.net = spec["name"]
        self.taps = tuple(spec["taps"])
        mods = []
        for layer in spec["layers"]:
            if layer[0] == "conv":
                _, cin, cout, k, s, p = layer
                mods.append(nn.Conv2d(cin, cout, k, stride=s, padding=p))
            elif layer[0] == "relu":
                mods.append(nn.ReLU(inplace=False))
            else:
                mods.append(nn.MaxPool2d(layer[1], stride=layer[2]))
        self.features = nn.Sequential(*mods)
        self.lins = nn.ModuleList(nn.Conv2d(c, 1, 1, bias=False) for c in spec["channels"])
        self.register_buffer("shift", torch.tensor(SHIFT).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor(SCALE).view(1, 3, 1, 1), persistent=False)

    # ----------------------------------------------------------------------------- constructors
    @classmethod
    def from_random(cls, seed: int = 0, net: str = "alex") -> "LPIPS":
        """Seeded random weights (He-normal convs, zero biases, positive linear weights summing
        to 1 per layer). The global RNG is not touched."""
        model = cls(net)
        g = torch.Generator().manual_seed(int(seed))
        with torch.no_grad():
            for m in model.features:
                if isinstance(m, nn.Conv2d):
                    fan_in = m.in_channels * m.kernel_size[0] * m.kernel_size[1]
                    m.weight.copy_(torch.randn(m.weight.shape, generator=g) * (2.0 / fan_in) ** 0.5)
                    m.bias.zero_()
            for lin in model.lins:
                w = torch.rand(lin.weight.shape, generator=g) + 0.1
                lin.weight.copy_(w / w.sum())
        return model

    @classmethod
    def from_pretrained(
        cls,
        net: str = "alex",
        backbone_path: Optional[str | os.PathLike] = None,
        linear_path: Optional[str | os.PathLike] = None,
        weights_dir: Optional[str | os.PathLike] = None,
    ) -> "LPIPS":
        """Load real LPIPS weights from local files (see the module docstring for the search
        order). Raises :class:`LPIPSWeightsMissing` naming exactly what to download."""
        spec = _net(net)
        weights_dir = weights_dir if weights_dir is not None else os.environ.get("EMS_LPIPS_DIR") or None
        backbone, tried_b = _find(backbone_path, _backbone_candidates(spec, weights_dir))
        linear, tried_l = _find(linear_path, _linear_candidates(spec, weights_dir))
        if backbone is None or linear is None:
            raise LPIPSWeightsMissing(_missing_message(spec, backbone is None, tried_b, linear is None, tried_l))
        model = cls(spec["name"])
        model.load_backbone(load_state_dict_file(backbone))
        model.load_linear(load_state_dict_file(linear))
        return model

    # ------------------------------------------------------------------------------- loading
    def load_backbone(self, state: dict) -> None:
        """Load a torchvision-format AlexNet/VGG16 state dict (``features.N.*``; classifier keys
        and a ``net.``/``module.`` prefix are ignored)."""
        feats = {}
        for k, v in state.items():
            k = re.sub(r"^(module\.|net\.)+", "", k)
            if k.startswith("features."):
                feats[k[len("features.") :]] = v
        expected = {k: v.shape for k, v in self.features.state_dict().items()}
        missing = sorted(set(expected) - set(feats), key=lambda s: int(s.split(".")[0]))
        if missing:
            raise MetricInputError(
                f"LPIPS {self.net} backbone state dict lacks features.{missing[0]} (and {len(missing) - 1} "
                f"more); expected torchvision's {NETS[self.net]['backbone_file']}"
            )
        for k, shape in expected.items():
            if feats[k].shape != shape:
                raise MetricInputError(
                    f"LPIPS {self.net} backbone: features.{k} has shape {tuple(feats[k].shape)}, expected "
                    f"{tuple(shape)}; is this the right network ({NETS[self.net]['backbone_file']})?"
                )
        self.features.load_state_dict({k: feats[k] for k in expected})

    def load_linear(self, state: dict) -> None:
        """Load LPIPS v0.1 linear weights: keys ``linK.model.1.weight`` (the lpips package's
        files), ``linK.weight`` or ``lins.K[.model.N].weight``, each (1, C_K, 1, 1)."""
        found = {}
        for k, v in state.items():
            m = re.fullmatch(r"(?:.*\.)?lin(?:s\.)?(\d+)\.(?:model\.\d+\.)?weight", k)
            if m:
                found[int(m.group(1))] = v
        for i, lin in enumerate(self.lins):
            if i not in found:
                raise MetricInputError(
                    f"LPIPS {self.net} linear weights lack layer {i} (keys like 'lin{i}.model.1.weight'); "
                    f"expected the LPIPS v0.1 file {NETS[self.net]['linear_file']}"
                )
            w = found[i].reshape(lin.weight.shape) if found[i].numel() == lin.weight.numel() else None
            if w is None:
                raise MetricInputError(
                    f"LPIPS {self.net} linear layer {i} has {found[i].numel()} weights, expected "
                    f"{lin.weight.numel()}; these are not {self.net} LPIPS weights"
                )
            with torch.no_grad():
                lin.weight.copy_(w)

    # ------------------------------------------------------------------------------- compute
    def _features(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = (x - self.shift) / self.scale
        out = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in self.taps:
                out.append(x)
            if i == self.taps[-1]:
                break
        return out

    def layer_distances(self, a: torch.Tensor, b: torch.Tensor) -> list[torch.Tensor]:
        """Per-layer terms (list of 5 tensors (B,)); LPIPS is their sum."""
        a, b = check_pair(a, b)
        if a.shape[-1] != 3:
            raise MetricInputError(f"LPIPS needs RGB images (C = 3), got C = {a.shape[-1]}")
        p = next(self.parameters())
        to = dict(device=p.device, dtype=p.dtype)
        x = a.permute(0, 3, 1, 2).to(**to) * 2 - 1
        y = b.permute(0, 3, 1, 2).to(**to) * 2 - 1
        n = x.shape[0]
        out = []
        for f, lin in zip(self._features(torch.cat([x, y])), self.lins):
            f = f / (f.pow(2).sum(1, keepdim=True).sqrt() + EPS)
            d = lin((f[:n] - f[n:]) ** 2)
            out.append(d.mean(dim=(1, 2, 3)).to(torch.float64))
        return out

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.stack(self.layer_distances(a, b)).sum(0)


def lpips(a: torch.Tensor, b: torch.Tensor, model: LPIPS) -> torch.Tensor:
    """LPIPS per item (B,) for (B, H, W, C) images in [0, 1]."""
    return model(a, b)


def masked_lpips(a: torch.Tensor, b: torch.Tensor, edit_mask: torch.Tensor, model: LPIPS) -> torch.Tensor:
    """LPIPS of the unedited region as PIE-Bench computes it: ``lpips(a·(1−m), b·(1−m))``;
    NaN where the mask leaves no background."""
    return masked(lambda x, y: model(x, y), a, b, edit_mask)


# ------------------------------------------------------------------------------------ files


def load_state_dict_file(path: str | os.PathLike) -> dict:
    """A state dict from ``.pth``/``.pt`` (loaded with ``weights_only=True``) or ``.safetensors``."""
    path = Path(path)
    if path.suffix == ".safetensors":
        return load_file(str(path))
    state = torch.load(str(path), map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise MetricInputError(f"{path} does not hold a state dict (got {type(state).__name__})")
    return state


def _package_dir(name: str) -> Optional[Path]:
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def _backbone_candidates(spec: dict, weights_dir) -> list[Path]:
    out = []
    if weights_dir:
        out.append(Path(weights_dir) / spec["backbone_file"])
    out.append(Path(torch.hub.get_dir()) / "checkpoints" / spec["backbone_file"])
    return out


def _linear_candidates(spec: dict, weights_dir) -> list[Path]:
    out = []
    if weights_dir:
        out.append(Path(weights_dir) / spec["linear_file"])
    pkg = _package_dir("lpips")
    if pkg:
        out.append(pkg / "weights" / "v0.1" / spec["linear_file"])
    pkg = _package_dir("torchmetrics")
    if pkg:
        out.append(pkg / "functional" / "image" / "lpips_models" / spec["linear_file"])
    return out


def _find(explicit, candidates: Sequence[Path]) -> tuple[Optional[Path], list[Path]]:
    if explicit is not None:
        p = Path(explicit)
        return (p if p.is_file() else None), [p]
    for p in candidates:
        if p.is_file():
            return p, list(candidates)
    return None, list(candidates)


def _missing_message(spec: dict, no_backbone: bool, tried_b, no_linear: bool, tried_l) -> str:
    lines = [f"LPIPS ({spec['name']}) needs two local weight files and cannot download them:"]
    if no_backbone:
        lines.append(
            f"  - backbone {spec['backbone_file']} (torchvision ImageNet weights), from "
            f"{spec['backbone_url']}; looked in: " + ", ".join(map(str, tried_b))
        )
    if no_linear:
        lines.append(
            f"  - linear layers {spec['linear_file']} (LPIPS v0.1), from "
            f"{LINEAR_URL.format(file=spec['linear_file'])} (also shipped in `pip install lpips` "
            "as lpips/weights/v0.1/); looked in: "
            + (
                ", ".join(map(str, tried_l))
                or "nowhere (no weights_dir given; lpips and torchmetrics are not installed)"
            )
        )
    lines.append(
        "Put both files in one folder and pass it as weights_dir (CLI: --lpips-dir DIR, or set "
        "EMS_LPIPS_DIR=DIR), or pass backbone_path/linear_path (--lpips-backbone/--lpips-linear)."
    )
    return "\n".join(lines)
