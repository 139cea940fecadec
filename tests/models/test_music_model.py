"""MusicTransformer and its REMI tokenizer on real Bach chorales: tokens, sampling, MIDI, save/load."""

from __future__ import annotations

import io
import json
from pathlib import Path

import mido
import pytest
import symusic
import torch

from genloop.errors import DataError, GenloopError
from genloop.models.music import MusicConfig, MusicTransformer
from genloop.models.music_tokens import MusicTokenizer, MusicTokenizerConfig
from genloop.models.registry import get_model_family
from support.chorales import chorale_records

TINY = MusicConfig(classes=["major", "minor"], n_layer=1, n_head=2, n_embd=32, block_size=32, dropout=0.0)


def note_count(midi: bytes) -> int:
    """Notes in a Standard MIDI File, read with mido (an independent parser)."""
    parsed = mido.MidiFile(file=io.BytesIO(midi))
    return sum(1 for track in parsed.tracks for m in track if m.type == "note_on" and m.velocity > 0)


def test_remi_tokens_of_a_chorale_decode_to_the_same_notes() -> None:
    record = chorale_records(1)[0]
    tokenizer = MusicTokenizer()
    ids = tokenizer.encode(record.payload)
    assert (
        tokenizer.vocab_size == 324
    )  # 88 pitches, 64 positions, durations, bar, time signatures, 3 specials
    assert ids[0] == tokenizer.bos_id and ids[-1] == tokenizer.eos_id
    assert (
        2 * note_count(record.payload) < len(ids) < 4 * note_count(record.payload)
    )  # ≈ Pitch + Duration a note
    decoded = symusic.Score.from_midi(tokenizer.decode(ids))
    original = symusic.Score.from_midi(record.payload)
    assert decoded.note_num() == original.note_num() > 100
    assert sorted(n.pitch for t in decoded.tracks for n in t.notes) == sorted(
        n.pitch for t in original.tracks for n in t.notes
    )


def test_transposition_table_moves_pitches_and_nothing_else() -> None:
    tokenizer = MusicTokenizer()
    table = tokenizer.pitch_shift_table(2)  # rows: −2, −1, 0, +1, +2 semitones
    vocab = tokenizer._remi.vocab
    assert (
        table[4, vocab["Pitch_60"]] == vocab["Pitch_62"] and table[0, vocab["Pitch_60"]] == vocab["Pitch_58"]
    )
    assert table[4, vocab["Pitch_108"]] == -1  # above the range: the caller keeps that window as it was
    assert torch.equal(table[2], torch.arange(tokenizer.vocab_size))
    assert table[0, vocab["Bar_None"]] == vocab["Bar_None"]


def test_unreadable_midi_is_a_data_error_naming_the_file() -> None:
    with pytest.raises(DataError, match=r"song\.mid: not a readable MIDI file") as error:
        MusicTokenizer().encode(b"MThd not really", where="song.mid")
    assert error.value.hint


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"n_embd": 30, "n_head": 4}, r"n_embd \(30\) must be a multiple of n_head \(4\)"),
        ({"block_size": 4}, "block_size must be an integer ≥ 8"),
        ({"dropout": 1.5}, r"dropout must be in \[0, 1\)"),
        ({"tokenizer": {"pitch_lo": 30}}, r"unknown music tokenizer option\(s\) \['pitch_lo'\]"),
        ({"tokenizer": {"positions_per_beat": 5}}, "positions_per_beat must be"),
        ({"n_layers": 2}, r"unknown \[train.model\] option\(s\) for the music family: \['n_layers'\]"),
    ],
)
def test_bad_configs_are_refused_with_what_to_fix(options: dict[str, object], message: str) -> None:
    with pytest.raises(GenloopError, match=message) as error:
        MusicConfig.from_options(options, classes=["major"])
    assert error.value.hint


def test_sampling_is_deterministic_per_seed_and_midi_parses() -> None:
    torch.manual_seed(0)
    model = MusicTransformer.build(TINY).eval()
    first = model.sample(3, torch.tensor([0, 1, 0]), seed=7, max_tokens=40, top_k=20, temperature=0.9)
    again = model.sample(3, torch.tensor([0, 1, 0]), seed=7, max_tokens=40, top_k=20, temperature=0.9)
    other = model.sample(3, torch.tensor([0, 1, 0]), seed=8, max_tokens=40, top_k=20, temperature=0.9)
    assert first.shape[0] == 3 and first.shape[1] <= 41  # BOS + at most max_tokens events
    assert torch.equal(first, again) and not torch.equal(first, other)
    assert (first[:, 0] == model.tokenizer.bos_id).all()
    assert ((first >= 0) & (first < model.tokenizer.vocab_size)).all()  # never a condition token
    for midi in model.generate_midi(2, seed=3, max_tokens=60):
        assert midi.startswith(b"MThd")
        note_count(midi)  # parses
    with pytest.raises(GenloopError, match=r"condition must hold 2 class indices in 0..1"):
        model.sample(2, torch.tensor([0, 5]), seed=0)
    with pytest.raises(GenloopError, match=r"unknown sampling parameter\(s\) \['top_p'\]"):
        model.sample(1, None, seed=0, top_p=0.9)


def test_save_then_load_gives_the_same_midi_for_the_same_seed(tmp_path: Path) -> None:
    torch.manual_seed(1)
    model = MusicTransformer.build(TINY).eval()
    model.save(tmp_path / "m")
    saved = json.loads((tmp_path / "m" / "config.json").read_text())
    assert saved["family"] == "music" and saved["tokenizer_fingerprint"] == model.tokenizer.fingerprint
    assert saved["tokenizer"] == MusicTokenizerConfig().__dict__  # every option written, defaults included
    assert json.loads((tmp_path / "m" / "tokenizer.json").read_text())["tokenization"] == "REMI"
    loaded = get_model_family("music").load(tmp_path / "m")
    assert loaded.generate_midi(2, seed=5, max_tokens=50) == model.generate_midi(2, seed=5, max_tokens=50)


def test_a_model_saved_with_another_tokenizer_is_refused(tmp_path: Path) -> None:
    MusicTransformer.build(TINY).save(tmp_path / "m")
    config_path = tmp_path / "m" / "config.json"
    config = json.loads(config_path.read_text())
    config["tokenizer_fingerprint"] = "0123456789abcdef"  # what another miditok's vocabulary would give
    config_path.write_text(json.dumps(config))
    with pytest.raises(GenloopError, match="trained with tokenizer 0123456789abcdef") as error:
        MusicTransformer.load(tmp_path / "m")
    assert "miditok" in str(error.value.hint)


def test_cached_incremental_logits_match_a_full_forward() -> None:
    torch.manual_seed(2)
    model = MusicTransformer.build(TINY).eval()
    idx = torch.randint(model.events, (2, 20))
    idx[:, 0] = model.events + 1  # the condition token
    with torch.no_grad():
        full = model(idx)  # (2, 20, V)
        logits, caches = model._run(idx[:, :5], None)
        steps = [logits]
        for t in range(5, 20):
            logits, caches = model._run(idx[:, t : t + 1], caches)
            steps.append(logits)
    torch.testing.assert_close(torch.cat(steps, dim=1), full, rtol=1e-4, atol=1e-5)
