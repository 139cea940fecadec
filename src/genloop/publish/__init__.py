"""Publishing content items on channels."""

from __future__ import annotations

from collections.abc import Iterable

from genloop.catalog import Catalog
from genloop.publish.channels.registry import get_channel


def publish_items(catalog: Catalog, content_item_ids: Iterable[str], channel: str = "gallery") -> list[str]:
    """Publish each item on `channel` (idempotent); return the publication ids."""
    target = get_channel(channel)
    return [target.publish(catalog, item_id) for item_id in content_item_ids]
