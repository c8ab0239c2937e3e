"""EMS and the baselines in the toy world (``toyworld/``: drawn scenes, a trained toy SD3-architecture
model, an exact pixel readout), every method run through ComfyUI's own sampling path.

- ``python -m bench.toy`` (:mod:`.compare`): every method on the held-out test scenes;
  ``--calibrate`` (:mod:`.calibrate`) chooses the CSDS defaults on the val split instead;
- ``python -m bench.toy.front`` (:mod:`.front`): each editing path's effectiveness–preservation
  front over denoise.

Below them, importing nothing above: :mod:`.world` (models, per-case inputs, one method's run,
the result cache), :mod:`.methods` (the editing methods, with the baselines :mod:`.flowedit`
and :mod:`.ode_inversion`), :mod:`.score` (the readout's scores) and :mod:`.report`.
"""
