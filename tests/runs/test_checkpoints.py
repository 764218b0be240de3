"""Checkpoints bound to their run and to their bytes: damage is refused in one line or is
harmless, another run's checkpoint is refused, a full disk keeps the previous checkpoint,
and a kill while saving loses nothing that resume does not redo exactly."""

import errno
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tracemalloc

import jax
import numpy as np
import pytest
from flax import serialization
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from processes import signal_when
from qlax.program.placement import place
from qlax.program.trainer import make_train
from qlax.runs import checkpoint, reports, rundir
from qlax.runs.checkpoint import CheckpointError
from qlax.tools import cli

# Two chunks of 50 vector steps, two seeds, a checkpoint after each chunk.
TINY = ["train", "--seeds", "2", "--steps", "400", "--no-early-stop", "--checkpoint-every", "1",
        "--set", "num_envs=4", "--set", "num_centers=8", "--set", "chunk_steps=50", "--set", "eval_episodes=2",
        "--set", "learning_starts=50", "--set", "buffer_size=200"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Three finished tiny runs whose states have the same shapes: the original, and runs
    with another lr and another seed."""
    root = tmp_path_factory.mktemp("runs")
    for name, changes in (("a", []), ("lr", ["--set", "lr=1e-3"]), ("seed", ["--set", "seed=7"])):
        assert cli.main(TINY + changes + ["--out", str(root / name)]) == 0
    return root


@pytest.fixture(scope="module")
def original(runs):
    return load(runs / "a")[0]


def load(run_dir):
    """(state as numpy, manifest): what resume would continue from."""
    members = rundir.load_members(run_dir)
    state, manifest = rundir.load_state(run_dir, make_train(members.config), members, place(members.count))
    return jax.tree.map(np.asarray, state), manifest


def assert_same_state(a, b) -> None:
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_array_equal(x, y)


def copy_run(runs, tmp_path, name="a"):
    shutil.copytree(runs / name, tmp_path / "run")
    return tmp_path / "run"


MANIFEST_KEYS = ["format", "chunk", "shards", "preset", "checkpoint_every", "keep", "members", "padded",
                 "settings_sha256", "settings", "files", "something"]
JSON_VALUES = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(), st.text(max_size=8),
                        st.lists(st.integers(), max_size=2), st.dictionaries(st.text(max_size=3), st.integers(),
                                                                              max_size=2), st.just("DELETE"))
DAMAGE = st.one_of(
    st.tuples(st.just("truncate"), st.sampled_from(["state", "manifest", "metrics"]), st.floats(0, 1)),
    st.tuples(st.just("flip"), st.sampled_from(["state", "manifest"]), st.floats(0, 1), st.integers(0, 7)),
    st.tuples(st.just("append"), st.sampled_from(["state", "manifest", "metrics"]), st.binary(min_size=1, max_size=9)),
    st.tuples(st.just("edit"), st.sampled_from(MANIFEST_KEYS), JSON_VALUES),
)


def damage(run_dir, how) -> None:
    latest = checkpoint.latest(run_dir)
    files = {"state": latest / checkpoint.STATE_FILE, "manifest": latest / checkpoint.MANIFEST_FILE,
             "metrics": run_dir / "metrics.csv"}
    kind = how[0]
    if kind == "edit":
        manifest = json.loads(files["manifest"].read_text())
        if how[2] == "DELETE":
            manifest.pop(how[1], None)
        else:
            manifest[how[1]] = how[2]
        files["manifest"].write_text(json.dumps(manifest))
        return
    file = files[how[1]]
    data = bytearray(file.read_bytes())
    if kind == "truncate":
        del data[int(how[2] * (len(data) - 1)):]
    elif kind == "flip":
        data[int(how[2] * (len(data) - 1))] ^= 1 << how[3]
    else:
        data += how[2]
    file.write_bytes(bytes(data))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(how=DAMAGE)
def test_damage_is_refused_in_one_line_or_loads_the_exact_state(runs, original, tmp_path_factory, how):
    run_dir = copy_run(runs, tmp_path_factory.mktemp("damaged"))
    damage(run_dir, how)
    try:
        state, _ = load(run_dir)
    except CheckpointError as refused:
        assert "\n" not in str(refused) and len(str(refused)) < 500
        return
    assert_same_state(state, original)


@pytest.mark.parametrize("other,differs", [("lr", "lr: 0.001 there, 0.005 here"), ("seed", "seed: 7 there, 0 here")])
def test_a_checkpoint_of_another_run_with_the_same_shapes_is_refused(runs, tmp_path, capsys, other, differs):
    run_dir = copy_run(runs, tmp_path)
    ours, theirs = checkpoint.latest(run_dir), checkpoint.latest(runs / other)
    shutil.copy(theirs / checkpoint.STATE_FILE, ours / checkpoint.STATE_FILE)  # the state file alone
    with pytest.raises(CheckpointError, match="its sha256 is not the manifest's: damaged or replaced"):
        load(run_dir)
    shutil.copy(theirs / checkpoint.MANIFEST_FILE, ours / checkpoint.MANIFEST_FILE)  # and its manifest
    with pytest.raises(CheckpointError, match=f"saved by a run with other settings than this run directory's "
                                              f"\\({differs}\\); it is not this run's checkpoint"):
        load(run_dir)
    assert cli.main(["eval", str(run_dir)]) == 2 and cli.main(["resume", str(run_dir)]) == 2
    assert capsys.readouterr().err.count("it is not this run's checkpoint") == 2


@pytest.mark.parametrize("change,message", [
    ("no manifest", "chunk-000002: damaged checkpoint (no manifest.json); move it away to resume from "
                    "chunk-000001, the newest complete one"),
    ("renamed", "chunk-000003: manifest's chunk = 2 does not match the directory's name"),
    ("metrics", "metrics.csv has 2 rows; chunk-000002 covers 2 chunks x 2 members = 4: the run directory's "
                "files do not belong together"),
    ("past the budget", "metrics.csv has 4 rows; chunk-000003 covers 3 chunks x 2 members = 6"),
    ("an earlier chunk", "chunk-000001: its state has taken 400 env steps per seed, more than 1 chunks take: the "
                         "checkpoint was renamed or its manifest edited"),
    ("header", "metrics.csv: its columns are ['seed', 'env_steps', 'epsilon', 'avg_ret', "),
])
def test_the_manifest_numbers_must_agree_with_the_directory(runs, tmp_path, capsys, change, message):
    run_dir = copy_run(runs, tmp_path)
    latest = run_dir / "checkpoints" / "chunk-000002"
    if change == "no manifest":
        (latest / checkpoint.MANIFEST_FILE).unlink()
    elif change == "renamed":
        latest.rename(latest.with_name("chunk-000003"))
    elif change == "metrics":
        lines = (run_dir / "metrics.csv").read_text().splitlines(keepends=True)
        (run_dir / "metrics.csv").write_text("".join(lines[:3]))
    elif change == "header":  # no qlax writes these columns: rows cannot go on in them
        (run_dir / "metrics.csv").write_text((run_dir / "metrics.csv").read_text().replace("avg_return_100", "avg_ret"))
    else:
        chunk = 3 if change == "past the budget" else 1
        manifest = json.loads((latest / checkpoint.MANIFEST_FILE).read_text())
        (latest / checkpoint.MANIFEST_FILE).write_text(json.dumps({**manifest, "chunk": chunk}))
        shutil.rmtree(latest.with_name("chunk-000001"), ignore_errors=True)
        latest.rename(latest.with_name(f"chunk-{chunk:06d}"))
    assert cli.main(["resume", str(run_dir)]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_a_full_disk_keeps_the_previous_checkpoint_and_the_run_resumes(runs, original, tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    write, arrays = checkpoint._write_array, []

    def full_disk(file, *array):  # the second checkpoint runs out of space half way through
        if ".tmp-chunk-000002" in file.file.name:
            arrays.append(array)
            if len(arrays) == 5:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), file.file.name)
        write(file, *array)

    monkeypatch.setattr(checkpoint, "_write_array", full_disk)
    assert cli.main(TINY + ["--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and len(err) < 500
    assert (f"qlax: error: checkpoint chunk-000002 not saved: No space left on device ({out}/checkpoints/"
            f".tmp-chunk-000002/state.msgpack); a checkpoint of this run needs about 2") in err
    assert f"; chunk-000001 is kept: make room, then qlax resume {out}" in err
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["chunk-000001"]
    assert not (out / "summary.json").exists()

    monkeypatch.undo()
    assert cli.main(["resume", str(out)]) == 0
    assert_same_state(load(out)[0], original)
    assert (out / "metrics.csv").read_text() == (runs / "a" / "metrics.csv").read_text()


def as_before_episode_lengths(run_dir, chunks: int) -> None:
    """`run_dir` cut back to its first `chunks` chunks as an earlier qlax wrote them: a v4
    checkpoint, whose episode records kept no lengths, and metrics.csv's first 8 columns."""
    for path in checkpoint.complete(run_dir)[chunks:]:
        shutil.rmtree(path)
    latest = checkpoint.latest(run_dir)
    raw = serialization.msgpack_restore((latest / checkpoint.STATE_FILE).read_bytes())
    del raw["stats"]["recent_lengths"]
    data = serialization.msgpack_serialize(raw)
    (latest / checkpoint.STATE_FILE).write_bytes(data)
    manifest = json.loads((latest / checkpoint.MANIFEST_FILE).read_text())
    manifest["format"] = "qlax-checkpoint-v4"
    manifest["files"][checkpoint.STATE_FILE] = {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    (latest / checkpoint.MANIFEST_FILE).write_text(json.dumps(manifest))
    (run_dir / "metrics.csv").write_text("".join(f"{row}\n" for row in old_rows(run_dir)[:1 + chunks * 2]))


def old_rows(run_dir) -> list[str]:
    """metrics.csv's lines with the seed and the first 8 metric columns, as an earlier qlax wrote them."""
    return [",".join(line.split(",")[:9]) for line in (run_dir / "metrics.csv").read_text().splitlines()]


def test_a_run_saved_before_qlax_gained_a_setting_loads_while_that_setting_is_at_its_default(runs, original,
                                                                                              tmp_path, capsys):
    """A checkpoint's manifest and config.yaml as a qlax without `by_observation` and
    `conv_stride` wrote them: the run trained as their defaults do, so it still loads."""
    def as_written_without(run_dir, names):
        for manifest_file in run_dir.glob(f"checkpoints/*/{checkpoint.MANIFEST_FILE}"):
            manifest = json.loads(manifest_file.read_text())
            for name in names:
                del manifest["settings"]["config"][name]
            manifest["settings_sha256"] = checkpoint.settings_sha256(manifest["settings"])
            manifest_file.write_text(json.dumps(manifest))
        config = run_dir / "config.yaml"
        config.write_text("".join(line for line in config.read_text().splitlines(keepends=True)
                                  if line.split(":")[0] not in names))

    old = copy_run(runs, tmp_path)
    as_written_without(old, ["by_observation", "conv_stride"])
    assert_same_state(load(old)[0], original)
    assert cli.main(["eval", str(old), "--episodes", "2"]) == 0
    # A setting missing from the manifest's copy but not at its default is another run's.
    other = tmp_path / "other"
    shutil.copytree(runs / "lr", other)
    as_written_without(other, ["lr"])
    (other / "config.yaml").write_text((runs / "lr" / "config.yaml").read_text())
    assert cli.main(["eval", str(other), "--episodes", "2"]) != 0
    assert "lr: absent there, 0.001 here" in capsys.readouterr().err


def test_a_run_an_earlier_qlax_wrote_evaluates_plots_and_resumes_in_its_own_columns(runs, original, tmp_path):
    run_dir = copy_run(runs, tmp_path)
    as_before_episode_lengths(run_dir, chunks=1)
    header = (run_dir / "metrics.csv").read_text().splitlines()[0]
    assert header == "seed,env_steps,epsilon,avg_return_100,episodes,loss,stopped,diverged,greedy_return"
    assert cli.main(["eval", str(run_dir), "--episodes", "2"]) == 0
    assert cli.main(["plot", str(run_dir), "--out", str(tmp_path / "curve.png")]) == 0
    assert cli.main(["resume", str(run_dir)]) == 0
    # Every row in the file's own 8 columns, the numbers those of the run done at once.
    assert (run_dir / "metrics.csv").read_text().splitlines() == old_rows(runs / "a")
    state, manifest = load(run_dir)
    assert manifest["format"] == checkpoint.FORMAT
    assert_same_state(state.replace(stats=state.stats.replace(recent_lengths=())),
                      original.replace(stats=original.stats.replace(recent_lengths=())))
    # The lengths of the first chunk's episodes were never saved; those since are the run's.
    for member, episodes_then in enumerate(int(row.split(",")[4]) for row in old_rows(runs / "a")[1:3]):
        lengths, theirs = state.stats.recent_lengths[member], original.stats.recent_lengths[member]
        assert np.isnan(lengths[:episodes_then]).all() and 0 < episodes_then < int(state.stats.episodes[member])
        np.testing.assert_array_equal(lengths[episodes_then:], theirs[episodes_then:])


SLOW_SAVE = """
import sys, time
from qlax.runs import checkpoint
from qlax.tools import cli
write = checkpoint._write_array
def slowly(file, *array):  # the second checkpoint crawls, so that it is killed half way through
    if ".tmp-chunk-000002" in file.file.name:
        time.sleep(0.1)
    write(file, *array)
checkpoint._write_array = slowly
sys.exit(cli.main(sys.argv[1:]))
"""


@pytest.mark.slow  # three subprocesses
def test_a_kill_while_saving_then_resume_equals_the_run_done_in_one_go(tmp_path):
    # Every run here is a fresh process: XLA's CPU results may differ in the last bit between a
    # fresh process and one that has compiled many other programs before.
    one_go, out = tmp_path / "one-go", tmp_path / "run"
    subprocess.run([sys.executable, "-m", "qlax.tools.cli", *TINY, "--out", str(one_go)], check=True,
                   stdout=subprocess.DEVNULL)
    proc = subprocess.Popen([sys.executable, "-c", SLOW_SAVE, *TINY, "--out", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    partial = out / "checkpoints" / ".tmp-chunk-000002" / checkpoint.STATE_FILE
    signal_when(proc, partial, signal.SIGKILL)
    proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL and partial.exists()
    assert checkpoint.latest(out).name == "chunk-000001"

    subprocess.run([sys.executable, "-m", "qlax.tools.cli", "resume", str(out)], check=True, stdout=subprocess.DEVNULL)
    assert_same_state(load(out)[0], load(one_go)[0])
    assert (out / "metrics.csv").read_text() == (one_go / "metrics.csv").read_text()
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["chunk-000001", "chunk-000002"]


META = {"preset": None, "checkpoint_every": 1, "keep": 1, "members": 1, "padded": 1}


def test_saving_streams_the_state_without_copying_it(tmp_path):
    state = {"big": np.arange(5_000_000, dtype=np.float32), "small": {"n": np.int32(7), "none": None}}
    tracemalloc.start()
    path = checkpoint.save(tmp_path, state, 1, META, keep=1, settings={})
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 2_000_000  # the array is 20 MB: no copy of it was made
    template = jax.tree.map(lambda x: jax.ShapeDtypeStruct(np.shape(x), np.asarray(x).dtype), state)
    assert_same_state(checkpoint.load(path, template, settings={})[0], state)


def resident_bytes() -> int:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmRSS"))


@pytest.mark.parametrize("chunk_size", [serialization.MAX_CHUNK_SIZE, 1000])
def test_a_sharded_population_is_saved_from_the_devices_memory(tmp_path, monkeypatch, chunk_size):
    """Three members laid out over the devices (padded to a multiple of their count): the
    real rows are written, in flax's format, from each device's own buffer, never gathered
    into a host copy; with small flax chunks a chunk spans two devices' rows."""
    monkeypatch.setattr(serialization, "MAX_CHUNK_SIZE", chunk_size)
    placement = place(3)
    host = {"big": np.arange(3 * 4_000_000, dtype=np.float32).reshape(3, 4_000_000),
            "small": {"flags": np.array([True, False, True]), "steps": np.arange(6, dtype=np.int32).reshape(3, 2)}}
    if chunk_size < serialization.MAX_CHUNK_SIZE:
        host["big"] = host["big"][:, :1000]
    state = jax.block_until_ready(placement.put(host))
    before = resident_bytes()
    path = checkpoint.save(tmp_path, state, 1, META, keep=1, settings={}, rows=3)
    assert resident_bytes() - before < 16_000_000  # the big array is 48 MB: no copy of it is held
    restored = serialization.msgpack_restore((path / checkpoint.STATE_FILE).read_bytes())
    assert_same_state(restored, host)


def test_arrays_larger_than_a_msgpack_object_are_written_in_flax_chunks(tmp_path, monkeypatch):
    monkeypatch.setattr(serialization, "MAX_CHUNK_SIZE", 1000)
    state = {"big": np.arange(3000, dtype=np.float64).reshape(100, 30), "small": np.ones(3, np.bool_)}
    path = checkpoint.save(tmp_path, state, 1, META, keep=1, settings={})
    restored = serialization.msgpack_restore((path / checkpoint.STATE_FILE).read_bytes())
    assert_same_state(restored, state)


@pytest.mark.parametrize("failing", ["metrics", "summary"])
def test_a_full_disk_while_writing_reports_stops_in_one_line_and_the_run_resumes(runs, original, tmp_path,
                                                                               monkeypatch, capsys, failing):
    out = tmp_path / "run"
    write_rows, write_summary, rows = reports.MetricsFile.write, reports.write_summary, []

    def full_disk(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(out / ("metrics.csv" if failing == "metrics"
                                                                            else "summary.json")))

    def rows_then_full(metrics_file, m):  # the second chunk's rows find the disk full
        rows.append(m)
        return full_disk() if len(rows) == 2 else write_rows(metrics_file, m)

    if failing == "metrics":
        monkeypatch.setattr(reports.MetricsFile, "write", rows_then_full)
    else:
        monkeypatch.setattr(reports, "write_summary", full_disk)
    assert cli.main(TINY + ["--out", str(out)]) == 2
    err = capsys.readouterr().err
    kept = "chunk-000001" if failing == "metrics" else "chunk-000002"
    assert err == (f"qlax: error: {failing}.{'csv' if failing == 'metrics' else 'json'} could not be written "
                   f"(No space left on device); the run stopped, checkpoint {kept} is kept: make room, then "
                   f"qlax resume {out}\n")
    assert not (out / "summary.json").exists()

    monkeypatch.setattr(reports, "write_summary", write_summary)
    monkeypatch.setattr(reports.MetricsFile, "write", write_rows)
    assert cli.main(["resume", str(out)]) == 0
    assert_same_state(load(out)[0], original)
    assert (out / "metrics.csv").read_text() == (runs / "a" / "metrics.csv").read_text()
    assert json.loads((out / "summary.json").read_text())["interrupted"] is False
