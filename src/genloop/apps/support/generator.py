"""Template-guided LM pre-replies: the template fixes the structure, a language model writes one sentence.

    body = greeting
           LM sentence          ← the model's continuation of prompt(masked query, intent, language),
                                  seed = hash(masked query, model version): same query, same reply
           lead + top answer    quoted from the knowledge base, as the template does
           [related answer] [noted slots] [PII notice]
           closing

The LM writes only the free connective part (an acknowledgement or a short draft of the answer);
the facts come from the retrieved answer, quoted. Prompt format (train a `gpt` on
`training_text(entries)` so the model knows it):

    en  "Customer ({intent}): {masked query}\\nAgent:"  → the text up to the end of the line
    zh  "客户（{intent}）：{masked query}\\n客服："

A pretrained `hf-causal-lm` model gets two examples of the format first (FEW_SHOT). The model
only ever sees the masked query ("[PHONE]"), never a raw PII value.

Guard rails, the reason the template exists. The first one that fails makes the pre-reply the
template's (`generator` "template-fallback", `fallback_reason` its name):

    no-answer             nothing was retrieved: the template's "an agent will reply" body
    unsupported-language  an `hf-causal-lm` model and a Chinese query (SmolLM2 is English-only)
    empty                 nothing left after cutting at the first line end
    too-long              no sentence end within `max_chars` characters (a longer one is cut there)
    pii                   the PII detectors find something in it: the LM must never introduce PII
    wrong-language        en: a Han character, or < 60 % letters among non-space characters;
                          zh: fewer Han characters than English words (`is_chinese`)
    repetitive            the generate stage's `trim-repetition` changes it, or < 50 % of its words
                          (en) / character bigrams (zh) are distinct
    off-topic             no content term (English words other than stop words and numbers, Chinese
                          character bigrams), or < 70 % of them in the topic: the masked query, the
                          quoted answers, the template and a few acknowledgement phrases
                          (ACKNOWLEDGEMENTS). It stops a small char model's made-up words, which
                          pass every check above, and a fluent but unrelated sentence from a
                          pretrained LM ("I'm not a ghostwriter."); the LM writes connective text,
                          not new content
    new-number            a number that is neither in the top answer nor in the query's noted slots
                          (a figure that could contradict the answer: "within 10 days" vs "5")
    safety                the generate stage's `blocklist` check fails on it
    lost-key-facts        the composed, masked, post-processed body covers fewer of the top answer's
                          key facts (`simulated_agent.key_facts`) than the template's body does
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from genloop.apps.support.knowledge import Entry
from genloop.apps.support.simulated_agent import fact_coverage
from genloop.apps.support.slots import Slot
from genloop.apps.support.tokens import ENGLISH_STOPWORDS, HAN, terms
from genloop.catalog import Catalog, open_catalog
from genloop.config import SupportConfig
from genloop.data.steps.pii import redact
from genloop.errors import GenloopError
from genloop.generate.artifact import Artifact
from genloop.generate.postprocess.registry import build_chain, run_chain
from genloop.generate.postprocess.text import is_chinese
from genloop.generate.safety.registry import SafetyContext, build_checks
from genloop.models.versions import load_model_version, resolve_model_version
from genloop.workspace import Workspace

TEMPLATE = "template"
LM = "lm"
FALLBACK = "template-fallback"
GENERATORS = (TEMPLATE, LM)
TEXT_FAMILIES = ("gpt", "hf-causal-lm")
ENGLISH_ONLY_FAMILIES = ("hf-causal-lm",)
PROMPTS = {"en": "Customer ({intent}): {query}\nAgent:", "zh": "客户（{intent}）：{query}\n客服："}
FEW_SHOT = (
    "Customer (shipping): Where is my parcel? It has not arrived\n"
    "Agent: We are sorry that your parcel has not arrived yet.\n\n"
    "Customer (account): I cannot log in to my account\n"
    "Agent: We understand that not being able to log in is frustrating.\n\n"
)
"""Put before the prompt of a pretrained model (hf-causal-lm), which was not trained on the format."""
MIN_LETTER_SHARE = 0.6
MIN_DISTINCT_SHARE = 0.5
MIN_KNOWN_SHARE = 0.7
ACKNOWLEDGEMENTS = (
    "We are sorry for the trouble and the inconvenience. We understand your problem and are happy to "
    "help; thank you for your patience. Please let us know if the issue persists. We see that it is "
    "not working, you are not able to use it, it isn't right, it doesn't work; we will get it fixed.",
    "很抱歉给您带来不便。我们理解您的困扰，感谢您的耐心。请放心，我们会尽快帮您处理这个问题。",
)
"""Words an acknowledgement may use beyond the query's and the answers' (part of the topic)."""
_HAN_CHAR = re.compile(f"[{HAN}]")
_NUMBER = re.compile(r"\d+(?:[.,]\d+)?")
_SENTENCE_END = re.compile(r"[.!?。！？](?=\s|$)|[。！？]")


def prompt_for(masked_query: str, intent: str, language: str) -> str:
    query = " ".join(masked_query.split())
    return PROMPTS["zh" if language == "zh" else "en"].format(intent=intent, query=query)


def training_text(entries: Sequence[Entry]) -> str:
    """The knowledge base as LM training text in the prompt's format, one record a paragraph
    (PII masked): what a `gpt` generator is trained on (`benchmarks/support_generator.py`)."""
    records = []
    for entry in entries:
        language = "zh" if entry.language == "zh" or is_chinese(entry.question) else "en"
        prompt = prompt_for(redact(entry.question), entry.intent, language)
        records.append(f"{prompt}{' ' if language == 'en' else ''}{redact(entry.answer)}")
    return "\n\n".join(records) + "\n"


@dataclass(frozen=True)
class Generated:
    """The LM's sentence for one query, or why there is none (`reason`)."""

    text: str
    reason: str | None = None


