"""The `qlax` command: a thin layer over the Python API.

Bad input (a setting, a path, a run directory) exits with code 2 and one line that names
it and what is allowed, before anything is compiled.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

import jax

from qlax import __version__
from qlax.core.devices import cpu_devices_setting, is_writer, join_processes
from qlax.core.errors import printable
from qlax.envs import EnvError, host_failure
from qlax.runs import checkpoint, interrupt
from qlax.runs.checkpoint import CheckpointError
from qlax.runs.experiment import DivergedError, InitFrom, default_run_dir, resume, train
from qlax.runs.pbt import PBT
from qlax.runs.run_evaluation import evaluate_run
from qlax.runs.rundir import EVAL_FILE, RunDirError
from qlax.settings import presets
from qlax.settings.config import ConfigError, TrainConfig, check_setting, field_help, load_yaml, owners, short
from qlax.settings.sweep import check_grid_size

USAGE_ERRORS = (ConfigError, EnvError, CheckpointError, RunDirError)


def parse_value(text: str, source: str) -> Any:
    """A --set or --grid value: YAML, read by `load_yaml` (1e-3 is a number, "1e-3" a string)."""
    return load_yaml(text, source) if text.strip() else text


def parse_sets(pairs: list[str]) -> dict[str, Any]:
    """--set key=value pairs, each value checked as it is given (a later one for the same key
    overrides it, but a bad one is refused all the same)."""
    changes = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set {short(pair)}: expected key=value, e.g. --set lr=1e-3")
        changes[key.strip()] = check_setting(key.strip(), parse_value(text, f"--set {short(pair)}"))
    return changes


def build_config(args: argparse.Namespace) -> TrainConfig:
    changes = parse_sets(args.set)
    if args.seeds is not None:
        changes["seeds"] = args.seeds
    if args.steps is not None:
        changes["total_steps"] = args.steps
    if args.no_early_stop:
        changes["early_stop"] = False
    return presets.load(args.preset).replace(**changes)


def parse_grid(pairs: list[str]) -> dict[str, list]:
    """--grid lr=1e-3,2.5e-3 --grid gamma=0.98,0.99 -> {"lr": [0.001, 0.0025], "gamma": [...]};
    a grid with too many settings is refused before any value is read."""
    texts: dict[str, list[str]] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        key = key.strip()
        values = [v for v in text.split(",") if v.strip()]
        if not sep or not key or not values:
            raise ConfigError(f"--grid {short(pair)}: expected key=value,value,..., e.g. --grid lr=1e-3,5e-3")
        if key in texts:
            raise ConfigError(f"--grid {short(key)}: given twice; list every value once, "
                              f"e.g. --grid {short(key)}=a,b,c")
        texts[key] = values
    check_grid_size({key: len(values) for key, values in texts.items()})
    return {key: [parse_value(v, f"--grid {short(f'{key}={v}')}") for v in values] for key, values in texts.items()}


def join_if_asked(args: argparse.Namespace) -> None:
    """Join a multi-process run when --coordinator (or --distributed) says so."""
    given = [args.coordinator, args.num_processes, args.process_id]
    if args.distributed and any(v is not None for v in given):
        raise ConfigError("--distributed detects the cluster itself; give it alone, or give "
                          "--coordinator, --num-processes and --process-id without it")
    if any(v is not None for v in given) and not all(v is not None for v in given):
        raise ConfigError("--coordinator, --num-processes and --process-id go together: give all three")
    if args.distributed or args.coordinator is not None:
        if args.command != "resume" and args.out is None:
            raise ConfigError("a multi-process run needs --out: every process must write to the same directory")
        join_processes(args.coordinator, args.num_processes, args.process_id)


def cmd_train(args: argparse.Namespace, grid: dict[str, list] | None = None) -> int:
    config = build_config(args)
    join_if_asked(args)
    out = args.out if args.out is not None else default_run_dir(args.preset, config.env)
    args.out = str(out)  # known now, for the line an interrupt prints
    init_from = None if args.init_from is None else InitFrom(Path(args.init_from), args.init_best, args.init_member)
    pbt = None if args.pbt is None else \
        PBT(perturb=tuple(s.strip() for s in args.pbt.split(",") if s.strip()), every=args.pbt_every)
    result = train(config, grid=grid, out=out, overwrite=args.overwrite, preset=args.preset, progress=True,
                   checkpoint_every=args.checkpoint_every, keep=args.keep, max_memory=args.max_memory,
                   log=args.log, init_from=init_from, pbt=pbt)
    return report(result)


def cmd_sweep(args: argparse.Namespace) -> int:
    return cmd_train(args, parse_grid(args.grid))


def cmd_resume(args: argparse.Namespace) -> int:
    join_if_asked(args)
    result = resume(args.run_dir, progress=True, max_memory=args.max_memory, env=args.env, steps=args.steps)
    if result.already_finished:
        if is_writer():
            print(f"{result.run_dir}: the run is finished{solved_note(result)}; nothing to resume")
        return 0
    return report(result)


def solved_note(result) -> str:
    """' (solved 3/8 seeds)' or ' (no threshold)' for a finished run; '' when nothing was evaluated."""
    if result.summary["threshold"] is None:
        return " (no threshold)"
    if result.solved is None:
        return ""
    noun = "members" if result.members.grid else "seeds"
    return f" (solved {sum(result.solved)}/{len(result.solved)} {noun})"


def solved_count(solved: list[bool], threshold: float | None, noun: str) -> str:
    """'solved 3/8 seeds', or 'no threshold, 8 seeds' for an environment without one."""
    if threshold is None:
        return f"no threshold, {len(solved)} {noun}"
    return f"solved {sum(solved)}/{len(solved)} {noun}"


def report(result) -> int:
    """Print the greedy evaluation per member (per setting, for a sweep) and the run's totals;
    return the exit code. With several processes, process 0 prints."""
    s, out = result.summary, result.run_dir
    if not is_writer():
        return interrupt.exit_code() if result.interrupted else 0
    if result.interrupted:
        steps = s["env_steps"] if "env_steps" in s else [m["env_steps"] for m in s["members"]]
        print(f"\ninterrupted at {max(steps):,} env steps per seed; checkpoint, metrics.csv and "
              f"summary.json saved in {out}\nresume with: qlax resume {out}")
        return interrupt.exit_code()
    threshold = s["threshold"]
    print(f"\ngreedy evaluation, {s['eval_episodes']} episodes per seed "
          f"({'no threshold' if threshold is None else f'threshold {threshold}'}):")
    if result.members.grid:
        for row in s["settings"]:
            stderr = "" if row["stderr_return"] is None else f" +- {row['stderr_return']:.1f}"
            solved = "" if threshold is None else f"  solved {row['solved_fraction']:.0%} of {row['seeds']} seeds"
            print(f"  {result.members.label(row['setting']):40s} mean return {row['mean_return']:8.1f}{stderr}"
                  f"{solved}")
        print(f"best: {result.members.label(s['best_setting']['setting'])} (chosen on these returns, which flatters "
              f"it: train it again with other seeds for a number that did not choose it)")
        noun = "members"
    else:
        for i, (mean, solved) in enumerate(zip(s["eval_mean_return"], s["solved"])):
            print(f"  seed {i:3d}: mean return {mean:8.1f}  {status(solved, threshold, s['diverged'][i])}"
                  f"({s['env_steps'][i]:,} env steps)")
        noun = "seeds"
    note = time_limit_note(result.eval_at_time_limit, result.solved, s["eval_episodes"], s["eval_time_limit"], noun)
    if note:
        print(note)
    print(f"{solved_count(result.solved, threshold, noun)}  |  wall {s['wall_s']:.1f} s "
          f"(compile {s['compile_s']:.1f} s)  |  {s['env_steps_per_s'] or 0:,.0f} env steps/s  |  {out}")
    return 0


def time_limit_note(at_limit: list[int | None] | None, solved: list[bool], episodes: int, limit: int | None,
                    noun: str) -> str | None:
    """A line naming the members none of whose `episodes` greedy episodes the environment
    ended (`at_limit` ran to the time limit), unless they solved: a greedy policy that goes
    round in circles looks like this (Snake's runs back and forth between two cells for
    4,000 steps), as does one that lasts where lasting is the task. None where none did, or
    where lengths were not counted."""
    stuck = [str(i) for i, (n, done) in enumerate(zip(at_limit or [], solved)) if n == episodes and not done]
    if not stuck:
        return None
    return (f"{noun} {', '.join(stuck)}: every greedy episode ran to the {limit:,}-step time limit; unless lasting "
            f"is the task, the policy may be going round in circles (qlax render shows one)")


def status(solved: bool, threshold: float | None, diverged: bool = False) -> str:
    """A member's line's verdict and the spaces after it: nothing to say without a threshold."""
    if diverged:
        return "diverged  "
    if threshold is None:
        return ""
    return "solved  " if solved else "-  "


def cmd_eval(args: argparse.Namespace) -> int:
    result = evaluate_run(args.run_dir, episodes=args.episodes, backend=args.backend, best=args.best, env=args.env,
                          allow_older=args.allow_older)
    threshold = result["threshold"]
    for i, (mean, std) in enumerate(zip(result["mean_return"], result["std_return"])):
        print(f"  seed {i:3d}: mean return {mean:8.1f} +- {std:.1f}  {status(result['solved'][i], threshold)}"
              .rstrip())
    note = time_limit_note(result["at_time_limit"], result["solved"], result["episodes"], result["time_limit"], "seeds")
    if note:
        print(note)
    print(f"{solved_count(result['solved'], threshold, 'seeds')} over {result['episodes']} "
          f"episodes each on {result['env']}  |  {result['checkpoint']}  |  {Path(args.run_dir) / EVAL_FILE}")
    return 0


def cmd_plot(args: argparse.Namespace) -> int:
    from qlax.runs.plotting import learning_curve

    for run_dir in args.run_dirs:
        if not (Path(run_dir) / "metrics.csv").is_file():
            raise CheckpointError(f"{run_dir}: not a qlax run directory (no metrics.csv)")
    out = Path(args.out) if args.out is not None else Path(args.run_dirs[0]) / "learning_curve.png"
    print(learning_curve([Path(d) for d in args.run_dirs], out, env=args.env))
    return 0


def cmd_render(args: argparse.Namespace) -> int:
    from qlax.tools.render import render_episode

    path, frames = render_episode(args.run_dir, seed=args.seed, out=args.out, setting=args.setting, env=args.env)
    print(f"{path}: {frames} frames")
    return 0


def cmd_envs(args: argparse.Namespace) -> int:
    from qlax.envs import supported

    by_env: dict[str, list[str]] = {}
    for name in presets.names():
        by_env.setdefault(presets.load(name).env, []).append(name)
    specs, refused = supported()
    print(f"{'id':26s} {'observation':>12s} {'actions':>7s} {'threshold':>9s}  presets")
    for spec in specs:
        shape = "x".join(map(str, spec.obs_shape)) or f"index<{spec.obs_dim}"
        threshold = "-" if spec.solve_threshold is None else f"{spec.solve_threshold:g}"
        print(f"{spec.id:26s} {shape:>12s} {spec.num_actions:7d} {threshold:>9s}  {', '.join(by_env.get(spec.id, [])) or '-'}")
    for env_id, why in refused.items():
        print(f"{env_id:26s} not supported: {why}")
    print("\nBeyond gymnax's: gymnasium:ID, atari:GAME, envpool:ID, navix:ID, jumanji:ID, and module.path:factory "
          "for your own JAX environment (docs/environments/own-jax.md)")
    return 0


def cmd_presets(args: argparse.Namespace) -> int:
    if args.show:
        config = presets.load(args.show)
        helps, read = field_help(), owners(config)
        groups: dict[str, list[str]] = {}
        for key in sorted(config.to_dict(), key=lambda k: k not in read):  # the unread last, field order kept
            groups.setdefault(read.get(key, "nothing this preset chose (its defaults)"), []).append(key)
        for owner, keys in groups.items():
            print(f"# read by {owner}")
            for key in keys:
                value = getattr(config, key)
                text = value if isinstance(value, str) else json.dumps(value)
                print(f"{key + ':':18s} {text:<14s}  # {helps[key]}")
        return 0
    for name in presets.names():
        default = " (default)" if name == presets.DEFAULT else ""
        print(f"{name + default:24s} {presets.description(name)}")
    return 0


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad command line gets one `qlax: error:` line (exit 2), not the usage too."""

    def error(self, message: str):
        self.exit(2, f"qlax: error: {printable(message[:300])} (see {self.prog} --help)\n")


