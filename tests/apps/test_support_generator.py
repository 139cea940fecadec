"""The template-guided LM generator of support pre-replies (issue #9): real app, real tiny GPTs.

Two char GPTs are trained for a few hundred steps on the ticket file in the generator's prompt
format, each with its own agent line: `polite` always answers "We are sorry for the trouble."
(the lm path), `leaky` always answers with the customer's phone number (the planted PII the
guard rails must stop). Generation is greedy (generator_temperature = 0) so the figures do not
depend on sampling luck; determinism per ticket is also checked with sampling on.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
import typer
from typer.testing import CliRunner

from apps.support_data import PHONE_CN, TICKETS, write_tickets
from conftest import TINY_CONFIG, make_workspace
from genloop.apps.support.app import SupportApp, build_support
from genloop.apps.support.generator import (
    LMGenerator,
    check_sentence,
    generator_from_config,
    load_generator,
    lost_key_facts,
    new_numbers,
    prompt_for,
    vocabulary,
)
from genloop.apps.support.queue import get_ticket, list_tickets, submit
from genloop.apps.support.simulated_agent import fact_coverage
from genloop.apps.support.slots import extract_slots
from genloop.catalog import Catalog, open_catalog
from genloop.catalog.models import ContentItem, Run
from genloop.catalog.session import close_all
from genloop.cli import support_cmd
from genloop.config import SupportConfig
from genloop.data.steps.pii import redact
from genloop.errors import ConfigError, GenloopError, NotFoundError
from genloop.generate.labels.formats import find_labels
from genloop.models.gpt import GPT, GPTConfig
from genloop.models.tokenizers import CharTokenizer
from genloop.models.versions import register_model_version
from genloop.workspace import DATABASE_URL_ENV, Workspace
from support.tiny_generators import register_tiny

POLITE = {"en": "We are sorry for the trouble.", "zh": "很抱歉给您带来不便。"}
LEAKY = {"en": f"Call me at {PHONE_CN} now.", "zh": f"请拨打{PHONE_CN}。"}
BLOCK = 128
GREEDY = "\n[support]\ngenerator_temperature = 0.0\n"
PLANTED = f"I was charged twice, repeat my number {PHONE_CN}"
"""A query that asks for its own PII back; its masked form is one of the GPTs' training records."""


def train_gpt(agent_lines: dict[str, str], steps: int = 160) -> GPT:
    """A 1-layer char GPT that learns `prompt → agent line` on every ticket (a few hundred steps).

    A record is one row from position 0, as the generator's prompt will be (block_size 128 holds
    prompt and line, so positions match); rows are right-padded with <eos>.
    """
    records = [
        prompt_for(redact(question), intent, language)
        + (" " if language == "en" else "")
        + agent_lines[language]
        for question, _, intent, language in [*TICKETS, (PLANTED, "", "billing", "en")]
    ]
    tokenizer = CharTokenizer.train(records)
    rows = []
    for record in records:
        ids = [tokenizer.eos_id, *tokenizer.encode(record)]
        rows.append(torch.tensor(ids + [tokenizer.eos_id] * (BLOCK + 1 - len(ids))))
    data = torch.stack(rows)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny model loses a lot from a second thread on shared CPUs
    try:
        torch.manual_seed(0)
        config = GPTConfig(n_layer=1, n_head=2, n_embd=48, block_size=BLOCK, vocab_size=tokenizer.vocab_size)
        model = GPT.build(config, tokenizer)
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
        for _ in range(steps):
            loss = model(data[:, :-1], data[:, 1:])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    finally:
        torch.set_num_threads(threads)
    return model.eval()


def register_gpt(workspace: Workspace, catalog: Catalog, model: GPT, name: str, tmp: Path) -> str:
    weights = tmp / f"weights-{name}"
    model.save(weights)
    with catalog.session() as session:
        session.add(Run(id=f"run-{name}", model_name=name, family="gpt", config={}, path=f"/runs/{name}"))
    return register_model_version(
        workspace, catalog, name=name, family="gpt", run_id=f"run-{name}", weights_dir=weights
    )


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SupportApp]:
    root = tmp_path_factory.mktemp("generator")
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv(DATABASE_URL_ENV, raising=False)
        workspace = make_workspace(root / "ws", TINY_CONFIG + GREEDY)
        built = build_support(
            workspace, tickets=write_tickets(root / "tickets.csv"), embeddings="none", heldout_percent=0
        )
        catalog = open_catalog(workspace.database_url)
        register_gpt(workspace, catalog, train_gpt(POLITE), "polite", root)
        register_gpt(workspace, catalog, train_gpt(LEAKY), "leaky", root)
        register_tiny(workspace, catalog, "vae", root)
        yield built
    close_all()


