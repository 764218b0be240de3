"""A run directory: claimed and locked for a run, and read back (its config and members,
its latest checkpoint's state and parameters, a fresh greedy evaluation: eval.json).

`experiment` writes run directories; everything that reads one (resume, `qlax eval`,
policies, plots, rendering, the Gymnasium backend) reads it through here. A directory
that holds a run is never written by a new run unless told to overwrite it, and one
process at a time trains in it (an flock on the directory itself, which dies with its process).
"""

from __future__ import annotations

import csv
import fcntl
import json
import os
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

import jax
import numpy as np

from qlax import envs
from qlax.core.devices import any_process, is_writer
from qlax.program.placement import Placement
from qlax.program.trainer import Trainer, make_train
from qlax.runs import checkpoint, reports
from qlax.settings.config import ConfigError, TrainConfig, from_dict, load_yaml, short
from qlax.settings.sweep import Members

CONFIG_FILE = "config.yaml"
GRID_FILE = "grid.yaml"
EVAL_FILE = "eval.json"
ENV_RECIPE_FILE = "env_spec.json"  # a Gymnasium env object's spec (`envs.recipe`), re-made without Python
# A directory with any of these holds a run; --overwrite deletes the run's files (and its GIFs).
RUN_MARKERS = (CONFIG_FILE, reports.METRICS_FILE, reports.SUMMARY_FILE, checkpoint.CHECKPOINT_DIR)
RUN_FILES = (CONFIG_FILE, GRID_FILE, reports.METRICS_FILE, reports.SUMMARY_FILE, reports.SWEEP_FILE, EVAL_FILE,
             ENV_RECIPE_FILE, "learning_curve.png", "pbt.csv", "pbt.png")


class RunDirError(ValueError):
    """A run directory that cannot be used: it holds a run, another process uses it, or the
    file system refuses it."""


def claim(out: str | Path, overwrite: bool = False):
    """Context manager: `out` created, checked writable and locked for a new run, as a Path.

    Refused if it holds a run, unless `overwrite`, which first deletes that run's files
    (config, metrics, summary, sweep table, eval.json, plot, GIFs, checkpoints).
    """
    if isinstance(out, str) and not out.strip():
        raise RunDirError("out = '': an empty path; name the run directory, e.g. --out runs/mine")
    run_dir = Path(out)

    def prepare() -> None:
        checkpoints = run_dir / checkpoint.CHECKPOINT_DIR
        if checkpoints.exists() and not checkpoints.is_dir():
            raise RunDirError(f"{checkpoints}: exists and is not a directory; qlax saves checkpoints there: "
                              f"move it away or choose another --out")
        found = [name for name in RUN_MARKERS if (run_dir / name).exists()]
        if found and not overwrite:
            raise RunDirError(f"{run_dir}: holds a run already ({', '.join(found)}); continue it with "
                              f"`qlax resume {run_dir}`, or replace it with --overwrite (Python: overwrite=True)")
        if overwrite:
            _delete_run(run_dir)
        _check_writable(run_dir)

    return lock(run_dir, prepare, create=True)


@contextmanager
def lock(run_dir: Path, prepare: Callable[[], None] = lambda: None, create: bool = False) -> Iterator[Path]:
    """Take an exclusive flock on the directory `run_dir` itself (creating it first if
    `create`), run `prepare` under it, and hold it for the body.

    A second process gets RunDirError at once; a killed process's lock dies with it. The
    lock is on the directory, not on a file in it, so no file a person (or `--overwrite`)
    deletes lets a second writer in, and a refused directory is left as it was. With
    several processes only the writer locks and prepares, and every process raises if that
    failed, so none is left waiting.
    """
    fd, error = None, None
    if is_writer():
        try:
            if create:
                _create(run_dir)
            fd = _acquire(run_dir)  # a process that holds it shows before any check
            prepare()
        except RunDirError as err:
            error = err
        except OSError as err:
            error = RunDirError(f"{err.filename or run_dir}: {err.strerror or err}")
    try:
        if any_process(error is not None):
            raise error or RunDirError(f"{run_dir}: refused by the writing process (see its message)")
        yield run_dir
    finally:
        if fd is not None:
            os.close(fd)  # releases the lock


def _create(run_dir: Path) -> None:
    if run_dir.exists() and not run_dir.is_dir():
        raise RunDirError(f"{run_dir}: exists and is not a directory; give --out a directory")
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise RunDirError(f"{run_dir}: cannot create the run directory ({err.strerror})") from None


