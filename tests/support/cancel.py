"""Cancel a queued prompt the way the UI does (POST /interrupt) and wait for its history entry."""

from __future__ import annotations

import time


def interrupt_and_wait(server, prompt_id: str, limit: float = 30.0, poll: float = 0.05) -> tuple[dict | None, float]:
    """Send /interrupt, then poll /history until ``prompt_id`` completes (at most ``limit`` s).

    Returns (its history entry or None, the seconds from the interrupt to completion)."""
    started = time.time()
    server.post("/interrupt", {})
    entry = None
    while time.time() - started < limit:
        entry = server.get(f"/history/{prompt_id}").get(prompt_id)
        if entry and entry["status"].get("completed") is not None:
            break
        time.sleep(poll)
    return entry, time.time() - started


def message_kinds(entry: dict) -> list[str]:
    return [kind for kind, _ in entry["status"]["messages"]]
