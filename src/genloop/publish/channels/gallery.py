"""The built-in gallery channel: published items appear on the web console's public pages.

Publishing writes the published copy (GB 45438 `ContentPropagator` / `PropagateID` filled,
see `publish.propagate`) and the Publication row; the gallery page lists it from there.
Items waiting for review, or rejected, are refused: only `ready` and `approved` items go out.
"""

from __future__ import annotations

from genloop.catalog import Catalog
from genloop.publish.channels.registry import ChannelSetup, register_channel
from genloop.publish.publication import place


@register_channel("gallery")
class GalleryChannel:
    def __init__(self, setup: ChannelSetup) -> None:
        self.setup = setup
        self.name = setup.name

    def publish(self, catalog: Catalog, content_item_id: str, *, arm: str | None = None) -> str:
        return place(self.setup, catalog, content_item_id, arm=arm).publication_id
