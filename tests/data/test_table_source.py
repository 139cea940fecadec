"""`table` source: CSV/TSV/JSONL/Parquet with a column mapping, and every kind of bad input.

Each bad-input test writes a real file and checks three things a user would notice:
the problem names the file and the line (or row), the collection continues, and every
good row is kept.
"""

from __future__ import annotations

import os
import tracemalloc
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from genloop.catalog import open_catalog
from genloop.config import CollectConfig
from genloop.data.collect import collect
from genloop.data.record import Record
from genloop.data.sources.registry import get_source
from genloop.data.sources.table_lines import MESSAGES_PER_FILE, detect_encoding
from genloop.errors import ConfigError, DataError
from genloop.pipeline.fingerprint import source_fingerprint
from genloop.workspace import Workspace


def write(ws: Workspace, name: str, content: bytes) -> Path:
    path = ws.root / "data" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path


def table_cfg(path: str | None = "data", **changes: object) -> CollectConfig:
    base = {"source": "table", "path": path, "modality": "text", "license": "CC0-1.0"}
    return CollectConfig.model_validate(base | changes)


def read(ws: Workspace, cfg: CollectConfig) -> tuple[list[Record], list[str]]:
    problems: list[str] = []
    return list(get_source("table")(ws, cfg, problems)), problems


def texts(records: list[Record]) -> list[str]:
    return [r.payload.decode("utf-8") for r in records]


@pytest.mark.parametrize("encoding", ["gbk", "gb18030", "utf-8-sig", "utf-8"])
def test_chinese_csv_in_each_encoding_reads_the_same(sqlite_workspace: Workspace, encoding: str) -> None:
    content = "text,label\n质量很好，物流很快,好评\n包装破损，不推荐,差评\n"
    write(sqlite_workspace, "reviews.csv", content.encode(encoding))
    records, problems = read(sqlite_workspace, table_cfg("data/reviews.csv"))
    assert problems == []
    assert texts(records) == ["质量很好，物流很快", "包装破损，不推荐"]
    assert [r.label for r in records] == ["好评", "差评"]  # the BOM did not glue itself to "text"
    assert records[0].meta == {"path": "data/reviews.csv", "line": 2}


def test_encoding_detection_order() -> None:
    assert detect_encoding("中文".encode()) == "utf-8"
    assert detect_encoding(b"\xef\xbb\xbfa,b") == "utf-8-sig"
    assert detect_encoding("中文".encode("gbk")) == "gbk"
    assert detect_encoding("中文€".encode("gb18030")) == "gb18030"  # € is not in GBK


def test_a_gbk_line_in_a_utf8_file_falls_back_with_a_message(sqlite_workspace: Workspace) -> None:
    content = b"text\nplain\n" + "中文".encode("gbk") + b"\n" + "好".encode() + b"\n"
    write(sqlite_workspace, "mixed.csv", content)
    records, problems = read(sqlite_workspace, table_cfg("data/mixed.csv"))
    assert texts(records) == ["plain", "中文", "好"]
    assert problems == ["data/mixed.csv:3: not valid utf-8; decoded as gbk"]


def test_tsv_mapping_id_and_extra_columns(sqlite_workspace: Workspace) -> None:
    rows = (
        "ticket\tbody\tcategory\tchannel\n"
        "T-1\tMy order is late\tshipping\temail\nT-2\tRefund?\tbilling\tchat\n"
    )
    write(sqlite_workspace, "tickets.tsv", rows.encode())
    cfg = table_cfg("data/tickets.tsv", columns={"text": "body", "label": "category", "id": "ticket"})
    records, problems = read(sqlite_workspace, cfg)
    assert problems == []
    assert texts(records) == ["My order is late", "Refund?"]
    assert [r.label for r in records] == ["shipping", "billing"]
    assert records[1].meta == {"path": "data/tickets.tsv", "line": 3, "channel": "chat", "source_id": "T-2"}
    assert {(r.source, r.license, r.modality) for r in records} == {
        ("table:data/tickets.tsv", "CC0-1.0", "text")
    }


def test_broken_jsonl_lines_are_reported_and_the_rest_kept(sqlite_workspace: Workspace) -> None:
    lines = ['{"text": "one", "label": "a"}', '{"text": "two", "label": ', "", "[1, 2]", '{"label": "b"}']
    lines.append('{"text": "three", "license": "CC-BY-4.0", "stars": 5}')
    write(sqlite_workspace, "d.jsonl", "\n".join(lines).encode())
    records, problems = read(sqlite_workspace, table_cfg("data/d.jsonl", columns={"license": "license"}))
    assert texts(records) == ["one", "three"]
    assert [r.license for r in records] == ["CC0-1.0", "CC-BY-4.0"]  # per-row license overrides config
    assert records[1].meta == {"path": "data/d.jsonl", "line": 6, "stars": 5}
    assert problems[0] == "data/d.jsonl:2: not valid JSON (Expecting value at column 25); skipped"
    assert problems[1] == "data/d.jsonl:4: expected a JSON object, got list; skipped"
    assert problems[2].startswith("data/d.jsonl:5: no value in column 'text' (text); columns found: label")


