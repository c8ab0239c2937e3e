"""Test support: tiny random-weight SD3 built by ComfyUI's own classes, and a ComfyUI server runner."""
