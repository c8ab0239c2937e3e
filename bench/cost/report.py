"""The bench report: one JSON with every figure, and a markdown page rendered from it."""

from __future__ import annotations

import json
from pathlib import Path


def _mib(n: int) -> str:
    return f"{n / 2**20:,.1f}"


def _ratio(v) -> str:
    return "–" if v is None else f"{v:.3f}×"


def _calls(phases: dict, phase: str) -> str:
    """One table cell: the phase's call count and its batch sizes, or 0."""
    if phase not in phases:
        return "0"
    return f"{phases[phase]['calls']} ({', '.join(map(str, phases[phase]['batch_sizes']))})"


def markdown(r: dict) -> str:
    m, s, mo = r["machine"], r["settings"], r["model"]
    gpu = f"{m['gpu']} ({m['gpu_memory_gib']} GiB), CUDA {m['cuda']}" if "gpu" in m else "none (CPU run)"
    lines = [
        f"# {r['title']} — `{r['device_tag']}`",
        "",
        f"Generated {r['created']} by `{r['command'].strip()}`.",
        "",
        "## Machine",
        "",
        f"- platform: {m['platform']} ({m['machine']}), {m['cpu_count']} CPUs, torch threads {m['torch_threads']}",
        f"- device: {m['device']}; GPU: {gpu}",
        f"- Python {m['python']}, torch {m['torch']}, ComfyUI {m['comfyui']}",
        "",
        "## Model and settings",
        "",
        f"- model: {mo['kind']}, {mo['parameters']:,} parameters, dtype {mo['dtype']}",
        f"- image {mo['image']} → latent {mo['latent']}; conditioning: {mo['conditioning']}",
        f"- schedule: BasicScheduler({s['scheduler']}, steps {s['steps']}, denoise {s['denoise']}) → "
        f"{s['sampling_steps']} {s['sampler']} steps from σ = {s['first_sigma']:.4f}; CFG {s['cfg']}",
        f"- EMS: α = {s['alpha']}, {s['iterations']} CSDS iterations, λ = {s['constraint']}, "
        f"η {s['step_start']} → {s['step_end']}; sweep α = {s['sweep_alphas']}",
        f"- timing: {s['warmup_rounds']} warm-up round(s) (the first counts calls), then median of "
        f"{s['repeats']} interleaved rounds ({s['sweep_repeats']} for the sweep cases)",
        f"- peak memory: {s['memory_method']}",
        "",
        "## Targets",
        "",
        "| target | measured | met |",
        "|---|---|---|",
    ]
    for t in r["targets"]:
        value = t["value"] if isinstance(t["value"], bool) else _ratio(t["value"])
        met = ("yes" if t["met"] else "**no**") if t["applies"] else f"n/a on CPU ({'yes' if t['met'] else 'no'})"
        lines.append(f"| {t['target']} | {value} | {met} |")
    lines += [
        "",
        "## Wall time and peak memory",
        "",
        "| case | median s | runs s | peak MiB | increase MiB |",
        "|---|---|---|---|---|",
    ]
    for name, t in r["timing"].items():
        runs = ", ".join(f"{x:.3f}" for x in t["runs_s"])
        lines.append(
            f"| {name} | {t['median_s']:.3f} | {runs} | {_mib(t['peak_bytes'])} | {_mib(t['increase_bytes'])} |"
        )
    lines += ["", "| ratio | value |", "|---|---|"]
    lines += [f"| {k} | {_ratio(v)} |" for k, v in r["ratios"].items()]
    lines += [
        "",
        "## Model forward calls per run, by phase",
        "",
        "| case | CSDS calls (batch) | sampling calls (batch) |",
        "|---|---|---|",
    ]
    for name, phases in r["calls"].items():
        lines.append(f"| {name} | {_calls(phases, 'csds')} | {_calls(phases, 'sampling')} |")
    ok = r["checks"]["one_call_per_csds_iteration"]
    lines += ["", f"One batched call per CSDS iteration: **{'yes' if ok else 'NO'}**", "", "## Cases", ""]
    lines += [f"- `{k}`: {v}" for k, v in r["cases"].items()]
    return "\n".join(lines) + "\n"


def write_report(report: dict, out_dir: Path, tag: str) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    md, js = out_dir / f"{tag}.md", out_dir / f"{tag}.json"
    js.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    md.write_text(markdown(report), encoding="utf-8")
    return md, js
