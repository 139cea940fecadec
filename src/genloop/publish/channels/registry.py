"""Channels: where published content goes. One-method contract, one small registry keyed by kind.

    class Channel(Protocol):
        name: str
        def publish(self, catalog, content_item_id, *, arm=None) -> str   # the publication id

A channel is a `[channels.NAME]` section of genloop.toml; its `kind` (gallery, folder,
webhook, feed; `ChannelPolicy.channel_kind(name)`) picks the factory registered here, which
gets the channel's `ChannelSetup` (name, policy, workspace, config). Built-in kinds register
the same way a plugin would (`@register_channel("folder")`).

Channel names and content ids become parts of URLs, catalog rows and file names, so both
are checked against a strict pattern here: `../x` is refused before anything is touched.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from genloop.catalog import Catalog
from genloop.config import ChannelPolicy, GenloopConfig
from genloop.errors import ConfigError, GenloopError
from genloop.workspace import Workspace

CHANNEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
CONTENT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
ARM_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
BUILT_IN_KINDS = ("gallery", "folder", "webhook", "feed")


class Channel(Protocol):
    name: str

    def publish(self, catalog: Catalog, content_item_id: str, *, arm: str | None = None) -> str: ...


@dataclass(frozen=True)
class ChannelSetup:
    """What a channel factory gets: the channel's name, its policy and where it publishes from.

    `workspace` is None only for catalog-only callers (old API): then no published copy is
    written and kinds that need files (folder) refuse.
    """

    name: str
    policy: ChannelPolicy
    config: GenloopConfig
    workspace: Workspace | None = None


ChannelFactory = Callable[[ChannelSetup], Channel]
_CHANNELS: dict[str, ChannelFactory] = {}


def register_channel(kind: str) -> Callable[[ChannelFactory], ChannelFactory]:
    def decorate(factory: ChannelFactory) -> ChannelFactory:
        _CHANNELS[kind] = factory
        return factory

    return decorate


def check_channel_name(name: str) -> str:
    if not isinstance(name, str) or not CHANNEL_NAME.fullmatch(name):
        raise GenloopError(
            f"invalid channel name {name!r}",
            hint="channel names are 1–64 letters, digits, '-' or '_' (a [channels.NAME] section)",
        )
    return name


def check_content_id(content_item_id: str) -> str:
    if not isinstance(content_item_id, str) or not CONTENT_ID.fullmatch(content_item_id):
        raise GenloopError(
            f"invalid content item id {content_item_id!r}",
            hint="content ids are 1–64 letters, digits, '-' or '_' (see `genloop review ls --status any`)",
        )
    return content_item_id


def check_arm(arm: str | None) -> str | None:
    if arm is not None and not ARM_NAME.fullmatch(arm):
        raise GenloopError(
            f"invalid A/B arm {arm!r}", hint="arms are 1–64 letters, digits, '.', '-' or '_' (e.g. A, B)"
        )
    return arm


def _load_built_ins() -> None:
    for kind in BUILT_IN_KINDS:
        importlib.import_module(f"genloop.publish.channels.{kind}")


def get_channel(
    name: str, *, workspace: Workspace | None = None, config: GenloopConfig | None = None
) -> Channel:
    """The channel `name` as configured in `config` (default: the workspace's, else defaults)."""
    _load_built_ins()
    check_channel_name(name)
    if config is None:
        config = workspace.config if workspace is not None else GenloopConfig()
    if name not in config.channels and name not in BUILT_IN_KINDS:
        raise ConfigError(
            f"unknown publication channel {name!r}",
            hint=f"configured channels: {', '.join(sorted(config.channels)) or 'none'}; "
            f'add a [channels.{name}] section with kind = "gallery" | "folder" | "webhook" | "feed"',
        )
    policy = config.channel_policy(name)
    kind = policy.channel_kind(name)
    if kind not in _CHANNELS:
        raise ConfigError(
            f"channel {name!r} has kind {kind!r}, which no installed channel provides",
            hint=f"kinds: {', '.join(sorted(_CHANNELS))}",
        )
    return _CHANNELS[kind](ChannelSetup(name, policy, config, workspace))