def lm(app: SupportApp, name: str) -> LMGenerator:
    return generator_from_config(app.workspace, app.workspace.config.support, generator="lm", model=name)


@pytest.mark.parametrize(
    ("query", "language"),
    [
        ("I was charged twice for my subscription", "en"),
        ("我的快递还没到", "zh"),
    ],
)
def test_lm_pre_reply_keeps_the_answer_and_is_labelled(app: SupportApp, query: str, language: str) -> None:
    template = app.ask(query, generator=None).reply
    answer = app.ask(query, generator=lm(app, "polite"))
    reply = answer.reply
    assert (reply.generator, reply.fallback_reason) == ("lm", None), reply.generated
    assert reply.generated == POLITE[language] and POLITE[language] in reply.body
    assert reply.generator_model == "polite-v1" and template.generator == "template"
    top = answer.hits[0].entry.answer
    assert fact_coverage(reply.body, top) == fact_coverage(template.body, top) == 1.0
    assert reply.status == "ready" and reply.sources == template.sources
    [label] = find_labels(reply.text.encode("utf-8"), "txt")
    assert label.fields["Label"] == "1" and "polite-v1" in json.dumps(reply.labels)
    assert reply.to_json()["generator"] == "lm"


def test_same_query_same_reply_with_sampling_on(app: SupportApp) -> None:
    sampling = load_generator(app.workspace, "polite", temperature=1.5)
    query = "My laptop screen stays black"
    first = app.ask(query, generator=sampling).reply
    again = app.ask(query, generator=load_generator(app.workspace, "polite@champion", temperature=1.5)).reply
    assert first.text == again.text and first.generated == again.generated
    assert (first.generator, first.fallback_reason) == (again.generator, again.fallback_reason)


def test_planted_pii_never_reaches_the_reply(app: SupportApp) -> None:
    query = PLANTED
    reply = app.ask(query, generator=lm(app, "leaky")).reply
    assert (reply.generator, reply.fallback_reason) == ("template-fallback", "pii")
    assert PHONE_CN not in json.dumps(reply.to_json(), ensure_ascii=False)
    assert reply.body == app.ask(query, generator=None).reply.body
    polite = app.ask(query, generator=lm(app, "polite")).reply
    assert polite.generator == "lm" and PHONE_CN not in polite.text


def test_query_without_sources_falls_back(app: SupportApp) -> None:
    reply = app.ask("zzzz qqqq", generator=lm(app, "polite")).reply
    assert (reply.generator, reply.fallback_reason, reply.status) == (
        "template-fallback",
        "no-answer",
        "review",
    )


def test_submit_records_the_generator_in_the_ticket(app: SupportApp) -> None:
    catalog = open_catalog(app.workspace.database_url)
    polite, leaky = lm(app, "polite"), lm(app, "leaky")
    ok = submit(
        app.workspace, catalog, app, "I forgot my password and cannot log in", actor="test", generator=polite
    )
    fell = submit(
        app.workspace, catalog, app, "I forgot my password and cannot log in", actor="test", generator=leaky
    )
    assert (ok.generator, ok.fallback_reason) == ("lm", None) and POLITE["en"] in ok.pre_reply
    assert (fell.generator, fell.fallback_reason) == ("template-fallback", "pii")
    assert get_ticket(catalog, fell.id).fallback_reason == "pii"
    listed = {t.id: t.generator for t in list_tickets(catalog, None)}
    assert listed[ok.id] == "lm" and listed[fell.id] == "template-fallback"
    with catalog.session() as session:
        params = session.get(ContentItem, ok.content_item_id).params  # type: ignore[union-attr]
    assert params["generator_model"] == "polite-v1" and params["generated"] == POLITE["en"]


