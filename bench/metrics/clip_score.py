"""CLIP score: ``100 · max(cos(E_img(image), E_txt(text)), 0)`` per image/text pair.

This is the definition torchmetrics' ``CLIPScore`` implements and PIE-Bench's evaluation uses
(with ``openai/clip-vit-large-patch14``, our default). Which CLIP model the EMS paper scored with
is not something we could quote from it, so the default is ours: the projected image and text embeddings of a
``transformers.CLIPModel``, L2-normalised, dot product, times 100, clamped at 0. Texts are
truncated to the model's context (77 tokens for OpenAI CLIP).

Weights come only from a local folder or the Hugging Face cache (``local_files_only=True``):
:meth:`ClipScorer.from_pretrained` raises :class:`ClipWeightsMissing` naming the model id to
download when they are absent.

Image preprocessing:
- with a Hugging Face image processor (what :meth:`ClipScorer.from_pretrained` loads), images
  are quantised to uint8 and passed through it — the reference pipeline (PIL bicubic resize of
  the short side, centre crop, CLIP mean/std);
- without one (``image_processor=None``), the same steps run in torch: bicubic antialiased
  resize of the short side to the model's ``image_size``, centre crop, CLIP mean/std. Scores
  differ from the reference by resampling details only (typically < 0.5 points).
"""

from __future__ import annotations

import os
from typing import Any, Callable, Mapping, Optional, Sequence, Union

import torch
import torch.nn.functional as F

from .pixel import as_image_batch, as_mask_batch

DEFAULT_CLIP_MODEL = "openai/clip-vit-large-patch14"
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

Texts = Union[str, Sequence[str], Mapping[str, Any], torch.Tensor]


class ClipWeightsMissing(FileNotFoundError):
    """The CLIP model/tokenizer is not available offline; the message names what to download."""


def _features(out) -> torch.Tensor:
    """``get_*_features`` returns a tensor (transformers 4.x) or an output whose
    ``pooler_output`` holds the projected features (5.x)."""
    if torch.is_tensor(out):
        return out
    pooled = getattr(out, "pooler_output", None)
    if pooled is None:
        raise TypeError(f"unexpected CLIP feature output {type(out).__name__}")
    return pooled


