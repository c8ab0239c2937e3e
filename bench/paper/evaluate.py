"""``python -m bench.paper``: run EMS over a manifest at several α and write the metric table.

    bash scripts/tool.sh -m bench.paper MANIFEST --out DIR
        (--tiny | --checkpoint sd3_medium_incl_clips.safetensors [--text-encoders L G T5])
        [--alphas 0.5,1] [--size 512] [--steps 50 --denoise 0.75 --cfg 7.5 --iterations 20 --constraint 0.5]
        [--lpips alex --lpips-dir DIR] [--clip MODEL] [--negative TEXT] [--limit N]
        [--sde [--sde-norm rms|l2]] [--vqa-model M [--vqa-provider NAME | --vqa-base-url URL [--vqa-api-key-env VAR]]
                               [--vqa-runs 5] [--vqa-temperature 1.0]]

MANIFEST is JSON (a list, or {"items": [...]}) or JSONL, one edit per item — the ZOFIE/PIE-Bench
shape: ``image`` (path, relative to the manifest), ``source_prompt``, ``target_prompt``,
``attribute`` (or ``attribute_prompt``; default: the target prompt), optional ``mask`` (white =
edited region; adds PIE-Bench background metrics), optional ``id`` (default: image file stem).

Each item runs as the shipped workflow does, in-process through ComfyUI: VAE Encode → EMS Encode
Prompts (equal token lengths) → EMS Alpha Sweep (all α in one batch) → CSDS → euler sampling →
VAE Decode. One value per item (``DIR/results.md`` "Per item"): ``--sde`` adds the paper's SDE
through the host model (:mod:`bench.paper.host_sde`; c = source prompt, c̃ = target prompt, noise level
and sampling from the same schedule); ``--vqa-model`` adds MLLM-VQA (the % of consecutive pairs
source → α₁ → α₂ … in ascending α that the model says show a gradual change of the attribute;
:mod:`bench.metrics.vqa`; each pair asked ``--vqa-runs`` times, averaged) through the pack's
OpenAI-compatible client. Where those questions go, and with which key, is chosen on this command
line — a provider defined on the machine (``--vqa-provider``, default ``openai``; see
:mod:`comfyui_ems.llm_io.providers`) or a server typed here (``--vqa-base-url`` with ``--vqa-api-key-env``) —
never by the manifest, which is a file the run reads. Every item's images and metric
rows are stored under ``DIR/items/<id>/`` and its
``result.json`` is written atomically last, so a rerun with the same settings skips finished items
(a changed setting recomputes them). ``DIR/results.{json,md}``: one row per (item, α) and the
mean per α. ``--tiny`` builds the tests' tiny random SD3 (CLIP, VAE, MMDiT): for demos and tests.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
from pathlib import Path
from typing import Optional

import torch
from PIL import Image
from comfyui_ems.toyworld import tiny_sd3
from tqdm import tqdm

from comfyui_ems.llm_io.client import LLMError
from comfyui_ems.llm_io.files import write_json_atomic
from comfyui_ems.llm_io.providers import Provider, ProviderError, check_base_url

from bench import harness
from bench.metrics import LPIPS, ClipScorer, ClipWeightsMissing, LPIPSWeightsMissing
from bench.metrics.cli import json_value, load_image, load_mask, markdown_table, metric_keys, score_pair, summarize
from bench.metrics.vqa import openai_ask, sweep_pairs, vqa_score

from .host_sde import host_sde


class EvalError(Exception):
    """A user error: printed as one message, exit status 2."""


def read_manifest(path: Path) -> list[dict]:
    text = path.read_text(encoding="utf-8")
    try:
        data = json.loads(text)
        items = data["items"] if isinstance(data, dict) else data
    except ValueError:
        items = [json.loads(line) for line in text.splitlines() if line.strip()]
    out, seen = [], set()
    for i, raw in enumerate(items):
        missing = [k for k in ("image", "source_prompt", "target_prompt") if not raw.get(k)]
        if missing:
            raise EvalError(f"{path}: item {i} lacks {', '.join(missing)}")
        item = {
            "id": str(raw.get("id") or Path(raw["image"]).stem),
            "image": (path.parent / raw["image"]).resolve(),
            "source_prompt": raw["source_prompt"],
            "target_prompt": raw["target_prompt"],
            "attribute": raw.get("attribute") or raw.get("attribute_prompt") or raw["target_prompt"],
            "mask": (path.parent / raw["mask"]).resolve() if raw.get("mask") else None,
        }
        if item["id"] in seen:
            raise EvalError(f"{path}: two items have the id {item['id']!r}; give them distinct 'id's")
        seen.add(item["id"])
        for key in ("image", "mask"):
            if item[key] is not None and not item[key].is_file():
                raise EvalError(f"{path}: item {item['id']!r}: {key} {item[key]} does not exist")
        out.append(item)
    return out


def load_models(args):
    """(model, clip, vae) — tiny random ones, or from an SD3 checkpoint (+ text encoders)."""
    if args.tiny:
        return tiny_sd3.model_patcher(args.seed), tiny_sd3.clip(args.seed), tiny_sd3.vae(args.seed)
    import comfy.sd  # ComfyUI: after host.setup

    model, clip, vae = comfy.sd.load_checkpoint_guess_config(
        str(args.checkpoint), output_vae=True, output_clip=not args.text_encoders
    )[:3]
    if args.text_encoders:
        clip = comfy.sd.load_clip([str(p) for p in args.text_encoders], clip_type=comfy.sd.CLIPType.SD3)
    if clip is None or vae is None:
        raise EvalError(
            f"{args.checkpoint} has no {'VAE' if vae is None else 'text encoders'}; "
            "use a checkpoint that includes them or pass --text-encoders clip_l clip_g t5xxl"
        )
    return model, clip, vae


def encode_prompts(clip, item: dict, negative: str):
    """EMS Encode Prompts: all four conditionings with identical token shapes."""
    tokenize_equal = harness.pack_module("nodes.encode_prompts").tokenize_equal
    prompts = {
        "source": item["source_prompt"],
        "target": item["target_prompt"],
        "attribute": item["attribute"],
        "negative": negative,
    }
    clip, tokens = tokenize_equal(clip, prompts)
    return [clip.encode_from_tokens_scheduled(tokens[k]) for k in ("source", "target", "attribute", "negative")]


@torch.inference_mode()  # as ComfyUI executes nodes
def edit_item(item: dict, models, s: harness.EditSettings, alphas: list[float], size: int, negative: str):
    """(source image (1, H, W, 3), edited images (k, H, W, 3), the four conditionings) for one item."""
    model, clip, vae = models
    image = load_image(item["image"], (size, size))
    latent = {"samples": vae.encode(image)}
    conds = encode_prompts(clip, item, negative)
    source, target, attribute, neg = conds
    out = harness.ems_edit(model, source, target, attribute, neg, latent, alphas, s)
    edited = vae.decode(out["samples"]).float().clamp(0, 1)
    return image, edited.reshape(-1, *edited.shape[-3:]), conds


def save_png(image: torch.Tensor, path: Path) -> None:
    Image.fromarray((image.cpu().numpy() * 255).round().astype("uint8")).save(path)


def evaluate_item(item, models, scorers, s, alphas, args) -> dict:
    folder = args.out / "items" / item["id"]
    folder.mkdir(parents=True, exist_ok=True)
    image, edited, (source, target, _, negative) = edit_item(item, models, s, alphas, args.size, args.negative)
    mask = load_mask(item["mask"], (args.size, args.size), resize=True) if item["mask"] else None
    rows = []
    for alpha, picture in zip(alphas, edited):
        name = f"alpha_{alpha:g}"
        save_png(picture, folder / f"{name}.png")
        values = score_pair(
            image,
            picture[None],
            mask=mask,
            prompt=item["target_prompt"],
            lpips_model=scorers[0],
            clip_scorer=scorers[1],
        )
        rows.append(
            {
                "name": f"{item['id']} α={alpha:g}",
                "item": item["id"],
                "alpha": alpha,
                "image": str(folder / f"{name}.png"),
                **values,
            }
        )
    save_png(image[0], folder / "source.png")
    per_item = {}
    if args.sde:
        r = host_sde(models[0], models[2], image, source, target, negative, s, norm=args.sde_norm)
        per_item.update(
            sde=r.sde.item(), sde_err_c=r.err_c.item(), sde_err_flipped=r.err_flipped.item(), sde_ratio=r.ratio.item()
        )
    if args.vqa_ask is not None:
        per_item.update(ask_vqa(item, image[0], edited, alphas, args.vqa_ask, args.vqa_runs))
    return {"id": item["id"], "settings_key": args.settings_key, "rows": rows, "per_item": per_item}


PER_ITEM_KEYS = ("sde", "sde_err_c", "sde_err_flipped", "sde_ratio", "vqa")


def ask_vqa(item, source, edited, alphas, ask, runs: int = 1) -> dict:
    """MLLM-VQA over the sweep in ascending α, each image against the previous one (the first
    against the source), each pair asked ``runs`` times: ``vqa`` (% yes over all answers) and
    every answer (pair by pair, run by run)."""
    order = sorted(range(len(alphas)), key=lambda i: alphas[i])
    pairs = sweep_pairs([edited[i] for i in order], item["attribute"], source=source)
    try:
        result = vqa_score(pairs, ask, runs=runs)
    except LLMError as e:
        raise EvalError(f"item {item['id']!r}: VQA: {e}") from None
    return {
        "vqa": result.percentage,
        "vqa_unparsed": result.unparsed,
        "vqa_answers": [a for it in result.items for a in it.answers],
    }


def load_scorers(args):
    lpips_model = clip_scorer = None
    if args.lpips:
        try:
            lpips_model = LPIPS.from_pretrained(args.lpips, None, None, args.lpips_dir)
        except LPIPSWeightsMissing as e:
            raise EvalError(str(e)) from None
    if args.clip:
        try:
            clip_scorer = ClipScorer.from_pretrained(args.clip)
        except ClipWeightsMissing as e:
            raise EvalError(str(e)) from None
    return lpips_model, clip_scorer


def write_table(results: list[dict], args, settings: dict) -> dict:
    rows = [r for res in results for r in res["rows"]]
    keys = metric_keys(rows)
    per_alpha, mean_rows = {}, []
    for alpha in args.alphas:
        means, counts = summarize([r for r in rows if r["alpha"] == alpha], keys)
        per_alpha[f"{alpha:g}"] = {"mean": {k: json_value(v) for k, v in means.items()}, "count": counts}
        mean_rows.append({"name": f"mean α={alpha:g}", **means})
    table = markdown_table(rows, keys)
    items = [{"item": res["id"], **res.get("per_item", {})} for res in results]
    item_keys = [k for k in PER_ITEM_KEYS if any(k in it for it in items)]
    item_means, _ = summarize(items, item_keys)
    report = {
        "settings": settings,
        "metrics": keys,
        "items": len(results),
        "rows": [{k: json_value(v) for k, v in r.items()} for r in rows],
        "mean_per_alpha": per_alpha,
        "per_item_metrics": item_keys,
        "per_item": [{k: json_value(v) for k, v in it.items()} for it in items],
        "mean_per_item": {k: json_value(v) for k, v in item_means.items()},
    }
    write_json_atomic(args.out / "results.json", report)
    per_item = (
        f"\n## Per item: {', '.join(item_keys)}\n\n{item_table(items, item_keys, item_means)}\n" if item_keys else ""
    )
    (args.out / "results.md").write_text(
        f"# EMS evaluation\n\nmanifest: `{args.manifest}`, {len(results)} items, α = {args.alphas}\n\n"
        f"## Per (item, α)\n\n{table}\n\n## Mean per α\n\n{markdown_table(mean_rows, keys)}\n{per_item}",
        encoding="utf-8",
    )
    return report


def item_table(items: list[dict], keys: list[str], means: dict) -> str:
    """Markdown: one row per item and the mean; VQA in %, the SDE parts to 4 decimals."""

    def cell(v, key):
        if not isinstance(v, float) or math.isnan(v):
            return "–"
        return f"{v:.1f}" if key == "vqa" else f"{v:.4f}"

    head = "| item | " + " | ".join("vqa %" if k == "vqa" else k for k in keys) + " |"
    lines = [head, "|" + "---|" * (len(keys) + 1)]
    for it in items + [{"item": "**mean**", **means}]:
        lines.append(f"| {it['item']} | " + " | ".join(cell(it.get(k), k) for k in keys) + " |")
    return "\n".join(lines)


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m bench.paper", description=__doc__.split("\n\n")[0])
    ap.add_argument("manifest", type=Path, help="JSON or JSONL manifest (see module doc)")
    ap.add_argument("--out", type=Path, required=True, help="output folder (rerun with the same folder to resume)")
    model = ap.add_mutually_exclusive_group(required=True)
    model.add_argument("--tiny", action="store_true", help="tiny random SD3 (CLIP, VAE, MMDiT) for demos/tests")
    model.add_argument(
        "--checkpoint", type=Path, help="SD3 checkpoint (with VAE; with text encoders unless --text-encoders)"
    )
    ap.add_argument("--text-encoders", type=Path, nargs=3, metavar=("CLIP_L", "CLIP_G", "T5XXL"))
    ap.add_argument("--cpu", action="store_true", help="run on the CPU even if a GPU is present")
    ap.add_argument("--alphas", default="0.5,1", help="comma-separated α (rendered as one batch per item)")
    ap.add_argument("--size", type=int, default=512, help="images are resized to SIZE×SIZE (multiple of 16)")
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--denoise", type=float, default=0.75)
    ap.add_argument("--cfg", type=float, default=7.5)
    ap.add_argument("--iterations", type=int, default=20)
    ap.add_argument("--constraint", type=float, default=0.5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--negative", default="", help="negative prompt")
    ap.add_argument("--lpips", choices=("alex", "vgg"), help="add LPIPS (weights from --lpips-dir or the torch cache)")
    ap.add_argument("--lpips-dir", type=Path)
    ap.add_argument(
        "--clip",
        nargs="?",
        const="openai/clip-vit-large-patch14",
        metavar="MODEL",
        help="add CLIP score vs the target prompt (local folder or cached HF id; never downloads)",
    )
    ap.add_argument(
        "--sde",
        action="store_true",
        help="add the paper's SDE per item, through the host model (c = source prompt, c̃ = target prompt)",
    )
    ap.add_argument(
        "--sde-norm",
        choices=("rms", "l2"),
        default="rms",
        help="SDE distances: rms = per-pixel root-mean-square (default; the paper's scale), "
        "l2 = summed over all pixels (bench.metrics.sde)",
    )
    ap.add_argument(
        "--vqa-model",
        metavar="M",
        help="add MLLM-VQA per item, asking this vision model (OpenAI-compatible chat completions) about the α sweep",
    )
    ap.add_argument(
        "--vqa-provider",
        metavar="NAME",
        help="LLM provider defined on this machine for --vqa-model "
        "(built in: openai, ollama; more in $EMS_LLM_CONFIG, default ~/.config/ems/llm.json). "
        "Default: openai",
    )
    ap.add_argument(
        "--vqa-base-url",
        default="",
        metavar="URL",
        help="instead of a provider: this OpenAI-compatible server (typed here, so your choice)",
    )
    ap.add_argument(
        "--vqa-api-key-env",
        default="",
        metavar="VAR",
        help="with --vqa-base-url: the environment variable holding its key (default: none)",
    )
    ap.add_argument(
        "--vqa-runs",
        type=int,
        default=5,
        metavar="N",
        help="answers per pair, averaged (default 5, the paper's protocol as described)",
    )
    ap.add_argument(
        "--vqa-temperature",
        type=float,
        default=1.0,
        metavar="T",
        help="sampling temperature of the VQA model (default 1.0, so runs can differ; ours)",
    )
    ap.add_argument("--limit", type=int, help="only the first N items")
    args = ap.parse_args(argv)
    args.alphas = [float(a) for a in args.alphas.split(",") if a.strip()]
    if args.size % 16:
        ap.error("--size must be a multiple of 16 (VAE 8× and MMDiT patch 2)")
    if args.vqa_provider and args.vqa_base_url:
        ap.error("give --vqa-provider or --vqa-base-url, not both")
    if args.vqa_api_key_env and not args.vqa_base_url:
        ap.error("--vqa-api-key-env goes with --vqa-base-url; a provider's key variable is defined with the provider")
    if args.vqa_runs < 1:
        ap.error("--vqa-runs must be at least 1")
    args.vqa_ask = None
    return args


def run_settings(args, s: harness.EditSettings) -> dict:
    """Everything that changes an item's result; its hash decides whether a finished item is reused."""
    vqa = (
        {
            "model": args.vqa_model,
            "provider": args.vqa_provider or ("" if args.vqa_base_url else "openai"),
            "base_url": args.vqa_base_url,
            "runs": args.vqa_runs,
            "temperature": args.vqa_temperature,
        }
        if args.vqa_model
        else None
    )
    return {
        **s.as_dict(),
        "alphas": args.alphas,
        "size": args.size,
        "negative": args.negative,
        "model": "tiny" if args.tiny else str(args.checkpoint),
        "lpips": args.lpips,
        "clip": args.clip,
        "sde": args.sde,
        "sde_norm": args.sde_norm if args.sde else None,
        "vqa": vqa,
    }


