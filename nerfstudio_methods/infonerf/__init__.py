"""InfoNeRF (CVPR'22): ray entropy minimisation and information-gain reduction for few-shot NeRF.

Methods ``infonerf`` / ``infonerf-dtu`` (vanilla NeRF base, the paper's model) and ``infonerf-nerfacto`` /
``infonerf-nerfacto-dtu`` (nerfacto base) are registered through the ``nerfstudio.method_configs`` entry points in
:mod:`nerfstudio_methods.infonerf.config`. The losses and their model mixin (:mod:`.losses`), the
extra-ray data-manager mixin (:mod:`.datamanager`) and pose utilities (:mod:`.poses`) work with other nerfstudio
models and data managers. See ../shared/papers/softmining_infonerf.md part B for the paper/code facts followed here.
"""
