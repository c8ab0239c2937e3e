"""Headless EMS: run a shipped workflow through a real ComfyUI's execution engine from one command.

    python -m headless --demo                                     # the toy world: no download
    python -m headless --comfyui ~/ComfyUI \\
        --checkpoint sd3_medium_incl_clips_t5xxlfp8.safetensors \\
        --image photo.jpg --instruction "make the suit red"           # LLM captions
    python -m headless ... --source "a man in a black suit" --target "a man in a red suit"

ComfyUI runs as a subprocess with a private base directory (this pack linked into its
custom_nodes); the workflow is converted to API format with that server's /object_info, queued
over HTTP, and every saved image is copied into a fresh folder under --output.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

from comfyui_ems.ems.alphas import DEFAULT_SWEEP, AlphaScheduleError, parse_alphas
from comfyui_ems.ems.captions import derive_attribute
from comfyui_ems.llm_io.providers import (
    BUILT_IN,
    Provider,
    ProviderError,
    check_base_url,
    get_provider,
    load_providers,
    looks_like_url,
    resolve_key,
    legacy_message,
    legacy_widget_values,
)
from comfyui_ems.toyworld.settings import TOY

from . import demo
from .discovery import GivenIsNotComfyUI, find_comfyui
from .comfy_process import PACK_NAME, REPO, ComfyServer, ExecutionFailed, PromptRejected, link_to, prepare_base
from .uigraph import prompt_to_ui
from .workflow import WorkflowError, drop_caption_llm, nodes_of, shape_problem, ui_to_api

DEFAULT_WORKFLOW = REPO / "example_workflows" / "06 Full EMS alpha grid, LLM captions (SD3 + LLM).json"
# --demo edits the toy scene with EMS Flow Edit: the same scene, only its colour moves.
DEMO_WORKFLOW = REPO / "example_workflows" / "04 EMS Flow Edit alpha grid, typed captions (SD3).json"
# Where ComfyUI is looked for after --comfyui / $COMFYUI_DIR, in scripts/env.sh's order: the ComfyUI
# this pack is installed in (ComfyUI/custom_nodes/<pack>), beside the checkout, home, the pinned copy.
IMAGE_TYPES = {".png", ".jpg", ".jpeg", ".webp", ".bmp"}


class UsageError(Exception):
    """Something the user must supply or fix: each problem is printed on one line, exit status 2."""


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        prog="python -m headless",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n\n".join(__doc__.split("\n\n")[1:]),
    )
    ap.add_argument(
        "--demo",
        action="store_true",
        help="the pack's toy world (a small SD3-architecture model trained on drawn scenes): a "
        "colour edit of a generated scene at several α, with a readout of every tile; "
        "runs anywhere, no download",
    )
    ap.add_argument("--comfyui", help="ComfyUI checkout (default: $COMFYUI_DIR, then ../ComfyUI, ~/ComfyUI)")
    ap.add_argument(
        "--checkpoint",
        help="SD3 checkpoint with text encoders: a file name in ComfyUI/models/checkpoints or a path to the file",
    )
    ap.add_argument("--image", help="the image to edit")
    ap.add_argument("--instruction", help='edit instruction for the LLM, e.g. "make the suit red"')
    ap.add_argument("--source", help="source caption (no LLM): the image as it is")
    ap.add_argument("--target", help="target caption (no LLM): the source with only the edited words changed")
    ap.add_argument(
        "--attribute",
        default="",
        help="attribute phrase for CSDS (default: the edited words of --target, e.g. 'red suit')",
    )
    ap.add_argument("--alphas", help='edit strengths, e.g. "0, 0.5, 1" or "0:1.5:7" (default: the workflow\'s)')
    ap.add_argument(
        "--workflow",
        type=Path,
        default=None,
        help="UI-format workflow to run (default: 06 Full EMS alpha grid, LLM captions (SD3 + LLM); with --demo 04 EMS Flow Edit alpha grid, typed captions (SD3))",
    )
    ap.add_argument(
        "--output",
        type=Path,
        default=Path("out"),
        help="results go to a fresh folder inside this (default: ./out of the current folder)",
    )
    ap.add_argument("--seed", type=int, help="noise seed")
    ap.add_argument("--steps", type=int, help="sampling steps (paper: 50)")
    ap.add_argument(
        "--cfg",
        type=float,
        help="guidance scale for the sampler and CSDS (paper: 7.5), and EMS Flow Edit's target scale",
    )
    ap.add_argument("--source-cfg", type=float, help="EMS Flow Edit's source guidance scale")
    ap.add_argument("--denoise", type=float, help="fraction of the schedule to re-run (paper: 0.75)")
    ap.add_argument("--iterations", type=int, help="CSDS iterations (0 = text-only; the paper states no count)")
    ap.add_argument("--constraint", type=float, help="CSDS constraint λ (0.1–1.0, default 0.5)")
    ap.add_argument("--megapixels", type=float, help="resize the image to about this many megapixels (default 1.0)")
    ap.add_argument("--llm-model", help="LLM for captions (default gpt-4o)")
    ap.add_argument(
        "--provider",
        help="LLM provider for captions, defined on this machine (built in: openai, "
        "ollama; more in $EMS_LLM_CONFIG, default ~/.config/ems/llm.json). "
        "Default: the workflow's",
    )
    ap.add_argument(
        "--base-url",
        help="instead of a provider: this OpenAI-compatible server, e.g. "
        "http://127.0.0.1:8000/v1 (typed here, so your choice; the workflow's "
        "provider is replaced by it)",
    )
    ap.add_argument("--api-key-env", help="with --base-url: the environment variable holding its key (default: none)")
    ap.add_argument(
        "--device", choices=("auto", "cpu", "gpu"), default="auto", help="auto = GPU when torch sees one, else CPU"
    )
    ap.add_argument("--timeout", type=float, default=3600, help="seconds to wait for the run")
    ap.add_argument("--keep-base", action="store_true", help="keep ComfyUI's private base directory (logs)")
    ap.add_argument(
        "--no-cache",
        action="store_true",
        help="do not read or keep LLM captions in the user cache folder (default: kept in "
        f"{user_cache_dir()}, so repeated runs do not pay for the LLM again)",
    )
    args = ap.parse_args(argv)
    if args.workflow is None:
        args.workflow = DEMO_WORKFLOW if args.demo else DEFAULT_WORKFLOW
    return args


def find_checkpoint(name: str, comfy: Path | None) -> tuple[Path | None, list[str]]:
    as_path = Path(name).expanduser()
    looked = [str(as_path.resolve())]
    if as_path.is_file():
        return as_path.resolve(), looked
    if comfy is not None and not as_path.is_absolute():
        in_comfy = comfy / "models" / "checkpoints" / name
        looked.append(str(in_comfy))
        if in_comfy.is_file():
            return in_comfy, looked
    return None, looked


def user_cache_dir() -> Path:
    """The user's cache folder for EMS (captions): $XDG_CACHE_HOME/ems, ~/Library/Caches/ems, %LOCALAPPDATA%/ems."""
    if sys.platform == "win32" and os.environ.get("LOCALAPPDATA"):
        root = Path(os.environ["LOCALAPPDATA"])
    elif sys.platform == "darwin":
        root = Path.home() / "Library" / "Caches"
    else:
        root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return root / "ems"


