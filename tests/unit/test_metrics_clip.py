"""CLIP score with a tiny random CLIPModel built in code and a tiny real CLIPTokenizer written
to disk by the test (no hub, no downloads)."""

import json
import math

import pytest
import torch
from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor, CLIPTokenizer

from bench.metrics.clip_score import CLIP_MEAN, CLIP_STD, ClipScorer, ClipWeightsMissing, clip_score, masked_clip_score  # noqa: E402

LETTERS = "abcdefghijklmnopqrstuvwxyz"


def tiny_tokenizer(folder):
    """A real CLIPTokenizer over single letters (no merges) — enough to tokenise test prompts."""
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for ch in LETTERS:
        vocab[ch] = len(vocab)
        vocab[ch + "</w>"] = len(vocab)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    return CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"), pad_token="<|endoftext|>")


def tiny_clip(seed=0):
    cfg = CLIPConfig(
        text_config=dict(
            vocab_size=2 + 2 * len(LETTERS),
            hidden_size=32,
            intermediate_size=37,
            num_hidden_layers=2,
            num_attention_heads=4,
            max_position_embeddings=77,
            bos_token_id=0,
            eos_token_id=1,
            pad_token_id=1,
        ),
        vision_config=dict(
            hidden_size=32,
            intermediate_size=37,
            num_hidden_layers=2,
            num_attention_heads=4,
            image_size=32,
            patch_size=8,
        ),
        projection_dim=16,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return CLIPModel(cfg).eval()


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    folder = tmp_path_factory.mktemp("clip")
    return tiny_clip(), tiny_tokenizer(folder / "tok"), folder


@pytest.fixture
def scorer(parts):
    model, tok, _ = parts
    return ClipScorer(model, tok)


def rand_image(seed, b=1, h=32, w=32):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, h, w, 3, generator=g)


def by_hand(model, tok, images, texts):
    """100·max(cos, 0) from the model's own towers and projections, images at native size."""
    mean, std = torch.tensor(CLIP_MEAN).view(1, 3, 1, 1), torch.tensor(CLIP_STD).view(1, 3, 1, 1)
    px = (images.permute(0, 3, 1, 2) - mean) / std
    with torch.no_grad():
        img = model.visual_projection(model.vision_model(pixel_values=px).pooler_output)
        t = tok(texts, padding=True, return_tensors="pt")
        txt = model.text_projection(
            model.text_model(input_ids=t["input_ids"], attention_mask=t["attention_mask"]).pooler_output
        )
    cos = torch.nn.functional.cosine_similarity(img.double(), txt.double(), dim=-1)
    return 100 * cos.clamp(min=0)


def test_score_matches_a_hand_computation_and_lies_in_0_100(parts, scorer):
    model, tok, _ = parts
    images = rand_image(0, b=4)
    texts = ["a red suit", "a blue car", "a smiling woman", "snow"]
    got = clip_score(images, texts, scorer)
    assert got.shape == (4,)
    assert ((got >= 0) & (got <= 100)).all()
    assert torch.allclose(got, by_hand(model, tok, images, texts), atol=1e-4)


def test_negative_cosine_is_clamped_to_zero(parts):
    model, tok, _ = parts
    flipped = tiny_clip()
    with torch.no_grad():
        flipped.visual_projection.weight.neg_()  # cos → −cos
    image, text = rand_image(1), ["a red suit"]
    s, s_flipped = ClipScorer(model, tok).score(image, text).item(), ClipScorer(flipped, tok).score(image, text).item()
    assert min(s, s_flipped) == 0.0
    assert max(s, s_flipped) == pytest.approx(
        by_hand(model, tok, image, text).item() or by_hand(flipped, tok, image, text).item(), abs=1e-4
    )
    assert max(s, s_flipped) > 0


def test_one_text_broadcasts_and_pretokenised_ids_give_the_same_score(parts, scorer):
    model, tok, _ = parts
    images = rand_image(2, b=3)
    one = scorer.score(images, "a red suit")
    each = scorer.score(images, ["a red suit"] * 3)
    assert torch.allclose(one, each)
    ids = tok(["a red suit"], return_tensors="pt")
    assert torch.allclose(scorer.score(images, ids["input_ids"]), one, atol=1e-6)
    assert torch.allclose(ClipScorer(model).score(images, dict(ids)), one, atol=1e-6)
    with pytest.raises(ValueError, match="tokenizer"):
        ClipScorer(model).score(images, ["a red suit"])
    with pytest.raises(ValueError, match="3 images but 2 texts"):
        scorer.score(images, ["a", "b"])


