"""The built-in gallery channel: published items appear on the web console's gallery page.

Publishing fills the GB 45438 propagator fields in the catalogued label
(`ContentPropagator`, `PropagateID`); the file itself keeps the producer's label. Items
waiting for review, or rejected, are refused: only `ready` and `approved` items go out.
"""

from __future__ import annotations

from genloop.catalog import Catalog
from genloop.catalog.models import ContentItem, Publication
from genloop.errors import GenloopError, NotFoundError
from genloop.generate.review import PUBLISHABLE
from genloop.publish.channels.registry import register_channel
from genloop.storage import stable_hash


@register_channel("gallery")
class GalleryChannel:
    name = "gallery"

    def publish(self, catalog: Catalog, content_item_id: str) -> str:
        publication_id = stable_hash({"content": content_item_id, "channel": self.name}, 24)
        with catalog.session() as session:
            if session.get(Publication, publication_id) is not None:
                return publication_id
            item = session.get(ContentItem, content_item_id)
            if item is None:
                raise NotFoundError(f"content item {content_item_id!r} is not in the catalog")
            if item.status not in PUBLISHABLE:
                raise GenloopError(
                    f"content item {content_item_id} is {item.status}: it cannot be published",
                    hint=f"a reviewer must approve it first: genloop review approve {content_item_id}",
                )
            item.status = "published"
            session.add(Publication(id=publication_id, content_item_id=item.id, channel=self.name))
            propagated = dict(item.labels)
            aigc = dict(propagated.get("implicit", {}).get("AIGC", {}))
            aigc.update(ContentPropagator="genloop-gallery", PropagateID=publication_id)
            propagated["propagated"] = {"AIGC": aigc}
            item.labels = propagated
        return publication_id
