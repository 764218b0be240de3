"""qlax's generic presets against Stable-Baselines3's DQN on environments no preset was tuned on (issue #21).

    python benchmarks/transfer.py [--envs NAME,...] [--presets dqn[,sb3]] [--seeds 5] [--first-seed 0] [--steps-scale 1.0]
                                  [--sb3-python PATH | --sb3-from LOG | --no-sb3] [--set KEY=VALUE ...]

What a user meets with a new environment: qlax's generic preset with `env` switched, against
SB3's DQN with rl-baselines3-zoo's settings where rl-zoo has an entry for the env and SB3's
defaults elsewhere, on the same env-step budget and the same number of seeds, in one run.

The suite (none of them is a preset's env; the tuned ones are CartPole, Acrobot,
MountainCar, Breakout/Asterix/SpaceInvaders-MinAtar, Navix Empty, Jumanji Knapsack, Atari
Pong and Breakout). Classic control has no other discrete-action task, so none is here.
  gymnasium:FrozenLake-v1   toy text: 16 states one-hot, slippery moves (the outcome of an
                            action is random), a reward only at the goal; credit assignment
                            under noise. Gymnasium's threshold 0.7.
  gymnasium:Taxi-v4         toy text: 500 states one-hot, a wide sparse input, a -10 for
                            wrong pick-ups, +20 for a delivery; exploration over a larger
                            table (v3 is deprecated in Gymnasium 1.3). CliffWalking is left
                            out: it has no time limit, so a poor greedy policy never ends.
  gymnasium:LunarLander-v3  Box2D: 8 continuous inputs, shaped rewards, 1,000-step
                            episodes; the one env of the suite rl-zoo tuned SB3's DQN on
                            (its LunarLander-v2 entry; v3 is Gymnasium 1.x's version).
  Freeway-MinAtar           MinAtar (gymnax): a 10x10x7 grid, a reward per crossing of the
                            road, the suite's longest episodes (2,500 steps).
  Seaquest-MinAtar          MinAtar (gymnax): 10x10x10, 6 actions, the MinAtar game with
                            the most to learn (oxygen, divers, enemies, surfacing).
  navix:Navix-DoorKey-5x5-v0  MiniGrid's DoorKey in JAX: pick up the key, open the door,
                            reach the goal; a reward only at the end, a sub-goal chain.
  navix:Navix-Dynamic-Obstacles-5x5-Random-v0  two obstacles moving at random; hitting one
                            ends the episode with nothing (navix pays 1 at the goal only,
                            not MiniGrid's -1 for a hit); stochastic, a random start.
  jumanji:Snake-v1          Jumanji: a 12x12 grid of 5 channels flattened (725 inputs), a
                            reward per fruit, episodes up to 4,000 steps. qlax acts by the
                            env's action mask (moves that do not kill the snake); SB3's DQN
                            has no masks and sees the mask only as 4 inputs.
                            Maze-v0 was left out: random play and PQN both stay at 0.1
                            (docs/results.md), so it would tell nothing apart.
Held out (`HELD_OUT`, by --envs only, never counted for the goal): Asterix-, Breakout- and
SpaceInvaders-MinAtar, to check that a setting chosen on the suite's grids carries over to
games no generic setting was chosen on.

Budgets: `ENVS` (env steps per seed, times --steps-scale): rl-zoo's 100,000 on
LunarLander (what its settings were tuned for), 50,000 elsewhere, half the generic
presets' budget, to keep the default run (5 seeds, SB3's one after another) near an hour
on 2 CPU cores. SB3 steps a JAX env one jitted call at a time, 400-700 env steps/s on a
busy 2-core machine; estimated from speeds measured there, the default run takes about
80 minutes of SB3 and 25-30 of qlax (whose MinAtar convolutions run at 700-900 env
steps/s for 5 seeds). `--steps-scale 2` gives every env at least the presets' 100,000.
Each preset's epsilon schedule (not rainbow's: noisy layers) is kept as the same fraction
of the budget (its comment says to scale it with the budget). Greedy evaluation: 100
episodes, fewer on the long-episode envs (`ENVS`), the same count for both libraries.

qlax: `qlax.train(preset.replace(env=..., total_steps=budget, seeds=N), progress=False)`, all
seeds in one program, timed as the whole call (compile and evaluation included); each
seed's greedy return is the run's own final evaluation (`eval_mean_return`; with keep_best
the best check's policy, evaluated afresh, goes in the JSON as `best`); env steps/s is the
run's (summary.json's: all seeds together, compile excluded). Early stop stays on as the
presets have it, so a seed may stop before its budget. qlax's persistent compilation cache
is on, as it is by default, so a second run of the same env and budget compiles in a
fraction of the first's time (compile_s is in the JSON); QLAX_COMPILATION_CACHE=off
measures a cold compile every time. `--presets sb3` trains qlax with the settings SB3
runs with on each env instead (`run_config`), which tells the engine apart from the
settings.

SB3: `_sb3_transfer_worker.py` in benchmarks/.venv-sb3 (made on first use by `_sb3_venv`,
with Box2D, gymnax, navix, Jumanji and JAX pinned to this interpreter's versions), one
subprocess per seed, one after another, PyTorch on 1 thread (SB3's advice for small
networks on a CPU; see host_envs.py). rl-zoo's entries are copied from
DLR-RM/rl-baselines3-zoo hyperparams/dqn.yml (commit ce95481b041fe5314c1b2f1a53940d169b9253fc).
SB3's network is its MlpPolicy (rl-zoo's for LunarLander, SB3's default elsewhere; its
CnnPolicy needs images of at least 36x36) on the observation qlax's adapter gives before
scaling: flattened, unscaled (rl-zoo normalizes nothing here). SB3's wall time for the same
seeds is the sum over seeds of making the env and the model, `learn` and the greedy evaluation
(interpreter start and imports excluded); its env steps/s is steps over `learn` seconds.
The JAX envs step one copy at a time through a jitted call, which is what they cost SB3
(compiled afresh in every seed's process, a few seconds).

SB3's side does not change when qlax does, and takes about 80 minutes: `--sb3-from LOG`
takes its rows from the JSON line of an earlier run's output (same envs, seeds and budgets,
checked), and the table says where they came from. `--set KEY=VALUE` changes a qlax setting
of every preset run (a candidate for a generic preset's default), as `qlax train --set` does.

IQM over seeds: the interquartile mean, rliable's: sort the seeds' returns, drop
floor(n/4) from each end, average the rest (5 seeds: the middle 3; 2 or 3 seeds: the
mean of all). With 5 seeds an IQM is a rough number, so each env's line also gives how
rough: a 95% percentile-bootstrap interval of each library's IQM (exact over every
resample of the seeds) and P(qlax > SB3), the chance that a qlax seed returns more than an
SB3 seed (ties half; rliable's probability of improvement: 0.5 is a draw). They go in the
JSON as `iqm_interval` and `p_improvement`.

Goal (issue #21): the generic `dqn` reaches at least SB3's IQM on at least 7 of 8
environments, in at most a fifth of SB3's wall time for the same seeds.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import itertools
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

from _sb3_venv import HERE, run_worker, sb3_python
from _timing import emit, iqm

import numpy as np
import qlax
from qlax.envs import env_spec
from qlax.program.evaluation import episode_limit
from qlax.settings import presets, zoo
from qlax.settings.config import TrainConfig
from qlax.core.errors import ConfigError
from qlax.tools.cli import parse_sets

WORKER = HERE / "_sb3_transfer_worker.py"
GOAL_WALL_RATIO = 5.0  # SB3's wall time / qlax's, at least
GOAL_ENVS = 7  # of 8
RUN_SETTINGS = {"env", "total_steps", "seeds", "eval_episodes", "seed"}  # set per env by qlax_run, not by --set


@dataclass(frozen=True)
class Env:
    steps: int  # env steps per seed at --steps-scale 1
    eval_episodes: int  # greedy episodes per seed, both libraries
    zoo: dict | None = None  # rl-zoo's dqn.yml entry (less n_timesteps); None: SB3's defaults
    needs: str | None = None  # a module the env needs in qlax's interpreter


# rl-zoo's LunarLander-v2 entry, hyperparams/dqn.yml at ce95481b041fe5314c1b2f1a53940d169b9253fc
ZOO_LUNARLANDER = {"policy": "MlpPolicy", "learning_rate": 6.3e-4, "batch_size": 128, "buffer_size": 50_000,
                   "learning_starts": 0, "gamma": 0.99, "target_update_interval": 250, "train_freq": 4,
                   "gradient_steps": -1, "exploration_fraction": 0.12, "exploration_final_eps": 0.1,
                   "policy_kwargs": {"net_arch": [256, 256]}}
ENVS = {
    "gymnasium:FrozenLake-v1": Env(50_000, 100),
    "gymnasium:Taxi-v4": Env(50_000, 100),
    "gymnasium:LunarLander-v3": Env(100_000, 100, ZOO_LUNARLANDER, needs="Box2D"),
    "Freeway-MinAtar": Env(50_000, 10),  # 2,500-step episodes
    "Seaquest-MinAtar": Env(50_000, 20),
    "navix:Navix-DoorKey-5x5-v0": Env(50_000, 100),
    "navix:Navix-Dynamic-Obstacles-5x5-Random-v0": Env(50_000, 100),
    "jumanji:Snake-v1": Env(50_000, 20),  # episodes up to 4,000 steps
}
# Outside the suite: MinAtar's other three games, to check that a grid setting chosen on the
# suite carries over (their tuned presets are not the generic ones). --envs takes them; the
# default run and the goal's count leave them out.
HELD_OUT = {"Asterix-MinAtar": Env(50_000, 20), "Breakout-MinAtar": Env(50_000, 20),
            "SpaceInvaders-MinAtar": Env(50_000, 20)}
KNOWN = {**ENVS, **HELD_OUT}
# What the SB3 venv needs beyond SB3 for these envs, pinned to what qlax runs with here.
SB3_EXTRA_PACKAGES = ("jax", "jaxlib", "flax", "gymnax", "navix", "jumanji")
SB3_EXTRA_IMPORTS = ("Box2D", "gymnax", "navix", "jumanji")


def sb3_extra_pins() -> tuple[str, ...]:
    """Gymnasium with Box2D, and the JAX env packages, at this interpreter's versions, so both
    libraries step the same environment code."""
    return (f"gymnasium[box2d]=={importlib.metadata.version('gymnasium')}",
            *(f"{name}=={importlib.metadata.version(name)}" for name in SB3_EXTRA_PACKAGES))


def budget(spec: Env, steps_scale: float) -> int:
    """Env steps per seed for `spec` at --steps-scale."""
    return max(1, math.ceil(spec.steps * steps_scale))


def iqm_interval(values: list[float], level: float = 0.95) -> tuple[float, float]:
    """A percentile bootstrap interval of the IQM over seeds: how far 5 seeds pin it down.
    Up to 7 seeds it is exact, over every one of the n^n resamples (Monte Carlo draws
    moved the bound of a 5-seed interval from 0.733 to 0.65 where the distribution jumps);
    beyond, 100,000 resamples."""
    values = np.asarray(values, float)
    if values.size <= 7:
        draws = np.array(list(itertools.product(values, repeat=values.size)))
    else:
        draws = np.random.default_rng(0).choice(values, size=(100_000, values.size))
    iqms = iqm(draws)
    return float(np.quantile(iqms, (1 - level) / 2)), float(np.quantile(iqms, (1 + level) / 2))


def probability_of_improvement(ours: list[float], theirs: list[float]) -> float:
    """P(a qlax seed returns more than an SB3 seed), ties counting half, over every pair of
    seeds (the Mann-Whitney statistic over n x m, as rliable reports it): 0.5 is a draw."""
    diff = np.subtract.outer(np.asarray(ours, float), np.asarray(theirs, float))
    return float(np.mean((diff > 0) + 0.5 * (diff == 0)))


SB3_SETTINGS = "sb3"  # --presets name: qlax given SB3's own settings for the env


def run_config(preset: str, env: str, steps: int, seeds: int, eval_episodes: int, changes: dict) -> TrainConfig:
    """What qlax trains: a generic `preset` with `env` switched and its epsilon decay kept
    as the same fraction of the budget; or, for `sb3`, the settings SB3 runs with on `env`
    (rl-zoo's entry, else SB3's defaults) as `qlax.settings.zoo` translates them, so a
    comparison can tell the engine from the settings. SB3's replay (a million by default)
    is cut to the budget: with one env it never holds more, so nothing changes."""
    if preset == SB3_SETTINGS:
        settings, _ = zoo.translate({**(KNOWN[env].zoo or {}), "n_timesteps": steps})
        settings["buffer_size"] = min(settings["buffer_size"], steps)
        return TrainConfig(env=env, seeds=seeds, eval_episodes=eval_episodes, **settings).replace(**changes)
    base = presets.load(preset).replace(**changes)
    config = base.replace(env=env, total_steps=steps, seeds=seeds, eval_episodes=eval_episodes)
    if base.exploration != "noisy":  # epsilon decays over the same fraction of the budget
        config = config.replace(eps_decay_steps=max(1, round(base.eps_decay_steps * steps / base.total_steps)))
    return config


def qlax_run(preset: str, env: str, steps: int, seeds: int, eval_episodes: int, changes: dict) -> dict:
    """One qlax.train call of `preset` on `env` (with `changes`), all seeds at once, timed whole."""
    config = run_config(preset, env, steps, seeds, eval_episodes, changes)
    started = time.perf_counter()
    result = qlax.train(config, progress=False)
    wall_s = time.perf_counter() - started
    returns = [float(r) for r in result.eval_mean_return]
    return {"library": "qlax", "preset": preset, "changes": changes, "returns": returns, "iqm": iqm(returns),
            "at_time_limit": result.summary["eval_at_time_limit"],
            "best": result.summary.get("best_eval_mean_return"), "wall_s": wall_s,
            "compile_s": result.summary["compile_s"],
            "env_steps": result.summary["env_steps"], "env_steps_per_s": result.summary["env_steps_per_s"]}


def sb3_run(env: str, spec: Env, steps: int, seeds: int, python, first_seed: int = 0) -> dict | None:
    """SB3's DQN on `env`, one worker per seed (first_seed, first_seed + 1, ...) in turn; None if a seed failed."""
    dqn = dict(spec.zoo) if spec.zoo is not None else {"policy": "MlpPolicy"}
    limit = episode_limit(env_spec(env))  # greedy episodes that run this long count as at the time limit
    runs = []
    for seed in range(first_seed, first_seed + seeds):
        run = run_worker(WORKER, {"env": env, "seed": seed, "steps": steps, "dqn": dqn,
                                  "eval_episodes": spec.eval_episodes, "time_limit": limit, "threads": 1}, python)
        if run is None:
            return None
        runs.append(run)
    returns = [run["mean_return"] for run in runs]
    return {"library": "sb3", "settings": "rl-zoo" if spec.zoo is not None else "SB3 defaults",
            "returns": returns, "iqm": iqm(returns), "at_time_limit": [run["at_time_limit"] for run in runs],
            "wall_s": sum(run["wall_s"] for run in runs),
            "env_steps_per_s": sum(run["env_steps"] for run in runs) / sum(run["learn_s"] for run in runs),
            "versions": runs[0]["versions"]}