def make_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="qlax", description="Q-learning in JAX, compiled end to end.")
    parser.add_argument("--version", action="version", version=f"qlax {__version__}", help="print qlax's version")
    sub = parser.add_subparsers(dest="command", required=True, help="see `qlax COMMAND -h`")

    train = sub.add_parser("train", help="train a population of seeds, evaluate, write a run directory")
    add_run_arguments(train)
    train.set_defaults(func=cmd_train)

    sweep = sub.add_parser("sweep", help="train every setting of a grid x seeds as one compiled program")
    add_run_arguments(sweep)
    sweep.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2,...", required=True,
                       help="values of a dynamic setting to try (repeatable; the full product is trained)")
    sweep.set_defaults(func=cmd_sweep)

    resume = sub.add_parser("resume", help="continue a run from its latest checkpoint")
    resume.add_argument("run_dir", metavar="DIR", help="the run directory of an interrupted run")
    resume.add_argument("--steps", type=int, metavar="N", help="a new budget, env steps per seed: train a finished "
                        "or interrupted run further (members that stopped early stay stopped)")
    add_env_argument(resume)
    add_process_arguments(resume)
    resume.set_defaults(func=cmd_resume)

    evaluate = sub.add_parser("eval", help="greedy evaluation of a finished run")
    evaluate.add_argument("run_dir", metavar="DIR", help="a run directory with a checkpoint")
    add_env_argument(evaluate)
    evaluate.add_argument("--episodes", type=int, help="episodes per seed (default: the run's eval_episodes)")
    evaluate.add_argument("--backend", choices=("gymnax", "gymnasium"), default="gymnax",
                          help="gymnax (compiled) or Gymnasium's own environment of the same id")
    evaluate.add_argument("--allow-older", action="store_true",
                          help="evaluate the newest checkpoint even where metrics.csv runs past it")
    evaluate.add_argument("--best", action="store_true",
                          help="evaluate each member's best greedy check (runs trained with keep_best)")
    evaluate.set_defaults(func=cmd_eval)

    plot = sub.add_parser("plot", help="learning curves of one or more runs on one figure")
    plot.add_argument("run_dirs", nargs="+", metavar="DIR", help="run directories, drawn on one figure")
    add_env_argument(plot)
    plot.add_argument("--out", help="image path (default: DIR/learning_curve.png of the first run)")
    plot.set_defaults(func=cmd_plot)

    render = sub.add_parser("render", help="one greedy episode of a seed as a GIF")
    render.add_argument("run_dir", metavar="DIR", help="a run directory with a checkpoint")
    add_env_argument(render)
    render.add_argument("--seed", type=int, default=0, help="which seed's policy plays (default 0)")
    render.add_argument("--setting", type=int, default=0, help="for a sweep: which setting's seed")
    render.add_argument("--out", help="GIF path (default: DIR/episode-seed<i>.gif)")
    render.set_defaults(func=cmd_render)

    envs = sub.add_parser("envs", help="the gymnax environments qlax can train on")
    envs.set_defaults(func=cmd_envs)

    listing = sub.add_parser("presets", help="list presets, or print every setting of one")
    listing.add_argument("--show", metavar="PRESET", help="print every setting of PRESET (a name or a YAML path)")
    listing.set_defaults(func=cmd_presets)
    return parser


