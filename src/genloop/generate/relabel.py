"""Post-processing an already labelled image, keeping its labels true.

A channel that needs another size or format after labelling (an ad platform that takes
JPEG at 128 px, say) cannot simply re-encode the file: metadata is lost on re-encoding,
and the signature in `ReservedCode1` covers the old pixels. `reprocess_image` therefore

    reads the label → decodes → runs the chain → re-encodes → writes the label again,
    same ProduceID / producer / model, signed over the new content hash

The visible mark and the invisible watermark live in the pixels: they are not drawn a
second time (that would stack two marks) — they survive resizing and JPEG (tested), and
`genloop verify` checks the watermark on the result.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from typing import Any

from PIL import Image

from genloop.config import LabelConfig
from genloop.errors import DataError
from genloop.generate.artifact import Artifact
from genloop.generate.labels.apply import LabelContext, LabelledFile, encode, sign_and_write, signer_for
from genloop.generate.labels.formats import find_labels
from genloop.generate.labels.implicit import parse_reserved_code
from genloop.generate.postprocess.registry import build_chain, run_chain

IMAGE_FORMATS = ("png", "jpeg", "webp")


def reprocess_image(
    data: bytes,
    fmt: str,
    specs: Sequence[str | Mapping[str, Any]],
    *,
    config: LabelConfig,
    context: LabelContext,
) -> LabelledFile:
    """`data` (a labelled PNG/JPEG/WebP) through the chain `specs`, labelled again."""
    if fmt not in IMAGE_FORMATS:
        raise DataError(
            f"cannot re-process a {fmt} file as an image", hint=f"formats: {', '.join(IMAGE_FORMATS)}"
        )
    labels = [label for label in find_labels(data, fmt) if not label.malformed]
    if not labels:
        raise DataError(
            "the file carries no readable AIGC label to carry over",
            hint="label it first (genloop generate), or post-process before labelling "
            "([channels.*].postprocess)",
        )
    fields = labels[0].fields
    code = parse_reserved_code(fields.get("ReservedCode1", ""))
    model = code.model if code is not None else context.model_version
    try:
        with Image.open(io.BytesIO(data)) as opened:
            image = opened.copy()
    except OSError as exc:
        raise DataError(f"cannot decode the {fmt.upper()} image: {exc}") from exc
    artifact = Artifact(content_id=fields["ProduceID"], modality="image", data=image, format=fmt)
    artifact = run_chain(build_chain(specs, "image"), artifact)
    relabelled, label = sign_and_write(
        encode(artifact),
        artifact.format,
        signer_for(config, context),
        producer=fields.get("ContentProducer", context.producer),
        produce_id=fields["ProduceID"],
        model_version=model,
    )
    return LabelledFile(
        relabelled, artifact.extension, {"implicit": {"AIGC": label}, "reprocessed": list(specs)}
    )
