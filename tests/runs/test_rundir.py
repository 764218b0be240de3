"""A run directory is data: reading one imports and calls nothing its files name.

Every file of a run that could name code (config.yaml's env, env_spec.json's entry point
and wrappers, a preset's base) gets a planted factory that would write a marker file, and
every command that reads runs is pointed at it: each refuses in one line (exit 2) and the
marker never appears. Nothing here compiles: the refusals come before any program is built.
"""

import json
import uuid

import pytest
import yaml

from qlax import envs
from qlax.runs import run_evaluation, rundir
from qlax.settings import presets
from qlax.settings.config import ConfigError, TrainConfig
from qlax.tools import cli

COMMANDS = (["eval"], ["eval", "--backend", "gymnasium"], ["plot"], ["render"], ["resume"])


@pytest.fixture
def planted(tmp_path, monkeypatch):
    """(module name, marker path): a module on the path whose `make` and `Env` write the
    marker, named uniquely so no earlier test of this process trusted it."""
    name = f"planted_{uuid.uuid4().hex[:12]}"
    marker = tmp_path / "PWNED"
    (tmp_path / f"{name}.py").write_text(
        f"import pathlib\nMARKER = pathlib.Path({str(marker)!r})\n"
        "def make(*args, **kwargs):\n    MARKER.write_text('made')\n"
        "class Env:\n    def __init__(self, *args, **kwargs):\n        MARKER.write_text('made')\n"
        "MARKER.with_name('IMPORTED').write_text('imported')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    return name, marker


def run_dir(tmp_path, env: str, spec: dict | None = None):
    """A run directory as a run writes it (config.yaml, metrics.csv, summary.json), with `env`."""
    out = tmp_path / "run"
    out.mkdir()
    (out / "config.yaml").write_text(yaml.safe_dump(TrainConfig(env=env).to_dict(), sort_keys=False))
    (out / "metrics.csv").write_text("chunk,seed,env_steps,avg_return_100\n")
    (out / "summary.json").write_text(json.dumps({"interrupted": True}))
    if spec is not None:
        (out / "env_spec.json").write_text(json.dumps(spec))
    return out


def assert_nothing_ran(marker):
    assert not marker.exists(), "a run's file made qlax call its code"
    assert not marker.with_name("IMPORTED").exists(), "a run's file made qlax import its module"


def cartpole_spec(**changes) -> dict:
    gymnasium = pytest.importorskip("gymnasium")
    return {**json.loads(gymnasium.make("CartPole-v1").spec.to_json()), **changes}


CASES = {
    "config.yaml: a JAX factory": lambda m: (f"{m}:make", None),
    "config.yaml: a Gymnasium factory": lambda m: (f"gymnasium:{m}:make", None),
    "config.yaml: a Gymnasium module:id": lambda m: (f"gymnasium:{m}:Planted-v0", None),
    "env_spec.json: an unregistered id": lambda m: (
        "object:Planted-v0", {"id": "Planted-v0", "entry_point": f"{m}:Env", "kwargs": {}}),
    "env_spec.json: a registered id, another entry point": lambda m: (
        "object:CartPole-v1", cartpole_spec(entry_point=f"{m}:Env")),
    "env_spec.json: a wrapper of its own": lambda m: (
        "object:CartPole-v1", cartpole_spec(additional_wrappers=[{"name": "W", "entry_point": f"{m}:Env",
                                                                  "kwargs": {}}])),
}


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_no_command_runs_code_that_a_run_directory_names(case, command, planted, tmp_path, capsys):
    module, marker = planted
    env, spec = CASES[case](module)
    out = run_dir(tmp_path, env, spec)
    assert cli.main([*command, str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("qlax: error: env = ")
    assert_nothing_ran(marker)


@pytest.mark.parametrize("case", CASES)
def test_no_python_reader_runs_code_that_a_run_directory_names(case, planted, tmp_path):
    from qlax.runs.policy import load_policy

    module, marker = planted
    env, spec = CASES[case](module)
    out = run_dir(tmp_path, env, spec)
    for read in (rundir.load_members, run_evaluation.evaluate_run, load_policy):
        with pytest.raises(envs.EnvError):
            read(out)
    assert_nothing_ran(marker)


def test_a_factory_named_again_is_trusted_and_must_be_the_runs_own(planted, tmp_path):
    module, marker = planted
    out = run_dir(tmp_path, f"{module}:make")
    with pytest.raises(envs.EnvError, match="this run trained on"):
        rundir.load_members(out, env=f"{module}:other")
    assert not envs.is_trusted(f"{module}:make")
    members = rundir.load_members(out, env=f"{module}:make")  # the person names it: trusted from now on
    assert members.config.env == f"{module}:make" and envs.is_trusted(f"{module}:make")
    assert rundir.load_run_config(out).env == f"{module}:make"


def test_a_saved_spec_of_a_registered_id_with_gymnasiums_wrappers_is_re_made(tmp_path):
    gymnasium = pytest.importorskip("gymnasium")
    wrapped = gymnasium.wrappers.TimeAwareObservation(gymnasium.make("CartPole-v1", max_episode_steps=77))
    env = envs.remake("object:CartPole-v1", envs.recipe(wrapped))
    assert isinstance(env, gymnasium.wrappers.TimeAwareObservation)
    assert env.spec.max_episode_steps == 77 and env.observation_space.shape == (5,)


@pytest.mark.parametrize("text", ["", "[]", "\xff\xfe{", '{"id": 3}', '{"id": "CartPole-v1", "kwargs": []}'])
def test_a_malformed_saved_spec_is_refused_in_one_line(text):
    pytest.importorskip("gymnasium")
    with pytest.raises(envs.EnvError, match="env = 'object:x'"):
        envs.remake("object:x", text)


def test_a_presets_base_file_cannot_bring_in_a_factory(planted, tmp_path):
    module, marker = planted
    (tmp_path / "base.yaml").write_text(f"base: cartpole-dqn\nenv: {module}:make\n")
    (tmp_path / "mine.yaml").write_text("base: base.yaml\nlr: 0.001\n")
    with pytest.raises(ConfigError, match="comes from its base"):
        presets.load(str(tmp_path / "mine.yaml"))
    (tmp_path / "own.yaml").write_text(f"base: base.yaml\nenv: {module}:make\n")
    assert presets.load(str(tmp_path / "own.yaml")).env == f"{module}:make"  # named in the file the person names
    assert_nothing_ran(marker)


@pytest.mark.parametrize("target", ["fifo", "dir.yaml", "deep"])
def test_presets_that_would_block_or_recurse_are_refused(tmp_path, target):
    import os

    if target == "fifo":
        path = tmp_path / "fifo.yaml"
        os.mkfifo(path)
    elif target == "dir.yaml":
        path = tmp_path / "dir.yaml"
        path.mkdir()
    else:
        for i in range(100):
            (tmp_path / f"p{i}.yaml").write_text(f"base: p{i + 1}.yaml\n")
        (tmp_path / "p100.yaml").write_text("lr: 0.001\n")
        path = tmp_path / "p0.yaml"
    with pytest.raises(ConfigError, match="preset"):
        presets.load(str(path))
