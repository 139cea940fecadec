"""The music novelty check on real Bach chorales: a copied melody fails, an unseen chorale passes."""

from __future__ import annotations

import io
import json
import sys

import pytest

from genloop.catalog import open_catalog
from genloop.data.datasets import write_dataset_version
from genloop.errors import MissingDependencyError
from genloop.generate.artifact import Artifact
from genloop.generate.safety.registry import SafetyContext, build_check
from genloop.models.versions import register_model_version
from genloop.train.runs import RunRecorder, dataset_uses, run_id_for
from genloop.workspace import Workspace

mido = pytest.importorskip("mido")
pytest.importorskip("music21")
from support.chorales import chorale_records  # noqa: E402

TRAIN = 2  # chorale_records(3) is cached per process and shared with the training tests


def piece(data: bytes, format: str = "mid") -> Artifact:
    return Artifact(content_id="c1", modality="music", data=data, format=format)


@pytest.fixture
def context(sqlite_workspace: Workspace) -> SafetyContext:
    """A music model version trained on 2 chorales (the 3rd is never seen)."""
    catalog = open_catalog(sqlite_workspace.database_url)
    records = list(chorale_records(TRAIN + 1)[:TRAIN])
    dataset = write_dataset_version(sqlite_workspace, catalog, records, name="chorales", stage="annotate")
    config = {"max_events": 256}
    uses = dataset_uses(dataset)
    run_id = run_id_for(family="music", model_name="bach", config=config, uses=uses, init_from=None)
    RunRecorder(catalog, run_id).start(
        model_name="bach",
        family="music",
        config=config,
        parent_model_version_id=None,
        path="runs/x",
        uses=uses,
    )
    weights = sqlite_workspace.path("staging-weights")
    weights.mkdir(parents=True)
    (weights / "config.json").write_text(json.dumps({"family": "music", **config}), encoding="utf-8")
    version = register_model_version(
        sqlite_workspace, catalog, name="bach", family="music", run_id=run_id, weights_dir=weights
    )
    return SafetyContext(sqlite_workspace, catalog, version)


def transposed(data: bytes, semitones: int) -> bytes:
    """The same piece in another key, written back as a Standard MIDI File."""
    midi = mido.MidiFile(file=io.BytesIO(data))
    for track in midi.tracks:
        for index, message in enumerate(track):
            if message.type in ("note_on", "note_off"):
                track[index] = message.copy(note=message.note + semitones)
    buffer = io.BytesIO()
    midi.save(file=buffer)
    return buffer.getvalue()


def test_novelty_blocks_a_transposed_copy_and_passes_an_unseen_chorale(context: SafetyContext) -> None:

    check = build_check("novelty", "music")
    training, unseen = chorale_records(TRAIN + 1)[:TRAIN], chorale_records(TRAIN + 1)[TRAIN]
    copy = check.check(piece(transposed(training[1].payload, 2)), context)
    assert not copy.passed and copy.reason.startswith("melody copies a training piece")
    assert copy.score is not None and copy.score >= 16
    fresh = check.check(piece(unseen.payload), context)
    assert fresh.passed and fresh.reason.startswith("novel melody"), fresh.reason
    assert fresh.score is not None and fresh.score < 16
    wav = check.check(piece(b"RIFF....WAVE", format="wav"), context)
    assert not wav.passed and "not checked: a wav artifact" in wav.reason
    rendered = Artifact("c1", "music", b"RIFF....WAVE", "wav", meta={"midi": training[0].payload})
    assert not check.check(rendered, context).passed  # the MIDI it was rendered from is a copy


def test_novelty_without_mido_names_the_install_line(monkeypatch: pytest.MonkeyPatch) -> None:

    monkeypatch.setitem(sys.modules, "mido", None)
    with pytest.raises(MissingDependencyError, match="mido"):
        build_check("novelty", "music")
