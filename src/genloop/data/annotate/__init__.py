"""The annotate stage: labels from the source, keyword/regex rules, nearest-neighbour auto-labels,
and a human annotation queue in the catalog (with agreement, import/export, and merging back).

Modules: `labels` (the stage), `rules`, `embeddings` + `auto` (auto-labelling), `assist` (wiring
both into the stage), `queue` (catalog tasks), `agreement` (kappas), `apply` (majority labels →
new version), `formats` + `interchange` (JSONL / Label Studio).
"""

from genloop.data.annotate.labels import AnnotateResult, annotate

__all__ = ["AnnotateResult", "annotate"]
