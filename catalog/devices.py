"""Which torch device a model runs on: the one place a requested device is checked,
for the CLIP model (indexer) and the super-resolution models (upscaler) alike.

torch is imported only when a device is made, never by the name check the CLI
runs for every command.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from catalog.errors import ConfigurationError

if TYPE_CHECKING:
    import torch

_NAME = re.compile(r"^(cpu|mps|cuda(:\d+)?)$")
_HOW = "use cpu, cuda or cuda:N, or unset FOOTAGE_DEVICE to use CUDA when present and the CPU otherwise"


def check_device_name(requested: str | None) -> str | None:
    """``requested`` when it names a device footage can use (or is None), else a clear error."""
    if requested is not None and not _NAME.match(requested):
        raise ConfigurationError(f"FOOTAGE_DEVICE={requested!r} is not a device: {_HOW}")
    return requested


def torch_device(requested: str | None) -> torch.device:
    """The device to run on: ``requested``, checked to be there, or CUDA when present, else the CPU."""
    import torch

    name = check_device_name(requested)
    if name is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda"):
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        index = int(name.partition(":")[2] or 0)
        if index >= count:
            present = f"{count} CUDA device{'s' if count != 1 else ''}" if count else "no CUDA device"
            raise ConfigurationError(f"FOOTAGE_DEVICE={name} but this machine has {present}: {_HOW}")
    if name == "mps" and not torch.backends.mps.is_available():
        raise ConfigurationError(f"FOOTAGE_DEVICE=mps but this machine has no Apple GPU: {_HOW}")
    return torch.device(name)
