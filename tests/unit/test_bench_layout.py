"""bench/ is split by study with no import cycle: every bench-internal import, function-local ones
included, points one way.

A lazy (function-local) import hides a cycle from the interpreter — both modules load, and the
cycle bites only when someone moves the import to the top or imports the modules in the other
order — so the graph is built statically from every import statement (``ast``), wherever it
stands, and must be acyclic. The studies (``bench.cost``, ``bench.paper``, ``bench.toy``,
``bench.latent``) may use the shared modules (``bench.harness``, ``bench.host``) and the metrics
library (``bench.metrics``), and a later study may use an earlier one's pieces; nothing imports
back up.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
STUDIES = ("cost", "paper", "toy", "latent")
# every command of bench/: ``python -m <module>``
ENTRY_POINTS = (
    "bench",
    "bench.cost",
    "bench.paper",
    "bench.toy",
    "bench.toy.front",
    "bench.toy.spacing",
    "bench.latent",
    "bench.metrics",
)


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def bench_modules(root: Path = REPO) -> dict[str, Path]:
    """``bench.toy.world`` → its file, for every module and package under ``root``/bench."""
    return {module_name(p, root): p for p in sorted((root / "bench").rglob("*.py"))}


def imports(path: Path, root: Path, modules: dict[str, Path]) -> list[tuple[int, str]]:
    """(line, bench module) of every bench-internal import in ``path``, function-local ones
    included. Relative imports are resolved against the file's package; ``from X import name``
    points at the submodule ``X.name`` where there is one, else at ``X`` itself."""
    name = module_name(path, root)
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found = []

    def add(line: int, target: str) -> None:
        if target == "bench" or target.startswith("bench."):
            while target not in modules and "." in target:  # bench.x.attr → bench.x
                target = target.rsplit(".", 1)[0]
            if target in modules:
                found.append((line, target))

    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(node.lineno, alias.name)
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - (node.level - 1)] if node.level else []
            parent = ".".join(base + (node.module.split(".") if node.module else []))
            for alias in node.names:
                sub = f"{parent}.{alias.name}"
                add(node.lineno, sub if sub in modules else parent)
    return found


def import_graph(root: Path = REPO) -> dict[str, dict[str, int]]:
    """module → {imported bench module: first line}, self-imports left out."""
    modules = bench_modules(root)
    graph: dict[str, dict[str, int]] = {}
    for name, path in modules.items():
        edges = graph.setdefault(name, {})
        for line, target in imports(path, root, modules):
            if target != name:
                edges.setdefault(target, line)
    return graph


def find_cycle(graph: dict[str, dict[str, int]]) -> list[str]:
    """One cycle as [a, b, …, a], or [] when the graph is acyclic (depth-first search)."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = finished
    path: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, {})):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return []

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return []


def describe(cycle: list[str], graph, root: Path = REPO) -> str:
    files = bench_modules(root)
    return (
        " → ".join(f"{a} ({files[a].relative_to(root)}:{graph[a][b]})" for a, b in zip(cycle, cycle[1:]))
        + f" → {cycle[-1]}"
    )


def test_bench_imports_are_acyclic():
    graph = import_graph()
    cycle = find_cycle(graph)
    assert not cycle, "import cycle inside bench/: " + describe(cycle, graph)


def test_every_study_is_a_package_with_its_own_entry_point():
    for study in STUDIES:
        assert (REPO / "bench" / study / "__init__.py").is_file(), study
        assert (REPO / "bench" / study / "__main__.py").is_file(), study
    assert (REPO / "bench" / "__main__.py").is_file()  # python -m bench: the cost bench


