"""InfoNeRF (CVPR'22): ray entropy minimisation and information-gain reduction for few-shot NeRF.

Methods ``infonerf`` (Blender 4-view preset) and ``infonerf-dtu`` (DTU 3-view preset) are registered through the
``nerfstudio.method_configs`` entry points in :mod:`nerfstudio_methods.infonerf.config`. The losses
(:mod:`.losses`) and pose utilities (:mod:`.poses`) are plain torch and importable without nerfstudio's CLI.
See ../shared/papers/softmining_infonerf.md part B for the paper/code facts followed here.
"""
