"""Captions built from class labels, in English and Chinese, for text-conditioned training.

A text-conditioned model learns from (image, caption) pairs; a labelled image set has
only labels, so each label becomes a noun phrase and each noun phrase a few captions:

    "T-shirt/top"  →  en: "a t-shirt", "a photo of a t-shirt", "a picture of a t-shirt", …
                      zh: "一件T恤", "一件T恤的照片", "一张T恤的图片", …

Training draws one caption per image per step, so the model sees varied wordings of
one class and a free prompt ("a running shoe", "女士上衣") lands near the class it
describes in the text encoder's space. Labels genloop does not know get a generic
phrase ("a {label}", "一个{label}").
"""

from __future__ import annotations

from collections.abc import Sequence

from genloop.errors import GenloopError

LANGUAGES = ("en", "zh")

# label (case-folded) → (English noun phrase, Chinese noun phrase, Chinese bare noun)
KNOWN_LABELS: dict[str, tuple[str, str, str]] = {
    # Fashion-MNIST (genloop.data.sources.idx.FASHION_MNIST_CLASSES)
    "t-shirt/top": ("a t-shirt", "一件T恤", "T恤"),
    "trouser": ("a pair of trousers", "一条裤子", "裤子"),
    "pullover": ("a pullover sweater", "一件套头毛衣", "套头毛衣"),
    "dress": ("a dress", "一条连衣裙", "连衣裙"),
    "coat": ("a coat", "一件外套", "外套"),
    "sandal": ("a sandal", "一只凉鞋", "凉鞋"),
    "shirt": ("a shirt", "一件衬衫", "衬衫"),
    "sneaker": ("a sneaker", "一只运动鞋", "运动鞋"),
    "bag": ("a bag", "一个包", "包"),
    "ankle boot": ("an ankle boot", "一只短靴", "短靴"),
    # MNIST digits
    **{
        str(digit): (f"the digit {word}", f"数字{zh}", f"数字{zh}")
        for digit, (word, zh) in enumerate(
            zip(
                ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"),
                "零一二三四五六七八九",
                strict=True,
            )
        )
    },
}

# {np}: the noun phrase with its article or measure word; {noun}: the bare noun (Chinese only)
TEMPLATES: dict[str, tuple[str, ...]] = {
    "en": ("{np}", "a photo of {np}", "a picture of {np}", "an image of {np}"),
    "zh": ("{np}", "{np}的照片", "一张{noun}的图片", "{noun}的图片"),
}


def noun_phrase(label: str, language: str) -> tuple[str, str]:
    """(noun phrase, bare noun) of `label` in `language`; generic for labels genloop does not know."""
    _check_language(language)
    known = KNOWN_LABELS.get(label.strip().casefold())
    if known is not None:
        english, chinese, chinese_noun = known
        return (english, english) if language == "en" else (chinese, chinese_noun)
    noun = label.strip()
    if language == "zh":
        return f"一个{noun}", noun
    article = "an" if noun[:1].casefold() in "aeiou" else "a"
    return f"{article} {noun.casefold()}", noun.casefold()


def captions_for(label: str, languages: Sequence[str] = ("en",)) -> list[str]:
    """Every caption of `label`: each template of each language, in a fixed order."""
    captions = []
    for language in languages:
        phrase, noun = noun_phrase(label, language)
        captions += [template.format(np=phrase, noun=noun) for template in TEMPLATES[language]]
    return captions


def default_caption(label: str, language: str = "en") -> str:
    """The plain noun phrase: what a class index means as a prompt ("a t-shirt", "一件T恤")."""
    return noun_phrase(label, language)[0]


def class_captions(classes: Sequence[str], languages: Sequence[str]) -> list[list[str]]:
    """Captions per class, the same number for every class (K lists of len(languages) × templates)."""
    return [captions_for(label, languages) for label in classes]


def _check_language(language: str) -> None:
    if language not in LANGUAGES:
        raise GenloopError(
            f"no caption templates for language {language!r}", hint=f"languages: {', '.join(LANGUAGES)}"
        )