def check_numbers(args) -> list[str]:
    """Numeric options outside what the run can use (argparse has already checked their type)."""
    rules = [
        ("--steps", args.steps, lambda v: v >= 1, "must be ≥ 1"),
        ("--cfg", args.cfg, lambda v: 0 <= v <= 100, "must be between 0 and 100"),
        (
            "--denoise",
            args.denoise,
            lambda v: 0 < v < 1,
            "must be between 0 and 1 (EMS edits a real image; paper: 0.75)",
        ),
        ("--iterations", args.iterations, lambda v: v >= 0, "must be ≥ 0 (0 = text-only edit)"),
        ("--constraint", args.constraint, lambda v: v >= 0, "must be ≥ 0"),
        ("--megapixels", args.megapixels, lambda v: 0 < v <= 16, "must be above 0 and at most 16"),
        ("--seed", args.seed, lambda v: 0 <= v < 2**64, "must be between 0 and 2^64 − 1"),
        ("--timeout", args.timeout, lambda v: v > 0, "must be above 0 seconds"),
    ]
    return [
        f"{flag} {value} {why}."
        for flag, value, ok, why in rules
        if value is not None and (not math.isfinite(value) or not ok(value))
    ]


def file_problem(flag: str, path: Path, what: str) -> str | None:
    """Why ``path`` is not a readable regular file for ``flag``, or None. A device or a FIFO
    (``/dev/zero``, a named pipe) exists but is no file: reading it would block or never end."""
    if path.is_file():
        return None
    if path.is_dir():
        return f"{flag} {path} is a folder; give {what}."
    if path.exists():
        return f"{flag} {path} is not a regular file (a device, pipe or socket); give {what}."
    return f"{flag} {path} does not exist (looked at {path.resolve()})."


