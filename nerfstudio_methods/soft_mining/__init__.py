"""Soft mining (CVPR'24): Langevin Monte Carlo pixel sampling with an importance-weighted loss, for any method.

- :mod:`.sampler`: the persistent population of continuous pixel positions (Langevin step, re-initialisation),
  bilinear colour lookup, Sobel-edge PDF, importance weights; plain torch.
- :mod:`.datamanager`: nerfstudio data managers (parallel and vanilla) whose training batches come from it.
- :mod:`.loss`, :mod:`.pipeline`: the re-weighted RGB loss and the per-step feedback loop.
- :mod:`.config`: ``soft-mining`` (nerfacto, Blender), ``soft-mining-llff``, ``soft-mining-vanilla-nerf``.

See ../shared/papers/softmining_infonerf.md part A for the paper and released-code facts followed here.
"""