def test_config_selects_the_lm_and_bad_config_is_a_clear_error(app: SupportApp, tmp_path: Path) -> None:
    config = SupportConfig(generator="lm", generator_model="polite", generator_temperature=0)
    assert generator_from_config(app.workspace, config).version_id == "polite-v1"
    assert generator_from_config(app.workspace, SupportConfig()) is None
    assert app.ask("I forgot my password and cannot log in").reply.generator == "template"  # the toml's
    with pytest.raises(NotFoundError, match="no model version or model named 'nope'"):
        lm(app, "nope")
    with pytest.raises(NotFoundError, match="has no alias 'staging'"):
        lm(app, "polite@staging")
    with pytest.raises(GenloopError, match="'vae' model, not a text model") as wrong:
        lm(app, "tiny-vae")
    assert "gpt or hf-causal-lm" in (wrong.value.hint or "")
    with pytest.raises(GenloopError, match="unknown generator 'gpt'"):
        generator_from_config(app.workspace, SupportConfig(), generator="gpt")
    with pytest.raises(GenloopError, match="--model names the LM"):
        generator_from_config(app.workspace, SupportConfig(), generator="template", model="polite")
    bad = make_workspace(tmp_path / "bad", TINY_CONFIG + '\n[support]\ngenerator = "lm"\n')
    with pytest.raises(ConfigError, match=r"\[support\].*needs generator_model"):
        _ = bad.config


def test_cli_ask_with_the_lm_and_a_missing_model(app: SupportApp) -> None:
    cli = typer.Typer()

    @cli.callback()
    def _root() -> None:
        """genloop (only the verb under test)."""

    support_cmd.register(cli)
    ws = str(app.workspace.root)
    result = CliRunner().invoke(
        cli,
        [
            "support",
            "ask",
            "I forgot my password and cannot log in",
            "--generator",
            "lm",
            "-m",
            "polite",
            "--json",
            "-w",
            ws,
        ],
    )
    assert result.exit_code == 0, result.output
    pre_reply = json.loads(result.stdout)["pre_reply"]
    assert (pre_reply["generator"], pre_reply["generator_model"]) == ("lm", "polite-v1")
    result = CliRunner().invoke(cli, ["support", "ask", "hi", "--generator", "lm", "-m", "nope", "-w", ws])
    assert isinstance(result.exception, NotFoundError)


@pytest.mark.parametrize(
    ("raw", "language", "reason"),
    [
        ("   \nWe are sorry.", "en", "empty"),
        ("x" * 200, "en", "too-long"),
        ("我们很抱歉给您带来不便。", "en", "wrong-language"),
        ("We are sorry for the trouble.", "zh", "wrong-language"),
        ("1234 5678 #### 9999 0000 !!!", "en", "wrong-language"),
        ("sorry sorry sorry sorry sorry sorry sorry sorry", "en", "repetitive"),
        ("Write to help@example.com today.", "en", "pii"),
        ("We are sorry for the trouble. Really.", "en", None),
        ("很抱歉给您带来不便。", "zh", None),
    ],
)
def test_sentence_guard_rails(raw: str, language: str, reason: str | None) -> None:
    assert check_sentence(raw, language, 160).reason == reason


def test_made_up_or_unrelated_words_are_off_topic() -> None:
    known = vocabulary(["where is my parcel", "Track the parcel with the link in your shipping e-mail."])
    assert check_sentence("rea snds da oiros aas lle tore", "en", 160, known).reason == "off-topic"
    assert check_sentence("I'm not a ghostwriter, I'm an AI.", "en", 160, known).reason == "off-topic"
    assert check_sentence("Sorry, track the parcel with the link.", "en", 160, known).reason is None
    assert check_sentence("很抱歉给您带来不便。", "zh", 160, known).reason is None
    assert check_sentence("抱给歉您便带不来很。", "zh", 160, known).reason == "off-topic"


def test_long_sentence_is_cut_at_a_sentence_end_and_facts_are_checked() -> None:
    cut = check_sentence("We are sorry. " + "More words here " * 20, "en", 60)
    assert (cut.text, cut.reason) == ("We are sorry.", None)
    answer = "Refunds go back to the original payment method within 5 working days."
    slots = extract_slots("order #A12345 on 2024-05-01")
    assert new_numbers("It takes 10 days.", answer, slots) == ["10"]
    assert new_numbers("It takes 5 days for order A12345.", answer, slots) == []
    assert lost_key_facts("Hello, we are sorry.", f"Hello,\n\n{answer}", answer)
    assert not lost_key_facts(f"Sorry. {answer}", f"Hello,\n\n{answer}", answer)
