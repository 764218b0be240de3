"""Preset files a person writes: `base:` chains, defaults, and clear refusals."""

import pytest

from qlax.settings import presets
from qlax.settings.config import TrainConfig
from qlax.tools import cli


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return str(path)


def test_a_preset_file_starts_from_its_base_and_changes_a_few_settings(tmp_path):
    write(tmp_path / "shared" / "dqn-8-seeds.yaml", "base: cartpole-dqn\nseeds: 8\nlr: 1.0e-3\n")
    mine = write(tmp_path / "mine.yaml", "description: mine\nbase: shared/dqn-8-seeds.yaml\nlr: 5.0e-4\n")
    config = presets.load(mine)
    # Each file's settings over its base's, the base path relative to the file that names it.
    assert config == presets.load("cartpole-dqn").replace(seeds=8, lr=5e-4)
    assert presets.description(mine) == "mine"


def test_a_file_over_a_base_with_settings_by_observation_wins_as_a_later_setting_does(tmp_path):
    mine = write(tmp_path / "mine.yaml", "base: dqn\nbatch_size: 128\nby_observation:\n"
                                         "  grid: {hidden_sizes: [128, 128]}\n  image: {batch_size: 16}\n")
    config = presets.load(mine)
    # dqn's grid batch_size 32 yields to the file's batch_size; its own kinds add to dqn's, setting by setting.
    assert config.batch_size == 128
    assert config.by_observation == {"grid": {"obs_scaling": "none", "hidden_sizes": [128, 128]},
                                     "image": {"batch_size": 16}}
    assert config.for_observation("grid") == presets.load("dqn").replace(
        batch_size=128, hidden_sizes=[128, 128], obs_scaling="none", by_observation=None)


def test_without_base_the_settings_left_out_take_the_defaults(tmp_path):
    config = presets.load(write(tmp_path / "plain.yaml", "q_function: mlp\n"))
    assert config == TrainConfig(q_function="mlp")


@pytest.mark.parametrize("files,message", [
    ({"a.yaml": "base: b.yaml\n", "b.yaml": "base: a.yaml\n"}, "preset '{a}': its base chain loops: {a} -> {b} -> {a}"),
    ({"a.yaml": "base: cartpole-dq\n"}, "unknown preset 'cartpole-dq' (did you mean 'cartpole-dqn'?)"),
    ({"a.yaml": "base: [cartpole-dqn]\n"}, "base = ['cartpole-dqn']: expected a preset name or a path"),
    ({"a.yaml": "base: missing.yaml\n"}, "missing.yaml': cannot read it (No such file or directory)"),
    ({"a.yaml": "lr: [1\n"}, "preset '{a}': not valid YAML: while parsing a flow sequence, expected ',' or ']', "
                              "but got '<stream end>' (line 2, column 1)"),
], ids=["cycle", "typo", "not a name", "missing", "bad YAML"])
def test_a_bad_preset_file_is_refused_in_one_line(files, message, tmp_path, capsys):
    paths = {name[0]: write(tmp_path / name, text) for name, text in files.items()}
    assert cli.main(["presets", "--show", paths["a"]]) == 2
    err = capsys.readouterr().err
    assert message.format(**paths) in err and err.startswith("qlax: error: ") and err.count("\n") == 1