def _acquire(run_dir: Path) -> int:
    """The descriptor of `run_dir`, flock-ed exclusively."""
    try:
        fd = os.open(run_dir, os.O_RDONLY | os.O_DIRECTORY)
    except FileNotFoundError:
        raise RunDirError(f"{run_dir}: no such run directory") from None
    except OSError as err:
        raise RunDirError(f"{run_dir}: cannot open the run directory ({err.strerror})") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise RunDirError(f"{run_dir}: another qlax process is using this run directory; wait for it to "
                          f"finish or stop it") from None
    except OSError:  # a file system without locks: run unlocked rather than not at all
        pass
    return fd


def _delete_run(run_dir: Path) -> None:
    for name in RUN_FILES:
        (run_dir / name).unlink(missing_ok=True)
    for gif in run_dir.glob("*.gif"):
        gif.unlink()
    if (run_dir / checkpoint.CHECKPOINT_DIR).is_dir():
        shutil.rmtree(run_dir / checkpoint.CHECKPOINT_DIR)


def _check_writable(run_dir: Path) -> None:
    """Refuse now, not after compiling, a directory this process cannot write in."""
    probe = run_dir / f".probe-{os.getpid()}"
    try:
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise RunDirError(f"{run_dir}: cannot write in the run directory ({err.strerror})") from None


def finished_summary(run_dir: Path) -> dict[str, Any] | None:
    """summary.json of a run that finished (not interrupted); None if the run can go on."""
    try:
        summary = json.loads((Path(run_dir) / reports.SUMMARY_FILE).read_text())
    except (OSError, ValueError):
        return None
    return summary if isinstance(summary, dict) and summary.get("interrupted") is False else None


def latest_checkpoint(run_dir: Path) -> Path:
    """The newest complete checkpoint of `run_dir`; a run stopped before its first is said to be."""
    if not checkpoint.complete(run_dir) and (Path(run_dir) / CONFIG_FILE).is_file():
        raise RunDirError(f"{run_dir}: the run was stopped before its first checkpoint, so there is nothing to "
                          f"resume or evaluate; start it again with `qlax train ... --out {run_dir} --overwrite`")
    return checkpoint.latest(run_dir)


def member_template(trainer: Trainer):
    """Shapes and dtypes of one member's state, without computing it."""
    key = jax.ShapeDtypeStruct((2,), np.uint32)
    return jax.eval_shape(trainer.init, key, trainer.config.hparams())


def state_template(trainer: Trainer, rows: int):
    """Shapes and dtypes of `rows` members' state."""
    return jax.tree.map(lambda s: jax.ShapeDtypeStruct((rows, *s.shape), s.dtype), member_template(trainer))


def run_settings(members: Members) -> dict[str, Any]:
    """The settings that define a run, as its checkpoints are bound to them: its config but
    eval_episodes (which `qlax eval --episodes` may change) and its grid, in order."""
    config = {k: v for k, v in members.config.to_dict().items() if k != "eval_episodes"}
    return {"config": config, "grid": [[key, list(values)] for key, values in members.grid]}


# A checkpoint's state does not depend on the budget it was saved under: a run's budget may
# grow (`qlax resume --steps`), and the checkpoints before it still belong to the run.
BUDGET_FREE = ("total_steps",)


def load_state(run_dir: Path, trainer: Trainer, members: Members, placement: Placement):
    """(the placed state, manifest) from the latest checkpoint of `run_dir`, checked against
    the run's chunks and its metrics.csv (rows and header)."""
    shards = jax.process_count()
    rows = members.count if shards == 1 else len(placement.local_rows)
    latest = latest_checkpoint(run_dir)
    saved, manifest = checkpoint.load(latest, state_template(trainer, rows), settings=run_settings(members),
                                      shard=jax.process_index(), shards=shards, free=BUDGET_FREE)
    chunk = manifest["chunk"]
    done = int(np.max(saved.vector_steps)) * trainer.config.num_envs
    if done > chunk * trainer.chunk_vector_steps * trainer.config.num_envs:  # a checkpoint renamed to an earlier chunk
        raise checkpoint.CheckpointError(
            f"{latest}: its state has taken {done:,} env steps per seed, more than {chunk} chunks take: the "
            f"checkpoint was renamed or its manifest edited")
    if done > trainer.budget * trainer.config.num_envs:
        raise checkpoint.CheckpointError(
            f"{latest}: {done:,} env steps per seed are saved, more than this run's total_steps "
            f"{trainer.config.total_steps:,}: a run's budget can grow, not shrink")
    logged = _metric_rows(Path(run_dir) / reports.METRICS_FILE)
    if logged < chunk * members.count:
        raise checkpoint.CheckpointError(
            f"{run_dir}: {reports.METRICS_FILE} has {logged} rows; {latest.name} covers {chunk} chunks x {members.count} "
            f"members = {chunk * members.count}: the run directory's files do not belong together")
    _check_metrics_header(run_dir, members)  # the columns its rows go on in
    if shards == 1:
        return placement.put(saved), manifest
    if manifest["padded"] != placement.padded:
        raise checkpoint.CheckpointError(
            f"{run_dir}: saved as {manifest['padded']} rows over the devices; these processes lay the "
            f"population out as {placement.padded}: resume on the same number of devices")
    return placement.from_local(saved), manifest


