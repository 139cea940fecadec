"""The attribute prefix that conditions genloop's GPT: the same shape in training and in generation.

    ⟦zh|数码|活泼|学生|续航,快充⟧最懂你的续航，一次充电用两天
     └language|category|tone|audience|features┘└──── the copy ────┘

Every past-copy record is stored as prefix + copy, so the model learns p(copy | attributes);
generation feeds a product's prefix and samples the continuation (CTRL-style control codes,
Keskar et al. 2019, https://arxiv.org/abs/1909.05858). Fields are cut to a few characters each
so the prefix leaves most of the context for the copy; `|`, `⟦`, `⟧` inside values are replaced,
so a value can never end the prefix early.

Past copy without listed features gets them from its own text (the longest words of an English
line, two-character runs of a Chinese one): the model then learns that what stands in `features`
appears in the copy, which is how a product's required words get into a generation unaided.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

OPEN, CLOSE, SEPARATOR = "⟦", "⟧", "|"
FIELD_CHARS = 12
"""Characters kept of each of category, tone and audience."""
FEATURE_CHARS = 16
FEATURES_KEPT = 3
_RESERVED = re.compile(r"[⟦⟧|\n\r]")
_EN_WORD = re.compile(r"[A-Za-z][A-Za-z'-]{3,}")
_HAN_RUN = re.compile(r"[\u4e00-\u9fff]{2,}")
_STOPWORD_TEXT = (
    "this that with your from have will just what when they them their there than very into "
    "about would could should more most much some such only also been were like make made"
)
_STOPWORDS = frozenset(_STOPWORD_TEXT.split())


def _field(value: str, limit: int) -> str:
    return _RESERVED.sub(" ", value).strip()[:limit]


def prefix(
    *, language: str, category: str = "", tone: str = "", audience: str = "", features: Sequence[str] = ()
) -> str:
    """The control prefix for these attributes (empty fields stay empty, keeping the shape)."""
    kept = [_field(feature, FEATURE_CHARS) for feature in features if feature.strip()][:FEATURES_KEPT]
    fields = [
        language,
        _field(category, FIELD_CHARS),
        _field(tone, FIELD_CHARS),
        _field(audience, FIELD_CHARS),
        ",".join(kept),
    ]
    return OPEN + SEPARATOR.join(fields) + CLOSE


def derived_features(text: str, language: str, limit: int = 2) -> list[str]:
    """Words of the copy itself, standing in for features a past-copy row does not list.

    English: the longest words that are not stop words (first occurrence wins a tie); Chinese:
    the two-character starts of the first Han runs (no segmenter: a start is usually a word).
    """
    if language == "zh":
        return [run[:2] for run in _HAN_RUN.findall(text)][:limit]
    words = [w for w in dict.fromkeys(_EN_WORD.findall(text)) if w.lower() not in _STOPWORDS]
    longest = sorted(words, key=lambda w: -len(w))[:limit]
    return [w for w in words if w in longest]


def strip_prefix(text: str) -> str:
    """`text` without a leading control prefix (a model may emit one after its <eos>)."""
    return text.split(CLOSE, 1)[1] if text.startswith(OPEN) and CLOSE in text else text.replace(CLOSE, "")