def test_unbalanced_quotes_cost_one_row_not_the_rest_of_the_file(sqlite_workspace: Workspace) -> None:
    content = (
        'text,label\nok one,a\n"closed"junk,b\nok two,a\n"two\nlines",c\nok three,a\n'
        'four,fields,too,many\n"never closed,b\nlast,a\n'
    )
    write(sqlite_workspace, "q.csv", content.encode())
    records, problems = read(sqlite_workspace, table_cfg("data/q.csv"))
    assert texts(records) == ["ok one", "ok two", "two\nlines", "ok three", "last"]
    assert [r.meta["line"] for r in records] == [2, 4, 5, 7, 10]
    assert problems == [
        "data/q.csv:3: malformed CSV record (',' expected after '\"'); skipped",
        "data/q.csv:8: 4 field(s) where the header has 2; skipped",
        "data/q.csv:9: malformed CSV record (unbalanced quote: a quoted field never closes); skipped",
    ]


def test_a_stray_quote_closed_by_a_later_one_is_reported_where_it_opened(sqlite_workspace: Workspace) -> None:
    write(sqlite_workspace, "q.csv", b'text,label\n"stray,a\nok one,a\n"closed"junk,b\nok two,a\n')
    records, problems = read(sqlite_workspace, table_cfg("data/q.csv"))
    assert texts(records) == ["ok one", "ok two"]
    assert problems == [
        "data/q.csv:2: malformed CSV record (',' expected after '\"' on line 4; "
        "a quote opened on this line is probably unbalanced); skipped",
        "data/q.csv:4: malformed CSV record (',' expected after '\"'); skipped",
    ]


def test_an_unclosed_quote_is_cut_off_at_max_line_bytes(sqlite_workspace: Workspace) -> None:
    body = "".join(f"row {i},x\n" for i in range(200))
    write(sqlite_workspace, "long.csv", ('text,label\n"open,x\n' + body).encode())
    records, problems = read(sqlite_workspace, table_cfg("data/long.csv", max_line_bytes=200))
    assert problems[0].startswith("data/long.csv:2: malformed CSV record (record starting here spans more")
    assert len(records) == 200  # the broken record swallowed nothing


def test_missing_mapped_column_refuses_that_file_only(sqlite_workspace: Workspace) -> None:
    write(sqlite_workspace, "a.csv", b"body,category\nhello,x\n")
    write(sqlite_workspace, "b.csv", b"text,category\nworld,y\n")
    records, problems = read(sqlite_workspace, table_cfg(columns={"text": "body", "label": "category"}))
    assert texts(records) == ["hello"]
    assert problems == [
        "data/b.csv: no column 'body' (mapped as text); columns found: text, category; "
        'set [collect].columns, e.g. columns = { text = "text" }; file skipped'
    ]


def test_missing_column_in_the_only_file_is_a_clear_error(sqlite_workspace: Workspace) -> None:
    write(sqlite_workspace, "a.csv", b"body,category\nhello,x\n")
    with pytest.raises(
        DataError, match=r"no column 'text' \(mapped as text\); columns found: body, category"
    ):
        read(sqlite_workspace, table_cfg("data/a.csv"))


def test_nul_bytes_are_reported_per_line(sqlite_workspace: Workspace) -> None:
    write(sqlite_workspace, "n.csv", b"text\nfine\nbin\x00ary\nalso fine\n")
    records, problems = read(sqlite_workspace, table_cfg("data/n.csv"))
    assert texts(records) == ["fine", "also fine"]
    assert problems == ["data/n.csv:3: contains NUL bytes (binary data, or UTF-16?); skipped"]


def test_a_20_mb_line_is_refused_without_reading_it_into_memory(sqlite_workspace: Workspace) -> None:
    path = write(sqlite_workspace, "big.jsonl", b'{"text": "before"}\n')
    with path.open("ab") as handle:
        handle.write(b'{"text": "' + b"x" * 20_000_000 + b'"}\n{"text": "after"}\n')
    tracemalloc.start()
    try:
        records, problems = read(sqlite_workspace, table_cfg("data/big.jsonl"))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert texts(records) == ["before", "after"]
    assert problems == [
        "data/big.jsonl:2: line of 20 MB exceeds max_line_bytes (1 MB); skipped without reading it"
    ]
    assert peak < 5_000_000  # one bounded line (1 MB) and chunks, never the 20 MB


def test_problems_of_one_file_are_capped(sqlite_workspace: Workspace) -> None:
    write(sqlite_workspace, "bad.jsonl", b"{oops\n" * 30 + b'{"text": "ok"}\n')
    records, problems = read(sqlite_workspace, table_cfg("data/bad.jsonl"))
    assert texts(records) == ["ok"]
    assert len(problems) == MESSAGES_PER_FILE + 1
    assert problems[-1] == "data/bad.jsonl: 10 more problem(s) not shown (30 in all)"


