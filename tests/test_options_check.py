"""Every numeric option is range-checked before any work, from the command line, a config file or an
API keyword alike; text files are UTF-8 (BOM-aware) and YAML cannot expand or turn keys into True."""

from __future__ import annotations

import codecs
import time

import pytest

from paulow import cli
from paulow.config import config_from_options
from paulow.errors import UsageError


def _one_error(capsys, argv) -> str:
    code = cli.main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    (line,) = err.strip().splitlines()
    assert line.startswith("error: ") and "Traceback" not in err
    return line


PROBES = [  # (command, option, value, words in the one line)
    ("train", "--depth", "40", "--depth 40 is out of range: give a whole number from 1 to 8 - fix --depth"),
    ("train", "--patch", "100000", "--patch 100000 is out of range: give a whole number from 1 to 8192"),
    ("predict", "--tile", "100000", "--tile 100000 is out of range: give a whole number from 1 to 8192"),
    ("train", "--test-fraction", "2", "--test-fraction 2.0 is out of range: give a number from 0 below 1"),
    ("train", "--test-fraction", "nan", "--test-fraction nan is out of range"),
    (
        "train",
        "--time-limit",
        "nan",
        "--time-limit nan is out of range: give a number from 0 to 525600 minutes",
    ),
    ("train", "--time-limit", "inf", "--time-limit inf is out of range"),
    ("train", "--seed", "-1", "--seed -1 is out of range: give a whole number from 0 to 4294967295"),
    (
        "train",
        "--per-epoch",
        "-5",
        "--per-epoch -5 is out of range: give a whole number from 0 to 100000000 (0 = all",
    ),
    ("train", "--workers", "-1", "--workers -1 is out of range: give a whole number from 0 to 256"),
    ("train", "--classes", "300", "--classes 300 is out of range: give a whole number from 1 to 255 (masks"),
    ("train", "--loss-args", '{"alpha":"x"}', "--loss-args: 'alpha' is 'x', not a finite number"),
    ("train", "--loss-args", "[1]", "--loss-args [1] is not a JSON object"),
    ("train", "--device", "CPU", "--device 'CPU' is not supported: choose auto, cpu or cuda[:N]"),
    ("predict", "--device", "tpu", "--device 'tpu' is not supported"),
    ("predict", "--device", "mps", "Apple mps"),
    ("finetune", "--device", "meta", "the meta device are not supported"),
]


@pytest.mark.parametrize("command, option, value, words", PROBES, ids=[f"{p[1]}={p[2]}" for p in PROBES])
def test_out_of_range_options_are_one_line_with_the_range(tmp_path, capsys, command, option, value, words):
    line = _one_error(capsys, [command, "--root", str(tmp_path), "--yes", option, value])
    assert words in line
    assert not (tmp_path / "Train_Model").exists()  # refused before any work


@pytest.mark.parametrize(
    "text, words",
    [
        ("threshold: 2\n", "--threshold 2 in config file"),
        ("threshold: .nan\n", "--threshold nan in config file"),
        ("min_size: -3\n", "--min-size -3 in config file"),
        ("tile: 100000\n", "--tile 100000 in config file"),
        (
            "overlap: 1.5\n",
            "--overlap 1.5 in config file '{cfg}' is out of range: give a number from 0 below 1",
        ),
        ("device: CPU\n", "--device 'CPU' is not supported"),
    ],
)
def test_config_values_go_through_the_same_checks(tmp_path, capsys, text, words):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(text, encoding="utf-8")
    line = _one_error(capsys, ["predict", "--root", str(tmp_path), "--yes", "--config", str(cfg)])
    assert words.format(cfg=cfg) in line


def test_width_and_depth_together_bound_the_network(tmp_path, capsys):
    line = _one_error(capsys, ["train", "--root", str(tmp_path), "--width", "1024", "--depth", "4"])
    assert line == (
        "error: --width 1024 with --depth 4 gives 8192 channels at the deepest level, more than 4096: "
        "lower --width or --depth"
    )


def test_api_keywords_go_through_the_same_checks():
    with pytest.raises(UsageError, match=r"--depth 40 is out of range"):
        config_from_options({"depth": 40})
    with pytest.raises(UsageError, match=r"--classes 300 is out of range"):
        config_from_options({"classes": 300})
    assert config_from_options({"lr": "1e-3", "seed": 3}).lr == 0.001  # YAML 1.1 reads 1e-3 as a text


def test_yaml_keys_stay_texts(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("yes: true\nepochs: 3\n", encoding="utf-8")
    assert cli.load_config(cfg) == {"yes": True, "epochs": 3}  # the key `yes`, not True


def test_billion_laughs_is_refused_quickly(tmp_path, capsys):
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for prev, name in zip("abcdefgh", "bcdefghi"):
        lines.append(f"{name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]")
    cfg = tmp_path / "c.yaml"
    cfg.write_text("\n".join(lines) + "\n", encoding="utf-8")
    start = time.monotonic()
    line = _one_error(capsys, ["train", "--root", str(tmp_path), "--config", str(cfg)])
    assert time.monotonic() - start < 5
    assert "expands to more than 100000 values through its aliases" in line


@pytest.mark.parametrize(
    "name, text, words",
    [
        ("c.yaml", "a: " + "[" * 5000, "is nested too deeply to read"),
        ("c.json", "[" * 100_000, "is not valid JSON"),
    ],
)
def test_deeply_nested_config_is_one_line(tmp_path, capsys, name, text, words):
    cfg = tmp_path / name
    cfg.write_text(text, encoding="utf-8")
    assert words in _one_error(capsys, ["train", "--root", str(tmp_path), "--config", str(cfg)])


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-16"])
def test_config_with_a_bom_is_decoded(tmp_path, encoding):
    cfg = tmp_path / "c.yaml"
    cfg.write_bytes("epochs: 3\nclass_names: [fond, noyau é]\n".encode(encoding))
    assert cli.load_config(cfg) == {"epochs": 3, "class_names": ["fond", "noyau é"]}


def test_latin1_config_palette_and_classes_are_one_line(tmp_path, capsys):
    from paulow.mask_classes import class_names_beside
    from paulow.palette import read_palette

    cfg = tmp_path / "c.yaml"
    cfg.write_bytes("class_names: [fond, noyau é]\n".encode("latin-1"))
    line = _one_error(capsys, ["train", "--root", str(tmp_path), "--config", str(cfg)])
    assert line == (
        f"error: config file '{cfg}' is not UTF-8 text (byte 0xe9 at position 26): save it as UTF-8 "
        "(e.g. in a text editor's 'Save as') - check --config"
    )
    palette = tmp_path / "palette.txt"
    palette.write_bytes("0 0 0 fond\n255 0 0 noyau é\n".encode("latin-1"))
    with pytest.raises(UsageError, match=r"palette file .* is not UTF-8 text \(byte 0xe9"):
        read_palette(palette, 2)
    palette.write_bytes(codecs.BOM_UTF16_LE + "0 0 0 fond\n255 0 0 noyau é\n".encode("utf-16-le"))
    assert read_palette(palette, 2).as_list() == [[0, 0, 0], [255, 0, 0]]
    (tmp_path / "classes.txt").write_bytes("fond\nnoyau é\n".encode("latin-1"))
    with pytest.raises(UsageError, match=r"class names file .* is not UTF-8 text"):
        class_names_beside(tmp_path)
