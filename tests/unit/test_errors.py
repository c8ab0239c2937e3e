"""Errors: the method (ems/) refuses with plain messages that name inputs, never a node; the node
adapters put their own name in front, once (nodes/common.py node_errors)."""

from __future__ import annotations

import ast
import importlib
import importlib.machinery
import importlib.util
import math
import re
from pathlib import Path

import pytest
import torch

from comfyui_ems.ems import validation as v
from comfyui_ems.ems.alphas import parse_alphas
from comfyui_ems.ems.conditioning import conditioning_alpha, manipulate_conditioning, sweep_conditioning
from comfyui_ems.ems.csds import CSDSParams, check_sigma, check_stable
from comfyui_ems.ems.flow_edit import FlowEditParams, check_schedule
from comfyui_ems.ems.grid import labelled_grid
from comfyui_ems.ems.latent_direction import apply_direction

REPO = Path(__file__).resolve().parents[2]
# The modules that are the method itself; each must stay free of node vocabulary.
METHOD_MODULES = (
    "alphas",
    "captions",
    "conditioning",
    "csds",
    "flow_edit",
    "grid",
    "latent_direction",
    "tensors",
    "tokens",
    "validation",
)
NODE_NAME = re.compile(r"\bEMS [A-Z]")  # "EMS Alpha Sweep", "EMS CSDS Latent Edit", …


def cond(tokens=77, width=768, alpha=None):
    extras = {} if alpha is None else {"ems_alpha": torch.tensor(alpha, dtype=torch.float64)}
    return [[torch.randn(1, tokens, width), extras]]


BAD_INPUTS = {
    "alpha schedule syntax": lambda: parse_alphas("0, half"),
    "alpha schedule range": lambda: parse_alphas("0, 1e30"),
    "float widget": lambda: v.CONSTRAINT.check(math.nan),
    "token lengths": lambda: manipulate_conditioning(cond(77), cond(154), 0.5),
    "embedding widths": lambda: manipulate_conditioning(cond(width=768), cond(width=1024), 0.5),
    "not a conditioning": lambda: manipulate_conditioning(torch.zeros(1, 77, 768), cond(), 0.5),
    "empty sweep": lambda: sweep_conditioning(cond(), cond(), []),
    "two α combined": lambda: conditioning_alpha(cond(alpha=[0.5]) + cond(alpha=[1.0]), 1),
    "α for another batch": lambda: conditioning_alpha(cond(alpha=[0.5, 1.0]), 3),
    "CSDS parameters": lambda: CSDSParams(step_start=0.01, step_end=0.1),
    "CSDS full-noise start": lambda: check_sigma(1.0, True),
    "CSDS unstable": lambda: check_stable(
        0.5, CSDSParams(constraint=10.0, step_start=0.1, step_end=0.01, step_units="latent")
    ),
    "Flow Edit parameters": lambda: FlowEditParams(locality=2.0),
    "Flow Edit schedule": lambda: check_schedule([0.5]),
    "latent direction shape": lambda: apply_direction(
        torch.zeros(1, 4, 8, 8), torch.zeros(1, 4, 4, 4), torch.zeros(1, 4, 8, 8), 1.0
    ),
    "latent direction mode": lambda: apply_direction(
        torch.ones(1, 4, 8, 8), torch.ones(1, 4, 8, 8), torch.ones(1, 4, 8, 8), 1.0, mode="spline"
    ),
    "grid input": lambda: labelled_grid(torch.zeros(2, 8, 8), ["a", "b"]),
}


@pytest.mark.parametrize("case", BAD_INPUTS)
def test_method_errors_are_input_errors_that_name_no_node(case):
    with pytest.raises(v.InputError) as e:
        BAD_INPUTS[case]()
    message = str(e.value)
    assert message and not message.startswith("EMS"), message
    assert not NODE_NAME.search(message), message


def test_no_method_function_takes_a_node_name():
    for name in METHOD_MODULES:
        tree = ast.parse((REPO / "ems" / f"{name}.py").read_text(encoding="utf-8"))
        for fn in (n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))):
            params = [a.arg for a in (*fn.args.posonlyargs, *fn.args.args, *fn.args.kwonlyargs)]
            assert "node" not in params, f"ems/{name}.py: {fn.name}() takes a node name"


# -- the adapters' side: nodes/common.py, imported without ComfyUI ----------------------------------


@pytest.fixture(scope="module")
def common():
    # importing an adapter module does not start ComfyUI: the node list is built in nodes.extension
    return importlib.import_module("comfyui_ems.nodes.common")


def test_node_errors_prefix_the_node_once(common):
    with pytest.raises(common.EMSNodeError) as e:
        with common.node_errors("EMS Alpha Sweep"):
            importlib.import_module("comfyui_ems.ems.alphas").parse_alphas("0, half")
    assert str(e.value).startswith("EMS Alpha Sweep: value 'half' is not a number")
    assert str(e.value).count("EMS Alpha Sweep") == 1
    assert e.value.__cause__ is None and e.value.__suppress_context__  # no chained traceback in the dialog


def test_node_errors_add_the_node_that_fixes_it(common):
    with pytest.raises(common.EMSNodeError) as e:
        with common.node_errors("EMS Text Direction"):
            importlib.import_module("comfyui_ems.ems.conditioning").manipulate_conditioning(cond(77), cond(154), 0.5)
    assert str(e.value).startswith("EMS Text Direction: 'source' has 77 tokens")
    assert str(e.value).endswith("EMS Encode Prompts does exactly that.")
    with pytest.raises(common.EMSNodeError) as e:
        with common.node_errors("EMS Alpha Sweep"):
            importlib.import_module("comfyui_ems.ems.alphas").parse_alphas("0, 1e30")
    assert "-10 … 10" in str(e.value) and "EMS Text Direction" in str(e.value)
    with pytest.raises(common.EMSNodeError) as e:
        with common.node_errors("EMS Flow Edit", fix="Connect BasicScheduler."):
            importlib.import_module("comfyui_ems.ems.flow_edit").check_schedule([0.5])
    assert str(e.value).startswith("EMS Flow Edit: the schedule has 1 value") and str(e.value).endswith(
        "Connect BasicScheduler."
    )


def test_node_errors_leave_other_exceptions_alone(common):
    own = common.node_error("EMS Labelled Grid", "the grid is empty.")
    assert str(own) == "EMS Labelled Grid: the grid is empty."
    with pytest.raises(common.EMSNodeError) as e:
        with common.node_errors("EMS Flow Edit"):
            raise own
    assert e.value is own  # already names its node
    with pytest.raises(RuntimeError, match="^a bug$"):
        with common.node_errors("EMS Flow Edit"):
            raise RuntimeError("a bug")  # not a refusal of the input: a traceback, as before

    class ServerError(Exception):
        pass

    with pytest.raises(common.EMSNodeError, match=r"^EMS Extract Captions: key \*\*\* refused$"):
        with common.node_errors("EMS Extract Captions", ServerError, clean=lambda m: m.replace("sk-1", "***")):
            raise ServerError("key sk-1 refused")


def test_check_floats_names_the_node(common):
    with pytest.raises(common.EMSNodeError) as e:
        common.check_floats(
            "EMS CSDS Latent Edit", [importlib.import_module("comfyui_ems.ems.validation").CFG], cfg=math.nan
        )
    assert str(e.value).startswith("EMS CSDS Latent Edit: cfg is nan")
