"""EMS Latent Direction's variants measured in the toy world (``python -m bench.latent``,
:mod:`.study`): which reading of the latent-direction paper the node ships, decided on the val
split with the toy world's models, scenes and scores (:mod:`bench.toy`)."""