def earlier_sb3_rows(log: str, seeds: int, budgets: dict[str, int], first_seed: int = 0) -> dict[str, dict]:
    """SB3's results for each env of `budgets` (env -> env steps per seed) from the JSON line
    an earlier run of this benchmark printed last; it must have run them on those budgets."""
    lines = [line for line in Path(log).read_text().splitlines() if line.startswith('{"benchmark": "transfer"')]
    if not lines:
        raise SystemExit(f"--sb3-from {log}: no transfer result line in it")
    earlier = json.loads(lines[-1])
    if earlier["seeds"] != seeds:
        raise SystemExit(f"--sb3-from {log}: its run had --seeds {earlier['seeds']}; this one has {seeds}")
    if earlier.get("first_seed", 0) != first_seed:
        raise SystemExit(f"--sb3-from {log}: its run had --first-seed {earlier.get('first_seed', 0)}; "
                         f"this one has {first_seed}")
    rows = {row["env"]: row for row in earlier["rows"] if row["sb3"] is not None}
    for env, steps in budgets.items():
        if env not in rows or rows[env]["steps"] != steps:
            had = f"{rows[env]['steps']:,} env steps" if env in rows else "no SB3 result"
            raise SystemExit(f"--sb3-from {log}: {env} has {had} there; this run needs {steps:,}")
    return {env: {**rows[env]["sb3"], "from": log} for env in budgets}


