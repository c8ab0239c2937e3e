"""Integration tier: the pack inside a real ComfyUI server, driven over HTTP.

Needs a ComfyUI checkout in COMFYUI_DIR (scripts/test.sh finds one). Without it every test
here is SKIPPED with that reason, and the run's summary says so.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

COMFYUI_DIR = os.environ.get("COMFYUI_DIR", "")
SKIP_REASON = (
    "INTEGRATION TIER SKIPPED: no ComfyUI — set COMFYUI_DIR to a ComfyUI source tree, or "
    "COMFYUI_ARCHIVE to the pinned source archive, and run scripts/test.sh (README, Development)"
)
HAVE_COMFY = bool(COMFYUI_DIR) and (Path(COMFYUI_DIR) / "main.py").is_file()
if HAVE_COMFY and COMFYUI_DIR not in sys.path:
    # In-process tests import ComfyUI itself (call counting, independent re-computation); the one
    # place a test puts it on the path. Nothing is imported here: the device is chosen first
    # (bench.host.setup).
    sys.path.append(COMFYUI_DIR)


def pytest_collection_modifyitems(config, items):
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.integration)
            if not HAVE_COMFY:
                item.add_marker(pytest.mark.skip(reason=SKIP_REASON))


def pytest_report_header(config):
    return f"ComfyUI: {COMFYUI_DIR}" if HAVE_COMFY else SKIP_REASON


@pytest.fixture(scope="session")
def comfy_base(tmp_path_factory):
    from support.comfy_server import prepare_base, write_tiny_model

    base = prepare_base(tmp_path_factory.mktemp("comfy_base"))
    write_tiny_model(base)
    return base


@pytest.fixture(scope="session")
def comfy(comfy_base):
    """One ComfyUI server for the session, with the EMS pack and the test pack installed."""
    from support.comfy_server import ComfyServer

    server = ComfyServer(COMFYUI_DIR, comfy_base).start()
    yield server
    server.stop()