def test_unreadable_file_is_reported_and_others_kept(
    sqlite_workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(sqlite_workspace, "a.csv", b"text\nreadable\n")
    locked = write(sqlite_workspace, "b.csv", b"text\nsecret\n")
    locked.chmod(0)
    if os.access(locked, os.R_OK):  # root reads anything: make the open fail the way it would
        real_open = Path.open

        def denied(self: Path, *args: object, **kwargs: object) -> object:
            if self == locked:
                raise PermissionError(13, "Permission denied", str(self))
            return real_open(self, *args, **kwargs)  # type: ignore[call-overload]

        monkeypatch.setattr(Path, "open", denied)
    records, problems = read(sqlite_workspace, table_cfg())
    assert texts(records) == ["readable"]
    assert problems == ["data/b.csv: cannot read (Permission denied); file skipped"]


def test_parquet_streams_by_batches_with_row_numbers_and_limit(sqlite_workspace: Workspace) -> None:
    table = pa.table({"body": [f"text {i}" for i in range(3000)], "stars": list(range(3000))})
    path = sqlite_workspace.root / "data" / "t.parquet"
    path.parent.mkdir(parents=True)
    pq.write_table(table, path, row_group_size=500)
    records, problems = read(
        sqlite_workspace, table_cfg("data/t.parquet", columns={"text": "body"}, limit=1500)
    )
    assert len(records) == 1500 and problems == []
    assert records[-1].meta == {"path": "data/t.parquet", "row": 1500, "stars": 1499}
    with pytest.raises(DataError, match=r"no column 'text' \(mapped as text\); columns found: body, stars"):
        read(sqlite_workspace, table_cfg("data/t.parquet"))


def test_image_column_reads_paths_beside_the_table(sqlite_workspace: Workspace) -> None:
    write(sqlite_workspace, "img/a.png", b"\x89PNG fake bytes")
    write(sqlite_workspace, "images.csv", b"file,label\nimg/a.png,cat\nimg/missing.png,dog\n")
    records, problems = read(sqlite_workspace, table_cfg("data/images.csv", columns={"image": "file"}))
    assert [(r.modality, r.payload, r.label) for r in records] == [("image", b"\x89PNG fake bytes", "cat")]
    assert problems == [
        "data/images.csv:3: cannot read image 'img/missing.png' (No such file or directory); skipped"
    ]


def test_bad_configuration_is_a_config_error(sqlite_workspace: Workspace) -> None:
    write(sqlite_workspace, "a.csv", b"text\nx\n")
    with pytest.raises(ConfigError, match="unknown field"):
        read(sqlite_workspace, table_cfg(columns={"body": "text"}))
    with pytest.raises(ConfigError, match="not an encoding"):
        read(sqlite_workspace, table_cfg(encoding="klingon"))
    with pytest.raises(ConfigError, match=r"\[collect\].path is not set"):
        read(sqlite_workspace, table_cfg(path=None))


def test_collect_keeps_good_rows_and_records_problems(sqlite_workspace: Workspace) -> None:
    write(sqlite_workspace, "d.jsonl", b'{"text": "a"}\n{broken\n{"text": "b"}\n')
    catalog = open_catalog(sqlite_workspace.database_url)
    result = collect(sqlite_workspace, catalog, table_cfg("data/d.jsonl"), name="t")
    assert result.problems[0].startswith("data/d.jsonl:2: not valid JSON")
    assert result.dataset.manifest["records"] == 2
    assert sorted(texts(result.dataset.records())) == ["a", "b"]


def test_fingerprint_follows_the_table_file(sqlite_workspace: Workspace) -> None:
    path = write(sqlite_workspace, "a.csv", b"text\nx\n")
    cfg = table_cfg("data/a.csv")
    before = source_fingerprint(sqlite_workspace, cfg)
    assert source_fingerprint(sqlite_workspace, cfg) == before
    path.write_bytes(b"text\nx\ny\n")
    assert source_fingerprint(sqlite_workspace, cfg) != before


def test_crlf_explicit_format_and_empty_files(sqlite_workspace: Workspace) -> None:
    write(sqlite_workspace, "a.csv", b'text,label\r\n"multi\r\nline",x\r\nplain,y\r\n')
    write(sqlite_workspace, "empty.csv", b"")
    records, problems = read(sqlite_workspace, table_cfg())
    assert texts(records) == ["multi\r\nline", "plain"]
    assert problems == ["data/empty.csv: empty file (no header line); file skipped"]
    write(sqlite_workspace, "rows.txt", b'{"text": "from a .txt"}\n')
    records, _ = read(sqlite_workspace, table_cfg("data/rows.txt", format="jsonl"))
    assert texts(records) == ["from a .txt"]
    with pytest.raises(DataError, match=r"cannot tell the format from the extension '\.txt'"):
        read(sqlite_workspace, table_cfg("data/rows.txt"))
