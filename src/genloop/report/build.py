"""`genloop report`: the whole workspace on one self-contained HTML page.

Sections, top to bottom: dataset versions (counts per label / split / source /
license, cleaning drops per step and reason), then per model: its evaluation metrics
across versions with the `[gates]` thresholds, its feedback over time, and per
version the training loss curves and the newest sample. Every chart is a PNG data:
URI and the CSS is inline, so the file opens from disk, offline, and can be mailed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

from jinja2 import Environment, StrictUndefined

from genloop import __version__
from genloop.catalog import Catalog
from genloop.report.data_section import DatasetSummary, dataset_summaries
from genloop.report.model_section import ModelSection, gates_from_config, model_sections
from genloop.storage import atomic_write_bytes
from genloop.workspace import Workspace


@dataclass
class Report:
    project: str
    datasets: list[DatasetSummary]
    dataset_total: int
    models: list[ModelSection]
    only_model: str | None
    gates: dict[str, list[tuple[str, float]]]
    next_step: str | None  # what to run next when the workspace is still empty


def _next_step(datasets: list[DatasetSummary], models: list[ModelSection]) -> str | None:
    if not datasets:
        return "no data yet: run `genloop collect` and `genloop clean` (or `genloop run` for every stage)"
    if not models:
        return "no model versions yet: run `genloop train` (or `genloop run`), then `genloop evaluate`"
    return None


def gather_report(workspace: Workspace, catalog: Catalog, *, model: str | None = None) -> Report:
    """Everything the page shows, charts already drawn (unknown `model` raises NotFoundError)."""
    config = workspace.config
    gates = gates_from_config(config)
    models = model_sections(workspace, catalog, only=model, gates=gates)  # first: fail fast on --model
    datasets, total = dataset_summaries(workspace, catalog)
    return Report(
        project=config.project.name,
        datasets=datasets,
        dataset_total=total,
        models=models,
        only_model=model,
        gates=gates,
        next_step=_next_step(datasets, models),
    )


def _number(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def render_report(report: Report) -> str:
    env = Environment(autoescape=True, undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["number"] = _number
    template = resources.files("genloop.report").joinpath("templates/report.html.j2").read_text("utf-8")
    return env.from_string(template).render(
        report=report,
        generated=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        genloop_version=__version__,
    )


def write_report(workspace: Workspace, catalog: Catalog, output: Path, *, model: str | None = None) -> Path:
    """Render the report to `output` atomically (a reader never sees half a file); returns the path."""
    html = render_report(gather_report(workspace, catalog, model=model))
    atomic_write_bytes(output, html.encode("utf-8"))
    return output