class ClipScorer:
    """Scores images against texts with a ``transformers.CLIPModel``.

    - ``model``: a CLIPModel (any size; tests build a tiny random one in code);
    - ``tokenizer``: a Hugging Face tokenizer, or any callable ``texts → {"input_ids",
      ["attention_mask"]}`` / ids tensor; optional if callers pass pre-tokenised ids;
    - ``image_processor``: optional Hugging Face CLIP image processor (see module docstring).
    """

    def __init__(
        self,
        model,
        tokenizer: Optional[Callable] = None,
        image_processor: Optional[Callable] = None,
        device: Optional[Union[str, torch.device]] = None,
    ):
        self.model = model.eval()
        if device is not None:
            self.model.to(device)
        self.tokenizer = tokenizer
        self.image_processor = image_processor
        cfg = model.config
        self.image_size = int(cfg.vision_config.image_size)
        self.max_length = int(cfg.text_config.max_position_embeddings)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str = DEFAULT_CLIP_MODEL,
        device: Optional[Union[str, torch.device]] = None,
        cache_dir: Optional[str] = None,
    ) -> "ClipScorer":
        """Load model, tokenizer and image processor from a local folder or the HF cache only."""
        from transformers import CLIPModel, CLIPProcessor

        try:
            model = CLIPModel.from_pretrained(name_or_path, local_files_only=True, cache_dir=cache_dir)
            processor = CLIPProcessor.from_pretrained(name_or_path, local_files_only=True, cache_dir=cache_dir)
        except (OSError, ValueError) as err:
            raise ClipWeightsMissing(_missing_message(name_or_path, err)) from err
        return cls(model, processor.tokenizer, processor.image_processor, device=device)

    # ------------------------------------------------------------------------------- inputs
    def pixel_values(self, images: torch.Tensor) -> torch.Tensor:
        """(B, H, W, 3) in [0, 1] → CLIP pixel values (B, 3, S, S) on the model's device."""
        images = as_image_batch(images, "image").clamp(0, 1)
        if images.shape[-1] != 3:
            raise ValueError(f"CLIP score needs RGB images (C = 3), got C = {images.shape[-1]}")
        if self.image_processor is not None:
            arrays = [(im * 255).round().to(torch.uint8).cpu().numpy() for im in images]
            px = self.image_processor(images=arrays, return_tensors="pt")["pixel_values"]
            return px.to(self.device, next(self.model.parameters()).dtype)
        x = images.permute(0, 3, 1, 2).float()
        s = self.image_size
        h, w = x.shape[-2:]
        scale = s / min(h, w)
        nh, nw = max(s, round(h * scale)), max(s, round(w * scale))
        x = F.interpolate(x, size=(nh, nw), mode="bicubic", antialias=True, align_corners=False).clamp(0, 1)
        top, left = (nh - s) // 2, (nw - s) // 2
        x = x[..., top : top + s, left : left + s]
        mean = torch.tensor(CLIP_MEAN).view(1, 3, 1, 1)
        std = torch.tensor(CLIP_STD).view(1, 3, 1, 1)
        return ((x - mean) / std).to(self.device, next(self.model.parameters()).dtype)

    def tokens(self, texts: Texts) -> dict:
        """Texts (str or list of str) or pre-tokenised input → ``{"input_ids", "attention_mask"}``."""
        if isinstance(texts, str):
            texts = [texts]
        if torch.is_tensor(texts):
            ids = texts if texts.ndim == 2 else texts.unsqueeze(0)
            batch = {"input_ids": ids}
        elif isinstance(texts, Mapping):
            batch = dict(texts)
        else:
            texts = list(texts)
            if self.tokenizer is None:
                raise ValueError(
                    "CLIP score got text but has no tokenizer: pass tokenizer= to ClipScorer "
                    "or give pre-tokenised input_ids"
                )
            if _is_hf_tokenizer(self.tokenizer):
                batch = self.tokenizer(
                    texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
                )
            else:
                batch = self.tokenizer(texts)
            batch = {"input_ids": batch} if torch.is_tensor(batch) else dict(batch)
        out = {"input_ids": torch.as_tensor(batch["input_ids"])[:, : self.max_length].to(self.device)}
        if batch.get("attention_mask") is not None:
            out["attention_mask"] = torch.as_tensor(batch["attention_mask"])[:, : self.max_length].to(self.device)
        return out

    # ------------------------------------------------------------------------------- embeddings
    @torch.no_grad()
    def image_embeddings(self, images: torch.Tensor) -> torch.Tensor:
        """L2-normalised projected image embeddings (B, D), float64."""
        f = _features(self.model.get_image_features(pixel_values=self.pixel_values(images))).double()
        return f / f.norm(dim=-1, keepdim=True)

    @torch.no_grad()
    def text_embeddings(self, texts: Texts) -> torch.Tensor:
        """L2-normalised projected text embeddings (N, D), float64."""
        f = _features(self.model.get_text_features(**self.tokens(texts))).double()
        return f / f.norm(dim=-1, keepdim=True)

    def score(self, images: torch.Tensor, texts: Texts) -> torch.Tensor:
        """CLIP score per pair (B,): image i against text i (one text broadcasts to all)."""
        img = self.image_embeddings(images)
        txt = self.text_embeddings(texts)
        if txt.shape[0] not in (1, img.shape[0]):
            raise ValueError(f"{img.shape[0]} images but {txt.shape[0]} texts (give one text or one per image)")
        cos = (img * txt).sum(-1)
        return 100.0 * cos.clamp(min=0).cpu()

    __call__ = score


def clip_score(images: torch.Tensor, texts: Texts, scorer: ClipScorer) -> torch.Tensor:
    """``100 · max(cos(image_emb, text_emb), 0)`` per pair → (B,)."""
    return scorer.score(images, texts)


def masked_clip_score(images: torch.Tensor, texts: Texts, edit_mask: torch.Tensor, scorer: ClipScorer) -> torch.Tensor:
    """CLIP score of the *edited* region, as PIE-Bench's ``clip_similarity_target_image_edit_part``:
    the image multiplied by the edit mask (background black), then scored; NaN for empty masks."""
    images = as_image_batch(images, "image")
    m = as_mask_batch(edit_mask, images)
    out = scorer.score(images * m, texts).double()
    empty = m.flatten(1).sum(1).cpu() == 0
    return torch.where(empty, torch.full_like(out, float("nan")), out)


def _is_hf_tokenizer(tok) -> bool:
    try:
        from transformers import PreTrainedTokenizerBase
    except ImportError:  # pragma: no cover
        return False
    return isinstance(tok, PreTrainedTokenizerBase)


def _missing_message(name: str, err: Exception) -> str:
    local = os.path.exists(name) or name.startswith((".", "/", "~"))
    try:
        from huggingface_hub.constants import HF_HUB_CACHE as hub_cache
    except ImportError:  # pragma: no cover
        hub_cache = os.path.join(os.path.expanduser("~"), ".cache", "huggingface", "hub")
    where = (
        f"the folder {name!r} does not hold a complete CLIP model"
        if local
        else f"the model {name!r} is not in the Hugging Face cache ({hub_cache})"
    )
    return (
        f"CLIP score needs a local CLIP model and {where}; nothing is downloaded "
        f"(local_files_only=True). Underlying error: {err}\n"
        f"Fix: on a machine with internet run `hf download {DEFAULT_CLIP_MODEL if local else name}` "
        f"(or `huggingface-cli download …`) and copy the downloaded cache to {hub_cache}, or save the model to a folder "
        f"(config.json, model.safetensors, tokenizer files, preprocessor_config.json) and pass that folder "
        f"(CLI: --clip DIR)."
    )
