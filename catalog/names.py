"""Names footage gives the files it makes (renditions, proxies): readable, safe on every filesystem."""

from __future__ import annotations

import re
import unicodedata

# Letters and digits of every script stay (``Ünïcødé clip`` keeps its letters); separators,
# brackets, spaces and look-alike slashes become ``_``.
_UNSAFE = re.compile(r"[^\w.-]+")
_COMPONENT_BYTES = 80  # four parts and a suffix stay under a filesystem's 255-byte names


def component(text: str) -> str:
    # NFC: a Mac writes names decomposed (u + combining diaeresis) to the same share.
    cleaned = _UNSAFE.sub("_", unicodedata.normalize("NFC", text)).strip("._") or "x"
    return cleaned.encode()[:_COMPONENT_BYTES].decode(errors="ignore")


def rendition_name(master_stem: str, label: str, model: str, codec: str, suffix: str) -> str:
    """``<master stem>.<label>.<model>.<codec><suffix>``, each part reduced to safe characters
    (the codec in the name: an HEVC and a ProRes rendition of one request are two files).

    Names come from catalog data, which is not trusted: a render checks the name
    to lie directly in its folder (``ensure_inside``) whatever the parts contain.
    """
    return f"{component(master_stem)}.{component(label)}.{component(model)}.{component(codec)}{suffix}"
