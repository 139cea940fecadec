"""Implicit AI-generated label (GB 45438-2025 file metadata), first cut: PNG.

GB 45438-2025 (《网络安全技术 人工智能生成合成内容标识方法》, in force since
2025-09-01) asks that a generated file carry, in its metadata, an `AIGC` entry::

    {"Label": "1",                  # 1: AI-generated; 2: possibly; 3: suspected
     "ContentProducer": "...",      # name or code of the service that generated it
     "ProduceID": "...",            # the producer's unique id for this content
     "ReservedCode1": "...",        # producer's reserved field (genloop: model version)
     "ContentPropagator": "",       # filled in by the platform that publishes it
     "PropagateID": "",             # the propagator's id for it
     "ReservedCode2": ""}

Here the JSON goes into a PNG `iTXt` chunk with keyword `AIGC` (UTF-8, readable by
any PNG tool). The generate issue adds XMP, JPEG/WebP, text and audio, C2PA and the
visible label; this module keeps the one-method contract: `label → bytes`.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

from PIL import Image, PngImagePlugin

AIGC_KEY = "AIGC"
AIGC_FIELDS = (
    "Label",
    "ContentProducer",
    "ProduceID",
    "ReservedCode1",
    "ContentPropagator",
    "PropagateID",
    "ReservedCode2",
)


def aigc_label(*, producer: str, produce_id: str, model_version: str) -> dict[str, str]:
    return {
        "Label": "1",
        "ContentProducer": producer,
        "ProduceID": produce_id,
        "ReservedCode1": model_version,
        "ContentPropagator": "",
        "PropagateID": "",
        "ReservedCode2": "",
    }


def encode_png_with_label(image: Image.Image, label: dict[str, Any]) -> bytes:
    """PNG bytes of `image` carrying `label` as an `AIGC` iTXt chunk (deterministic bytes)."""
    info = PngImagePlugin.PngInfo()
    info.add_itxt(AIGC_KEY, json.dumps(label, ensure_ascii=False, sort_keys=False), zip=False)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", pnginfo=info, optimize=False)
    return buffer.getvalue()


def read_implicit_label(path_or_bytes: Path | bytes) -> dict[str, Any] | None:
    """The `AIGC` label of a PNG file, or None when it carries none."""
    source = io.BytesIO(path_or_bytes) if isinstance(path_or_bytes, bytes) else path_or_bytes
    with Image.open(source) as image:
        text = getattr(image, "text", {}).get(AIGC_KEY)
    if text is None:
        return None
    value = json.loads(text)
    return value if isinstance(value, dict) else None
