"""Does a feedback batch cost the same at 1,000 stored events as at 30,000? In-process, no HTTP.

    python benchmarks/feedback_batch_growth.py                      # SQLite and PostgreSQL
    python benchmarks/feedback_batch_growth.py --backends postgres --batches 3000
    PYTHONPATH=<an older tree>/src python benchmarks/feedback_batch_growth.py   # side by side

Fills a fresh catalog (SQLite in a temporary workspace; PostgreSQL in a fresh database,
dropped afterwards) with `--batches` batches of 10 events through what `POST
/api/v1/feedback/batch` runs (`record_feedback_batch` in `feedback_transaction`), each event
a new viewer with a new idempotency key, and prints the mean wall time per batch for each
window of `--window` batches: a flat column means the cost does not grow with the table.
Then, on the filled table, batches of 10, 25, 50 and 100 events: their time per batch.

Two bugs this caught (2026-11-29): on PostgreSQL a prepared statement's generic plan chosen
while the table was small (a sequential scan) stayed in use as it grew; on SQLite, which
keeps no statistics, a batch with more viewers than items chose the item index and read all
of those items' events. Autovacuum may be off on a test server (it is here), so nothing
re-plans behind the benchmark's back.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from feedback_ingestion import backend, event_body, seed, viewer_id  # benchmarks/ is on sys.path when run


def fill_and_time(name: str, batches: int, window: int) -> None:
    from genloop.catalog import open_catalog
    from genloop.feedback.batch import NewEvent, record_feedback_batch
    from genloop.feedback.events import feedback_transaction

    with tempfile.TemporaryDirectory(prefix="genloop-growth-") as tmp, backend(name, Path(tmp)) as url:
        root = Path(tmp) / "ws"
        (root / ".genloop").mkdir(parents=True)
        publications, _ = seed(root, url)
        catalog = open_catalog(url)

        def store(prefix: str, number: int, size: int) -> None:
            events = [
                NewEvent(**event_body(publications, prefix, i), viewer_id=viewer_id(prefix, i))
                for i in range(number * size, (number + 1) * size)
            ]
            with feedback_transaction(catalog) as connection:
                record_feedback_batch(connection, events)

        print(f"\n{name}: batches of 10, mean ms per batch by stored events")
        print("| stored events (end of window) | ms / batch |")
        print("|---:|---:|")
        started = time.perf_counter()
        for number in range(batches):
            store("fill-", number, 10)
            if (number + 1) % window == 0:
                ms = (time.perf_counter() - started) / window * 1000
                print(f"| {(number + 1) * 10:,} | {ms:.2f} |", flush=True)
                started = time.perf_counter()
        print(f"\n{name}: on {batches * 10:,} stored events, 20 batches of each size")
        print("| events per batch | ms / batch |")
        print("|---:|---:|")
        for size in (10, 25, 50, 100):
            started = time.perf_counter()
            for number in range(20):
                store(f"size{size}-", number, size)
            print(f"| {size} | {(time.perf_counter() - started) / 20 * 1000:.2f} |")
        catalog.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backends", default="sqlite,postgres", help="comma-separated: sqlite, postgres")
    parser.add_argument("--batches", type=int, default=3000, help="batches of 10 to fill the table with")
    parser.add_argument("--window", type=int, default=500, help="batches per printed mean")
    args = parser.parse_args()
    for name in args.backends.split(","):
        fill_and_time(name, args.batches, args.window)
    print(f"\ncommand: python benchmarks/feedback_batch_growth.py {' '.join(sys.argv[1:])}".rstrip())


if __name__ == "__main__":
    main()