def at_the_limit(run: dict, episodes: int) -> str:
    """', 3/100 greedy episodes at the time limit' (episodes the env never ended: a policy that
    lasts, or one going round in circles, as both libraries' do on Snake); '' where a run
    from an earlier log did not count them."""
    counts = run.get("at_time_limit")
    return "" if counts is None else f", {sum(counts)}/{len(counts) * episodes} greedy episodes at the time limit"


def goal_met(ours: dict, theirs: dict | None) -> bool | None:
    """qlax's IQM at least SB3's, in at most 1/GOAL_WALL_RATIO of its wall time."""
    if theirs is None:
        return None
    return ours["iqm"] >= theirs["iqm"] and theirs["wall_s"] >= GOAL_WALL_RATIO * ours["wall_s"]


def print_table(rows: list[dict]) -> None:
    """One line per env and preset: returns, wall times, their ratio, env steps/s, goal."""
    print(f"\n{'env':44s} {'preset':8s} {'qlax IQM':>9s} {'SB3 IQM':>9s} {'qlax s':>8s} {'SB3 s':>8s} "
          f"{'SB3/qlax':>8s} {'qlax st/s':>10s} {'SB3 st/s':>9s}  goal")
    for row in rows:
        ours, theirs = row["qlax"], row["sb3"]
        if theirs is None:
            print(f"{row['env']:44s} {ours['preset']:8s} {ours['iqm']:9.3f} {'-':>9s} {ours['wall_s']:8.1f} "
                  f"{'-':>8s} {'-':>8s} {ours['env_steps_per_s'] or 0:10,.0f} {'-':>9s}  -")
            continue
        verdict = {True: "met", False: "NOT met", None: "-"}[row["goal"]]
        print(f"{row['env']:44s} {ours['preset']:8s} {ours['iqm']:9.3f} {theirs['iqm']:9.3f} {ours['wall_s']:8.1f} "
              f"{theirs['wall_s']:8.1f} {theirs['wall_s'] / ours['wall_s']:8.1f} "
              f"{ours['env_steps_per_s'] or 0:10,.0f} {theirs['env_steps_per_s']:9,.0f}  {verdict}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", default=",".join(ENVS),
                        help="comma-separated, of the suite's names or the held-out MinAtar games (HELD_OUT)")
    parser.add_argument("--presets", default="dqn", help="generic presets, comma-separated (dqn, pqn, rainbow), "
                        "or sb3: qlax with SB3's own settings for each env")
    parser.add_argument("--seeds", type=int, default=5, help="seeds per env, both libraries")
    parser.add_argument("--first-seed", type=int, default=0,
                        help="another set of seeds, for both libraries (held out from the runs that chose a setting): "
                             "SB3's seeds start there, and qlax's base seed is it")
    parser.add_argument("--steps-scale", type=float, default=1.0, help="multiplies every env's budget")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a qlax setting for every preset run (repeatable), as qlax train --set")
    sb3_side = parser.add_mutually_exclusive_group()  # where SB3's rows come from, if anywhere
    sb3_side.add_argument("--sb3-python", metavar="PATH", help="an interpreter with SB3, PyTorch, Box2D, gymnax, "
                          "navix and Jumanji (default: benchmarks/.venv-sb3, made on first use)")
    sb3_side.add_argument("--sb3-from", metavar="LOG", help="take SB3's rows from an earlier run's output")
    sb3_side.add_argument("--no-sb3", action="store_true", help="qlax's side alone (a candidate setting, a quick look)")
    args = parser.parse_args()
    envs = [e.strip() for e in args.envs.split(",") if e.strip()]
    unknown = [e for e in envs if e not in KNOWN]
    if unknown:
        parser.error(f"unknown env(s) {', '.join(unknown)}; the suite: {', '.join(ENVS)}; "
                     f"held out: {', '.join(HELD_OUT)}")
    try:
        changes = parse_sets(args.set)
    except ConfigError as error:
        parser.error(str(error))
    if RUN_SETTINGS & changes.keys():
        parser.error(f"--set {', '.join(sorted(RUN_SETTINGS & changes.keys()))}: the benchmark sets it per env "
                     f"(other seeds: --first-seed)")
    if args.first_seed < 0:
        parser.error(f"--first-seed {args.first_seed}: must be at least 0")
    budgets = {env: budget(KNOWN[env], args.steps_scale) for env in envs}
    if args.first_seed:  # qlax's seeds: fold_in(PRNGKey(seed), i)
        changes["seed"] = args.first_seed
    earlier = earlier_sb3_rows(args.sb3_from, args.seeds, budgets, args.first_seed) if args.sb3_from else None
    python = None if args.sb3_from or args.no_sb3 else \
        args.sb3_python or sb3_python(sb3_extra_pins(), SB3_EXTRA_IMPORTS)
    rows, skipped = [], {}
    for env in envs:
        spec = KNOWN[env]
        if spec.needs is not None and importlib.util.find_spec(spec.needs) is None:
            skipped[env] = f"needs {spec.needs} here (pip install 'gymnasium[box2d]')"
            print(f"{env}: skipped, {skipped[env]}", flush=True)
            continue
        steps = budgets[env]
        print(f"{env}: {steps:,} env steps x {args.seeds} seeds, {spec.eval_episodes} greedy episodes each",
              flush=True)
        if args.no_sb3:
            theirs = None
        elif earlier is not None:
            theirs = earlier.get(env)
        else:
            theirs = sb3_run(env, spec, steps, args.seeds, python, args.first_seed)
        if theirs is not None:
            source = f", from {args.sb3_from}" if earlier is not None else ""
            print(f"  SB3 ({theirs['settings']}{source}): IQM {theirs['iqm']:.3f}, seeds {np.round(theirs['returns'], 3)}, "
                  f"{theirs['wall_s']:.1f} s{at_the_limit(theirs, spec.eval_episodes)}", flush=True)
        for preset in args.presets.split(","):
            ours = qlax_run(preset, env, steps, args.seeds, spec.eval_episodes, changes)
            print(f"  qlax {preset}: IQM {ours['iqm']:.3f}, seeds {np.round(ours['returns'], 3)}, "
                  f"{ours['wall_s']:.1f} s (compile {ours['compile_s']:.1f} s){at_the_limit(ours, spec.eval_episodes)}",
                  flush=True)
            ours["iqm_interval"] = iqm_interval(ours["returns"])
            row = {"env": env, "steps": steps, "qlax": ours, "sb3": theirs, "goal": goal_met(ours, theirs)}
            if theirs is not None:
                theirs["iqm_interval"] = iqm_interval(theirs["returns"])
                row["p_improvement"] = probability_of_improvement(ours["returns"], theirs["returns"])
                print(f"    IQM 95% intervals qlax [{ours['iqm_interval'][0]:.3f}, {ours['iqm_interval'][1]:.3f}], "
                      f"SB3 [{theirs['iqm_interval'][0]:.3f}, {theirs['iqm_interval'][1]:.3f}]; "
                      f"P(qlax > SB3) {row['p_improvement']:.2f}", flush=True)
            rows.append(row)
    print_table(rows)
    dqn_goals = [row["goal"] for row in rows
                 if row["env"] in ENVS and row["qlax"]["preset"] == "dqn" and row["goal"] is not None]
    if dqn_goals:
        print(f"\ndqn meets the goal on {sum(dqn_goals)} of {len(dqn_goals)} envs (issue #21: at least "
              f"{GOAL_ENVS} of 8, IQM >= SB3's in <= 1/{GOAL_WALL_RATIO:g} of its wall time)", flush=True)
    emit({"benchmark": "transfer", "seeds": args.seeds, "first_seed": args.first_seed, "steps_scale": args.steps_scale,
          "changes": changes, "sb3_from": args.sb3_from, "rows": rows,
          "skipped": skipped, "goal": {"envs": GOAL_ENVS, "wall_ratio": GOAL_WALL_RATIO}})


if __name__ == "__main__":
    main()
