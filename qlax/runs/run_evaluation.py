"""`qlax eval`: a fresh greedy evaluation of every member a run directory saved, on the run's
own (compiled) environment or on Gymnasium's of the same id, written to eval.json."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from qlax import envs
from qlax.core.devices import is_writer
from qlax.core.files import write_text
from qlax.program.evaluation import episode_limit, evaluate_members
from qlax.program.placement import place
from qlax.program.trainer import solve_threshold
from qlax.runs import reports
from qlax.runs.gymnasium_backend import evaluate_gymnasium
from qlax.runs.rundir import EVAL_FILE, load_params
from qlax.settings.config import ConfigError


def evaluate_run(run_dir: str | Path, episodes: int | None = None, backend: str = "gymnax",
                 best: bool = False, env: Any = None, allow_older: bool = False) -> dict[str, Any]:
    """Greedy evaluation of every member saved in `run_dir`; writes and returns eval.json's fields.

    backend "gymnax" runs the compiled evaluation on the run's own environment (eval.json's
    backend names the source that stepped it: gymnax, gymnasium, envpool, ...); "gymnasium"
    runs the same policies on Gymnasium's own environment of the same id. `best`: each member's best greedy check's
    parameters (keep_best runs) instead of its last ones. `env`: the run's environment given
    again (`load_members`): an object, or a factory's name.
    """
    trainer, members, params, latest = load_params(run_dir, episodes, best, env, allow_older)
    config = trainer.config
    if backend == "gymnax":
        placement = place(members.count, one_device=trainer.env.spec.host)
        returns, lengths = evaluate_members(trainer, members, placement, placement.put(params))
        limit = episode_limit(trainer.env.spec)
    elif backend == "gymnasium":
        returns, lengths, limit = evaluate_gymnasium(run_dir, config.eval_episodes, best=best)
    else:
        raise ConfigError(f"backend = '{backend}': must be one of gymnax, gymnasium")
    threshold = solve_threshold(config, trainer.env)
    numbers = reports.eval_numbers(returns, threshold)
    result = {
        "episodes": config.eval_episodes,
        "backend": envs.source_of(config.env) if backend == "gymnax" else backend,  # what stepped the episodes
        "checkpoint": latest.name,
        "env": config.env if backend == "gymnax" else f"Gymnasium's {config.env}",
        "best": best,
        "mean_return": numbers["eval_mean_return"],
        "std_return": numbers["eval_std_return"],
        "min_return": [float(m) for m in returns.min(axis=1)],
        "max_return": [float(m) for m in returns.max(axis=1)],
        **reports.length_numbers(lengths, limit),
        "time_limit": limit,
        "threshold": threshold,
        "solved": numbers["solved"],
        "solved_fraction": sum(numbers["solved"]) / len(numbers["solved"]),
    }
    if is_writer():
        write_text(Path(run_dir) / EVAL_FILE, reports.json_text(result))
    return result