def check_workflow(path: Path) -> list[str]:
    problem = file_problem("--workflow", path, "a workflow file")
    if problem:
        return [problem]
    try:
        workflow = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        return [f"--workflow {path} is not a JSON workflow ({str(e).splitlines()[0]})."]
    except OSError as e:
        return [f"--workflow {path} cannot be read ({e.strerror})."]
    if not isinstance(workflow, dict) or not isinstance(workflow.get("nodes"), list):
        return [
            f'--workflow {path} is not a UI-format ComfyUI workflow (no "nodes" list); save it from '
            "ComfyUI with Workflow → Save, not Export (API)."
        ]
    problem = shape_problem(workflow)
    if problem:
        return [
            f"--workflow {path} is not a workflow as ComfyUI saves it: {problem}. Open it in ComfyUI and "
            "save it again (Workflow → Save)."
        ]
    return []


def check_image(image: str) -> list[str]:
    path = Path(image)
    problem = file_problem("--image", path, "one image file")
    if problem:
        return [problem]
    if path.suffix.lower() not in IMAGE_TYPES:
        return [f"--image {image} is not a {'/'.join(sorted(IMAGE_TYPES))} file."]
    return []


def check_checkpoint(name: str, comfy: Path | None) -> tuple[Path | None, list[str]]:
    """The checkpoint file, or the problem: a name that is there but no regular file is said as such."""
    ckpt, looked = find_checkpoint(name, comfy)
    if ckpt is not None:
        return ckpt, []
    for place in map(Path, looked):
        if place.exists():
            return None, [file_problem("--checkpoint", place, "an SD3 checkpoint file")]
    return None, [f"checkpoint '{name}' not found — looked for: " + ", ".join(looked) + "."]


def validate(args) -> dict:
    """Everything the run needs, or UsageError listing *all* that is missing — before anything starts."""
    problems, found = [], {}
    try:
        comfy, _, looked = find_comfyui(args.comfyui)
        if comfy is None:
            problems.append(
                "ComfyUI not found — looked in: "
                + ", ".join(looked)
                + ". Pass --comfyui /path/to/ComfyUI or set COMFYUI_DIR."
            )
    except GivenIsNotComfyUI as e:
        comfy = None
        problems.append(f"{e}. Pass --comfyui /path/to/ComfyUI or set COMFYUI_DIR.")
    found["comfy"] = comfy
    problems += check_workflow(args.workflow)
    if args.output.exists() and not args.output.is_dir():
        kind = "a file" if args.output.is_file() else "not a folder (a device, pipe or socket)"
        problems.append(f"--output {args.output} is {kind}; give a folder (results go to a fresh folder inside it).")
    if args.alphas is not None:
        try:
            parse_alphas(args.alphas)
        except AlphaScheduleError as e:
            problems.append(f"--alphas: {e}".replace("\n", " "))
    problems += check_numbers(args)
    if not args.demo:
        if not args.checkpoint:
            problems.append(
                "no checkpoint given — pass --checkpoint sd3_medium_incl_clips_t5xxlfp8.safetensors "
                "(a file in ComfyUI/models/checkpoints) or a path to an SD3 checkpoint that "
                "includes its text encoders. No weights? Try --demo."
            )
        else:
            found["checkpoint"], missing = check_checkpoint(args.checkpoint, comfy)
            problems += missing
        if not args.image:
            problems.append("no image given — pass --image photo.png.")
        else:
            problems += check_image(args.image)
        manual = args.source or args.target
        if manual and not (args.source and args.target):
            problems.append("typed prompts need both --source and --target.")
        if not manual and not args.instruction:
            problems.append(
                'no edit given — pass --instruction "make the suit red" (LLM captions) or '
                "--source and --target captions (offline)."
            )
        if args.instruction and not manual:
            problems += llm_problems(args)
    if problems:
        raise UsageError(problems)
    return found


COMMAND_LINE_PROVIDER = "command-line"


