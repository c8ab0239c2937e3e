"""The toy world: scenes with known attributes, an exact pixel readout, edit cases, and a
small text-to-image model of SD3's architecture family trained on them (``python -m toyworld.train``).

An instrument, not SD3: it shows whether EMS edits anything and which defaults to ship.
ComfyUI is imported only by ``toyworld.comfy_loader`` and ``toyworld.model``/``toyworld.train``.
"""
