from pathlib import Path

import pytest
from pydantic import ValidationError

from genloop.config import GenloopConfig, load_config, parse_config
from genloop.errors import ConfigError


def test_defaults_are_valid_and_complete() -> None:
    config = parse_config({})
    assert config.train.family == "vae"
    assert config.pipeline.stages[0] == "collect" and config.pipeline.stages[-1] == "publish"


def test_error_names_file_section_field_and_value(tmp_path: Path) -> None:
    path = tmp_path / "genloop.toml"
    path.write_text("[train]\nepochs = -3\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = str(caught.value)
    assert str(path) in message
    assert "[train].epochs" in message
    assert "-3" in message


def test_unknown_keys_are_errors_not_silently_ignored(tmp_path: Path) -> None:
    path = tmp_path / "genloop.toml"
    path.write_text('[train]\nepocks = 3\n[colect]\nsource = "x"\n', encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert "[train].epocks: unknown key" in str(caught.value)
    assert "[colect]: unknown key" in str(caught.value)


def test_invalid_toml_syntax_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "genloop.toml"
    path.write_text("[train\nepochs = 3\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="invalid TOML"):
        load_config(path)


def test_non_utf8_config_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "genloop.toml"
    path.write_bytes('[project]\nname = "数字"\n'.encode("gbk"))
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_config(path)


def test_missing_config_says_how_to_create_one(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path / "genloop.toml")
    assert caught.value.hint and "genloop init" in caught.value.hint


@pytest.mark.parametrize(
    ("stages", "fragment"),
    [
        (["collect", "train"], "first N stages"),
        (["collect", "paint"], "unknown stage"),
        ([], "first N stages"),
    ],
)
def test_pipeline_stages_must_be_a_prefix_of_the_loop(stages: list[str], fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        parse_config({"pipeline": {"stages": stages}})


def test_config_is_immutable() -> None:
    config = GenloopConfig()
    with pytest.raises(ValidationError, match="frozen"):
        config.train.epochs = 9  # type: ignore[misc]