def add_env_argument(parser: argparse.ArgumentParser) -> None:
    """--env for the commands that read a run: a run's files never bring in code by themselves."""
    parser.add_argument("--env", metavar="NAME", help="the run's environment, named again where it is built by "
                        "code (module.path:factory, gymnasium:module:factory): qlax imports no code that a run's "
                        "files name")


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments `train` and `sweep` share."""
    parser.add_argument("preset", nargs="?", default=presets.DEFAULT,
                        help=f"preset name or YAML path (default: {presets.DEFAULT}; see `qlax presets`)")
    parser.add_argument("--seeds", type=int, help="seeds trained at once (per setting, for a sweep)")
    parser.add_argument("--steps", type=int, help="environment steps per seed")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a setting (repeatable); `qlax presets --show NAME` lists them")
    parser.add_argument("--no-early-stop", action="store_true",
                        help="train every seed for the whole budget")
    parser.add_argument("--out", metavar="DIR", help="run directory (default: runs/<preset>-<time>, with the env "
                        "id after the preset's name when --set env= changes it); refused if it holds a run")
    parser.add_argument("--overwrite", action="store_true",
                        help="delete the run already in --out (its checkpoints, metrics, summary, plots) first")
    parser.add_argument("--checkpoint-every", type=int, default=10, metavar="N",
                        help="save the full training state every N chunks (default 10) and at the end")
    parser.add_argument("--keep", type=int, default=2, metavar="K", help="checkpoints kept (default 2)")
    parser.add_argument("--init-from", metavar="RUN", help="fine-tune: start every member's Q parameters from the "
                        "saved run RUN's final ones (same network, same observation and action spaces)")
    parser.add_argument("--init-best", action="store_true", help="with --init-from: its best greedy check's "
                        "parameters (runs trained with keep_best)")
    parser.add_argument("--init-member", type=int, metavar="I", help="with --init-from: start every member from "
                        "RUN's member I (default: member for member, or its only one)")
    parser.add_argument("--pbt", metavar="SETTINGS", help="population-based training: every --pbt-every chunks the "
                        "worst quarter of the members copy the best and perturb these dynamic settings (e.g. "
                        "lr,eps_end); needs --no-early-stop")
    parser.add_argument("--pbt-every", type=int, default=4, metavar="K", help="chunks between PBT rounds (default 4)")
    parser.add_argument("--log", action="append", default=[], metavar="TRACKER",
                        help="also log every chunk to tensorboard (DIR/tensorboard) or wandb (offline in DIR/wandb "
                             "unless W&B is configured); repeatable")
    add_process_arguments(parser)


def add_process_arguments(parser: argparse.ArgumentParser) -> None:
    """Memory limit and multi-process arguments (train, sweep, resume)."""
    parser.add_argument("--max-memory", metavar="SIZE",
                        help="refuse a population that needs more (e.g. 8GB) per device, or per process on "
                             "CPUs; default: 80%% of the device's memory, or of host RAM")
    group = parser.add_argument_group("several processes (one per host), see README")
    group.add_argument("--coordinator", metavar="HOST:PORT", help="address of process 0, for jax.distributed")
    group.add_argument("--num-processes", type=int, metavar="N", help="how many processes the run has")
    group.add_argument("--process-id", type=int, metavar="I", help="this process's index, 0 to N-1")
    group.add_argument("--distributed", action="store_true",
                       help="join a cluster that jax.distributed detects itself (SLURM, Open MPI, TPU, ...)")


def saved_text(args: argparse.Namespace | None) -> str:
    """What the command has saved so far, for the line an interrupted command ends with."""
    command = getattr(args, "command", None)
    run_dir = args.out if command in ("train", "sweep") else args.run_dir if command == "resume" else None
    if run_dir is None:
        return "nothing was saved"
    try:
        name = checkpoint.latest(run_dir).name
    except CheckpointError:
        return f"no checkpoint was saved in {run_dir}"
    return f"checkpoint {name} is saved in {run_dir}; continue with: qlax resume {run_dir}"


def main(argv: list[str] | None = None) -> int:
    """The `qlax` command. Without `argv` it is this process's command: its exit on a signal
    (interrupt.exit_on_signal) then stays until the process ends."""
    args = None
    previous = interrupt.exit_on_signal(lambda: saved_text(args))
    try:
        bad_devices = cpu_devices_setting()[1]
        if bad_devices is not None:
            raise ConfigError(bad_devices)
        args = make_parser().parse_args(argv)
        code = args.func(args)
        sys.stdout.flush()  # a closed pipe shows here, not at exit
        return code
    except BrokenPipeError:  # the reader went away (`qlax presets | head -1`): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no error when Python flushes at exit
        return 0
    except USAGE_ERRORS as err:
        return error(err, 2)
    except OSError as err:  # a path the file system refuses
        return error(f"{err.filename}: {err.strerror}" if err.filename else err, 2)
    except DivergedError as err:
        return error(err, 1)
    except jax.errors.JaxRuntimeError:
        failure = host_failure()
        if failure is None:
            raise
        return error(failure, 2)
    finally:
        if argv is not None:
            interrupt.restore(previous)
        else:
            interrupt.ignore_while_exiting()


MAX_ERROR_CHARS = 480


def error(message, code: int) -> int:
    """Print `message` as one `qlax: error:` line; a long one (a huge path) keeps its start
    and its end, where the advice is."""
    text = printable(" ".join(str(message).splitlines()))
    if len(text) > MAX_ERROR_CHARS:
        half = (MAX_ERROR_CHARS - 5) // 2
        text = f"{text[:half]} ... {text[-half:]}"
    print(f"qlax: error: {text}", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
