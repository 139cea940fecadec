"""The pre-reply: retrieved answer(s) + slots in a template, then the generate stage's last steps.

    template(language) ← top answer (+ a related one), non-PII slots, a PII notice
      → mask PII              genloop.data.steps.pii.redact over the whole body, plus each PII
                              slot's raw value (belt and braces: an answer from your tickets
                              may itself hold an e-mail; the query's PII must never come back)
      → post-process          the generate stage's `punctuation` and `trim-repetition`
      → safety checks         `blocklist` and `pii` (genloop.generate.safety.text); a failure
                              makes the pre-reply `review` (an agent must look), never `ready`
      → label                 the generate stage's text labels: the explicit line and the signed
                              GB 45438 `AIGC` front matter (genloop.generate.labels.apply)

The composer is the template, or (`[support] generator = "lm"`, `--generator lm`) the template
with one sentence written by a language model after the greeting (generator.py: the prompt,
the guard rails and why a reply falls back to the template). The pre-reply records which:

    generator        "template" | "lm" | "template-fallback"
    fallback_reason  the guard rail the LM's sentence failed (template-fallback only)
    generator_model  the LM's model version; generated: its sentence (PII masked), kept for audit
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from genloop.apps.support.generator import (
    FALLBACK,
    LM,
    TEMPLATE,
    LMGenerator,
    check_against_answer,
    lost_key_facts,
    vocabulary,
)
from genloop.apps.support.retrieve import Hit
from genloop.apps.support.slots import AMOUNT, DATE, ORDER, PRODUCT, Slot
from genloop.apps.support.structure import StructuredQuery
from genloop.config import LabelConfig
from genloop.data.steps.pii import redact
from genloop.generate.artifact import Artifact
from genloop.generate.labels.apply import LabelContext, apply_labels
from genloop.generate.postprocess.registry import build_chain, run_chain
from genloop.generate.safety.registry import SafetyContext, Verdict, build_checks
from genloop.storage import stable_hash
from genloop.workspace import Workspace

PRODUCER = "genloop support"
POSTPROCESS = ("punctuation", "trim-repetition")
SAFETY_CHECKS = ("blocklist", "pii")
RELATED_SHARE = 0.8
MIN_RELATED_CHARS = 6
"""The second answer is added only from the same intent, with ≥ 80 % of the top score, and when it
says something (not a bare "是。" / "Yes.")."""
SLOT_NAMES = {
    "en": {ORDER: "order", PRODUCT: "product", DATE: "date", AMOUNT: "amount"},
    "zh": {ORDER: "订单号", PRODUCT: "产品", DATE: "日期", AMOUNT: "金额"},
}
PII_NAMES = {
    "en": {
        "EMAIL": "e-mail address",
        "PHONE": "phone number",
        "CN_ID": "ID number",
        "BANK_CARD": "card number",
        "IP": "IP address",
    },
    "zh": {
        "EMAIL": "邮箱",
        "PHONE": "电话号码",
        "CN_ID": "身份证号",
        "BANK_CARD": "银行卡号",
        "IP": "IP 地址",
    },
}
TEMPLATES = {
    "en": {
        "greeting": "Hello,",
        "lead": "Thank you for contacting us. Here is what we found:",
        "related": "This may also help: {answer}",
        "noted": "We have noted these details: {details}.",
        "pii": "For your security we do not repeat the personal details you sent ({kinds}).",
        "none": "Thank you for contacting us. An agent will look at your message and reply soon.",
        "closing": "Best regards,\nCustomer support",
    },
    "zh": {
        "greeting": "您好！",
        "lead": "感谢您的咨询，以下是我们找到的信息：",
        "related": "以下内容可能也有帮助：{answer}",
        "noted": "我们已记录：{details}。",
        "pii": "为保护您的隐私，回复中不会重复您提供的个人信息（{kinds}）。",
        "none": "感谢您的咨询。客服人员会尽快查看并回复您。",
        "closing": "祝好！\n客服团队",
    },
}


@dataclass
class PreReply:
    text: str
    """The labelled pre-reply as it would be sent (front matter + explicit line + body)."""
    body: str
    """The body without the labels (what an agent edits)."""
    status: str
    """"ready" (every safety check passed) or "review" (an agent must look first)."""
    verdicts: list[Verdict]
    sources: list[str]
    """Ids of the knowledge-base entries the body quotes."""
    labels: dict[str, Any] = field(default_factory=dict)
    generator: str = TEMPLATE
    """"template", "lm" (the body holds the LM's sentence) or "template-fallback"."""
    fallback_reason: str | None = None
    generator_model: str | None = None
    generated: str | None = None
    """The LM's sentence (PII masked), also when it was not used."""

    def generation(self) -> dict[str, Any]:
        """How the body was composed: what the ticket's content item records."""
        return {
            "generator": self.generator,
            "fallback_reason": self.fallback_reason,
            "generator_model": self.generator_model,
            "generated": self.generated,
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "body": self.body,
            "status": self.status,
            "sources": self.sources,
            "verdicts": [verdict.to_json() for verdict in self.verdicts],
            "labels": self.labels,
            **self.generation(),
        }


def compose_body(
    structured: StructuredQuery, hits: Sequence[Hit], language: str, sentence: str | None = None
) -> tuple[str, list[str]]:
    """The unmasked body in the query's language (en for anything not Chinese) and its sources;
    `sentence` (the LM's) goes right after the greeting."""
    words = TEMPLATES[language]
    parts = [words["greeting"]]
    if sentence:
        parts.append(sentence)
    sources: list[str] = []
    if hits:
        parts += [words["lead"], hits[0].entry.answer]
        sources.append(hits[0].entry.id)
        related = next(
            (
                h
                for h in hits[1:2]
                if h.entry.answer != hits[0].entry.answer
                and h.entry.intent == hits[0].entry.intent
                and h.score >= RELATED_SHARE * hits[0].score
                and len(h.entry.answer) >= MIN_RELATED_CHARS
            ),
            None,
        )
        if related is not None:
            parts.append(words["related"].format(answer=related.entry.answer))
            sources.append(related.entry.id)
    else:
        parts.append(words["none"])
    details = _noted(structured.slots, language)
    if details:
        parts.append(words["noted"].format(details=details))
    pii_kinds = list(
        dict.fromkeys(PII_NAMES[language][slot.type] for slot in structured.slots if slot.is_pii)
    )
    if pii_kinds:
        parts.append(
            words["pii"].format(kinds=", ".join(pii_kinds) if language == "en" else "、".join(pii_kinds))
        )
    parts.append(words["closing"])
    return "\n\n".join(parts), sources


def _noted(slots: Sequence[Slot], language: str) -> str:
    names = SLOT_NAMES[language]
    seen = list(dict.fromkeys((slot.type, slot.value) for slot in slots if not slot.is_pii))
    separator = "; " if language == "en" else "；"
    return separator.join(f"{names[kind]} {value}" for kind, value in seen if kind in names)


def mask_pii(body: str, slots: Sequence[Slot]) -> str:
    """`body` with every PII slot's raw value and everything the PII detectors find masked."""
    for slot in sorted((s for s in slots if s.is_pii), key=lambda s: -len(s.value)):
        body = body.replace(slot.value, slot.masked)
    return redact(body)


def _finish(raw: str, structured: StructuredQuery, content_id: str) -> Artifact:
    """The body masked and post-processed, as an artifact of the generate stage."""
    artifact = Artifact(content_id, "text", mask_pii(raw, structured.slots), "txt", meta={"app": "support"})
    return run_chain(build_chain(list(POSTPROCESS), "text"), artifact)


def generation_seed(masked_query: str, generator_version: str) -> int:
    """The LM's seed for a query: the same masked query and model give the same sentence."""
    return int(stable_hash({"query": masked_query, "model": generator_version}, 8), 16)


def pre_reply(
    structured: StructuredQuery,
    hits: Sequence[Hit],
    *,
    workspace: Workspace,
    labels: LabelConfig,
    model_version: str,
    generator: LMGenerator | None = None,
) -> PreReply:
    language = "zh" if structured.language == "zh" else "en"
    raw, sources = compose_body(structured, hits, language)
    identity = {"query": structured.text, "sources": sources, "model": model_version}
    artifact = _finish(raw, structured, "support-" + stable_hash(identity))
    used, reason, generated, lm_version = TEMPLATE, None, None, None
    if generator is not None:
        lm_version = generator.version_id
        used, reason = FALLBACK, "no-answer"
        if hits:
            masked_query = mask_pii(structured.text, structured.slots)
            seed = generation_seed(masked_query, lm_version)
            topic = vocabulary([masked_query, *(hit.entry.answer for hit in hits[:2])])
            sentence = generator.write(masked_query, structured.intent, language, seed, topic)
            generated = mask_pii(sentence.text, structured.slots) or None
            answer = hits[0].entry.answer
            reason = sentence.reason or check_against_answer(
                sentence.text, answer, structured.slots, workspace, lm_version
            )
            if reason is None:
                lm_raw, _ = compose_body(structured, hits, language, sentence.text)
                lm_id = "support-" + stable_hash({**identity, "generator": lm_version, "seed": seed})
                lm_artifact = _finish(lm_raw, structured, lm_id)
                if lost_key_facts(lm_artifact.text, artifact.text, answer):
                    reason = "lost-key-facts"
                else:
                    used, artifact = LM, lm_artifact
                    model_version = f"{model_version}+{lm_version}"
    # blocklist and pii read the artifact alone; the catalog is needed only by the verbatim check,
    # which this app does not run (its answers are quoted from the knowledge base on purpose)
    context = SafetyContext(workspace, None, model_version)
    verdicts = [check.check(artifact, context) for check in build_checks(list(SAFETY_CHECKS), "text")]
    status = "ready" if hits and all(verdict.passed for verdict in verdicts) else "review"
    labelled = apply_labels(artifact, labels, LabelContext(workspace, PRODUCER, model_version))
    return PreReply(
        labelled.data.decode("utf-8"),
        artifact.text,
        status,
        verdicts,
        sources,
        labelled.labels,
        generator=used,
        fallback_reason=reason,
        generator_model=lm_version,
        generated=generated,
    )
