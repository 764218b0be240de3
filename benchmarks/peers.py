"""qlax's PQN against rejax 0.1.3's PQN: same env-step budget, same seeds, one machine, one run.

    python benchmarks/peers.py [--cases cartpole,breakout] [--seeds N] [--steps N] [--json PATH]

rejax (https://github.com/keraJLi/rejax) is the closest peer: pure-JAX algorithms whose
whole `train` is jitted and vmapped over seeds. Its 0.1.3 release runs on gymnax 0.0.9's
step API, which qlax (gymnax >= 1.0) can never share, so this script keeps rejax in a
venv of its own (`benchmarks/.venv-rejax`, made on first use with `--python`, pinned to
REJAX_PINS, reused while those pins import) and runs `_rejax_worker.py` there as a
subprocess that prints one JSON line.

Cases (rejax's settings are in `_rejax_worker.py`):
  cartpole  CartPole-v1. rejax: its published PQN config (configs/gymnax/cartpole.yaml),
            524,288 env steps per seed; qlax: the `cartpole-pqn` preset on that budget.
            32 seeds. Solved: a greedy 100-episode mean of at least 475.
  breakout  Breakout-MinAtar. rejax publishes no MinAtar PQN config, so it runs
            `PQN.create`'s defaults; the budget is the `breakout-minatar-pqn` preset's
            total_steps (1,000,000, rejax's own Breakout budget, while that preset is
            missing). 8 seeds. Solved: the preset's solve_threshold, else 10.

The budget caps both sides. rejax trains every seed for all of it; qlax runs its preset as
shipped, so a seed whose greedy check confidently passes stops and freezes there (the
preset's `early_stop`; `--no-early-stop` trains qlax for the whole budget too). Then both
play 100 greedy episodes per seed with each seed's final network. Timed: qlax's whole `qlax.train`
call, measured here (compile, training, evaluation); rejax's compile, train and evaluation
inside the worker (interpreter start and imports excluded). rejax's train runs with its
periodic evaluation (128 episodes every eval_freq steps) replaced by a no-op unless
`--rejax-periodic-eval`, so both train columns are training only. Env steps/s: all seeds'
env steps over training time, compile excluded. rejax's seed keys are sharded over as many
CPU devices as qlax has (one per core), so both use every core; `--rejax-devices 1` gives
rejax JAX's default single device, about half as fast on 2 cores.

Goal, per case: qlax's mean greedy return at least rejax's, in at most rejax's wall time.
A side that cannot run (a missing preset, a failed worker) is reported and skipped.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from _timing import emit, iqm

import jax
import numpy as np

import qlax

HERE = Path(__file__).resolve().parent
REJAX_VENV = HERE / ".venv-rejax"
WORKER = HERE / "_rejax_worker.py"
# rejax 0.1.3's own uv.lock (tag v0.1.3) resolves to this set; installed and run on
# Python 3.11 (CPU). gymnax 0.0.9 is what rejax's step calls are written against.
REJAX_PINS = ("rejax==0.1.3", "gymnax==0.0.9", "jax==0.5.3", "jaxlib==0.5.3", "flax==0.10.6", "optax==0.2.6",
              "distrax==0.1.5", "chex==0.1.90", "tensorflow-probability==0.25.0", "numpy==1.26.4")


@dataclass(frozen=True)
class Case:
    preset: str  # qlax's
    seeds: int
    steps: int | None  # env steps per seed; None: the qlax preset's total_steps
    fallback_steps: int  # when steps is None and the preset does not load
    threshold: float  # greedy mean that counts as solved, unless the preset sets one


CASES = {
    # 524,288: total_timesteps of rejax's configs/gymnax/cartpole.yaml (pqn).
    "cartpole": Case("cartpole-pqn", 32, 524_288, 524_288, 475.0),
    # 1,000,000: total_timesteps of rejax's benchmark/breakout_1m.yaml; 10: qlax's breakout-minatar-dqn.
    "breakout": Case("breakout-minatar-pqn", 8, None, 1_000_000, 10.0),
}


def rejax_python(python: str) -> Path:
    """The rejax venv's interpreter: made and pinned on first use, reused while it imports."""
    exe = REJAX_VENV / "bin" / "python"
    check = ("import importlib.metadata as m, rejax, sys; pins = sys.argv[1:]; "
             "bad = [p for p in pins if m.version(p.split('==')[0]) != p.split('==')[1]]; "
             "sys.exit(f'not as pinned: {bad}' if bad else 0)")
    if exe.exists() and subprocess.run([exe, "-c", check, *REJAX_PINS], capture_output=True).returncode == 0:
        return exe
    if not exe.exists():
        print(f"making {REJAX_VENV} with {python} ...", flush=True)
        subprocess.run([python, "-m", "venv", REJAX_VENV], check=True)
    print(f"installing {' '.join(REJAX_PINS)} there (about a minute) ...", flush=True)
    subprocess.run([exe, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *REJAX_PINS], check=True)
    result = subprocess.run([exe, "-c", check, *REJAX_PINS], capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{REJAX_VENV} does not import rejax as pinned: {result.stderr.strip()}")
    return exe


def run_rejax(exe: Path, case: str, seeds: int, steps: int, devices: int, periodic_eval: bool) -> dict | None:
    """The worker's JSON line, or None (said why) if it failed. Its progress shows as it runs."""
    command = [exe, WORKER, "--case", case, "--seeds", str(seeds), "--steps", str(steps), "--devices", str(devices)]
    if periodic_eval:
        command.append("--periodic-eval")
    result = subprocess.run(command, stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    if result.returncode != 0 or not lines:
        print(f"  rejax {case}: the worker failed (exit {result.returncode}); skipped", flush=True)
        return None
    return json.loads(lines[-1])


def load_preset(name: str):
    """qlax's preset, or None (said why) if it cannot be loaded."""
    try:
        return qlax.presets.load(name)
    except qlax.ConfigError as error:
        print(f"  qlax: preset '{name}' not loaded ({error}); qlax side skipped", flush=True)
        return None


def run_qlax(config, preset: str, seeds: int, steps: int, early_stop: bool) -> dict | None:
    """The whole `qlax.train` call of `preset` on at most `steps` env steps per seed (early stop
    as the preset has it, or off)."""
    try:
        config = config.replace(total_steps=steps, early_stop=config.early_stop and early_stop)
    except qlax.ConfigError as error:
        print(f"  qlax {preset}: {error}; skipped", flush=True)
        return None
    started = time.perf_counter()
    result = qlax.train(config, seeds=seeds, progress=False)
    wall_s = time.perf_counter() - started
    s = result.summary
    return {"library": "qlax", "preset": preset, "seeds": seeds, "env_steps_per_seed": int(max(s["env_steps"])),
            "compile_s": s["compile_s"], "train_s": s["train_s"], "wall_s": round(wall_s, 3),
            "summary_wall_s": s["wall_s"], "env_steps_per_s": s["env_steps_per_s"],
            "eval_mean_return": s["eval_mean_return"], "eval_episodes": config.eval_episodes,
            "versions": {"qlax": qlax.__version__, "jax": jax.__version__},
            "devices": f"{jax.device_count()} x {jax.devices()[0].device_kind}"}


def scored(side: dict, case: str, threshold: float) -> dict:
    """`side` with its greedy-return statistics over seeds added."""
    means = side["eval_mean_return"] or []
    return {**side, "case": case, "threshold": threshold,
            "mean_return": round(float(np.mean(means)), 3) if means else None,
            "iqm_return": round(iqm(means), 3) if means else None,
            "solved": sum(m >= threshold for m in means)}


def print_table(rows: list[dict]) -> None:
    head = (f"{'case':<9} {'library':<7} {'seeds':>5} {'env steps/seed':>14} {'wall s':>8} {'compile s':>9} "
            f"{'env steps/s':>12} {'mean return':>11} {'IQM':>8} {'solved':>7}")
    print(head)
    print("-" * len(head))
    for r in rows:
        number = (lambda v, f: "-" if v is None else format(v, f))
        print(f"{r['case']:<9} {r['library']:<7} {r['seeds']:>5} {r['env_steps_per_seed']:>14,} "
              f"{r['wall_s']:>8.1f} {r['compile_s']:>9.1f} {number(r['env_steps_per_s'], ',.0f'):>12} "
              f"{number(r['mean_return'], '.2f'):>11} {number(r['iqm_return'], '.2f'):>8} "
              f"{r['solved']:>3}/{r['seeds']:<3}")


def goal(ours: dict | None, theirs: dict | None) -> dict:
    """Whether qlax's mean greedy return is at least rejax's, in at most rejax's wall time."""
    if ours is None or theirs is None or ours["mean_return"] is None or theirs["mean_return"] is None:
        return {"met": None}
    returns = ours["mean_return"] >= theirs["mean_return"]
    time_ok = ours["wall_s"] <= theirs["wall_s"]
    return {"met": bool(returns and time_ok), "returns_at_least": bool(returns), "wall_at_most": bool(time_ok),
            "wall_ratio": round(ours["wall_s"] / theirs["wall_s"], 3)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default="cartpole,breakout", help=f"comma-separated, of {', '.join(CASES)}")
    parser.add_argument("--seeds", type=int, default=None, help="seeds per case (default: 32 cartpole, 8 breakout)")
    parser.add_argument("--steps", type=int, default=None, help="env steps per seed, for every case")
    parser.add_argument("--json", default=None, help="also write the results here")
    parser.add_argument("--no-early-stop", action="store_true",
                        help="train every qlax seed for the whole budget, as rejax does")
    parser.add_argument("--python", default="python3.11", help="interpreter for a new rejax venv")
    parser.add_argument("--rejax-devices", type=int, default=jax.device_count(),
                        help="CPU devices rejax's seeds are sharded over (default: as many as qlax has)")
    parser.add_argument("--rejax-periodic-eval", action="store_true",
                        help="keep rejax's in-training evaluations (128 episodes per eval_freq steps)")
    args = parser.parse_args()
    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    unknown = [c for c in cases if c not in CASES]
    if unknown:
        parser.error(f"unknown case(s) {', '.join(unknown)}; known: {', '.join(CASES)}")

    exe = rejax_python(args.python)
    rows, goals = [], {}
    for name in cases:
        case = CASES[name]
        seeds = args.seeds or case.seeds
        print(f"{name}:", flush=True)
        config = load_preset(case.preset)
        steps = args.steps or case.steps or (config.total_steps if config is not None else case.fallback_steps)
        threshold = config.solve_threshold if config is not None and config.solve_threshold is not None \
            else case.threshold
        print(f"  {seeds} seeds x {steps:,} env steps each, solved at a greedy mean of {threshold:g}", flush=True)

        ours = None
        if config is not None:
            print(f"  qlax {case.preset}, whole train call ...", flush=True)
            ours = run_qlax(config, case.preset, seeds, steps, not args.no_early_stop)
            if ours is not None:
                ours = scored(ours, name, threshold)
                rows.append(ours)
                print(f"  qlax: {ours['wall_s']:.1f} s, mean greedy return {ours['mean_return']}", flush=True)

        print(f"  rejax PQN on {args.rejax_devices} CPU device(s) ...", flush=True)
        theirs = run_rejax(exe, name, seeds, steps, args.rejax_devices, args.rejax_periodic_eval)
        if theirs is not None:
            theirs = scored(theirs, name, threshold)
            rows.append(theirs)
            print(f"  rejax: {theirs['wall_s']:.1f} s, mean greedy return {theirs['mean_return']}", flush=True)
        goals[name] = goal(ours, theirs)

    print()
    print_table(rows)
    for name, g in goals.items():
        if g["met"] is None:
            print(f"goal {name}: not judged (a side did not run)")
        else:
            print(f"goal {name}: qlax return >= rejax's: {'yes' if g['returns_at_least'] else 'NO'}; "
                  f"wall time <= rejax's: {'yes' if g['wall_at_most'] else 'NO'} ({g['wall_ratio']:.2f}x)   "
                  f"{'met' if g['met'] else 'NOT met'}")

    result = {"benchmark": "peers", "rows": rows, "goals": goals, "rejax_devices": args.rejax_devices,
              "rejax_periodic_eval": args.rejax_periodic_eval}
    if args.json:
        Path(args.json).write_text(json.dumps({**result, "python": sys.version.split()[0]}, indent=2) + "\n")
    emit(result)


if __name__ == "__main__":
    main()
