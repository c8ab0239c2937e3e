"""The toy world: scenes with known attributes, an exact pixel readout, edit cases, and a
small text-to-image model of SD3's architecture family trained on them (``make toy-train``; the
same toy is also trained in Flux's architecture: ``model_flux``, ``train_flux``), and
``tiny_sd3``, the tiny random-weight SD3 the tests and the cost bench run on: every SD3-family model
built here is initialised by one rule (``model.seeded_parameters``).

An instrument, not SD3: it shows whether EMS edits anything and which defaults to ship. The scenes,
readout and edit cases are plain numpy (the unit tier uses them); its two dev nodes are thin
adapters in ``nodes/`` (``toy_world_loader``, ``toy_scene``). ComfyUI is imported only by the
model side (``comfy_loader``, ``model``, ``model_flux``, ``tiny_sd3``, ``train``, ``train_flux``,
``training``, ``quality``), and there inside
the functions: outside a ComfyUI server the device must be chosen (``model.ensure_comfy``) before
ComfyUI's model management is first imported.
"""