def check_bound(run_dir: Path, members: Members) -> None:
    """Refuse, in one line, a run directory whose files do not belong together, as eval and
    resume would: its newest checkpoint saved under other settings than config.yaml and
    grid.yaml say, or a metrics.csv whose header or row count do not fit its members."""
    if checkpoint.complete(run_dir):
        checkpoint.bound_manifest(latest_checkpoint(run_dir), run_settings(members), BUDGET_FREE)
    _check_metrics_header(run_dir, members)
    path = Path(run_dir) / reports.METRICS_FILE
    if _metric_rows(path) % members.count:
        raise checkpoint.CheckpointError(f"{path}: {_metric_rows(path)} rows is not whole chunks of "
                                         f"{members.count} members")


def metric_values(run_dir: Path, column: str) -> np.ndarray:
    """metrics.csv's `column` as numbers, row by row; one line where the file cannot be read
    as CSV text or a row holds no number there (a file cut short or edited)."""
    path = Path(run_dir) / reports.METRICS_FILE
    with _csv_errors(path), path.open(newline="") as file:
        texts = [row.get(column) for row in csv.DictReader(file)]
    try:
        return np.array([float(text) for text in texts], np.float64)
    except (TypeError, ValueError):
        row = next(i for i, text in enumerate(texts) if not _is_number(text))
        raise checkpoint.CheckpointError(f"{path}: row {row + 1} has {short(texts[row], 40)} for {column}, not a "
                                         f"number: the file was cut short or edited") from None


def _is_number(text) -> bool:
    try:
        float(text)
    except (TypeError, ValueError):
        return False
    return True


@contextmanager
def _csv_errors(path: Path) -> Iterator[None]:
    """A CSV file that cannot be read as text: one line naming it."""
    try:
        yield
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise checkpoint.CheckpointError(f"{path}: cannot be read ({getattr(err, 'strerror', None) or err})") \
            from None


def _check_metrics_header(run_dir: Path, members: Members) -> None:
    """Refuse, in one line, a metrics.csv whose header is none a run of `members` writes: this
    qlax's columns, or an earlier one's (`reports.COLUMN_COUNTS`), which a resume goes on with."""
    path = Path(run_dir) / reports.METRICS_FILE
    with _csv_errors(path):
        header = reports.read_header(path)
    if reports.metric_columns(header, members) is None:
        expected = reports.metric_header(members)
        raise checkpoint.CheckpointError(f"{path}: its columns are {short(header, 100)}, not the {len(expected)} "
                                         f"this run writes ({short(expected, 100)})")


def _metric_rows(path: Path) -> int:
    """Rows of metrics.csv below its header (0 if there is none)."""
    try:
        with path.open("rb") as file:
            return max(sum(1 for _ in file) - 1, 0)
    except FileNotFoundError:
        return 0
    except OSError as err:
        raise checkpoint.CheckpointError(f"{path}: cannot be read ({err.strerror})") from None


def _read_mapping(path: Path) -> dict[str, Any]:
    """The YAML mapping in `path` (config.yaml, grid.yaml), read with qlax's safe loader."""
    try:
        values = load_yaml(path.read_bytes(), str(path))
    except OSError as err:
        raise checkpoint.CheckpointError(f"{path}: cannot be read ({err.strerror})") from None
    if not isinstance(values, dict):
        raise ConfigError(f"{path}: expected a mapping of setting: value, found {type(values).__name__}")
    return values


def load_run_config(run_dir: str | Path) -> TrainConfig:
    """The validated config a run was started with. Its env may not bring in code by itself:
    a name that imports a module (a factory) is read only where the person named it in this
    process (`envs.trust`: trained it here, or passed it again)."""
    path = Path(run_dir) / CONFIG_FILE
    if not path.is_file():
        raise checkpoint.CheckpointError(f"{run_dir}: not a qlax run directory (no config.yaml)")
    values = _read_mapping(path)
    try:
        config = from_dict(values)
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from None
    if not envs.is_trusted(config.env):
        raise envs.EnvError(f"env = {short(config.env)}: {path} names code to build its environment, and qlax imports "
                            f"no code that a run's files name; if you trust it, name it yourself: --env "
                            f"{short(config.env)} on the command line, env=... in Python")
    return config


