"""Run EMS workflows headless through a real ComfyUI (subprocess + HTTP; ComfyUI is never imported).

``python -m headless --help`` (or ``bash scripts/run.sh --help``) for the command line.
"""
