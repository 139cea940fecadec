"""`genloop init`: write a commented genloop.toml from a template, and the folders it points at."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from genloop.config import CONFIG_FILENAME, load_config
from genloop.errors import WorkspaceError

TEMPLATES = {
    "images": ("your own images in class sub-folders", "data/images"),
    "text": ("your own text files", "data/text"),
    "mnist": ("the built-in demo: 5,000 real MNIST digits", None),
}


def template_text(template: str) -> str:
    if template not in TEMPLATES:
        raise WorkspaceError(
            f"unknown template {template!r}", hint=f"templates: {', '.join(sorted(TEMPLATES))}"
        )
    return resources.files("genloop").joinpath("templates", f"{template}.toml").read_text(encoding="utf-8")


def init_workspace(root: Path, template: str, *, name: str | None = None, force: bool = False) -> Path:
    """Create `root/genloop.toml` (and the data folder the template reads); returns its path."""
    text = template_text(template)
    config_path = root / CONFIG_FILENAME
    if config_path.exists() and not force:
        raise WorkspaceError(
            f"{config_path} already exists", hint="use --force to overwrite it, or pick another folder"
        )
    if name:
        default_name = load_config_text_name(text)
        text = text.replace(f'name = "{default_name}"', f'name = "{name}"', 1)
    root.mkdir(parents=True, exist_ok=True)
    config_path.write_text(text, encoding="utf-8")
    load_config(config_path)  # the template plus --name must be valid, or we say so now
    data_dir = TEMPLATES[template][1]
    if data_dir:
        (root / data_dir).mkdir(parents=True, exist_ok=True)
    gitignore = root / ".gitignore"
    if not gitignore.exists():
        gitignore.write_text(".genloop/\n", encoding="utf-8")
    return config_path


def load_config_text_name(text: str) -> str:
    import tomllib

    return str(tomllib.loads(text)["project"]["name"])