def llm_problems(args) -> list[str]:
    """What keeps the caption LLM from running: an unknown provider, a bad --base-url, a missing key.
    The destination and its key come from this machine's providers or from this command line,
    never from the workflow file (which is only read)."""
    if args.provider and looks_like_url(args.provider):
        # Typed here, so the user's own choice (unlike a URL a workflow carries): say which option takes it.
        return [
            "--provider takes the NAME of a provider defined on this machine, not a URL; for a server of "
            "your own, give its address with --base-url (and its key variable with --api-key-env)."
        ]
    if args.api_key_env and not args.base_url:
        return ["--api-key-env goes with --base-url; a provider's key variable is defined with the provider."]
    if args.base_url and args.provider:
        return ["give --provider or --base-url, not both."]
    try:
        if args.base_url:
            providers = [
                Provider(
                    COMMAND_LINE_PROVIDER,
                    check_base_url(args.base_url, "--base-url"),
                    (args.api_key_env or "").strip(),
                    "the command line",
                )
            ]
        else:
            providers = [
                get_provider(name) for name in ([args.provider] if args.provider else workflow_providers(args.workflow))
            ]
        for provider in providers:
            resolve_key(provider)
    except ProviderError as e:
        return [f"{e} (or give --source/--target: no LLM)."]
    return []


def workflow_providers(path: Path) -> list[str]:
    """The providers a workflow's caption nodes name (widget 1: instruction, provider, model, …);
    ``openai`` when none can be read. Only names: what they mean is defined on this machine."""
    try:
        nodes = json.loads(Path(path).read_text(encoding="utf-8")).get("nodes", [])
    except (OSError, ValueError, AttributeError):
        return ["openai"]
    names = {
        n["widgets_values"][1]
        for n in nodes
        if isinstance(n, dict)
        and n.get("type") == "EMSExtractCaptions"
        and isinstance(n.get("widgets_values"), list)
        and len(n["widgets_values"]) > 1
        and isinstance(n["widgets_values"][1], str)
        and not legacy_widget_values(n["widgets_values"])
    }
    return sorted(names) or ["openai"]


def refuse_legacy_captions(workflow: dict) -> None:
    """A workflow saved by an early EMS carries a server URL and a key variable in its caption node: say
    what changed instead of running it (its values would land in the wrong widgets)."""
    for node in workflow.get("nodes", []) if isinstance(workflow, dict) else []:
        if not isinstance(node, dict) or node.get("type") != "EMSExtractCaptions":
            continue
        old = legacy_widget_values(node.get("widgets_values"))
        if old:
            raise WorkflowError(
                f"node {node.get('id')} (EMS Extract Captions): {legacy_message(old['base_url'], old['api_key_env'])} "
                "Or open the workflow in ComfyUI (the pack moves the node to the provider layout) and save it again."
            )


def llm_env(args, base: Path) -> dict:
    """Environment for the private ComfyUI: with --base-url, a provider file in the private base that
    holds this machine's providers plus the server typed on this command line (names only, no keys)."""
    if not args.base_url:
        return {}
    providers = {
        name: {"base_url": p.base_url, "api_key_env": p.api_key_env}
        for name, p in load_providers().items()
        if BUILT_IN.get(name) != p
    }
    providers[COMMAND_LINE_PROVIDER] = {
        "base_url": args.base_url.strip().rstrip("/"),
        "api_key_env": (args.api_key_env or "").strip(),
    }
    path = base / "ems_llm_providers.json"
    path.write_text(json.dumps({"providers": providers}, indent=1), encoding="utf-8")
    return {"EMS_LLM_CONFIG": str(path)}


def fresh_folder(root: Path) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for n in range(1000):
        path = root / (f"ems-{stamp}" + (f"-{n}" if n else ""))
        try:
            path.mkdir(parents=True)
            return path
        except FileExistsError:
            continue
    raise RuntimeError(f"could not create a fresh folder in {root}")


def set_inputs(prompt: dict, class_type: str, **values) -> None:
    for key in nodes_of(prompt, class_type):
        for name, value in values.items():
            if (
                value is not None
                and name in prompt[key]["inputs"]
                and not isinstance(prompt[key]["inputs"][name], list)
            ):
                prompt[key]["inputs"][name] = value


def typed_attribute(source: str, target: str, attribute: str = "") -> str:
    """The attribute phrase for typed captions: the one given, else the edited words as EMS Encode
    Prompts derives them ("red suit"), else the target caption. The whole target caption as the
    attribute would make the CSDS push vanish at α = 1, where the positive is the target."""
    return attribute or derive_attribute(source, target) or target


