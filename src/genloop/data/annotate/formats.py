"""Annotation file formats: genloop JSONL and Label Studio JSON, read and written.

JSONL, one object per line::

    {"id": "<record id>", "text": "...", "label": "refund", "annotator": "ana"}
    {"id": "<record id>", "image": "data:image/png;base64,...", "label": "7"}

Label Studio JSON (its task import/export format), a list of tasks::

    [{"id": 1, "data": {"text": "...", "genloop_id": "<record id>"},
      "annotations": [{"completed_by": {"email": "ana@x"}, "result": [
          {"from_name": "label", "to_name": "text", "type": "choices",
           "value": {"choices": ["refund"]}}]}],
      "predictions": [{"model_version": "genloop-auto", "score": 0.62, "result": [...]}]}]

A malformed line or task is reported with `file:line` and what is wrong; reading
collects every problem before failing, so one run shows them all.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from genloop.errors import DataError

SHOWN_PROBLEMS = 10


@dataclass(frozen=True)
class LabelledItem:
    """One record in an annotation file: its id, content (for people) and zero or more labels."""

    id: str
    text: str | None = None
    image: str | None = None  # a data: URI or a URL/path
    labels: tuple[tuple[str, str | None], ...] = ()  # (label, annotator or None)
    suggestion: tuple[str, float] | None = None


def _fail(path: Path, problems: list[str]) -> None:
    if problems:
        shown = "\n".join(f"  {p}" for p in problems[:SHOWN_PROBLEMS])
        more = f"\n  ... and {len(problems) - SHOWN_PROBLEMS} more" if len(problems) > SHOWN_PROBLEMS else ""
        raise DataError(
            f"{path}: {len(problems)} malformed {'entry' if len(problems) == 1 else 'entries'}, "
            f"nothing imported:\n{shown}{more}",
            hint="fix the lines named above and import again",
        )


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read it as UTF-8 text ({exc})") from None


def _string(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())


# -- JSONL -----------------------------------------------------------------------------------------


def write_jsonl(items: Iterable[LabelledItem], path: Path) -> int:
    count = 0
    with path.open("w", encoding="utf-8") as out:
        for item in items:
            row: dict[str, Any] = {"id": item.id}
            row.update({"text": item.text} if item.text is not None else {"image": item.image})
            row["label"] = item.labels[0][0] if item.labels else None
            if item.suggestion:
                row["suggestion"] = {"label": item.suggestion[0], "confidence": item.suggestion[1]}
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
            count += 1
    return count


def read_jsonl(path: Path) -> list[LabelledItem]:
    items, problems = [], []
    for number, line in enumerate(_read_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            problems.append(f"{where}: not valid JSON ({exc.msg} at column {exc.colno})")
            continue
        if not isinstance(row, dict):
            problems.append(f"{where}: expected a JSON object, got {type(row).__name__}")
            continue
        if not _string(row.get("id")):
            problems.append(f'{where}: missing "id" (the record id genloop exported)')
            continue
        label, annotator = row.get("label"), row.get("annotator")
        if label is not None and not _string(label):
            problems.append(f'{where}: "label" must be a non-empty string or null, got {label!r}')
            continue
        if annotator is not None and not _string(annotator):
            problems.append(f'{where}: "annotator" must be a non-empty string, got {annotator!r}')
            continue
        labels = ((label, annotator),) if label is not None else ()
        items.append(LabelledItem(row["id"], row.get("text"), row.get("image"), labels))
    _fail(path, problems)
    return items


# -- Label Studio ----------------------------------------------------------------------------------


def _choices(choice: str, modality_key: str) -> list[dict[str, Any]]:
    return [
        {"from_name": "label", "to_name": modality_key, "type": "choices", "value": {"choices": [choice]}}
    ]


def write_label_studio(items: Iterable[LabelledItem], path: Path, *, task_ids: Iterable[int] = ()) -> int:
    ids = iter(task_ids)
    tasks = []
    for number, item in enumerate(items, start=1):
        key = "text" if item.text is not None else "image"
        task: dict[str, Any] = {
            "id": next(ids, number),
            "data": {key: item.text if item.text is not None else item.image, "genloop_id": item.id},
            "annotations": [
                {"completed_by": {"email": who} if who else None, "result": _choices(label, key)}
                for label, who in item.labels
            ],
        }
        if item.suggestion:
            task["predictions"] = [
                {
                    "model_version": "genloop-auto-label",
                    "score": item.suggestion[1],
                    "result": _choices(item.suggestion[0], key),
                }
            ]
        tasks.append(task)
    path.write_text(json.dumps(tasks, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    return len(tasks)


def _array_items(text: str, path: Path) -> list[tuple[int, Any]]:
    """(line number, value) of each element of a top-level JSON array (or a single object)."""
    decoder = json.JSONDecoder()

    def skip(i: int) -> int:
        while i < len(text) and text[i] in " \t\r\n":
            i += 1
        return i

    def line(i: int) -> int:
        return text.count("\n", 0, i) + 1

    try:
        i = skip(0)
        if text.startswith("{", i):
            return [(line(i), decoder.raw_decode(text, i)[0])]
        if not text.startswith("[", i):
            raise DataError(f"{path}:{line(i)}: expected a JSON list of Label Studio tasks")
        items, i = [], skip(i + 1)
        while not text.startswith("]", i):
            value, end = decoder.raw_decode(text, i)
            items.append((line(i), value))
            i = skip(end)
            if text.startswith(",", i):
                i = skip(i + 1)
            elif not text.startswith("]", i):
                raise DataError(f"{path}:{line(i)}: expected ',' or ']' after a task")
        return items
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg} at column {exc.colno})") from None


def _annotator(annotation: dict[str, Any]) -> str | None:
    who = annotation.get("completed_by")
    if isinstance(who, dict):
        who = who.get("email") or who.get("id")
    return None if who is None or who == "" else str(who)


def _task_labels(task: dict[str, Any], where: str, problems: list[str]) -> list[tuple[str, str | None]]:
    labels = []
    for a, annotation in enumerate(task.get("annotations") or []):
        if not isinstance(annotation, dict) or annotation.get("was_cancelled"):
            continue
        for result in annotation.get("result") or []:
            choices = result.get("value", {}).get("choices") if isinstance(result, dict) else None
            if not isinstance(choices, list) or len(choices) != 1 or not _string(choices[0]):
                problems.append(
                    f"{where}: annotations[{a}].result needs value.choices with exactly one label, "
                    f"got {choices!r}"
                )
                continue
            labels.append((choices[0], _annotator(annotation)))
    return labels


def read_label_studio(path: Path) -> list[LabelledItem]:
    items, problems = [], []
    for number, task in _array_items(_read_text(path), path):
        where = f"{path}:{number}"
        data = task.get("data") if isinstance(task, dict) else None
        if not isinstance(data, dict):
            problems.append(f'{where}: a task needs a "data" object')
            continue
        record_id = data.get("genloop_id")
        if not _string(record_id):
            problems.append(f"{where}: task {task.get('id')!r} has no data.genloop_id (export from genloop)")
            continue
        labels = _task_labels(task, f"{where} (task {task.get('id')!r})", problems)
        items.append(LabelledItem(str(record_id), data.get("text"), data.get("image"), tuple(labels)))
    _fail(path, problems)
    return items


def detect_format(path: Path) -> str:
    """`jsonl` for .jsonl/.ndjson files, else `label-studio`."""
    return "jsonl" if path.suffix.lower() in (".jsonl", ".ndjson") else "label-studio"


def read_labelled(path: Path, fmt: str = "auto") -> list[LabelledItem]:
    fmt = detect_format(path) if fmt == "auto" else fmt
    return read_jsonl(path) if fmt == "jsonl" else read_label_studio(path)
