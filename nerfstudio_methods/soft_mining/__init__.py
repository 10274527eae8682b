"""Soft mining (CVPR'24): Langevin Monte Carlo pixel sampling with an importance-weighted loss, for any method.

- :mod:`.sampler`: the persistent population of continuous pixel positions (Langevin step, re-initialisation),
  bilinear colour lookup, Sobel-edge PDF, importance weights; plain torch.
- :mod:`.datamanager`: nerfstudio data managers (parallel and vanilla) whose training batches come from it.
- :mod:`.loss`, :mod:`.pipeline`: the re-weighted RGB loss and the per-step feedback loop; the pipeline's
  ``sampler="uniform"`` is every preset's uniform twin.
- :mod:`.model`: the released code's base model (Instant-NGP hash grid, one proposal network; NDC for LLFF) as a
  nerfacto configuration.
- :mod:`.config`: ``soft-mining-ngp`` (released recipe, Blender), ``soft-mining-llff`` (released recipe, NDC),
  ``soft-mining`` (nerfacto, Blender), ``soft-mining-vanilla-nerf``.

See ../shared/papers/softmining_infonerf.md part A for the paper and released-code facts followed here.
"""
