"""`hf-disk`: a Hugging Face dataset saved with `save_to_disk`, read with pyarrow alone.

    [collect]
    source = "hf-disk"
    path = "data/imdb"                   # the folder save_to_disk wrote
    modality = "text"
    columns = { text = "text", label = "label" }

Two layouts are read, without the `datasets` package:

- a `Dataset` folder: `state.json` (its `_data_files` list the shards and `_split` the
  split), `dataset_info.json` (the features) and the shards `data-00000-of-00001.arrow`,
  Arrow IPC *stream* files;
- a `DatasetDict` folder: `dataset_dict.json` (`{"splits": [...]}`) and one such folder
  per split.

Shards are memory-mapped and read batch by batch, so memory stays bounded by a batch.
The column mapping is the `table` source's (`text` or `image`, `label`, `id`,
`license`; every other column goes into meta). HF's `Image` feature is a struct
`{bytes, path}`: its bytes are the payload, or, when only a path was stored, the file
at that path (relative paths from the dataset folder). A `ClassLabel` column's integers
become its `names` from dataset_info.json (-1, HF's "no label", becomes no label).
When no image column is mapped and the default one is missing, the first `Image`
feature is used.

Splits: when the dataset has named splits and one of them is a test split (`test`,
`validation`, `valid`, `dev`), `train` records stay train and those go to test
(other names, e.g. `unsupervised`, to train); the HF split is kept as meta `hf_split`.
Setting `[collect].test_fraction` explicitly (or a dataset without a test split)
splits by content hash instead, like every other source.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pyarrow as pa

from genloop.config import CollectConfig
from genloop.data.record import Record
from genloop.data.sources.folder import _display_path, human_bytes
from genloop.data.sources.registry import register_source
from genloop.data.sources.table import FIELDS, ColumnMapping, _json_safe
from genloop.data.sources.table_lines import FileProblems, FileRefused, nothing_usable, reading_file
from genloop.data.sources.table_rows import check_columns
from genloop.errors import ConfigError, DataError
from genloop.workspace import Workspace

TEST_SPLITS = frozenset({"test", "validation", "valid", "dev"})
LAYOUT_HINT = (
    "point [collect].path at the folder `Dataset.save_to_disk` or `DatasetDict.save_to_disk` wrote "
    "(it holds state.json, dataset_info.json and data-*.arrow, or dataset_dict.json and a folder per split)"
)


@dataclass(frozen=True)
class HfSplit:
    """One saved `Dataset`: its folder, shards, split name and features."""

    folder: Path
    files: list[Path]
    name: str | None
    features: dict[str, Any] = field(default_factory=dict)
    license: str | None = None

    def class_names(self, column: str) -> list[str] | None:
        feature = self.features.get(column)
        if isinstance(feature, dict) and feature.get("_type") == "ClassLabel":
            names = feature.get("names")
            return [str(n) for n in names] if isinstance(names, list) else None
        return None

    def image_columns(self) -> list[str]:
        return [
            name
            for name, feature in self.features.items()
            if isinstance(feature, dict) and feature.get("_type") == "Image"
        ]


def _read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{path.parent}: no {path.name} ({what})", hint=LAYOUT_HINT) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: cannot read {what} ({exc})", hint=LAYOUT_HINT) from None


def _features_from_schema(path: Path) -> dict[str, Any]:
    """The features `datasets` also stores in each shard's schema metadata (b"huggingface")."""
    try:
        with pa.memory_map(str(path)) as source:
            metadata = pa.ipc.open_stream(source).schema.metadata or {}
        features = json.loads(metadata.get(b"huggingface", b"{}")).get("info", {}).get("features", {})
    except (pa.ArrowException, OSError, ValueError):
        return {}
    return features if isinstance(features, dict) else {}


def load_split(folder: Path) -> HfSplit:
    """The saved `Dataset` in `folder`; a DataError naming the folder and what is missing."""
    state = _read_json(folder / "state.json", "the list of data files a saved Dataset has")
    entries = state.get("_data_files") if isinstance(state, dict) else None
    if not isinstance(entries, list) or not entries:
        raise DataError(
            f"{folder / 'state.json'}: no `_data_files` list naming the .arrow shards", hint=LAYOUT_HINT
        )
    files = [folder / str(entry.get("filename")) for entry in entries if isinstance(entry, dict)]
    missing = [f.name for f in files if not f.is_file()]
    if missing or not files:
        raise DataError(
            f"{folder}: data file(s) listed in state.json are missing: "
            f"{', '.join(missing) or '(none listed)'}",
            hint="copy the whole folder save_to_disk wrote, or save the dataset again",
        )
    info: dict[str, Any] = {}
    if (folder / "dataset_info.json").is_file():
        loaded = _read_json(folder / "dataset_info.json", "the dataset's features")
        info = loaded if isinstance(loaded, dict) else {}
    features = info.get("features")
    if not isinstance(features, dict) or not features:
        features = _features_from_schema(files[0])
    split = state.get("_split")
    license = info.get("license")
    return HfSplit(
        folder,
        files,
        str(split) if split else None,
        features,
        str(license).strip() if isinstance(license, str) and license.strip() else None,
    )


