"""The feed channel: publications on it are listed, newest first, as a JSON Feed 1.1 and an
RSS 2.0 document at `/feeds/NAME.json` and `/feeds/NAME.rss` (see `server/api/feeds.py`).

Publishing does what the gallery does (published copy + row); the feed is read on request,
so there is nothing to push and nothing to retry.
"""

from __future__ import annotations

from genloop.catalog import Catalog
from genloop.publish.channels.registry import ChannelSetup, register_channel
from genloop.publish.publication import place


@register_channel("feed")
class FeedChannel:
    def __init__(self, setup: ChannelSetup) -> None:
        self.setup = setup
        self.name = setup.name

    def publish(self, catalog: Catalog, content_item_id: str, *, arm: str | None = None) -> str:
        return place(self.setup, catalog, content_item_id, arm=arm).publication_id
