"""The settings of one streaming pass over a later frame (brief §1.3): the full grid's and the pilot grid's passes
are the same kind of thing with other values, so the model reads both through one :class:`PassSettings`.

Users set them as flat ``--pipeline.model.*`` options (``lr_sh`` / ``pilot_lr_sh``, ...; their names are in every
``config.yml`` written so far); :meth:`StreamRFModelConfig.pass_settings
<nerfstudio_methods.streamrf.model.StreamRFModelConfig.pass_settings>` gathers each pass's.
"""

from __future__ import annotations

from dataclasses import dataclass

from nerfstudio_methods.streamrf.optim import exponential_lr


@dataclass(frozen=True)
class PassSettings:
    """One pass over a frame: its steps, learning rates, delta thresholds, dilations and ray stop threshold."""

    steps: int
    """Training steps per frame."""
    lr_density: float
    """Constant density rate."""
    lr_sh: float
    lr_sh_final: float
    lr_sh_decay_steps: int
    """The SH rate decays log-linearly from ``lr_sh`` to ``lr_sh_final`` over these steps, restarting every frame."""
    sh_keep_threshold: float
    """A kept voxel is stored in the delta only if the L1 change of its SH values exceeds this."""
    sh_prune_threshold: float
    """Newly added voxels whose sum |SH| is below this are deleted before encoding."""
    dilate_before: int
    """Dilations of the occupancy before the frame is trained."""
    dilate_after: int
    """Dilations of the kept voxels when the grid is re-sparsified after the frame."""
    stop_thresh: float
    """Transmittance at which rays stop while the pass trains."""

    def learning_rates(self, step: int, stretch: int = 1) -> tuple[float, float]:
        """(density, SH) rates at ``step`` of the pass; ``stretch`` lengthens the SH decay (the pilot's frame 0)."""
        return self.lr_density, exponential_lr(step, self.lr_sh, self.lr_sh_final, self.lr_sh_decay_steps * stretch)