def build_prompt(args, workflow: dict, info: dict, image_name: str, ckpt_name: str | None) -> dict:
    refuse_legacy_captions(workflow)
    filled: list[str] = []
    prompt = ui_to_api(workflow, info, filled)
    if filled:
        print(
            "EMS: this ComfyUI has inputs the workflow does not set; using the server's defaults: " + ", ".join(filled),
            flush=True,
        )
    set_inputs(prompt, "LoadImage", image=image_name)
    set_inputs(prompt, "CheckpointLoaderSimple", ckpt_name=ckpt_name)
    set_inputs(prompt, "ImageScaleToTotalPixels", megapixels=args.megapixels)
    set_inputs(prompt, "BasicScheduler", steps=args.steps, denoise=args.denoise)
    set_inputs(prompt, "KSampler", steps=args.steps, denoise=args.denoise, seed=args.seed, cfg=args.cfg)
    set_inputs(prompt, "CFGGuider", cfg=args.cfg)
    set_inputs(
        prompt,
        "EMSCSDSLatentEdit",
        noise_seed=args.seed,
        cfg=args.cfg,
        iterations=args.iterations,
        constraint=args.constraint,
    )
    set_inputs(prompt, "EMSFlowEdit", noise_seed=args.seed, cfg=args.cfg, source_cfg=args.source_cfg)
    set_inputs(prompt, "EMSAlphaSweep", alphas=args.alphas)
    set_inputs(
        prompt,
        "EMSExtractCaptions",
        instruction=args.instruction,
        model=args.llm_model,
        provider=COMMAND_LINE_PROVIDER if args.base_url else args.provider,
    )
    if args.source:
        attribute = typed_attribute(args.source, args.target, args.attribute)
        prompt = drop_caption_llm(prompt, args.source, args.target, attribute)
        set_inputs(
            prompt, "EMSEncodePrompts", source_prompt=args.source, target_prompt=args.target, attribute_prompt=attribute
        )
    if args.demo:
        prompt = demo.swap_to_toyworld(prompt)
    return prompt


def use_cpu(device: str) -> bool:
    if device != "auto":
        return device == "cpu"
    try:
        import torch
    except ImportError:
        return True
    mps = getattr(torch.backends, "mps", None)
    return not (torch.cuda.is_available() or (mps is not None and mps.is_available()))


def collect(server: ComfyServer, history: dict, out: Path) -> list[Path]:
    """Copy every image the run saved (SaveImage outputs) into ``out``, in the subfolder ComfyUI
    saved it in: two SaveImage nodes with one prefix in different subfolders (``a/edit``,
    ``b/edit``) both number from edit_00001_.png. No file is ever overwritten."""
    saved = []
    for result in history.get("outputs", {}).values():
        for item in result.get("images", []):
            if item.get("type") == "output":
                target = unused(out.joinpath(*subfolder_parts(item.get("subfolder")), Path(item["filename"]).name))
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(server.view(item))
                saved.append(target)
    return sorted(saved)


def subfolder_parts(subfolder) -> list[str]:
    """A saved image's subfolder as path parts that stay inside the results folder."""
    parts = re.split(r"[\\/]+", subfolder) if isinstance(subfolder, str) else []
    return [p for p in parts if p not in ("", ".", "..") and ":" not in p]


def unused(path: Path) -> Path:
    """``path``, or ``name-2.ext``, ``name-3.ext``, … when it exists already."""
    n = 1
    candidate = path
    while candidate.exists():
        n += 1
        candidate = path.with_name(f"{path.stem}-{n}{path.suffix}")
    return candidate


# EMS nodes whose UI text is nothing but warnings (identical prompts, the attribute words used, α
# outside the usual range); "" when there is nothing to say.
WARNING_NODES = ("EMSEncodePrompts", "EMSTextDirection")


def node_warnings(history: dict, prompt: dict) -> list[str]:
    """The warnings EMS nodes showed on the canvas, as a browser user would have seen them."""
    found = []
    for node_id, result in history.get("outputs", {}).items():
        if prompt.get(node_id, {}).get("class_type") in WARNING_NODES:
            found += [
                line.strip()
                for text in result.get("text", [])
                if isinstance(text, str)
                for line in text.splitlines()
                if line.strip()
            ]
    return found


