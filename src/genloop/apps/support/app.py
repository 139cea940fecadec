"""Build, load and ask the support app of a workspace.

    .genloop/apps/support/
      manifest.json          source, counts, embeddings, version (hash of entries + settings)
      knowledge.jsonl        the entries (question, answer, intent, language, split, ...)
      products.json          product names the slot rules look for (built in + your tickets)
      intent.json            intent model config (labels, buckets) ─┐ loadable with nothing else
      intent.safetensors     its weights                          ─┘
      index/bm25.json        the BM25 index; index/embeddings.npy when built with embeddings

The folder is built beside its place and renamed in one step, so `ask` never reads half of
a rebuild.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from genloop.apps.support.generator import LMGenerator, generator_from_config
from genloop.apps.support.intent import IntentClassifier
from genloop.apps.support.knowledge import (
    HELDOUT_PERCENT,
    Entry,
    corpus_entries,
    entries_jsonl,
    read_entries,
    ticket_entries,
)
from genloop.apps.support.reply import PreReply, pre_reply
from genloop.apps.support.retrieve import Hit, SupportIndex, resolve_embeddings
from genloop.apps.support.slots import BUILTIN_PRODUCTS
from genloop.apps.support.structure import StructuredQuery, structure_query
from genloop.errors import NotFoundError
from genloop.storage import atomic_directory, atomic_write_json, stable_hash
from genloop.workspace import Workspace

TOP_K = 5


def app_dir(workspace: Workspace) -> Path:
    return workspace.state_dir / "apps" / "support"


@dataclass
class Answer:
    structured: StructuredQuery
    hits: list[Hit]
    reply: PreReply

    def to_json(self) -> dict[str, Any]:
        return {
            "structure": self.structured.to_json(),
            "sources": [
                {
                    "rank": h.rank,
                    "id": h.entry.id,
                    "score": h.score,
                    "method": h.method,
                    "intent": h.entry.intent,
                    "question": h.entry.question,
                    "answer": h.entry.answer,
                    "source": h.entry.source,
                }
                for h in self.hits
            ],
            "pre_reply": self.reply.to_json(),
        }


@dataclass
class SupportApp:
    workspace: Workspace
    manifest: dict[str, Any]
    entries: list[Entry]
    intents: IntentClassifier
    index: SupportIndex
    products: list[str]

    @property
    def version(self) -> str:
        return str(self.manifest["version"])

    @classmethod
    def load(cls, workspace: Workspace) -> SupportApp:
        folder = app_dir(workspace)
        if not (folder / "manifest.json").is_file():
            raise NotFoundError(
                f"no support app built in {workspace.root}",
                hint="build it first: genloop support build  (or --tickets FILE)",
            )
        manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
        entries = read_entries(folder / "knowledge.jsonl")
        return cls(
            workspace,
            manifest,
            entries,
            IntentClassifier.load(folder),
            SupportIndex.load(folder / "index", entries, manifest["embeddings"]),
            json.loads((folder / "products.json").read_text(encoding="utf-8")),
        )

    def structure(self, query: str) -> StructuredQuery:
        return structure_query(query, self.intents, self.products)

    def ask(
        self,
        query: str,
        *,
        k: int = TOP_K,
        mode: str = "auto",
        generator: LMGenerator | Literal["config"] | None = "config",
    ) -> Answer:
        """Structure, retrieve, pre-reply. `generator`: an LM generator, None (the template), or
        "config": what `[support]` in genloop.toml says (the template unless `generator = "lm"`)."""
        structured = self.structure(query)
        hits = self.index.search(structured.retrieval_text or structured.text, k, mode)
        if generator == "config":
            generator = generator_from_config(self.workspace, self.workspace.config.support)
        labels = self.workspace.config.generate.labels
        reply = pre_reply(
            structured,
            hits,
            workspace=self.workspace,
            labels=labels,
            model_version=f"support@{self.version}",
            generator=generator,
        )
        return Answer(structured, hits, reply)


_loaded: dict[Path, SupportApp] = {}
_loaded_lock = threading.Lock()


def load_app(workspace: Workspace) -> SupportApp:
    """`SupportApp.load`, reused while the app on disk keeps its version (the server's per-request path).

    The manifest is read on every call, so a rebuild (`support build` / `improve`) by another
    process is picked up by every server worker on its next request: no worker serves a stale app.
    """
    folder = app_dir(workspace)
    try:
        version = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))["version"]
    except (OSError, ValueError, KeyError):
        return SupportApp.load(workspace)  # raises the NotFoundError that says to build it
    with _loaded_lock:
        cached = _loaded.get(folder)
        if cached is not None and cached.version == version:
            return cached
    app = SupportApp.load(workspace)
    with _loaded_lock:
        _loaded[folder] = app
    return app


def build_support(
    workspace: Workspace,
    *,
    tickets: Path | None = None,
    embeddings: str = "auto",
    heldout_percent: int = HELDOUT_PERCENT,
    languages: tuple[str, ...] = ("en", "zh"),
    learned: Sequence[Entry] = (),
    lineage: dict[str, Any] | None = None,
) -> SupportApp:
    """Knowledge base + intent model + index, from the built-in corpus or your tickets.

    `learned`: entries from agents' decisions (`improve.py`); they come first, so an agent's
    corrected answer replaces a source entry with the same question. `lineage` goes into the
    manifest (parent model version, feedback event ids).
    """
    base = ticket_entries(tickets, heldout_percent) if tickets else corpus_entries(languages, heldout_percent)
    entries = _unique_questions([*learned, *base])
    encoder, note = resolve_embeddings(embeddings)
    train = [entry for entry in entries if entry.split == "train"] or entries
    intents = IntentClassifier.train_on([e.question for e in train], [e.intent for e in train])
    index = SupportIndex.build(entries, encoder)
    products = sorted({*BUILTIN_PRODUCTS, *(e.product for e in entries if e.product)})
    manifest = {
        "version": stable_hash({"entries": [e.to_json() for e in entries], "embeddings": encoder}, 12),
        "source": str(tickets) if tickets else "chatterbot-corpus (built in)",
        "tickets": str(tickets.resolve()) if tickets else None,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "entries": len(entries),
        "train": sum(e.split == "train" for e in entries),
        "heldout": sum(e.split == "heldout" for e in entries),
        "heldout_percent": heldout_percent,
        "languages": sorted({e.language for e in entries if e.language}),
        "intents": intents.labels,
        "embeddings": encoder,
        "embeddings_note": note,
        "learned": len(learned),
        **(lineage or {}),
    }
    folder = app_dir(workspace)
    with workspace.lock("support-build"), atomic_directory(folder) as staging:
        (staging / "knowledge.jsonl").write_bytes(entries_jsonl(entries))
        atomic_write_json(staging / "products.json", products)
        intents.save(staging)
        index.save(staging / "index")
        atomic_write_json(staging / "manifest.json", manifest)
    return SupportApp(workspace, manifest, entries, intents, index, products)


def _unique_questions(entries: Sequence[Entry]) -> list[Entry]:
    """The first entry of each question (case-insensitive)."""
    seen: set[str] = set()
    kept = []
    for entry in entries:
        if entry.question.lower() not in seen:
            seen.add(entry.question.lower())
            kept.append(entry)
    return kept
