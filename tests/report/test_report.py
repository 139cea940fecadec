"""`genloop report` on a tiny real workspace: sections, inlined PNGs, no network, a browser, bad input."""

from __future__ import annotations

import base64
import io
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import mido
import pytest
from PIL import Image
from sqlalchemy import select

from conftest import make_workspace
from genloop.catalog import open_catalog
from genloop.catalog.models import ModelVersion, Publication
from genloop.catalog.session import close_all
from genloop.config import parse_config
from genloop.errors import NotFoundError
from genloop.feedback.events import record_feedback
from genloop.pipeline.runner import run_pipeline
from genloop.report import gather_report, write_report
from genloop.report.model_section import gates_from_config, model_sections
from genloop.report.plots import bar_chart, font_family
from genloop.report.samples import midi_notes, newest_sample
from genloop.workspace import DATABASE_URL_ENV, Workspace

CHROMIUM = Path("/usr/bin/chromium")
WQY = Path("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]
DATA_URI = re.compile(r'(?:src|href)="data:([a-z/+-]+);base64,([A-Za-z0-9+/=]+)"')
EXTERNAL = re.compile(r"""(?:src|href|url)\s*[=(]\s*["']?(?:https?:)?//""", re.IGNORECASE)


def require_chromium() -> None:
    """As tests/server/test_browser.py: skipped without chromium, except under CI where that fails."""
    if CHROMIUM.is_file():
        return
    message = f"{CHROMIUM} is missing: run `sudo apt-get install -y chromium fonts-wqy-microhei`"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


def _midi_bytes() -> bytes:
    """A C-major scale, one beat per note, as a type-0 MIDI file."""
    midi = mido.MidiFile(ticks_per_beat=96)
    track = mido.MidiTrack()
    for pitch in (60, 62, 64, 65, 67, 69, 71, 72):
        track.append(mido.Message("note_on", note=pitch, velocity=80, time=0))
        track.append(mido.Message("note_off", note=pitch, velocity=0, time=96))
    midi.tracks.append(track)
    buffer = io.BytesIO()
    midi.save(file=buffer)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    """The tiny demo pipeline (400 digits, 2 epochs), 7 votes, and a MIDI sample in a second run."""
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv(DATABASE_URL_ENV, raising=False)
        patch.setenv("GENLOOP_NUM_THREADS", "1")
        workspace = make_workspace(tmp_path_factory.mktemp("report") / "ws")
        catalog = open_catalog(workspace.database_url)
        run_pipeline(workspace, catalog)
        with catalog.session() as session:
            publications = session.scalars(select(Publication).order_by(Publication.id)).all()
            run_path = session.scalars(select(ModelVersion)).one().run.path
        for publication in publications[:5]:
            record_feedback(catalog, publication_id=publication.id, kind="like", viewer_id="a")
        record_feedback(catalog, publication_id=publications[5].id, kind="dislike", viewer_id="a")
        # A music run's newest sample is a .mid: it must become a piano roll plus a download link.
        (workspace.artifact(run_path) / "samples" / "epoch-009.mid").write_bytes(_midi_bytes())
        yield workspace
        close_all()


@pytest.fixture(scope="module")
def report_html(trained: Workspace, tmp_path_factory: pytest.TempPathFactory) -> Path:
    output = tmp_path_factory.mktemp("out") / "report.html"
    write_report(trained, open_catalog(trained.database_url), output)
    return output


def test_report_has_every_section_and_only_inline_pngs(report_html: Path) -> None:
    html = report_html.read_text(encoding="utf-8")
    assert '<meta charset="utf-8">' in html
    for marker in ('id="data"', 'id="model-digits"', "Metrics across versions", "Feedback", "like rate"):
        assert marker in html, marker
    assert "image-near-dup" in html and "CC-BY-SA-3.0" in html  # cleaning steps, licenses
    assert 'class="chart loss"' in html and 'class="chart feedback"' in html
    assert "83.3%" in html  # 5 likes, 1 dislike
    assert not EXTERNAL.search(html), EXTERNAL.search(html)
    uris = DATA_URI.findall(html)
    pngs = [base64.b64decode(data) for kind, data in uris if kind == "image/png"]
    assert len(pngs) >= 8  # labels ×3, metric charts, loss, feedback, grid, piano roll
    for png in pngs:
        assert png.startswith(b"\x89PNG")
        with Image.open(io.BytesIO(png)) as image:
            image.verify()
    midis = [base64.b64decode(data) for kind, data in uris if kind == "audio/midi"]
    assert midis == [_midi_bytes()] and 'download="epoch-009.mid"' in html


def test_midi_notes_follow_the_tempo() -> None:
    notes = midi_notes(_midi_bytes())
    assert [pitch for _, _, pitch in notes] == [60, 62, 64, 65, 67, 69, 71, 72]
    assert notes[1][0] == pytest.approx(0.5) and notes[0][1] == pytest.approx(0.5)  # 120 bpm default


def test_gates_are_drawn_on_the_metric_chart(trained: Workspace) -> None:
    catalog = open_catalog(trained.database_url)
    plain = dict(model_sections(trained, catalog)[0].metric_charts)
    gated = dict(
        model_sections(trained, catalog, gates={"conditional_accuracy": [(">=", 0.9)]})[0].metric_charts
    )
    assert gated["conditional_accuracy"] != plain["conditional_accuracy"]  # the threshold line
    assert gated["heldout_elbo"] == plain["heldout_elbo"]  # no gate, same picture


def test_chinese_labels_draw_with_a_cjk_font() -> None:
    from matplotlib.font_manager import FontProperties, findfont

    if not WQY.is_file():
        pytest.skip(f"{WQY} is missing: `apt-get install fonts-wqy-microhei`")
    cjk = font_family()[-1]
    # findfont falls back to DejaVu Sans silently: the name must resolve to the CJK file itself.
    assert findfont(FontProperties(family=cjk), fallback_to_default=False).endswith(".ttc")
    assert bar_chart({"猫": 3, "狗": 2}, title="标签").startswith("data:image/png;base64,")


def test_newest_sample_of_each_kind(tmp_path: Path) -> None:
    assert newest_sample(tmp_path / "missing") is None
    Image.new("L", (28, 280)).save(tmp_path / "epoch-001.png")
    grid = newest_sample(tmp_path)
    assert grid is not None and grid.kind == "image" and grid.width == 56  # 640 // 280 = 2x
    (tmp_path / "epoch-002.txt").write_text("春眠不觉晓" * 400, encoding="utf-8")
    text = newest_sample(tmp_path)
    assert text is not None and text.kind == "text" and text.text is not None
    assert text.text.startswith("春眠不觉晓") and text.text.endswith("…")
    (tmp_path / "epoch-003.png").write_bytes(b"\x89PNG not really")
    broken = newest_sample(tmp_path)
    assert (
        broken is not None
        and broken.image is None
        and "cannot decode epoch-003.png" in (broken.problem or "")
    )


def test_absolute_gates_become_chart_thresholds() -> None:
    config = parse_config(
        {
            "gates": [
                {"metric": "conditional_accuracy", "rule": "at_least", "value": 0.5},
                {"metric": "fd_classifier", "rule": "at_most", "value": 30},
                {"metric": "fd_classifier", "rule": "no_worse_than_champion", "direction": "lower_is_better"},
            ]
        }
    )
    assert gates_from_config(config) == {
        "conditional_accuracy": [(">=", 0.5)],
        "fd_classifier": [("<=", 30.0)],
    }
    assert gates_from_config(parse_config({})) == {}


def test_cli_writes_one_model_and_rejects_an_unknown_one(trained: Workspace, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != DATABASE_URL_ENV}
    command = [sys.executable, "-m", "genloop.cli.main", "report", "-w", str(trained.root)]
    output = tmp_path / "digits.html"
    ok = subprocess.run(
        [*command, "-o", str(output), "--model", "digits"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert ok.returncode == 0, ok.stderr
    assert 'id="model-digits"' in output.read_text(encoding="utf-8")
    bad = subprocess.run([*command, "--model", "cats"], env=env, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2
    assert "no model named 'cats'" in bad.stderr and "digits" in bad.stderr and "Traceback" not in bad.stderr


def test_workspace_without_models_shows_data_and_what_to_run(sqlite_workspace: Workspace) -> None:
    catalog = open_catalog(sqlite_workspace.database_url)
    run_pipeline(sqlite_workspace, catalog, until="clean")
    report = gather_report(sqlite_workspace, catalog)
    assert [d.stage for d in report.datasets] == ["clean", "collect"] and report.models == []
    assert report.next_step is not None and "genloop train" in report.next_step
    output = write_report(sqlite_workspace, catalog, sqlite_workspace.root / "r.html")
    html = output.read_text(encoding="utf-8")
    assert "No model versions yet" in html and "genloop train" in html and "image-phash" in html
    with pytest.raises(NotFoundError, match="no model named 'digits'"):
        gather_report(sqlite_workspace, catalog, model="digits")


@pytest.mark.browser
def test_report_opens_from_disk_in_chromium(report_html: Path, artifacts_dir: Path) -> None:
    require_chromium()
    from playwright.sync_api import sync_playwright

    problems: list[str] = []
    shot = artifacts_dir / "report.png"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("pageerror", lambda error: problems.append(str(error)))
            page.on(
                "request",
                lambda request: (
                    None if request.url.startswith(("file://", "data:")) else problems.append(request.url)
                ),
            )
            page.goto(report_html.as_uri())
            page.wait_for_function(
                "Array.from(document.images).every(img => img.complete && img.naturalWidth > 0)"
            )
            assert page.locator("img.chart").count() >= 6
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    assert problems == []
    with Image.open(shot) as image:
        low, high = zip(*image.convert("RGB").getextrema(), strict=True)
    assert max(high) - min(low) > 100  # not one flat colour: text and charts were drawn