def find_splits(root: Path) -> list[HfSplit]:
    """Every split under `root`, a saved DatasetDict or a single saved Dataset."""
    if (root / "dataset_dict.json").is_file():
        listing = _read_json(root / "dataset_dict.json", "the list of splits")
        names = listing.get("splits") if isinstance(listing, dict) else None
        if not isinstance(names, list) or not names:
            raise DataError(f"{root / 'dataset_dict.json'}: no `splits` list", hint=LAYOUT_HINT)
        splits = []
        for name in names:
            if not (root / str(name)).is_dir():
                raise DataError(
                    f"{root}: no folder for split {name!r} listed in dataset_dict.json", hint=LAYOUT_HINT
                )
            split = load_split(root / str(name))
            splits.append(split if split.name == str(name) else replace(split, name=str(name)))
        return splits
    if (root / "state.json").is_file():
        return [load_split(root)]
    raise DataError(
        f"{root} is not a dataset saved with save_to_disk: it has neither dataset_dict.json nor state.json",
        hint=LAYOUT_HINT,
    )


def _root(workspace: Workspace, cfg: CollectConfig) -> Path:
    if not cfg.path:
        raise ConfigError(
            "[collect].path is not set; the `hf-disk` source needs the folder save_to_disk wrote",
            hint='add `path = "data/my-dataset"` under [collect] in genloop.toml',
        )
    root = workspace.resolve_user_path(cfg.path)
    if not root.is_dir():
        state = "is a file, not a folder" if root.exists() else "does not exist"
        raise DataError(f"[collect].path {cfg.path} ({root}) {state}", hint=LAYOUT_HINT)
    return root


def _mapping(cfg: CollectConfig, splits: list[HfSplit], columns: list[str]) -> ColumnMapping:
    mapping = ColumnMapping.from_config(cfg)
    field_ = mapping.payload_field
    if field_ == "image" and field_ not in (cfg.columns or {}) and "image" not in columns:
        images = [c for s in splits for c in s.image_columns() if c in columns]
        if images:  # the dataset's own Image feature, whatever it is called ("img", "picture")
            columns_map = mapping.columns | {"image": images[0]}
            return ColumnMapping(field_, columns_map, mapping.explicit)
    return mapping


def _batches(path: Path, problems: FileProblems) -> Iterator[pa.RecordBatch]:
    """Record batches of one shard: an Arrow stream (what save_to_disk writes), or an Arrow file."""
    with pa.memory_map(str(path)) as source:
        try:
            reader: Any = pa.ipc.open_stream(source)
        except pa.ArrowInvalid:
            source.seek(0)
            try:
                file_reader = pa.ipc.open_file(source)
            except pa.ArrowInvalid as exc:
                raise FileRefused(f"not an Arrow stream or file ({exc})") from None
            for i in range(file_reader.num_record_batches):
                yield file_reader.get_batch(i)
            return
        rows = 0
        try:
            for batch in reader:
                yield batch
                rows += batch.num_rows
        except (pa.ArrowException, OSError) as exc:
            problems.row(rows + 1, f"cannot read the rest of the shard ({exc}); rows from here skipped")


def _schema(path: Path) -> list[str]:
    try:
        with pa.memory_map(str(path)) as source:
            try:
                return list(pa.ipc.open_stream(source).schema.names)
            except pa.ArrowInvalid:
                source.seek(0)
                return list(pa.ipc.open_file(source).schema.names)
    except (pa.ArrowException, OSError) as exc:
        raise FileRefused(f"not a readable Arrow shard ({exc})") from None


