"""The catalog: every dataset version, run, model version, content item, publication and feedback event."""

from genloop.catalog.session import Catalog, open_catalog

__all__ = ["Catalog", "open_catalog"]
