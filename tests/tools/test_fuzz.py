"""The command line and run directories under bad input: generated cases per category.

Every case ends in exactly one `qlax: error:` line with exit 2, a run directory it refuses
is left byte for byte as it was, and nothing compiles: the points where a command would
compile (training, evaluating, rendering) and where it would write an image are replaced
by a stub, so a case the command accepts ends there, at no cost. The categories are the
adversarial run's: run files, output paths, several processes, the environment, presets,
factories and messages. Users' broken environments are in envs/test_broken_envs.py, code a
run's files name in runs/test_rundir.py, signals in runs/test_runs.py.
"""

import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from qlax.runs import experiment, plotting, run_evaluation
from qlax.tools import cli, render

TINY = ["--seeds", "2", "--steps", "400", "--set", "num_envs=4", "--set", "num_centers=8", "--set", "chunk_steps=50",
        "--set", "eval_episodes=2", "--set", "learning_starts=50", "--set", "buffer_size=200"]


class Reached(Exception):
    """A command got past every check to where it would compile or write its image."""


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished two-seed run: the one program this module compiles."""
    out = tmp_path_factory.mktemp("fuzz") / "run"
    assert cli.main(["train", *TINY, "--out", str(out)]) == 0
    return out


@pytest.fixture
def stubbed(monkeypatch):
    def reached(*args, **kwargs):
        raise Reached

    for module, name in ((experiment, "population"), (run_evaluation, "evaluate_members"),
                         (render, "rollout"), (plotting, "write_whole")):
        monkeypatch.setattr(module, name, reached)


def tree(path: Path) -> dict[str, str]:
    """Every file under `path` with the sha256 of its bytes."""
    return {str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(path.rglob("*")) if p.is_file()}


def outcome(argv: list[str], capsys) -> str:
    """'refused' (exit 2, one line), or 'accepted' (it reached a stub, or had nothing to do:
    a finished run's resume): anything else fails."""
    try:
        code = cli.main(argv)
    except Reached:
        code = 0
    err = capsys.readouterr().err
    if code == 0:
        return "accepted"
    assert code == 2, (argv, code, err)
    assert err.startswith("qlax: error: ") and err.count("\n") == 1, (argv, err)
    assert all(c.isprintable() for c in err[:-1]), err  # control characters come back as escapes
    return "refused"


# Run files: each way of damaging a file, applied to every file a command reads.
def _manifest(run: Path) -> Path:
    return max((run / "checkpoints").iterdir()) / "manifest.json"


FILES = {"config.yaml": lambda run: run / "config.yaml", "metrics.csv": lambda run: run / "metrics.csv",
         "summary.json": lambda run: run / "summary.json", "manifest.json": _manifest}
DAMAGE = {
    "bad bytes": lambda data: b"\xff\xfe\x00\x9c" + data[4:],
    "UTF-16": lambda data: data.decode("utf-8").encode("utf-16"),
    "cut in half": lambda data: data[:len(data) // 2],
    "empty": lambda data: b"",
    "a 200 KB field": lambda data: data.replace(b"0", b"9" * 200_000, 1),
    "a list": lambda data: b"[1, 2]\n",
    "a renamed column": lambda data: data.replace(b"env_steps", b"env_stepz", 1),
    "a word for a number": lambda data: data.replace(b"0", b"x", 1),
    "removed": None,
}
COMMANDS = {"eval": ["eval"], "eval --best": ["eval", "--best"], "plot": ["plot"], "render": ["render"],
            "resume": ["resume"], "resume --steps": ["resume", "--steps", "800"]}


def damaged_copy(finished: Path, tmp_path: Path, name: str, damage: str) -> Path:
    """A copy of the finished run with `damage` done to its file `name`."""
    run = tmp_path / "run"
    if run.exists():
        shutil.rmtree(run)
    shutil.copytree(finished, run)
    path = FILES[name](run)
    if DAMAGE[damage] is None:
        path.unlink()
    else:
        path.write_bytes(DAMAGE[damage](path.read_bytes()))
    return run


@pytest.mark.parametrize("damage", DAMAGE)
@pytest.mark.parametrize("name", FILES)
def test_a_damaged_run_file_is_refused_in_one_line_or_does_not_matter(finished, stubbed, tmp_path, capsys, name,
                                                                    damage):
    """Each command refuses the damage in one line, leaving the directory as it was, or
    does not read that part of the file (summary.json is for people)."""
    seen = {}
    for label, command in COMMANDS.items():
        run = damaged_copy(finished, tmp_path, name, damage)
        before = tree(run)
        seen[label] = outcome([*command, str(run)], capsys)
        if seen[label] == "refused":
            assert tree(run) == before, label
    original = FILES[name](finished).read_bytes()
    if name == "config.yaml" and (DAMAGE[damage] is None or DAMAGE[damage](original) != original):
        assert set(seen.values()) == {"refused"}, seen  # every command reads the run's config first


@pytest.mark.parametrize("edit", ["log is text", "log is a list of junk", "keep is -1", "chunk is a string"])
def test_a_manifest_with_wrong_types_is_refused_in_one_line_or_ignored(finished, stubbed, tmp_path, capsys, edit):
    key, value = {"log is text": ("log", "abc"), "log is a list of junk": ("log", [1, None, "x"]),
                  "keep is -1": ("keep", -1), "chunk is a string": ("chunk", "2")}[edit]
    run = tmp_path / "run"
    shutil.copytree(finished, run)
    manifest = json.loads(_manifest(run).read_text())
    _manifest(run).write_text(json.dumps({**manifest, key: value}))
    for command in COMMANDS.values():
        outcome([*command, str(run)], capsys)


# Output paths
OUTPUTS = {"render": ["r.xyz", "r.jpg", "r", "", "x.", "/dev/full", "{dir}", "{dir}/"],
           "plot": ["p.xyz", "p.gif", "p", "", "x.", "/dev/full", "{dir}", "{dir}/"]}


@pytest.mark.parametrize("command, out", [(c, o) for c, outs in OUTPUTS.items() for o in outs])
def test_an_output_path_that_is_not_an_image_file_is_refused_in_one_line(finished, stubbed, tmp_path, capsys,
                                                                         command, out):
    out = out.format(dir=tmp_path)
    before = tree(finished)
    assert outcome([command, str(finished), "--out", out], capsys) == "refused"
    assert tree(finished) == before and not (tmp_path / "p.xyz").exists()


def test_a_full_disk_names_the_file_and_leaves_no_partial_one(finished, tmp_path, monkeypatch, capsys):
    """eval.json, the plot and the GIF: one line naming the file, the previous one (or none) kept."""
    import errno

    import qlax.core.files

    def full(path: Path):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    run = tmp_path / "run"
    shutil.copytree(finished, run)
    (run / "eval.json").write_text("{}")
    monkeypatch.setattr(run_evaluation, "evaluate_members",
                        lambda trainer, members, *a: (np.zeros((members.count, 2)), np.ones((members.count, 2), int)))
    monkeypatch.setattr(render, "rollout", lambda *a, **k: np.zeros((3, 4), np.float32))  # 3 CartPole states
    monkeypatch.setattr(qlax.core.files.os, "replace", lambda *a: full(a[1]))
    for argv, written in ((["eval", str(run)], run / "eval.json"), (["plot", str(run)], run / "learning_curve.png"),
                          (["render", str(run), "--out", str(tmp_path / "e.gif")], tmp_path / "e.gif")):
        before = written.read_bytes() if written.exists() else None
        assert cli.main(argv) == 2
        assert capsys.readouterr().err == f"qlax: error: {written}: No space left on device\n"
        assert (written.read_bytes() if written.exists() else None) == before
        assert not list(written.parent.glob(".*.partial"))


# Several processes, the environment, presets, factories, messages
def _deep_chain(tmp: Path) -> str:
    for i in range(1500):
        (tmp / f"p{i}.yaml").write_text(f"base: p{i + 1}.yaml\n" if i < 1499 else "lr: 0.001\n")
    return str(tmp / "p0.yaml")


def _fifo(tmp: Path) -> str:
    os.mkfifo(tmp / "fifo.yaml")
    return str(tmp / "fifo.yaml")


def _sparse(tmp: Path) -> str:
    with open(tmp / "big.yaml", "wb") as file:
        file.truncate(2_000_000_000)  # 2 GB of holes: read whole, it would take the memory
    return str(tmp / "big.yaml")


PRESETS = {"a 1,500-deep base chain": _deep_chain, "a FIFO": _fifo, "/dev/zero": lambda tmp: "/dev/zero",
           "a 2 GB file": _sparse, "a directory": lambda tmp: str(tmp)}
LINES = {
    "--distributed with the others": ["train", "--distributed", "--coordinator", "h:1", "--out", "o"],
    "--num-processes 0": ["train", "--coordinator", "127.0.0.1:1234", "--num-processes", "0", "--process-id", "0",
                          "--out", "o"],
    "--process-id 2 of 2": ["train", "--coordinator", "127.0.0.1:1234", "--num-processes", "2", "--process-id", "2",
                            "--out", "o"],
    "--coordinator host:notaport": ["train", "--coordinator", "host:notaport", "--num-processes", "1",
                                    "--process-id", "0", "--out", "o"],
    "--coordinator port 99999": ["train", "--coordinator", "127.0.0.1:99999", "--num-processes", "1",
                                 "--process-id", "0", "--out", "o"],
    "env=sys:exit": ["train", "--set", "env=sys:exit"],
    "env=qlax.tools.cli:main": ["train", "--set", "env=qlax.tools.cli:main"],
    "env=os:getcwd": ["train", "--set", "env=os:getcwd"],
    "--log wandb twice": ["train", "--log", "wandb", "--log", "wandb", "--out", "o"],
    "--log nothing": ["train", "--log", "nothing", "--out", "o"],
    "ESC and BEL in a path": ["eval", "\x1b[31mred\x07"],
    "ESC in a setting": ["train", "--set", "ga\x1bmma=0.9"],
    "a non-UTF-8 path": ["eval", "\udcff"],
    "--episodes 200000000": ["eval", "{run}", "--episodes", "200000000"],
    "eval_episodes=100000000": ["train", "--set", "eval_episodes=100000000"],
    "stop_eval_episodes=2147483647": ["train", "--set", "stop_eval_episodes=2147483647"],
    **{f"preset: {what}": ["train", f"{{preset:{what}}}"] for what in PRESETS},
}


@pytest.mark.parametrize("case", LINES)
def test_a_bad_command_line_is_refused_in_one_line_and_writes_nothing(finished, stubbed, tmp_path, capsys,
                                                                      monkeypatch, case):
    monkeypatch.chdir(tmp_path)
    argv = [a.format(run=finished) if "{run}" in a else a for a in LINES[case]]
    argv = [PRESETS[a[8:-1]](tmp_path) if a.startswith("{preset:") else a for a in argv]
    made = set(tmp_path.iterdir())
    before = tree(finished)
    assert outcome(argv, capsys) == "refused"
    assert set(tmp_path.iterdir()) == made and tree(finished) == before


@pytest.mark.parametrize("value", ["abc", "", "1.5", "1e3", "0", "-2", "\x1b"])
def test_a_bad_cpu_device_count_is_refused_in_one_line_by_every_command(capsys, monkeypatch, value):
    monkeypatch.setenv("QLAX_CPU_DEVICES", value)
    for argv in (["presets"], ["envs"], ["train", "--out", "o"], ["eval", "x"]):
        assert outcome(argv, capsys) == "refused"
