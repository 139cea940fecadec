"""Text post-processors on Chinese and English: exact outputs, bad parameters, chains from config."""

from collections.abc import Mapping
from pathlib import Path

import pytest

from genloop.errors import GenloopError
from genloop.generate.artifact import Artifact
from genloop.generate.postprocess.registry import build_chain, build_processor, run_chain


def run(spec: str | Mapping[str, object], text: str) -> str:
    artifact = Artifact(content_id="t1", modality="text", data=text, format="txt", meta={"seed": 7})
    out = build_processor(spec, "text").apply(artifact)
    assert (out.format, out.meta) == ("txt", {"seed": 7})  # text processors change only the body
    return out.text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("我们  今天 去 公园 ,天气很好.你去吗?", "我们今天去公园，天气很好。你去吗？"),
        ("我喜欢Python. 你呢?版本是3.14,对吗", "我喜欢Python。你呢？版本是3.14，对吗"),
        ("使用(Python)语言, f(x)的值是(很大)", "使用（Python）语言，f(x)的值是（很大）"),
        ("ＧＰＴ４ 很好用...", "GPT4 很好用……"),
        ("访问 http://example.com:8080 ,好吗", "访问 http://example.com:8080，好吗"),
        ("1. 第一步:打开文件", "1. 第一步：打开文件"),
        ("Hello ,  world !How are you ?", "Hello, world! How are you?"),
        ("Hello，world。Next one！", "Hello, world. Next one!"),
        ("It costs 3.50 , or 1,000 yen ( about ) .", "It costs 3.50, or 1,000 yen (about)."),
        ("  first\t line  \n\n\n\n  second  ", "first line\n\nsecond"),
    ],
)
def test_punctuation_repairs_whitespace_and_width(text: str, expected: str) -> None:
    assert run("punctuation", text) == expected


@pytest.mark.parametrize(
    ("simplified", "traditional"),
    [
        ("头发", "頭髮"),
        ("发展", "發展"),
        ("后来", "後來"),
        ("里面", "裡面"),
        ("这个里面有很多头发。", "這個裡面有很多頭髮。"),
    ],
)
def test_chinese_script_converts_both_ways(simplified: str, traditional: str) -> None:
    assert run({"name": "chinese-script", "to": "traditional"}, simplified) == traditional
    assert run({"name": "chinese-script", "to": "simplified"}, traditional) == simplified


def test_chinese_script_variants() -> None:
    assert (
        run({"name": "chinese-script", "to": "traditional", "variant": "standard"}, "里面的面条")
        == "裏面的麪條"
    )
    assert run({"name": "chinese-script", "to": "traditional"}, "里面的面条") == "裡面的麵條"
    assert run({"name": "chinese-script", "to": "simplified"}, "裏面 and English") == "里面 and English"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("I like cats. I like cats. I like cats. Dogs too.", "I like cats. Dogs too."),
        ("我爱你。我爱你！今天很好。我爱你。", "我爱你。今天很好。"),
        ("line one\nLine  one\nline two", "line one\nline two"),
        ("I went home and then and then and then and th", "I went home and then"),
        ("我爱你我爱你我爱你我爱", "我爱你"),
        ("好的。哈哈哈哈哈哈哈", "好的。哈"),
        ("哈哈哈", "哈哈哈"),  # three is laughter, not a loop
        ("very very good", "very very good"),
    ],
)
def test_trim_repetition(text: str, expected: str) -> None:
    assert run("trim-repetition", text) == expected


@pytest.mark.parametrize(
    ("limit", "text", "expected"),
    [
        (14, "今天天气很好。我们去公园散步。然后回家吃饭。", "今天天气很好。"),  # 7 + 8 > 14
        (15, "今天天气很好。我们去公园散步。然后回家吃饭。", "今天天气很好。我们去公园散步。"),
        (10, "今天天气很好，我们去公园散步，然后回家吃饭。", "今天天气很好"),
        (6, "我们使用Transformer模型", "我们使用"),
        (6, "The cat sat. The dog ran away fast. Done.", "The cat sat."),
        (6, "The cat sat on the mat, and the dog ran away.", "The cat sat on the mat"),
        (50, "Short enough.", "Short enough."),
    ],
)
def test_max_length_cuts_on_a_sentence_boundary(limit: int, text: str, expected: str) -> None:
    assert run({"name": "max-length", "limit": limit}, text) == expected


def test_max_length_unit_can_be_forced() -> None:
    assert run({"name": "max-length", "limit": 5, "unit": "chars"}, "Hi. Goodbye now.") == "Hi."


def test_banned_words_whole_word_any_case_and_chinese_substrings(tmp_path: Path) -> None:
    listing = tmp_path / "banned.txt"
    listing.write_text("# one a line\nbad word\n坏蛋\n\n", encoding="utf-8")
    spec = {"name": "banned-words", "words": ["damn"], "file": str(listing), "replacement": "[x]"}
    text = "Damn it, damned BAD  word badword 我damn你, 你这个坏蛋坏蛋"
    assert run(spec, text) == "[x] it, damned [x] badword 我[x]你, 你这个[x][x]"


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ({"name": "chinese-script", "to": "cantonese"}, "simplified"),
        ({"name": "chinese-script", "to": "traditional", "variant": "macau"}, "taiwan"),
        ({"name": "trim-repetition", "min_repeats": 1}, "min_repeats"),
        ({"name": "max-length", "limit": 0}, "limit"),
        ({"name": "max-length", "limit": 5, "unit": "tokens"}, "unit"),
        ({"name": "banned-words"}, "no banned words"),
        ({"name": "banned-words", "words": "damn"}, "list of strings"),
        ({"name": "banned-words", "file": "/nonexistent/banned.txt"}, "does not exist"),
        ({"name": "punctuation", "fix": True}, "bad parameters"),
    ],
)
def test_bad_parameters_are_refused_clearly(spec: dict[str, object], words: str) -> None:
    with pytest.raises(GenloopError, match=words) as caught:
        build_processor(spec, "text")
    assert repr(spec["name"]) in str(caught.value)


def test_a_chain_from_config_specs_runs_in_order() -> None:
    chain = build_chain(
        [
            "punctuation",
            {"name": "chinese-script", "to": "traditional"},
            "trim-repetition",
            {"name": "banned-words", "words": ["頭髮"], "replacement": "□"},
            {"name": "max-length", "limit": 12},
        ],
        "text",
    )
    artifact = Artifact(
        content_id="t2", modality="text", data="后来 我 剪了 头发.后来我剪了头发!里面很好", format="txt"
    )
    assert run_chain(chain, artifact).text == "後來我剪了□。裡面很好"


def test_text_processors_refuse_other_modalities() -> None:
    with pytest.raises(GenloopError, match="does not take image"):
        build_processor("punctuation", "image")
    with pytest.raises(GenloopError, match="does not take music"):
        build_chain([{"name": "max-length", "limit": 3}], "music")


def test_sentences_keep_abbreviations_and_short_repeats() -> None:
    assert (
        run("trim-repetition", "Mr. Smith left. Mr. Jones stayed. Yes. Yes.")
        == "Mr. Smith left. Mr. Jones stayed. Yes. Yes."
    )
    assert run({"name": "max-length", "limit": 4}, "Dr. Who came in. Then left.") == "Dr. Who came in."
