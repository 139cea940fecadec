"""A channel's policy decides the chain and the checks per modality."""

from __future__ import annotations

import tomllib
from typing import Any

from genloop.config import parse_config
from genloop.generate.finish import ChannelPlan
from genloop.generate.safety.registry import DEFAULT_CHECKS

POLICY = """
[channels.shop]
postprocess.image = [{name = "resize", size = 128}, {name = "format", format = "jpeg", quality = 75}]
safety.text = ["blocklist"]
safety.music = []
review = "always"
"""


def plan(modality: str) -> ChannelPlan:
    config = parse_config(tomllib.loads(POLICY))
    contexts: Any = None  # the plan only carries the contexts to the checks and labels it runs
    return ChannelPlan.build(
        config, channel="shop", modality=modality, safety_context=contexts, label_context=contexts
    )


def test_named_modalities_get_their_chain_and_checks() -> None:
    image = plan("image")
    assert [p.name for p in image.chain] == ["resize", "format"] and image.review == "always"
    assert [c.name for c in plan("text").checks] == ["blocklist"]
    assert plan("music").checks == []  # `[]` runs none


def test_a_modality_the_policy_leaves_out_keeps_its_default_checks() -> None:
    assert [c.name for c in plan("image").checks] == DEFAULT_CHECKS["image"] != []
