"""What a user asks of the temporal stage (``upscaler.stabiliser`` is the stage itself).

Light to import: the CLI and the job glue build these without loading torch or OpenCV.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# Share of the invented detail taken from the warped previous output where the
# motion is fully trusted. Recursion makes it an average over about 1 / (1 - s)
# frames. In bench/temporal_quality.py (realesr-animevideov3, 640x272) 0.8
# lowered tOF 17%, 0.9 by 20% and 0.95 by 23%, each raising PSNR by 0.05-0.06
# dB; 0.9 keeps a tenth of every frame's own detail, so nothing stays frozen. On the real
# clips (--clips, RealESRGAN_x4plus, the stage run both ways) 0.9 also beat 0.95 and 1.0:
# warping error 0.96x the truth's own against 0.98x and 1.11x.
DEFAULT_STRENGTH = 0.9


@dataclass(frozen=True)
class TemporalSettings:
    """``enabled`` False renders frame by frame; ``strength`` (0-1) as ``DEFAULT_STRENGTH`` says."""

    enabled: bool = True
    strength: float = DEFAULT_STRENGTH

    def __post_init__(self) -> None:
        if not 0.0 <= self.strength <= 1.0:
            raise ValueError(f"temporal strength {self.strength} is not between 0 and 1")

    def parameters(self) -> dict[str, Any]:
        """What a rendition records (and what makes two requests differ)."""
        if not self.enabled:
            return {"enabled": False}
        return {"enabled": True, "strength": self.strength}

    @classmethod
    def from_parameters(cls, parameters: dict[str, Any] | None) -> TemporalSettings:
        """The settings a rendition recorded; renditions recorded before the stage existed are frame by frame."""
        if not parameters or not parameters.get("enabled"):
            return cls(enabled=False)
        return cls(enabled=True, strength=float(parameters.get("strength", DEFAULT_STRENGTH)))
