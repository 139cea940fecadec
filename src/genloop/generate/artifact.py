"""The one in-flight shape of a generated item, between sampling and its file.

    sample → Artifact → post-processors (Artifact → Artifact) → safety checks (→ Verdict)
           → labels (Artifact → bytes of the final file) → content store + catalog row

`data` by modality and `format`:

    image  PIL.Image.Image                   format png | webp | jpeg
    text   str (the body, no label yet)      format txt | md
    music  bytes (a Standard MIDI File)      format mid
           bytes (a RIFF/WAVE file)          format wav        (after `render-wav`)
           str (MusicXML)                    format musicxml   (after `musicxml`)

Processors never write files and never label; labelling is the last step so that the
signature in the label covers the content as published.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

from PIL import Image

Modality = Literal["image", "text", "music"]

DEFAULT_FORMAT: dict[str, str] = {"image": "png", "text": "txt", "music": "mid"}
EXTENSIONS: dict[str, str] = {
    "png": ".png",
    "webp": ".webp",
    "jpeg": ".jpg",
    "txt": ".txt",
    "md": ".md",
    "mid": ".mid",
    "wav": ".wav",
    "musicxml": ".musicxml",
}


@dataclass(frozen=True)
class Artifact:
    content_id: str
    modality: Modality
    data: Image.Image | str | bytes
    format: str
    options: dict[str, Any] = field(default_factory=dict)
    """Encoder options for the final file, e.g. {"quality": 75} for JPEG/WebP."""
    meta: dict[str, Any] = field(default_factory=dict)
    """model_version, condition, seed, … (what labels and checks may read; never encoded)."""

    def replace(self, **changes: Any) -> Artifact:
        return dataclasses.replace(self, **changes)

    @property
    def image(self) -> Image.Image:
        if not isinstance(self.data, Image.Image):
            raise TypeError(f"artifact {self.content_id} holds {self.format}, not an image")
        return self.data

    @property
    def text(self) -> str:
        if not isinstance(self.data, str) or self.modality != "text":
            raise TypeError(f"artifact {self.content_id} holds {self.format}, not text")
        return self.data

    @property
    def extension(self) -> str:
        return EXTENSIONS[self.format]
