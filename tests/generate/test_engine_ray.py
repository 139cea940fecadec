"""The Ray actor-pool executor gives the same items, to the byte, as the local one."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from genloop.catalog import open_catalog
from genloop.generate.engine import GenerationRequest, generate
from genloop.workspace import Workspace
from support.tiny_generators import register_tiny


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def test_two_ray_workers_make_what_the_local_executor_makes(
    local_ray: None, sqlite_workspace: Workspace, tmp_path: Path
) -> None:
    catalog = open_catalog(sqlite_workspace.database_url)
    version = register_tiny(sqlite_workspace, catalog, "gan", tmp_path)
    request = GenerationRequest(model=version, per_class=3, seed=4)
    on_ray = generate(sqlite_workspace, catalog, request, executor="ray", workers=2, batch_size=2)
    assert on_ray.created == 9 and len({item.id for item in on_ray}) == 9
    made = {item.id: item.path.read_bytes() for item in on_ray}
    for item in on_ray:
        item.path.unlink()
    local = generate(sqlite_workspace, catalog, request, batch_size=64)
    assert local.created == 9
    assert {item.id: item.path.read_bytes() for item in local} == made
    assert generate(sqlite_workspace, catalog, request, executor="ray", workers=2).created == 0  # resumes
