"""A ComfyUI server process with a private base directory, driven over HTTP as any client would.

The server gets its own base directory (custom_nodes, models, input, output, user), so nothing of
the user's ComfyUI install is touched; ``custom_nodes`` holds links to the packs to load (this
repository, and for tests/demo the test-only pack). Used by the headless runner and by the
integration tests (tests/support/comfy_server.py re-exports these names).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACK_NAME = "comfyui-ems"


class ExecutionFailed(RuntimeError):
    """A queued prompt ended in an error; ``message`` is what ComfyUI reported for the node."""

    def __init__(self, message: str, node_type: str | None, details: dict):
        super().__init__(f"{node_type}: {message}")
        self.message, self.node_type, self.details = message, node_type, details


class PromptRejected(RuntimeError):
    """``POST /prompt`` refused the graph at validation; ``body`` is ComfyUI's JSON answer."""

    def __init__(self, body: dict):
        super().__init__(json.dumps(body)[:2000])
        self.body = body


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def python_for_comfy() -> str:
    return os.environ.get("COMFYUI_PYTHON", sys.executable)


def prepare_base(base: Path, packs: dict[str, Path] | None = None) -> Path:
    """Lay out a ComfyUI base directory with ``packs`` ({name: folder}) linked into custom_nodes."""
    for sub in ("custom_nodes", "models/diffusion_models", "models/checkpoints", "input", "output", "user", "temp"):
        (base / sub).mkdir(parents=True, exist_ok=True)
    for name, target in (packs if packs is not None else {PACK_NAME: REPO}).items():
        link = base / "custom_nodes" / name
        if not link.exists():
            link_to(link, target)
    return base


def link_to(link: Path, target: Path) -> None:
    """``link`` → ``target`` without copying: a symbolic link; where Windows refuses one (it needs
    Developer Mode or an administrator), a directory junction for a folder, a hard link for a file
    (same drive). Model files are gigabytes, so there is no copy fallback: the error says why."""
    target = Path(target).resolve()
    try:
        link.symlink_to(target, target_is_directory=target.is_dir())
        return
    except OSError as refused:
        error = refused
    try:
        if target.is_dir():
            import _winapi  # Windows only: a junction needs no privilege

            _winapi.CreateJunction(str(target), str(link))
        else:
            os.link(target, link)
    except (ImportError, OSError) as e:
        raise OSError(f"cannot link {link} to {target}: {error}; {e}") from None


class ComfyServer:
    """A ComfyUI server process on a free loopback port."""

    def __init__(self, comfy_dir: str | Path, base: Path, env: dict | None = None, extra_args=(), cpu: bool = True):
        self.comfy_dir, self.base = Path(comfy_dir), base
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = base / "server.log"
        self.env = {**os.environ, **(env or {})}
        self.extra_args = list(extra_args)
        self.cpu = cpu
        self.proc = None

    def start(self, timeout: float = 240.0) -> "ComfyServer":
        args = [
            python_for_comfy(),
            "main.py",
            *(["--cpu"] if self.cpu else []),
            "--listen",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--base-directory",
            str(self.base),
            "--disable-auto-launch",
            "--database-url",
            "sqlite:///:memory:",
            *self.extra_args,
        ]
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(args, cwd=self.comfy_dir, stdout=self._log, stderr=subprocess.STDOUT, env=self.env)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"ComfyUI exited with {self.proc.returncode}:\n{self.log()[-4000:]}")
            try:
                self.get("/system_stats", timeout=2)
                return self
            except (urllib.error.URLError, ConnectionError, OSError):
                time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"ComfyUI did not answer within {timeout}s:\n{self.log()[-4000:]}")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if getattr(self, "_log", None):
            self._log.close()

    def restart(self) -> "ComfyServer":
        self.stop()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        return self.start()

    def __enter__(self) -> "ComfyServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    # -- HTTP, as any client would -------------------------------------------------------------
    def get(self, path: str, timeout: float = 30):
        with urllib.request.urlopen(self.url + path, timeout=timeout) as r:
            return json.loads(r.read())

    def get_bytes(self, path: str, timeout: float = 60) -> bytes:
        with urllib.request.urlopen(self.url + path, timeout=timeout) as r:
            return r.read()

    def post(self, path: str, body: dict, timeout: float = 30):
        req = urllib.request.Request(
            self.url + path, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return json.loads(r.read() or b"{}")
        except urllib.error.HTTPError as e:
            raise PromptRejected(json.loads(e.read() or b"{}")) from None

    def object_info(self) -> dict:
        return self.get("/object_info")

    def queue(self, prompt: dict, extra_data: dict | None = None) -> str:
        body = {"prompt": prompt, "client_id": uuid.uuid4().hex}
        if extra_data:
            body["extra_data"] = extra_data
        answer = self.post("/prompt", body)
        if answer.get("node_errors"):
            # ComfyUI queues the valid outputs of a partly invalid graph; a caller wants to know.
            raise PromptRejected(answer)
        return answer["prompt_id"]

    def wait(self, prompt_id: str, timeout: float = 600) -> dict:
        deadline = time.time() + timeout
        while time.time() < deadline:
            hist = self.get(f"/history/{prompt_id}")
            if prompt_id in hist and hist[prompt_id].get("status", {}).get("completed") is not None:
                entry = hist[prompt_id]
                if entry["status"].get("status_str") == "error":
                    for kind, data in entry["status"].get("messages", []):
                        if kind == "execution_error":
                            raise ExecutionFailed(data.get("exception_message", ""), data.get("node_type"), data)
                    raise ExecutionFailed("unknown error", None, entry)
                return entry
            if self.proc.poll() is not None:
                raise RuntimeError(f"ComfyUI died:\n{self.log()[-4000:]}")
            time.sleep(0.2)
        raise TimeoutError(f"prompt {prompt_id} did not finish in {timeout}s")

    def run(self, prompt: dict, timeout: float = 600, extra_data: dict | None = None) -> dict:
        return self.wait(self.queue(prompt, extra_data), timeout)

    def view(self, item: dict) -> bytes:
        """The bytes of an output image listed in a history entry ({filename, subfolder, type})."""
        query = urllib.parse.urlencode({k: item.get(k, "") for k in ("filename", "subfolder", "type")})
        return self.get_bytes(f"/view?{query}")
