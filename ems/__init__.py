"""EMS (Extract–Manipulate–Sample) as plain PyTorch.

Nothing in this package imports ComfyUI: it is the method on tensors, unit-tested on the CPU.
The ComfyUI adapters live in ``nodes/``.
"""

__version__ = "0.2.0"
