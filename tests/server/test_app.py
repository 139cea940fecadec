"""The app's routes answer disjoint requests, so the order they are tried in changes no answer.

`create_app` puts the routes called under load first (feedback, publications, text
generation, static files): routing walks the routes in order. That reordering is only safe
while no request can match two routes; this checks it for every route and method.
"""

from __future__ import annotations

import re
from pathlib import Path

from starlette.routing import BaseRoute, Mount

from genloop.server.app import create_app
from genloop.workspace import Workspace

SAMPLE_BY_CONVERTOR = {
    "int": "7",
    "float": "7.5",
    "path": "a/b",
    "uuid": "0" * 8 + "-0000-0000-0000-" + "0" * 12,
}


def _flat(routes: list[BaseRoute]) -> list[BaseRoute]:
    """Every route with its full path: included routers' routes in place of the router."""
    flat: list[BaseRoute] = []
    for route in routes:
        included = getattr(getattr(route, "original_router", None), "routes", None)
        flat.extend(_flat(included) if included is not None else [route])
    return flat


def _sample_path(path: str) -> str:
    """A concrete path the route template matches: `{content_id}` → `sample`, `{n:int}` → `7`."""

    def value(match: re.Match[str]) -> str:
        convertor = match.group(2) or "str"
        return SAMPLE_BY_CONVERTOR.get(convertor, "sample")

    return re.sub(r"\{(\w+)(?::(\w+))?\}", value, path)


def test_no_request_matches_two_routes(tmp_path: Path) -> None:
    (tmp_path / "genloop.toml").write_text('[project]\nname = "routes"\n', encoding="utf-8")
    routes = _flat(create_app(Workspace(tmp_path)).routes)
    assert len(routes) > 50  # the API, the console, the pages, /static

    def answers(route: BaseRoute, path: str, method: str) -> bool:
        regex = getattr(route, "path_regex", None)
        if regex is None or not regex.match(path):
            return False
        methods = getattr(route, "methods", None)
        return isinstance(route, Mount) or methods is None or method in methods

    overlaps = []
    for route in routes:
        template = route.path + "/sample" if isinstance(route, Mount) else str(getattr(route, "path", ""))
        path = _sample_path(template)
        for method in sorted(getattr(route, "methods", None) or {"GET"}):
            matching = [other for other in routes if answers(other, path, method)]
            assert route in matching, (method, path)  # the sample really is the route's
            if len(matching) > 1:
                overlaps.append((method, path, [getattr(other, "path", other) for other in matching]))
    assert overlaps == []