def test_every_command_parses_its_arguments_before_comfyui_is_imported():
    """``--help`` of every entry point works in a process where ComfyUI cannot be imported, and
    nothing of ComfyUI is loaded: the device is chosen (``bench.host.setup``) before ComfyUI's
    model management loads, so no bench module may import ComfyUI at its top."""
    script = (
        "import contextlib, io, json, runpy, sys\n"
        "codes = {}\n"
        "for module in sys.argv[1:]:\n"
        "    sys.argv = [module, '--help']\n"
        "    try:\n"
        "        with contextlib.redirect_stdout(io.StringIO()):\n"
        "            runpy.run_module(module, run_name='__main__', alter_sys=True)\n"
        "    except SystemExit as e:\n"
        "        codes[module] = e.code\n"
        "comfy = sorted(m for m in sys.modules if m.split('.')[0] in ('comfy', 'comfy_api', 'comfyui_version', "
        "'latent_preview', 'folder_paths'))\n"
        "print(json.dumps({'codes': codes, 'comfy': comfy}))\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "tests")])}
    done = subprocess.run(
        [sys.executable, "-c", script, *ENTRY_POINTS], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["codes"] == {m: 0 for m in ENTRY_POINTS}, done.stderr[-3000:]
    assert result["comfy"] == [], result["comfy"]


def test_only_the_shared_modules_stay_at_the_top():
    """The top of bench/ holds what every study shares; a study's modules live in its package."""
    top = {p.name for p in (REPO / "bench").glob("*.py")}
    assert top == {"__init__.py", "__main__.py", "harness.py", "host.py"}, sorted(top)


def test_the_shared_modules_import_no_study():
    graph = import_graph()
    for shared in ("bench.harness", "bench.host", "bench.metrics"):
        bad = sorted(
            t
            for m, edges in graph.items()
            if m == shared or m.startswith(shared + ".")
            for t in edges
            if any(t == f"bench.{s}" or t.startswith(f"bench.{s}.") for s in STUDIES)
        )
        assert not bad, f"{shared} imports a study: {bad}"


def _plant(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


# The cycle that bench/ had before the split: the toy-world comparison imported the calibration
# inside main(), the calibration imported run_method and settings_from back inside its functions.
OLD_TOYWORLD_PAIR = {
    "bench/__init__.py": "",
    "bench/toyworld_score.py": "import numpy as np\n",
    "bench/toyworld.py": (
        "from .toyworld_score import to_image\n\n\ndef main(args):\n"
        "    if args.calibrate:\n        from .toyworld_calibrate import calibrate\n\n"
        "        return calibrate(args)\n"
    ),
    "bench/toyworld_calibrate.py": (
        "from .toyworld_score import nanmean\n\n\ndef evaluate_setting():\n    from .toyworld import run_method\n"
    ),
}


def test_the_old_toyworld_calibrate_cycle_is_caught(tmp_path):
    """The checker itself can fail: the pre-split pair, whose cycle ran through function-local imports."""
    _plant(tmp_path, OLD_TOYWORLD_PAIR)
    cycle = find_cycle(import_graph(tmp_path))
    assert set(cycle) == {"bench.toyworld", "bench.toyworld_calibrate"} and cycle[0] == cycle[-1], cycle


@pytest.mark.parametrize(
    "line",
    [
        "from bench.toy import compare",  # absolute, package then submodule name
        "import bench.toy.compare",  # plain import
        "from .compare import main",  # relative
        "from ..toy.compare import main",  # relative, up one package
        "from bench.toy.compare import main",  # absolute, a name from the module
    ],
)
def test_every_import_form_is_an_edge(tmp_path, line):
    _plant(
        tmp_path,
        {
            "bench/__init__.py": "",
            "bench/toy/__init__.py": "",
            "bench/toy/compare.py": "from . import world\n",
            "bench/toy/world.py": f"def later():\n    {line}\n",
        },
    )
    graph = import_graph(tmp_path)
    assert graph["bench.toy.world"] == {"bench.toy.compare": 2}, graph
    assert find_cycle(graph)[:2] in (["bench.toy.compare", "bench.toy.world"], ["bench.toy.world", "bench.toy.compare"])


def test_an_acyclic_layout_passes(tmp_path):
    _plant(
        tmp_path,
        {
            "bench/__init__.py": "",
            "bench/harness.py": "import torch\n",
            "bench/toy/__init__.py": "",
            "bench/toy/world.py": "from bench import harness\n",
            "bench/toy/compare.py": "from . import world\nfrom .world import World\n",
            "bench/latent/__init__.py": "",
            "bench/latent/study.py": "from bench.toy.world import World\n",
        },
    )
    graph = import_graph(tmp_path)
    assert graph["bench.toy.compare"] == {"bench.toy.world": 1}
    assert graph["bench.latent.study"] == {"bench.toy.world": 1}
    assert find_cycle(graph) == []