@dataclass
class LMGenerator:
    """A text model version of the workspace's registry, loaded once (see `load_generator`)."""

    version_id: str
    family: str
    model: Any
    max_chars: int = 160
    temperature: float = 0.7

    def sample_params(self) -> dict[str, Any]:
        if self.family == "gpt":
            return {
                "temperature": self.temperature,
                "top_k": 40,
                "repetition_penalty": 1.1,
                "max_tokens": self.max_chars + 1,
                "stop": ["\n"],
            }
        return {
            "temperature": self.temperature,
            "top_k": 40,
            "max_new_tokens": max(8, self.max_chars // 4),
            "stop": ["\n"],
        }

    def write(
        self, masked_query: str, intent: str, language: str, seed: int, known: frozenset[str] | None = None
    ) -> Generated:
        """The LM's sentence, cut to one line and `max_chars`; guard rails on the text alone."""
        if language == "zh" and self.family in ENGLISH_ONLY_FAMILIES:
            return Generated("", "unsupported-language")
        prompt = prompt_for(masked_query, intent, language)
        if self.family in ENGLISH_ONLY_FAMILIES:
            prompt = FEW_SHOT + prompt
        [raw] = self.model.sample(1, prompt, seed=seed, **self.sample_params())
        return check_sentence(str(raw), language, self.max_chars, known)


def vocabulary(texts: Iterable[str]) -> frozenset[str]:
    """The terms a sentence may use: those of `texts` (the masked query and the quoted answers),
    the template's words, ACKNOWLEDGEMENTS and the English stop words."""
    from genloop.apps.support.reply import TEMPLATES  # reply imports this module

    template = [text for words in TEMPLATES.values() for text in words.values()]
    found = set(ENGLISH_STOPWORDS)
    for text in (*texts, *template, *ACKNOWLEDGEMENTS):
        found.update(terms(text))
    return frozenset(found)


def check_sentence(raw: str, language: str, max_chars: int, known: frozenset[str] | None = None) -> Generated:
    """The first line of `raw` within `max_chars`, or the first text-only guard rail it fails
    (`known`: the topic's `vocabulary`; None skips the off-topic check)."""
    text = " ".join(raw.split("\n", 1)[0].split())
    if not text:
        return Generated("", "empty")
    if len(text) > max_chars:
        ends = [m.end() for m in _SENTENCE_END.finditer(text) if m.end() <= max_chars]
        if not ends:
            return Generated(text[:max_chars], "too-long")
        text = text[: ends[-1]].strip()
    if redact(text) != text:
        return Generated(redact(text), "pii")
    if _wrong_language(text, language):
        return Generated(text, "wrong-language")
    if _repetitive(text):
        return Generated(text, "repetitive")
    if known is not None and _off_topic(text, known):
        return Generated(text, "off-topic")
    return Generated(text)


def _off_topic(text: str, known: frozenset[str]) -> bool:
    content = [unit for unit in terms(text) if unit not in ENGLISH_STOPWORDS and not unit.isdigit()]
    found = sum(unit in known for unit in content)
    return not content or found < MIN_KNOWN_SHARE * len(content)


def _wrong_language(text: str, language: str) -> bool:
    if language == "zh":
        return not is_chinese(text)
    visible = [c for c in text if not c.isspace()]
    letters = sum(c.isascii() and c.isalpha() for c in visible)
    return bool(_HAN_CHAR.search(text)) or letters < MIN_LETTER_SHARE * len(visible)


def _repetitive(text: str) -> bool:
    chain = build_chain(["trim-repetition"], "text")
    trimmed = run_chain(chain, Artifact("lm-sentence", "text", text, "txt")).text
    if " ".join(trimmed.split()) != text:
        return True
    units = terms(text)
    return len(units) >= 4 and len(set(units)) < MIN_DISTINCT_SHARE * len(units)


def new_numbers(text: str, answer: str, slots: Sequence[Slot]) -> list[str]:
    """Numbers in `text` found neither in the answer nor in the query's non-PII slots."""
    known = set(_NUMBER.findall(answer))
    for slot in slots:
        if not slot.is_pii:
            known |= set(_NUMBER.findall(slot.value))
    return [number for number in _NUMBER.findall(text) if number not in known]


def check_against_answer(
    sentence: str, answer: str, slots: Sequence[Slot], workspace: Workspace, model_version: str
) -> str | None:
    """The guard rails that need the retrieved answer: new-number and safety; None when it passes."""
    if new_numbers(sentence, answer, slots):
        return "new-number"
    context = SafetyContext(workspace, None, model_version)
    [blocklist] = build_checks(["blocklist"], "text")
    if not blocklist.check(Artifact("lm-sentence", "text", sentence, "txt"), context).passed:
        return "safety"
    return None


def lost_key_facts(lm_body: str, template_body: str, answer: str) -> bool:
    """True when the LM's body covers fewer of `answer`'s key facts than the template's body."""
    return fact_coverage(lm_body, answer) < fact_coverage(template_body, answer)


# -- loading ------------------------------------------------------------------------------------------

_loaded: dict[tuple[Path, str], LMGenerator] = {}
_loaded_lock = threading.Lock()


def load_generator(
    workspace: Workspace,
    ref: str,
    *,
    max_chars: int = 160,
    temperature: float = 0.7,
    catalog: Catalog | None = None,
) -> LMGenerator:
    """The text model `ref` names (version id, NAME@alias, NAME), loaded once per version.

    `ref` is resolved on every call, so moving an alias takes effect on the next reply; the
    weights are loaded only when the version changes.
    """
    catalog = catalog or open_catalog(workspace.database_url)
    version_id = resolve_model_version(catalog, ref)  # NotFoundError naming the aliases it knows
    key = (workspace.root, version_id)
    with _loaded_lock:
        cached = _loaded.get(key)
    if cached is None:
        loaded = load_model_version(workspace, catalog, version_id)
        if loaded.family not in TEXT_FAMILIES:
            raise GenloopError(
                f"model {ref!r} ({version_id}) is a {loaded.family!r} model, not a text model",
                hint=f"a pre-reply generator is a model of family {' or '.join(TEXT_FAMILIES)}; "
                "list them with: genloop models list",
            )
        cached = LMGenerator(version_id, loaded.family, loaded.model)
        with _loaded_lock:
            _loaded[key] = cached
    return LMGenerator(cached.version_id, cached.family, cached.model, max_chars, temperature)


def generator_from_config(
    workspace: Workspace, config: SupportConfig, *, generator: str | None = None, model: str | None = None
) -> LMGenerator | None:
    """The generator `[support]` (or the CLI's `--generator` / `--model`) asks for; None = template."""
    kind = generator or (LM if model else config.generator)
    if kind not in GENERATORS:
        raise GenloopError(f"unknown generator {kind!r}", hint=f"one of: {', '.join(GENERATORS)}")
    if kind == TEMPLATE:
        if model:
            raise GenloopError(
                "--model names the LM of --generator lm", hint="add --generator lm, or leave --model out"
            )
        return None
    ref = model or config.generator_model
    if not ref:
        raise GenloopError(
            "the lm generator needs a model",
            hint='--model NAME@alias, or generator_model = "NAME@alias" under [support] in genloop.toml',
        )
    return load_generator(
        workspace, ref, max_chars=config.generator_max_chars, temperature=config.generator_temperature
    )
