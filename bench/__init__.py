"""Side-by-side benchmark (``python -m bench``) and evaluation (``python -m bench.evaluate``) of EMS
inside a real ComfyUI imported in-process. Not part of the node pack: ComfyUI never imports it."""