def run(args) -> int:
    found = validate(args)
    comfy: Path = found["comfy"]
    try:
        out = fresh_folder(args.output)
    except OSError as e:
        raise UsageError([f"--output {args.output}: cannot create a results folder there ({e.strerror})."]) from None
    base = Path(tempfile.mkdtemp(prefix="ems-comfy-"))
    packs = {PACK_NAME: REPO}
    if args.demo:
        args.source = args.source or demo.SOURCE
        args.target = args.target or demo.TARGET
        args.attribute = args.attribute or demo.ATTRIBUTE
        args.alphas = args.alphas or DEFAULT_SWEEP
        # The toy model's own measured settings (toyworld/settings.py): SD3's 0.75 / 7.5 breaks it.
        flow = "EMSFlowEdit" in args.workflow.read_text(encoding="utf-8")
        args.steps = args.steps if args.steps is not None else TOY.steps
        args.denoise = args.denoise if args.denoise is not None else (TOY.flow_denoise if flow else TOY.denoise)
        args.cfg = args.cfg if args.cfg is not None else (TOY.flow_cfg if flow else TOY.cfg)
        args.source_cfg = args.source_cfg if args.source_cfg is not None else TOY.flow_source_cfg
        args.seed = args.seed if args.seed is not None else TOY.seed
    prepare_base(base, packs)
    if args.demo:
        image = demo.make_test_image(base / "input" / "ems_demo_input.png")
        shutil.copy(image, out / "input.png")
        ckpt_name = None
    else:
        src = Path(args.image)
        image = base / "input" / f"ems_input{src.suffix.lower()}"
        shutil.copy(src, image)
        ckpt = found["checkpoint"]
        link_to(base / "models" / "checkpoints" / ckpt.name, ckpt)
        ckpt_name = ckpt.name
    print(f"EMS: ComfyUI {comfy}; private base {base}; results → {out}", flush=True)
    # Captions are kept in the user's cache folder (not the private base, deleted after the run), so
    # the same image + instruction never pays for the LLM twice; --no-cache keeps them in the base.
    cache = base / "caption_cache" if args.no_cache else user_cache_dir() / "captions"
    server = ComfyServer(
        comfy, base, cpu=use_cpu(args.device), env={"EMS_CACHE_DIR": str(cache), **llm_env(args, base)}
    )
    try:
        server.start()
        info = server.object_info()
        prompt = build_prompt(args, json.loads(args.workflow.read_text(encoding="utf-8")), info, image.name, ckpt_name)
        (out / "prompt_api.json").write_text(json.dumps(prompt, indent=1, ensure_ascii=False))
        # The graph that ran, in the UI format: saved beside the results and embedded in every PNG
        # (as ComfyUI's browser client does), so a result dragged onto the canvas opens as its workflow.
        ui = prompt_to_ui(prompt, info)
        (out / "workflow.json").write_text(json.dumps(ui, indent=1, ensure_ascii=False))
        print(f"EMS: running {args.workflow.name} ({len(prompt)} nodes)…", flush=True)
        history = server.run(prompt, timeout=args.timeout, extra_data={"extra_pnginfo": {"workflow": ui}})
        saved = collect(server, history, out)
        for warning in node_warnings(history, prompt):
            print(f"EMS: warning — {warning}", flush=True)
    except (ExecutionFailed, PromptRejected, WorkflowError, RuntimeError, TimeoutError) as e:
        shutil.copy(server.log_path, out / "comfyui.log") if server.log_path.exists() else None
        print(f"EMS: the run failed — {e}\nComfyUI's log: {out / 'comfyui.log'}", file=sys.stderr)
        return 1
    finally:
        server.stop()
        if server.log_path.exists():
            shutil.copy(server.log_path, out / "comfyui.log")
        if not args.keep_base:
            shutil.rmtree(base, ignore_errors=True)
    if args.demo:
        saved += demo.enlarged(saved)
    print(f"EMS: done. {len(saved)} image(s) in {out}:")
    for path in saved:
        kind = "α grid" if "grid" in path.name else "edit"
        print(f"  {kind:7s} {path}")
    if args.demo:
        print("\n".join(demo.readout_report(saved, args.alphas)))
        print(
            "EMS: DEMO — the toy world is an 8 M-parameter SD3-architecture model (MMDiT + VAE) trained on drawn 64×64 scenes, "
            "an instrument for seeing and scoring edits, not SD3; use --checkpoint for real photos."
        )
    return 0


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        return run(args)
    except UsageError as e:
        for problem in e.args[0]:
            print(f"EMS: cannot run: {problem}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