def _image_bytes(value: Any, split: HfSplit, cfg: CollectConfig) -> bytes:
    if isinstance(value, dict):  # HF Image feature: {"bytes": ..., "path": ...}
        if value.get("bytes"):
            return bytes(value["bytes"])
        value = value.get("path")
        if not value:
            raise ValueError("image has neither bytes nor a path")
    if isinstance(value, bytes):
        return value
    image = Path(str(value)).expanduser()
    image = image if image.is_absolute() else split.folder / image
    try:
        size = image.stat().st_size
        if size > cfg.max_file_bytes:
            raise ValueError(f"image {value!r} is {human_bytes(size)}, over max_file_bytes")
        return image.read_bytes()
    except OSError as exc:
        raise ValueError(f"cannot read image {value!r} ({exc.strerror or exc})") from None


def _label(value: Any, names: list[str] | None) -> str | None:
    if value is None:
        return None
    if names is not None and isinstance(value, int) and not isinstance(value, bool):
        if value == -1:  # HF's "no label" (e.g. an unlabelled test split)
            return None
        if not 0 <= value < len(names):
            raise ValueError(f"label {value} is outside the ClassLabel names (0–{len(names) - 1})")
        return names[value]
    return str(value)


@dataclass
class _Context:
    cfg: CollectConfig
    mapping: ColumnMapping
    by_name: bool  # split by HF split names, not by content hash
    license: str


def _record(values: dict[str, Any], number: int, shown: str, split: HfSplit, ctx: _Context) -> Record:
    mapping = ctx.mapping
    payload_value = mapping.value(values, mapping.payload_field)
    if payload_value is None:
        column = mapping.columns[mapping.payload_field]
        raise ValueError(f"no value in column {column!r} ({mapping.payload_field})")
    if mapping.payload_field == "image":
        payload = _image_bytes(payload_value, split, ctx.cfg)
    else:
        payload = payload_value if isinstance(payload_value, bytes) else str(payload_value).encode("utf-8")
    label_column = mapping.columns.get("label")
    label = _label(mapping.value(values, "label"), split.class_names(label_column) if label_column else None)
    source_id, row_license = mapping.value(values, "id"), mapping.value(values, "license")
    mapped = {mapping.columns[f] for f in FIELDS if f in mapping.columns}
    meta: dict[str, Any] = {"path": shown, "row": number}
    if split.name:
        meta["hf_split"] = split.name
    for key, value in values.items():
        if key in mapped:
            continue
        names = split.class_names(key)
        if names is not None and isinstance(value, int) and 0 <= value < len(names):
            value = names[value]
        meta[key] = _json_safe(value)
    if source_id is not None:
        meta["source_id"] = _json_safe(source_id)
    record = Record.create(
        payload,
        modality=mapping.payload_field,
        label=label,
        source=f"hf-disk:{ctx.cfg.path}",
        license=str(row_license or ctx.license),
        test_fraction=0.0 if ctx.by_name else ctx.cfg.test_fraction,
        meta=meta,
    )
    if ctx.by_name and split.name in TEST_SPLITS:
        record = record.with_changes(split="test")
    return record


@register_source("hf-disk")
def hf_disk(workspace: Workspace, cfg: CollectConfig, problems: list[str]) -> Iterator[Record]:
    root = _root(workspace, cfg)
    splits = find_splits(root)
    columns = _schema_or_empty(splits[0].files[0])
    mapping = _mapping(cfg, splits, columns)
    names = {s.name for s in splits}
    by_name = "test_fraction" not in cfg.model_fields_set and bool(names & TEST_SPLITS)
    licenses = {s.license for s in splits if s.license}
    ctx = _Context(
        cfg, mapping, by_name, cfg.license or (licenses.pop() if len(licenses) == 1 else "unknown")
    )
    yielded = 0
    for split in splits:
        for path in split.files:
            shown = _display_path(workspace, path)
            with reading_file(shown, problems) as file_problems:
                check_columns(_schema(path), mapping.required)
                number = 0
                for batch in _batches(path, file_problems):
                    for values in batch.to_pylist():
                        number += 1
                        try:
                            record = _record(values, number, shown, split, ctx)
                        except ValueError as exc:
                            file_problems.row(number, f"{exc}; skipped")
                            continue
                        yield record
                        yielded += 1
                        if cfg.limit is not None and yielded >= cfg.limit:
                            return
    if yielded == 0:
        raise nothing_usable(
            cfg.path,
            problems,
            hint="check [collect].columns (and modality) against the dataset's columns listed above",
        )
    if ctx.license == "unknown" and mapping.columns.get("license") is None:
        problems.append(
            f"no [collect].license set and no license in {cfg.path}'s dataset_info.json: records are "
            "marked license 'unknown'; set [collect].license to the SPDX id of the data"
        )


def _schema_or_empty(path: Path) -> list[str]:
    try:
        return _schema(path)
    except FileRefused:
        return []
