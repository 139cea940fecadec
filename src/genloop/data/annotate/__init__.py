"""The annotate stage: give every record a label (from its source, for now)."""

from genloop.data.annotate.labels import AnnotateResult, annotate

__all__ = ["AnnotateResult", "annotate"]