def load_members(run_dir: str | Path, episodes: int | None = None, env: Any = None) -> Members:
    """The members of the run in `run_dir` (its config, and its grid for a sweep). `env`: the
    run's environment given again: the object of a run trained with `train(..., env=...)`,
    registered under the run's name (where not given, a Gymnasium env object is re-made from
    the spec the run saved, by `envs.remake`'s rules), or the run's env name, which trusts
    the code it names."""
    if isinstance(env, str):
        _check_named(run_dir, env)
        envs.trust(env)
        env = None
    config = load_run_config(run_dir)
    recipe = Path(run_dir) / ENV_RECIPE_FILE
    if env is None and recipe.is_file() and envs.is_object_name(config.env):
        # A new process, or this one holding another object of that name: re-made from the saved spec
        text = _read_text(recipe)
        if not envs.is_registered(config.env) or envs.recipe(envs.registered_object(config.env)) != text:
            env = envs.remake(config.env, text)
    if env is not None:
        envs.register(env, config.env)
    if episodes is not None:
        config = config.replace(eval_episodes=episodes)
    grid_path = Path(run_dir) / GRID_FILE
    if not grid_path.is_file():
        return Members.of(config)
    grid = _read_mapping(grid_path)
    try:
        return Members.of(config, grid)
    except ConfigError as err:
        raise ConfigError(f"{grid_path}: {err}") from None


def _check_named(run_dir: str | Path, name: str) -> None:
    """An env name given again must be the run's own (a run is bound to its environment)."""
    path = Path(run_dir) / CONFIG_FILE
    saved = _read_mapping(path).get("env") if path.is_file() else None
    if saved is not None and saved != name:
        raise envs.EnvError(f"env = {short(name)}: this run trained on {short(saved)}; name that one (a run's "
                            f"parameters fit only its own environment)")


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise checkpoint.CheckpointError(f"{path}: cannot be read ({getattr(err, 'strerror', None) or err})") from None


def load_params(run_dir: str | Path, episodes: int | None = None, best: bool = False,
                env: Any = None, allow_older: bool = True) -> tuple[Trainer, Members, Any, Path]:
    """(trainer, members, stacked greedy Q parameters as numpy, the checkpoint read) from the
    latest checkpoint of `run_dir`; with `best`, those of each member's best greedy check
    (keep_best runs). Unless `allow_older`, a checkpoint older than metrics.csv's last
    chunk (the newest deleted, or a run killed between checkpoints) is refused."""
    members = load_members(run_dir, episodes, env)
    trainer = make_train(members.config)
    latest = latest_checkpoint(Path(run_dir))
    state, manifest = checkpoint.load(latest, state_template(trainer, members.count),
                                      settings=run_settings(members), free=BUDGET_FREE)
    logged = _metric_rows(Path(run_dir) / reports.METRICS_FILE) // members.count
    if not allow_older and logged > manifest["chunk"]:
        raise checkpoint.CheckpointError(
            f"{run_dir}: metrics.csv runs to chunk {logged}, but the newest checkpoint is {latest.name}: its "
            f"parameters are older than the run's last numbers (a newer checkpoint deleted, or the run killed "
            f"between checkpoints); evaluate it anyway with --allow-older (Python: allow_older=True)")
    return trainer, members, trainer.greedy_params(state, best), latest


def starting_params(run_dir: str | Path, members: int, template: Any, best: bool = False,
                    member: int | None = None, env: Any = None) -> Any:
    """The Q parameters of the run in `run_dir` laid out for a new run of `members` members
    (fine-tuning, `train(..., init_from=run_dir)`): its final ones (its best greedy check's,
    with `best`), member for member where the counts agree, else its `member` (default 0
    for a one-member run) for every one. `template`: one new member's parameters (shapes),
    which the saved ones must fit: another environment with the same spaces will do."""
    trainer, saved_members, params, _ = load_params(run_dir, best=best, env=env)
    saved = saved_members.count
    if member is not None and not 0 <= member < saved:
        raise ConfigError(f"init_member = {member}: the run in {run_dir} has members 0 to {saved - 1}")
    if member is None and saved not in (1, members):
        raise ConfigError(f"init_from {run_dir}: it has {saved} members and this run {members}; name the one to "
                          f"start every member from (init_member, --init-member)")
    fits = jax.tree.structure(params) == jax.tree.structure(template) and all(
        np.shape(a)[1:] == np.shape(b) for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(template)))
    if not fits:
        saved_config, spec = saved_members.config, trainer.env.spec
        raise ConfigError(f"init_from {run_dir}: its Q-function ({saved_config.q_function} on {saved_config.env}: "
                          f"{spec.obs_dim} observation entries, {spec.num_actions} actions) does not fit this run's; "
                          f"fine-tune on an environment with the same spaces and the same network settings")
    rows = np.full(members, member or 0) if member is not None or saved == 1 else np.arange(members)
    return jax.tree.map(lambda leaf: np.asarray(leaf)[rows], params)
