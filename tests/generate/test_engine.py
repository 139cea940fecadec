"""The generation engine on tiny real models: same request → same bytes at any batch size,
resumable jobs, what each item stores, and bad requests refused clearly."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

from genloop.catalog import Catalog, open_catalog
from genloop.catalog.lineage import lineage_for_content
from genloop.catalog.models import ContentItem
from genloop.config import GenloopConfig
from genloop.errors import GenloopError
from genloop.generate.engine import GenerationRequest, generate
from genloop.generate.labels.implicit import read_implicit_label
from genloop.generate.requests import plan_items
from genloop.generate.sampler import sample_chunk
from genloop.train.device import use_available_cpus
from genloop.workspace import Workspace
from support.tiny_generators import BUILDERS, CLASSES, register_tiny

REQUESTS = {
    "vae": GenerationRequest(model="m", per_class=3, seed=5),
    "gan": GenerationRequest(model="m", per_class=3, seed=5, params={"temperature": 0.7}),
    "ddpm": GenerationRequest(
        model="m", per_class=2, labels=["a", "c"], params={"scheduler": "ddpm", "steps": 3}
    ),
    "gpt": GenerationRequest(model="m", prompts=["hello", "the quick", ""], count=2, max_new_tokens=8),
    "music": GenerationRequest(model="m", per_class=2, max_new_tokens=24, params={"temperature": 1.5}),
}


@pytest.fixture(autouse=True)
def threads(one_training_thread: None) -> None:
    """One torch thread (conftest's GENLOOP_NUM_THREADS=1): tiny models on shared CPUs."""
    use_available_cpus()


def _as_bytes(data: object) -> bytes:
    if isinstance(data, bytes):
        return data
    if isinstance(data, str):
        return data.encode("utf-8")
    return data.tobytes()  # type: ignore[attr-defined]


@pytest.mark.parametrize("family", sorted(REQUESTS))
def test_batched_sampling_gives_each_item_what_sampling_it_alone_gives(family: str) -> None:
    import torch

    torch.manual_seed(0)
    model = BUILDERS[family]().eval()
    classes = list(getattr(model, "classes", [])) if family != "gpt" else []
    plan = plan_items(
        REQUESTS[family], version_id="m-v1", family=family, classes=classes, config=GenloopConfig()
    )
    batched = [_as_bytes(d) for d in sample_chunk(model, family, classes, plan.items, plan.params)]
    alone = [_as_bytes(sample_chunk(model, family, classes, [item], plan.params)[0]) for item in plan.items]
    assert batched == alone
    assert len(set(batched)) == len(batched)  # every item its own draw
    again = [_as_bytes(d) for d in sample_chunk(model, family, classes, plan.items[::-1], plan.params)]
    assert again[::-1] == batched  # order in the batch does not matter either


def test_hf_causal_lm_items_do_not_depend_on_their_batch(tmp_path: Path) -> None:
    from genloop.models.hf_causal_lm import HFCausalLM, HFCausalLMConfig
    from support.tiny_causal_lm import tiny_causal_lm

    base = tiny_causal_lm(tmp_path / "llama")
    model = HFCausalLM.build(HFCausalLMConfig(base_model=str(base)))
    request = GenerationRequest(model="m", prompts=["hi", "a"], count=2, max_new_tokens=6)
    plan = plan_items(request, version_id="m-v1", family="hf-causal-lm", classes=[], config=GenloopConfig())
    batched = sample_chunk(model, "hf-causal-lm", [], plan.items, plan.params)
    alone = [sample_chunk(model, "hf-causal-lm", [], [item], plan.params)[0] for item in plan.items]
    assert batched == alone and all(isinstance(text, str) for text in batched)


@pytest.fixture
def vae(sqlite_workspace: Workspace, tmp_path: Path) -> tuple[Workspace, Catalog, str]:
    catalog = open_catalog(sqlite_workspace.database_url)
    return sqlite_workspace, catalog, register_tiny(sqlite_workspace, catalog, "vae", tmp_path)


def _files(workspace: Workspace, catalog: Catalog) -> dict[str, bytes]:
    with catalog.session() as session:
        rows = session.scalars(select(ContentItem)).all()
        return {row.id: workspace.artifact(row.path).read_bytes() for row in rows}


def test_same_request_gives_the_same_bytes_at_any_batch_size(vae: tuple[Workspace, Catalog, str]) -> None:
    workspace, catalog, version = vae
    request = GenerationRequest(model=version, per_class=3, labels=["a", "b"], seed=11)
    first = generate(workspace, catalog, request, batch_size=64)
    assert (first.created, first.existing) == (6, 0)
    files = _files(workspace, catalog)
    for item in first:
        item.path.unlink()  # the catalog rows stay; the files are made again
    again = generate(workspace, catalog, request, batch_size=1)
    assert again.created == 6 and _files(workspace, catalog) == files
    rerun = generate(workspace, catalog, request, batch_size=4)
    assert (rerun.created, rerun.existing) == (0, 6)
    assert [item.id for item in rerun] == [item.id for item in first]
    other = generate(workspace, catalog, GenerationRequest(model=version, per_class=3, labels=["a"], seed=12))
    assert not {item.id for item in other} & set(files)  # another seed: other items


def test_finishing_on_threads_gives_the_bytes_one_thread_gives(
    vae: tuple[Workspace, Catalog, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A chunk's images are finished on GENLOOP_FINISH_THREADS threads; no byte or status may
    depend on how many."""
    workspace, catalog, version = vae
    request = GenerationRequest(model=version, per_class=4, seed=21)
    monkeypatch.setenv("GENLOOP_FINISH_THREADS", "1")
    alone = generate(workspace, catalog, request, batch_size=64)
    files = _files(workspace, catalog)
    statuses = {item.id: item.status for item in alone}
    for item in alone:
        item.path.unlink()
    monkeypatch.setenv("GENLOOP_FINISH_THREADS", "4")
    threaded = generate(workspace, catalog, request, batch_size=64)
    assert threaded.created == len(files) and _files(workspace, catalog) == files
    assert {item.id: item.status for item in threaded} == statuses  # computed again, not read back
    assert not list((workspace.state_dir / "content").rglob("*.tmp"))


def test_a_killed_job_run_again_finishes_without_duplicates(vae: tuple[Workspace, Catalog, str]) -> None:
    workspace, catalog, version = vae
    request = GenerationRequest(model=version, per_class=4, seed=3)
    partial = generate(workspace, catalog, request, batch_size=2, limit=5)  # as a kill after 5 would leave it
    assert partial.created == 5
    full = generate(workspace, catalog, request, batch_size=3)
    assert (full.created, full.existing) == (4 * len(CLASSES) - 5, 5)
    with catalog.session() as session:
        assert session.scalar(select(func.count()).select_from(ContentItem)) == 4 * len(CLASSES)
    stored = list((workspace.state_dir / "content").rglob("*.png"))
    assert len(stored) == 4 * len(CLASSES) and not list((workspace.state_dir / "content").rglob("*.tmp"))
    # more per class later: the first four of each class are the same items
    more = generate(workspace, catalog, GenerationRequest(model=version, per_class=6, seed=3))
    assert (more.created, more.existing) == (2 * len(CLASSES), 4 * len(CLASSES))


def test_each_item_is_stored_with_its_provenance_and_lineage(vae: tuple[Workspace, Catalog, str]) -> None:
    workspace, catalog, version = vae
    report = generate(workspace, catalog, GenerationRequest(model=version, per_class=1, labels=["b"], seed=2))
    (item,) = report.items
    with catalog.session() as session:
        row = session.get(ContentItem, item.id)
        assert row is not None
        assert (row.model_version_id, row.modality, row.condition) == (version, "image", {"label": "b"})
        assert (row.seed, row.channel, row.status, row.request_id) == (
            item.seed,
            "gallery",
            "ready",
            report.plan.request_id,
        )
        assert set(row.timings) == {"sample", "postprocess", "safety", "label"}
        assert all(seconds >= 0 for seconds in row.timings.values())
        assert isinstance(row.verdicts, list) and "implicit" in row.labels
        assert not Path(row.path).is_absolute() and row.path.endswith(".png")
    label = read_implicit_label(item.path.read_bytes())
    assert label is not None and label["ProduceID"] == item.id
    found = lineage_for_content(catalog, item.id)
    assert found["model_version"]["id"] == version


def test_text_and_music_items_are_files_of_their_modality(
    sqlite_workspace: Workspace, tmp_path: Path
) -> None:
    catalog = open_catalog(sqlite_workspace.database_url)
    gpt = register_tiny(sqlite_workspace, catalog, "gpt", tmp_path)
    text = generate(
        sqlite_workspace,
        catalog,
        GenerationRequest(
            model=gpt, prompts=["hello"], count=3, max_new_tokens=8, params={"temperature": 0.9}
        ),
    )
    assert [item.condition for item in text] == [{"prompt": "hello"}] * 3
    assert all(item.path.suffix == ".txt" and item.path.read_text(encoding="utf-8") for item in text)
    music = register_tiny(sqlite_workspace, catalog, "music", tmp_path)
    midi = generate(sqlite_workspace, catalog, GenerationRequest(model=music, per_class=1, max_new_tokens=16))
    assert [item.label for item in midi] == ["major", "minor"]
    assert all(item.path.read_bytes()[:4] == b"MThd" for item in midi)


def test_a_channel_that_reviews_everything_holds_every_item(vae: tuple[Workspace, Catalog, str]) -> None:
    workspace, catalog, version = vae
    config = workspace.config.model_copy(
        update={
            "channels": {
                "press": workspace.config.channel_policy("press").model_copy(update={"review": "always"})
            }
        }
    )
    request = GenerationRequest(model=version, per_class=1, channel="press")
    report = generate(workspace, catalog, request, config=config)
    assert report.to_review == len(CLASSES) and {item.status for item in report} == {"review"}
    plain = generate(workspace, catalog, GenerationRequest(model=version, per_class=1))
    assert not {i.id for i in plain} & {i.id for i in report}  # another policy: other items


@pytest.mark.parametrize(
    ("family", "request_options", "message"),
    [
        ("vae", {"labels": ["z"]}, "has no class 'z'"),
        ("vae", {"prompts": ["a cat"]}, "conditioned on class labels, not prompts"),
        ("vae", {"per_class": 0}, "per_class and count must be ≥ 1"),
        ("gpt", {"labels": ["a"]}, "takes prompts, not class labels"),
        ("gpt", {"count": 0}, "per_class and count must be ≥ 1"),
        ("vae", {"params": {"top_k": 3}}, r"unknown sampling parameter\(s\) \['top_k'\]"),
    ],
)
def test_bad_requests_fail_clearly_and_store_nothing(
    sqlite_workspace: Workspace, tmp_path: Path, family: str, request_options: dict, message: str
) -> None:
    catalog = open_catalog(sqlite_workspace.database_url)
    version = register_tiny(sqlite_workspace, catalog, family, tmp_path)
    with pytest.raises(GenloopError, match=message):
        generate(sqlite_workspace, catalog, GenerationRequest(model=version, **request_options))
    assert _files(sqlite_workspace, catalog) == {}


def test_an_unknown_model_is_named_with_a_hint(sqlite_workspace: Workspace) -> None:
    catalog = open_catalog(sqlite_workspace.database_url)
    with pytest.raises(GenloopError, match="'nobody'") as error:
        generate(sqlite_workspace, catalog, GenerationRequest(model="nobody"))
    assert error.value.hint and "genloop models ls" in error.value.hint
