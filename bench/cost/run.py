"""``python -m bench`` (= ``python -m bench.cost``): EMS next to plain img2img, in one process,
through ComfyUI's sampling path.

    bash scripts/tool.sh -m bench [--quick]     # CPU, tiny SD3
    bash scripts/tool.sh -m bench --full        # GPU, SD3-medium-size MMDiT, fp16, 1024²

Writes ``bench/reports/<device-tag>.md`` and ``.json``; see bench/README.md for every figure.
Exit status 1 when a call-count check fails (one batched model call per CSDS iteration, per EMS Flow
Edit step).
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import re
import sys
from pathlib import Path

import torch
from comfyui_ems.toyworld.tiny_sd3 import TINY_MMDIT

from bench import REPORTS, harness
from bench.host import CallCounter

from . import models
from .measure import PeakMemory, run_once, summarize_runs
from .report import write_report

CASES = (
    "img2img",
    "ems",
    "text_only",
    "sweep_batched",
    "sweep_separate",
    "flow_edit",
    "flow_sweep_batched",
    "flow_sweep_separate",
)
DESCRIPTIONS = {
    "img2img": "plain img2img: RandomNoise + CFGGuider + euler over BasicScheduler(steps, denoise)",
    "ems": "EMS edit at one α: TextDirection → CSDS → euler from the leftover-noise latent (DisableNoise)",
    "text_only": "text-only EMS: TextDirection → img2img with c̃ (no CSDS)",
    "sweep_batched": "α sweep: AlphaSweep (k α in one batch) → CSDS → euler, one run",
    "sweep_separate": "the same k α as k separate EMS edits, one after another",
    "flow_edit": "EMS Flow Edit at one α: TextDirection → EMSFlowEdit on the clean latent, the same schedule",
    "flow_sweep_batched": "α sweep: AlphaSweep (k α in one batch) → EMSFlowEdit, one run",
    "flow_sweep_separate": "the same k α as k separate EMS Flow Edits, one after another",
}


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--full",
        action="store_true",
        help="GPU: SD3-medium-architecture MMDiT (depth 24, random fp16 weights), 1024² image",
    )
    ap.add_argument("--quick", action="store_true", help="fewer repeats (smoke test: 1 warm-up, 2 repeats)")
    ap.add_argument("--size", type=int, help="image side in pixels (default 64 tiny, 1024 full)")
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--denoise", type=float, default=0.75)
    ap.add_argument("--cfg", type=float, default=7.5)
    ap.add_argument("--iterations", type=int, default=20, help="CSDS iterations")
    ap.add_argument("--alpha", type=float, default=1.0, help="α of the single edits")
    ap.add_argument("--sweep", default="0,0.25,0.5,0.75,1", help="comma-separated α of the sweep")
    ap.add_argument("--warmup", type=int, help="warm-up rounds of every case (the first also counts calls)")
    ap.add_argument("--repeats", type=int, help="timed rounds (median reported)")
    ap.add_argument("--sweep-repeats", type=int, help="timed rounds for the two sweep cases (default --repeats)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device-tag", help="report file name (default cpu-tiny / <gpu>-full)")
    ap.add_argument("--out-dir", type=Path, default=REPORTS)
    args = ap.parse_args(argv)
    args.size = args.size or (1024 if args.full else 64)

    def quick_or(quick, normal, full):
        return quick if args.quick else full if args.full else normal

    args.warmup = args.warmup if args.warmup is not None else quick_or(1, 2, 1)
    args.repeats = args.repeats if args.repeats is not None else quick_or(2, 5, 3)
    args.sweep_repeats = args.sweep_repeats or quick_or(2, args.repeats, 2)
    args.warmup = max(args.warmup, 1)
    return args


def machine_info(device: torch.device) -> dict:
    import comfyui_version  # ComfyUI's own module, like comfy.*: imported after host.setup

    info = {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "cpu": platform.processor() or "unknown",
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "comfyui": comfyui_version.__version__,
        "device": str(device),
    }
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info.update(
            gpu=props.name,
            gpu_memory_gib=round(props.total_memory / 2**30, 1),
            cuda=torch.version.cuda,
            cudnn=torch.backends.cudnn.version(),
        )
    return info


def default_tag(args, device) -> str:
    """cpu-tiny, or e.g. h100-80gb-hbm3-full (plus -<size> when the image is not 1024²)."""
    if not args.full:
        return "cpu-tiny" if args.size == 64 else f"cpu-tiny-{args.size}"
    name = re.sub(r"[^a-z0-9]+", "-", torch.cuda.get_device_name(device).lower().replace("nvidia", "")).strip("-")
    return f"{name}-full" + ("" if args.size == 1024 else f"-{args.size}")


def build(args):
    """(model, conditionings, latent, model description)."""
    if args.full:
        model = models.full_model(args.seed, torch.float16)
        config = models.SD3_MEDIUM_MMDIT
    else:
        model = models.tiny_model(args.seed)
        config = TINY_MMDIT
    n_params = sum(p.numel() for p in model.model.diffusion_model.parameters())
    conds = [models.conditioning(args.seed + i) for i in range(1, 5)]  # source, target, attribute, negative
    latent = models.clean_latent(args.seed, args.size, args.size)
    info = {
        "kind": "sd3-medium-architecture (random weights)" if args.full else "tiny SD3 (random weights)",
        "unet_config": config,
        "parameters": n_params,
        "dtype": str(model.model.get_dtype()),
        "image": f"{args.size}×{args.size}",
        "latent": list(latent["samples"].shape),
        "conditioning": "random SD3-shaped: tokens (1, 154, 4096), pooled (1, 2048)",
    }
    return model, conds, latent, info


def make_cases(model, conds, latent, s, args):
    source, target, attribute, negative = conds
    alphas = [float(a) for a in args.sweep.split(",")]

    def cases(m, counter=None):
        return {
            "img2img": lambda: harness.img2img(m, source, negative, latent, s, counter=counter),
            "ems": lambda: harness.ems_edit(
                m, source, target, attribute, negative, latent, args.alpha, s, counter=counter
            ),
            "text_only": lambda: harness.ems_edit(
                m, source, target, attribute, negative, latent, args.alpha, s, text_only=True, counter=counter
            ),
            "sweep_batched": lambda: harness.ems_edit(
                m, source, target, attribute, negative, latent, alphas, s, counter=counter
            ),
            "sweep_separate": lambda: [
                harness.ems_edit(m, source, target, attribute, negative, latent, a, s, counter=counter) for a in alphas
            ],
            "flow_edit": lambda: harness.flow_edit(m, source, target, negative, latent, args.alpha, s, counter=counter),
            "flow_sweep_batched": lambda: harness.flow_edit(
                m, source, target, negative, latent, alphas, s, counter=counter
            ),
            "flow_sweep_separate": lambda: [
                harness.flow_edit(m, source, target, negative, latent, a, s, counter=counter) for a in alphas
            ],
        }

    return cases, alphas


def count_calls(cases, model) -> dict:
    """One run of every case through a counting model wrapper: calls per phase and batch sizes."""
    counter = CallCounter()
    counted = cases(counter.install(model), counter)
    out = {}
    for name in CASES:
        counter.reset()
        counted[name]()
        out[name] = counter.by_phase()
    return out


def _check(got: dict, n: int, batch: int) -> dict:
    good = got["calls"] == n and sorted(set(got["batch_sizes"])) == ([batch] if n else [])
    return {
        "expected_calls": n,
        "expected_batch": batch,
        "calls": got["calls"],
        "batch_sizes": sorted(set(got["batch_sizes"])),
        "ok": good,
    }


def check_calls(calls: dict, s, k: int) -> dict:
    """Exactly one batched call per CSDS iteration ([positive, attribute, negative] × batch), and per
    EMS Flow Edit step ([target point, source point] × [cond, uncond] × the node's default number of
    noises × batch; α = 0 items included: they are returned unchanged, not left out of the call)."""
    cfg1 = abs(s.cfg - 1.0) < 1e-9
    per_cond, per_point = (2, 1) if cfg1 else (3, 2)
    no_calls = {"calls": 0, "batch_sizes": []}
    csds = {
        "ems": (s.iterations, per_cond),
        "sweep_batched": (s.iterations, per_cond * k),
        "sweep_separate": (s.iterations * k, per_cond),
    }
    per_step = 2 * per_point * harness.pack_module("ems.flow_edit").DEFAULTS["noise_average"]  # × the noises
    flow = {
        "flow_edit": (s.steps, per_step),
        "flow_sweep_batched": (s.steps, per_step * k),
        "flow_sweep_separate": (s.steps * k, per_step),
    }
    details = {case: _check(calls[case].get("csds", no_calls), n, b) for case, (n, b) in csds.items()}
    details.update({case: _check(calls[case].get("sampling", no_calls), n, b) for case, (n, b) in flow.items()})
    return {
        "one_call_per_csds_iteration": all(details[c]["ok"] for c in csds),
        "one_call_per_flow_edit_step": all(details[c]["ok"] for c in flow),
        "details": details,
    }


def time_cases(cases, model, args, device) -> dict:
    plain = cases(model)
    for _ in range(args.warmup - 1):  # the counting run was the first warm-up
        for name in CASES:
            plain[name]()
    runs = {name: [] for name in CASES}
    for r in range(max(args.repeats, args.sweep_repeats)):
        for name in CASES:  # interleaved, so drift hits every case alike
            limit = args.sweep_repeats if "sweep" in name else args.repeats
            if r < limit:
                runs[name].append(run_once(plain[name], device))
        print(
            f"  round {r + 1}: " + ", ".join(f"{n} {runs[n][-1]['seconds']:.2f}s" for n in CASES if runs[n]),
            file=sys.stderr,
        )
    return {name: summarize_runs(v) for name, v in runs.items()}


def ratios(timing: dict) -> dict:
    t = {k: v["median_s"] for k, v in timing.items()}
    m = {k: v["peak_bytes"] for k, v in timing.items()}
    inc = {k: v["increase_bytes"] for k, v in timing.items()}
    return {
        "ems_time_vs_img2img": t["ems"] / t["img2img"],
        "text_only_time_vs_img2img": t["text_only"] / t["img2img"],
        "sweep_batched_time_vs_separate": t["sweep_batched"] / t["sweep_separate"],
        "sweep_batched_time_vs_one_ems_edit": t["sweep_batched"] / t["ems"],
        "flow_edit_time_vs_img2img": t["flow_edit"] / t["img2img"],
        "flow_sweep_batched_time_vs_separate": t["flow_sweep_batched"] / t["flow_sweep_separate"],
        "flow_edit_peak_memory_vs_img2img": m["flow_edit"] / m["img2img"],
        "ems_peak_memory_vs_img2img": m["ems"] / m["img2img"],
        "text_only_peak_memory_vs_img2img": m["text_only"] / m["img2img"],
        "sweep_batched_peak_memory_vs_img2img": m["sweep_batched"] / m["img2img"],
        "ems_memory_increase_vs_img2img": inc["ems"] / inc["img2img"] if inc["img2img"] > 0 else None,
    }


def targets(r: dict, checks: dict, gpu: bool) -> list[dict]:
    return [
        {
            "target": "EMS edit ≤ 1.5× img2img wall time",
            "value": r["ems_time_vs_img2img"],
            "met": r["ems_time_vs_img2img"] <= 1.5,
            "applies": True,
        },
        {
            "target": "exactly 1 model call per CSDS iteration",
            "value": checks["one_call_per_csds_iteration"],
            "met": checks["one_call_per_csds_iteration"],
            "applies": True,
        },
        {
            "target": "sweep of 5 batched ≤ 0.8× five separate edits (GPU)",
            "value": r["sweep_batched_time_vs_separate"],
            "met": r["sweep_batched_time_vs_separate"] <= 0.8,
            "applies": gpu,
        },
        {
            "target": "EMS peak memory ≤ 1.1× img2img's",
            "value": r["ems_peak_memory_vs_img2img"],
            "met": r["ems_peak_memory_vs_img2img"] <= 1.1,
            "applies": True,
        },
        {
            "target": "exactly 1 model call per EMS Flow Edit step",
            "value": checks["one_call_per_flow_edit_step"],
            "met": checks["one_call_per_flow_edit_step"],
            "applies": True,
        },
    ]


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.full and not torch.cuda.is_available():
        print("error: --full needs a CUDA GPU (the full-size model is fp16 and ~4 GB)", file=sys.stderr)
        return 2
    harness.setup(cpu=not args.full)
    import comfy.model_management as mm

    device = mm.get_torch_device()
    tag = args.device_tag or default_tag(args, device)
    s = harness.EditSettings(
        steps=args.steps, denoise=args.denoise, cfg=args.cfg, iterations=args.iterations, seed=args.seed
    )
    print(f"bench: building the {'full-size' if args.full else 'tiny'} model on {device}", file=sys.stderr)
    model, conds, latent, model_info = build(args)
    cases, alphas = make_cases(model, conds, latent, s, args)
    print("bench: counting model calls (first warm-up round)", file=sys.stderr)
    calls = count_calls(cases, model)
    checks = check_calls(calls, s, len(alphas))
    print(f"bench: timing {args.repeats} rounds after {args.warmup} warm-up round(s)", file=sys.stderr)
    timing = time_cases(cases, model, args, device)
    r = ratios(timing)
    sigmas = harness.schedule(model, s.steps, s.denoise, s.scheduler)
    report = {
        "title": "EMS vs img2img, side by side in one process",
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": "python -m bench " + " ".join(argv if argv is not None else sys.argv[1:]),
        "device_tag": tag,
        "machine": machine_info(device),
        "model": model_info,
        "settings": {
            **s.as_dict(),
            "alpha": args.alpha,
            "sweep_alphas": alphas,
            "warmup_rounds": args.warmup,
            "repeats": args.repeats,
            "sweep_repeats": args.sweep_repeats,
            "first_sigma": float(sigmas[0]),
            "sampling_steps": int(sigmas.shape[0] - 1),
            "memory_method": PeakMemory(device).method,
        },
        "cases": DESCRIPTIONS,
        "calls": calls,
        "checks": checks,
        "timing": timing,
        "ratios": r,
        "targets": targets(r, checks, device.type == "cuda"),
    }
    md, js = write_report(report, args.out_dir, tag)
    print(f"bench: wrote {md} and {js}", file=sys.stderr)
    print(Path(md).read_text(encoding="utf-8"))
    return 0 if checks["one_call_per_csds_iteration"] and checks["one_call_per_flow_edit_step"] else 1
