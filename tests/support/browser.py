"""Headless Chromium driven over the Chrome DevTools Protocol (CDP), with aiohttp's websocket client.

Why not Selenium/Playwright: Debian's ``chromium`` is all we need, aiohttp is already installed
with ComfyUI, and CDP gives console messages, exceptions and screenshots directly.

    with Chromium() as browser:
        result = browser.run(lambda page: page.goto(url))
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
    "--mute-audio",
]


def find_chromium() -> str | None:
    explicit = os.environ.get("CHROMIUM")
    if explicit:
        return explicit if Path(explicit).exists() else None
    for name in CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    return None


class Chromium:
    """A headless Chromium process with a fresh profile; ``run`` drives one page."""

    def __init__(self, width: int = 1600, height: int = 1000):
        self.binary = find_chromium()
        if not self.binary:
            raise FileNotFoundError("no Chromium found (install Debian's 'chromium' or set CHROMIUM)")
        self.size = (width, height)
        self.profile = tempfile.mkdtemp(prefix="ems-chromium-")
        self.proc = None

    def __enter__(self) -> "Chromium":
        args = [
            self.binary,
            *FLAGS,
            f"--user-data-dir={self.profile}",
            "--remote-debugging-port=0",
            f"--window-size={self.size[0]},{self.size[1]}",
            "about:blank",
        ]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port_file = Path(self.profile) / "DevToolsActivePort"
        deadline = time.time() + 30
        while not port_file.exists() or not port_file.read_text().strip():
            if self.proc.poll() is not None or time.time() > deadline:
                raise RuntimeError("Chromium did not start (no DevToolsActivePort)")
            time.sleep(0.1)
        self.port = int(port_file.read_text().split()[0])
        return self

    def __exit__(self, *exc) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        shutil.rmtree(self.profile, ignore_errors=True)

    def page_ws_url(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/json", timeout=10) as r:
            targets = json.loads(r.read())
        return next(t["webSocketDebuggerUrl"] for t in targets if t["type"] == "page")

    def run(self, script):
        """Run ``async script(page)`` against the browser's page; returns its result."""

        async def main():
            import aiohttp

            async with aiohttp.ClientSession() as session:
                async with session.ws_connect(self.page_ws_url(), max_msg_size=0) as ws:
                    page = Page(ws)
                    reader = asyncio.create_task(page.read())
                    try:
                        await page.send("Runtime.enable")
                        await page.send("Log.enable")
                        await page.send("Page.enable")
                        await page.send(
                            "Emulation.setDeviceMetricsOverride",
                            width=self.size[0],
                            height=self.size[1],
                            deviceScaleFactor=1,
                            mobile=False,
                        )
                        return await script(page)
                    finally:
                        reader.cancel()

        return asyncio.run(main())


class Page:
    """One CDP page session: commands with replies, and every console message/exception seen."""

    def __init__(self, ws):
        self.ws, self.ids = ws, itertools.count(1)
        self.pending: dict[int, asyncio.Future] = {}
        self.console: list[dict] = []  # {"level", "text", "url"}
        self.loaded = asyncio.Event()

    async def read(self) -> None:
        async for msg in self.ws:
            data = json.loads(msg.data)
            if "id" in data and data["id"] in self.pending:
                self.pending.pop(data["id"]).set_result(data)
            elif data.get("method"):
                self._event(data["method"], data.get("params", {}))

    def _event(self, method: str, params: dict) -> None:
        if method == "Runtime.consoleAPICalled":
            text = " ".join(str(a.get("value", a.get("description", ""))) for a in params.get("args", []))
            frames = (params.get("stackTrace") or {}).get("callFrames") or [{}]
            self.console.append({"level": params["type"], "text": text, "url": frames[0].get("url", "")})
        elif method == "Runtime.exceptionThrown":
            d = params["exceptionDetails"]
            text = (d.get("exception") or {}).get("description") or d.get("text", "")
            frames = (d.get("stackTrace") or {}).get("callFrames") or [{}]
            self.console.append({"level": "exception", "text": text, "url": d.get("url") or frames[0].get("url", "")})
        elif method == "Log.entryAdded":
            e = params["entry"]
            self.console.append({"level": e["level"], "text": e.get("text", ""), "url": e.get("url", "")})
        elif method == "Page.loadEventFired":
            self.loaded.set()

    async def send(self, method: str, **params) -> dict:
        key = next(self.ids)
        future = asyncio.get_running_loop().create_future()
        self.pending[key] = future
        await self.ws.send_str(json.dumps({"id": key, "method": method, "params": params}))
        reply = await asyncio.wait_for(future, 120)
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        return reply.get("result", {})

    async def goto(self, url: str, timeout: float = 60) -> None:
        self.loaded.clear()
        await self.send("Page.navigate", url=url)
        await asyncio.wait_for(self.loaded.wait(), timeout)

    async def evaluate(self, expression: str):
        """Evaluate JS (awaiting promises) and return the value; JS exceptions raise RuntimeError."""
        result = await self.send(
            "Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True, timeout=60000
        )
        if "exceptionDetails" in result:
            d = result["exceptionDetails"]
            raise RuntimeError((d.get("exception") or {}).get("description") or d.get("text"))
        return result["result"].get("value")

    async def wait_for(self, expression: str, timeout: float = 60) -> None:
        deadline = time.time() + timeout
        while not await self.evaluate(f"!!({expression})"):
            if time.time() > deadline:
                raise TimeoutError(f"timed out waiting for: {expression}")
            await asyncio.sleep(0.25)

    async def screenshot(self, path: Path, quality: int = 85) -> None:
        data = await self.send("Page.captureScreenshot", format="jpeg", quality=quality)
        Path(path).write_bytes(base64.b64decode(data["data"]))