def settings_key(settings: dict) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


def vqa_client(args):
    """The ``ask`` callable for --vqa-model; the provider and its key are checked now, before any
    item runs. The destination comes from this command line: a provider the machine defines, or a
    server the person typed (with the key variable they typed)."""
    try:
        provider = (
            Provider(
                "command line",
                check_base_url(args.vqa_base_url, "--vqa-base-url"),
                args.vqa_api_key_env.strip(),
                "the command line",
            )
            if args.vqa_base_url
            else (args.vqa_provider or "openai")
        )
        return openai_ask(args.vqa_model, provider, temperature=args.vqa_temperature)
    except (LLMError, ProviderError) as e:
        raise EvalError(f"--vqa-model: {e}") from None


def main(argv: Optional[list] = None) -> int:
    args = parse_args(argv)
    try:
        items = read_manifest(args.manifest)[: args.limit]
        harness.setup(cpu=args.cpu or not torch.cuda.is_available())
        s = harness.EditSettings(
            steps=args.steps,
            denoise=args.denoise,
            cfg=args.cfg,
            iterations=args.iterations,
            constraint=args.constraint,
            seed=args.seed,
        )
        settings = run_settings(args, s)
        args.settings_key = settings_key(settings)
        args.vqa_ask = vqa_client(args) if args.vqa_model else None
        scorers, models, results, skipped = load_scorers(args), None, [], 0
        for item in tqdm(items, desc="EMS evaluate", unit="item"):
            done = args.out / "items" / item["id"] / "result.json"
            if done.is_file():
                previous = json.loads(done.read_text(encoding="utf-8"))
                if previous.get("settings_key") == args.settings_key:
                    results.append(previous)
                    skipped += 1
                    continue
            models = models or load_models(args)
            result = evaluate_item(item, models, scorers, s, args.alphas, args)
            write_json_atomic(done, result)
            results.append(result)
        report = write_table(results, args, settings)
    except EvalError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(
        f"evaluated {len(results) - skipped} item(s), skipped {skipped} finished; table: {args.out / 'results.md'}",
        file=sys.stderr,
    )
    print((args.out / "results.md").read_text(encoding="utf-8"))
    return 0 if report["rows"] else 1
