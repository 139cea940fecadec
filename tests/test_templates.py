"""Every shipped genloop.toml template is valid and commented (torchtune's habit: test every config)."""

import tomllib

import pytest

from genloop.config import parse_config
from genloop.workspace_init import TEMPLATES, template_text


@pytest.mark.parametrize("template", sorted(TEMPLATES))
def test_template_is_valid_and_commented(template: str) -> None:
    text = template_text(template)
    config = parse_config(tomllib.loads(text), source=f"templates/{template}.toml")
    assert config.pipeline.stages[0] == "collect"
    commented = [line for line in text.splitlines() if "#" in line]
    assert len(commented) >= 10, "a template explains its keys"


def test_text_template_declares_only_stages_text_can_run_today() -> None:
    config = parse_config(tomllib.loads(template_text("text")))
    assert config.pipeline.stages == ["collect", "clean", "annotate", "train", "evaluate", "generate"]
    assert config.train.family == "gpt"
    assert config.annotate.require_labels is False
