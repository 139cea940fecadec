"""CSV import of an ad platform's export, on a real catalog (SQLite and PostgreSQL)."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from genloop.catalog import Catalog
from genloop.catalog.models import FeedbackEvent
from genloop.feedback.analytics import feedback_stats
from genloop.feedback.importer import (
    ImportFormatError,
    decode_csv,
    import_feedback_csv,
    parse_mapping,
    parse_rows,
)

MAP = "creative=Creative_ID,impressions=Impr,clicks=Clicks,likes=Likes,date=Day"
REPORT = (
    "Creative_ID,Day,Impr,Clicks,Likes\n"
    "p-a,2025-11-03,10,2,1\n"
    'item-p-c,2025-11-04,"1,000",0,-\n'  # a content item id with one publication; thousands separator
    "ghost-creative,2025-11-04,5,1,0\n"
    "p-b,2025-11-04,0,0,3\n"
)


def count(catalog: Catalog) -> int:
    with catalog.session() as session:
        return session.scalar(select(func.count()).select_from(FeedbackEvent)) or 0


def test_import_maps_counts_onto_publications_and_reimport_stores_nothing(chain: Catalog) -> None:
    report = import_feedback_csv(chain, REPORT.encode(), name="ads.csv", mapping=MAP)
    assert report.rows == 4
    assert report.by_kind == {"impression": 1010, "click": 2, "like": 4}
    assert report.stored == report.events == 1016
    assert [(u.row, u.creative) for u in report.unknown] == [(4, "ghost-creative")]
    assert "neither a publication id" in report.unknown[0].reason
    assert count(chain) == 1016

    with chain.session() as session:
        event = session.scalars(select(FeedbackEvent).where(FeedbackEvent.kind == "click")).first()
        assert event is not None
        assert event.publication_id == "p-a"
        assert event.meta == {"import": "ads.csv", "row": 2}
        assert event.viewer_id.startswith(f"import:{report.sha256}:2:click:")
    per_day = {
        (r.group["model_version"], r.group["day"]): r
        for r in feedback_stats(chain, by=["model_version", "day"])
    }
    assert per_day[("digits-v1", "2025-11-03")].ctr == pytest.approx(0.2)
    assert per_day[("digits-v2", "2025-11-04")].impressions == 1000
    assert per_day[("digits-v1", "2025-11-04")].likes == 3  # one like per imported viewer: none merged

    again = import_feedback_csv(chain, REPORT.encode(), name="renamed.csv", mapping=MAP)
    assert (again.stored, again.already_stored) == (0, 1016)
    assert count(chain) == 1016


@pytest.mark.parametrize(
    ("text", "mapping", "message"),
    [
        (
            "Creative_ID;Impr;Clicks\np-a;1;2\n",
            "creative=Creative_ID,clicks=Clicks",
            "separated by something other",
        ),
        ("Creative_ID,Impr\np-a,1\n", "creative=Creative_ID,clicks=Clicks", "'Clicks' not in the file"),
        (
            "Creative_ID,Clicks\np-a,1\np-b,many\n",
            "creative=Creative_ID,clicks=Clicks",
            "row 3, column 'Clicks'",
        ),
        ("Creative_ID,Clicks\np-a,1.5\n", "creative=Creative_ID,clicks=Clicks", "not a count"),
        ("Creative_ID,Clicks\np-a,-3\n", "creative=Creative_ID,clicks=Clicks", "not a count"),
        ("Creative_ID,Clicks\np-a,1,9\n", "creative=Creative_ID,clicks=Clicks", "row 2 has 3 fields"),
        ("Creative_ID,Clicks\n,1\n", "creative=Creative_ID,clicks=Clicks", "creative id is empty"),
        (
            "Creative_ID,Clicks,Day\np-a,1,yesterday\n",
            "creative=Creative_ID,clicks=Clicks,date=Day",
            "not a date",
        ),
        ("", "creative=Creative_ID,clicks=Clicks", "empty"),
        ("Creative_ID,Clicks\np-a,1\n", "clicks=Clicks", "needs creative=COLUMN"),
        ("Creative_ID,Clicks\np-a,1\n", "creative=Creative_ID", "no count column"),
        (
            "Creative_ID,Clicks\np-a,1\n",
            "creative=Creative_ID,shares=Clicks",
            "unknown mapping target 'shares'",
        ),
        ("Creative_ID,Clicks\np-a,1\n", "creative", "not TARGET=COLUMN"),
        (
            'Creative_ID,Clicks\n"p-a' + "x" * 200_000 + ",1\n",
            "creative=Creative_ID,clicks=Clicks",
            "row 2",  # csv's field-size limit is process-wide: "cannot be read" or "has 1 fields"
        ),
    ],
)
def test_malformed_files_name_row_and_column(text: str, mapping: str, message: str) -> None:
    with pytest.raises(ImportFormatError, match=message):
        parse_rows(decode_csv(text.encode()), parse_mapping(mapping))


def test_a_malformed_last_row_stores_nothing(chain: Catalog) -> None:
    text = "Creative_ID,Clicks\np-a,1\np-b,2\np-c,lots\n"
    with pytest.raises(ImportFormatError, match="row 4, column 'Clicks'"):
        import_feedback_csv(
            chain, text.encode(), name="bad.csv", mapping="creative=Creative_ID,clicks=Clicks"
        )
    assert count(chain) == 0


def test_gbk_file_with_chinese_headers(chain: Catalog) -> None:
    text = "创意ID,展示,点击\np-d,4,1\n"
    report = import_feedback_csv(
        chain, text.encode("gbk"), name="投放.csv", mapping="creative=创意ID,impressions=展示,clicks=点击"
    )
    assert report.stored == 5
    assert decode_csv("\ufeffa,b".encode()) == "a,b"  # Excel's UTF-8 BOM is dropped


def test_binary_and_undecodable_files_are_refused(chain: Catalog) -> None:
    with pytest.raises(ImportFormatError, match="NUL bytes"):
        import_feedback_csv(chain, b"PK\x03\x04\x00\x00", name="x.xlsx", mapping="creative=a,clicks=b")
    with pytest.raises(ImportFormatError, match="neither UTF-8 nor GBK"):
        decode_csv(b"\xff\xfe\xfd\xfc")
    assert count(chain) == 0


def test_parse_mapping_and_dry_run(chain: Catalog) -> None:
    assert parse_mapping(" creative = id , clicks = Clicks ") == {"creative": "id", "clicks": "Clicks"}
    report = import_feedback_csv(
        chain, b"id,Clicks\np-a,3\n", name="d.csv", mapping="creative=id,clicks=Clicks", dry_run=True
    )
    assert (report.events, report.stored) == (3, 0)
    assert count(chain) == 0
