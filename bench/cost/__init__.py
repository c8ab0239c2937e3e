"""The cost of EMS next to plain img2img (``python -m bench.cost``, or just ``python -m bench``):
wall time, isolated peak memory and model forward calls per phase, the tiny SD3 on a CPU or a
full-size SD3-medium-architecture MMDiT on a GPU (:mod:`.run`, :mod:`.measure`, :mod:`.models`,
:mod:`.report`)."""