def test_a_plain_callable_tokenizer_is_accepted(parts):
    model, tok, _ = parts

    def callable_tok(texts):
        return tok(texts, padding=True, return_tensors="pt")["input_ids"]

    image = rand_image(3)
    assert torch.allclose(
        ClipScorer(model, callable_tok).score(image, ["snow"]), ClipScorer(model, tok).score(image, ["snow"]), atol=1e-6
    )


def test_torch_preprocessing_resizes_crops_and_normalises(scorer):
    img = rand_image(4)
    px = scorer.pixel_values(img)
    mean, std = torch.tensor(CLIP_MEAN).view(1, 3, 1, 1), torch.tensor(CLIP_STD).view(1, 3, 1, 1)
    assert torch.allclose(px, (img.permute(0, 3, 1, 2) - mean) / std, atol=1e-5)  # native size: identity resize
    wide = rand_image(5, h=48, w=96)
    assert scorer.pixel_values(wide).shape == (1, 3, 32, 32)
    # a wide image whose short side already fits: no resize, the centre crop is the middle square
    square = rand_image(6, h=32, w=32)
    padded = torch.cat([torch.zeros(1, 32, 20, 3), square, torch.ones(1, 32, 20, 3)], dim=2)
    assert torch.allclose(scorer.pixel_values(padded), scorer.pixel_values(square), atol=1e-5)


def test_hf_image_processor_path_agrees_with_the_torch_path(parts):
    model, tok, _ = parts
    proc = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    image = (rand_image(7, b=2) * 255).round() / 255  # uint8-exact so quantisation is lossless
    a = ClipScorer(model, tok, image_processor=proc).score(image, "a red suit")
    b = ClipScorer(model, tok).score(image, "a red suit")
    assert torch.allclose(a, b, atol=1e-3)


def test_from_pretrained_loads_a_local_folder_offline(parts, tmp_path, monkeypatch):
    model, tok, _ = parts
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    folder = tmp_path / "tiny-clip"
    model.save_pretrained(folder)
    CLIPProcessor(
        image_processor=CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}),
        tokenizer=tok,
    ).save_pretrained(folder)
    loaded = ClipScorer.from_pretrained(str(folder))
    image = rand_image(8)
    assert torch.allclose(loaded.score(image, "snow"), by_hand(model, tok, image, ["snow"]), atol=1e-3)


def test_missing_model_error_names_what_to_download(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "cache"))
    with pytest.raises(ClipWeightsMissing) as e:
        ClipScorer.from_pretrained("openai/clip-vit-large-patch14", cache_dir=str(tmp_path / "cache"))
    text = str(e.value)
    assert "openai/clip-vit-large-patch14" in text and "hf download openai/clip-vit-large-patch14" in text
    assert "local_files_only" in text
    with pytest.raises(ClipWeightsMissing, match="does not hold a complete CLIP model"):
        ClipScorer.from_pretrained(str(tmp_path / "empty"))


def test_masked_clip_scores_the_edited_region(scorer):
    image = rand_image(9, h=32, w=32)
    mask = torch.zeros(1, 32, 32)
    mask[:, 8:24, 8:24] = 1
    got = masked_clip_score(image, "a red suit", mask, scorer)
    cut = image * mask[..., None]
    assert torch.allclose(got, scorer.score(cut, "a red suit").double())
    # pixels outside the edit mask do not matter; they do for the plain score's embedding
    other = image.clone()
    other[:, :8] = 1 - other[:, :8]
    assert torch.equal(masked_clip_score(other, "a red suit", mask, scorer), got)
    assert not torch.allclose(scorer.image_embeddings(other), scorer.image_embeddings(image))
    assert math.isnan(masked_clip_score(image, "a red suit", torch.zeros(1, 32, 32), scorer).item())
