"""Wall time, isolated peak memory and forward-call counts for one run of a callable.

Peak memory, one run at a time:
- CUDA: ``torch.cuda.reset_peak_memory_stats()`` before the run, ``max_memory_allocated()`` after
  (tensors PyTorch allocated, weights included; the caching allocator's slack is not counted).
- CPU, Linux: write ``5`` to ``/proc/self/clear_refs`` (resets the kernel's peak-RSS mark) before
  the run, read ``VmHWM`` from ``/proc/self/status`` after — the exact peak resident set of the
  process during the run. Elsewhere: a thread sampling the RSS every millisecond (may miss
  short spikes). The method used is written into the report.
  Before each CPU run, ``malloc_trim(0)`` (glibc) hands freed heap back to the OS, so the
  increase over the starting RSS is what the run itself needed rather than allocator leftovers.
"""

from __future__ import annotations

import ctypes
import gc
import re
import statistics
import threading
import time
from pathlib import Path
from typing import Callable

import torch

STATUS = Path("/proc/self/status")
CLEAR_REFS = Path("/proc/self/clear_refs")


def _status_kib(field: str) -> int:
    return int(re.search(rf"^{field}:\s+(\d+) kB", STATUS.read_text(), re.M).group(1)) * 1024


def _rss() -> int:
    if STATUS.exists():
        return _status_kib("VmRSS")
    import psutil  # only where /proc is missing (not Linux); ComfyUI's own requirements include it

    return psutil.Process().memory_info().rss


def _malloc_trim() -> bool:
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
        return True
    except (OSError, AttributeError):
        return False


def _can_reset_hwm() -> bool:
    try:
        CLEAR_REFS.write_text("5")
        return True
    except OSError:
        return False


class PeakMemory:
    """Context manager: ``.base`` (bytes in use at entry) and ``.peak`` (peak during the block)."""

    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"
        self.hwm = not self.cuda and STATUS.exists() and _can_reset_hwm()
        self.method = (
            "torch.cuda.max_memory_allocated after reset_peak_memory_stats"
            if self.cuda
            else "process peak RSS: VmHWM after /proc/self/clear_refs=5"
            if self.hwm
            else "process RSS sampled every 1 ms by a thread (psutil)"
        )
        if not self.cuda and _malloc_trim():
            self.method += ", after glibc malloc_trim(0)"
        self.base = self.peak = 0

    def __enter__(self):
        gc.collect()
        if self.cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.base = torch.cuda.memory_allocated()
        else:
            _malloc_trim()
            self.base = _rss()
            if self.hwm:
                CLEAR_REFS.write_text("5")
            else:
                self._stop = threading.Event()
                self._sampled = self.base
                self._thread = threading.Thread(target=self._sample, daemon=True)
                self._thread.start()
        return self

    def _sample(self):
        while not self._stop.wait(0.001):
            self._sampled = max(self._sampled, _rss())

    def __exit__(self, *exc):
        if self.cuda:
            torch.cuda.synchronize()
            self.peak = torch.cuda.max_memory_allocated()
        elif self.hwm:
            self.peak = _status_kib("VmHWM")
        else:
            self._stop.set()
            self._thread.join()
            self.peak = max(self._sampled, _rss())
        return False


def run_once(fn: Callable[[], object], device: torch.device) -> dict:
    """Time one call of ``fn`` (synchronising CUDA) and measure its peak memory."""
    with PeakMemory(device) as mem:
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - start
    return {"seconds": seconds, "peak_bytes": mem.peak, "base_bytes": mem.base}


def summarize_runs(runs: list[dict]) -> dict:
    """Medians over repeats: wall time, peak memory, and the peak's increase over the start."""
    med = lambda key: statistics.median(r[key] for r in runs)  # noqa: E731
    return {
        "median_s": med("seconds"),
        "runs_s": [r["seconds"] for r in runs],
        "peak_bytes": int(med("peak_bytes")),
        "base_bytes": int(med("base_bytes")),
        "increase_bytes": int(statistics.median(r["peak_bytes"] - r["base_bytes"] for r in runs)),
        "runs_peak_bytes": [r["peak_bytes"] for r in runs],
    }
