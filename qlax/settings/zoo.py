"""rl-baselines3-zoo's DQN hyperparameters, translated into qlax's settings.

    settings, notes = qlax.settings.zoo.translate({"n_timesteps": 1e5, "learning_rate": 6.3e-4, ...})
    config = TrainConfig(env="gymnasium:LunarLander-v3", **settings)

rl-zoo's files give Stable-Baselines3's arguments (its `hyperparams/dqn.yml`, one entry per
environment). The translation keeps SB3's meaning, unit for unit:

| rl-zoo / SB3 key | qlax setting | how |
|---|---|---|
| `n_timesteps` | `total_steps` | env steps, per seed |
| `n_envs` (default 1) | `num_envs` | |
| `policy` | `q_function` | MlpPolicy: `mlp`; CnnPolicy: `nature` |
| `policy_kwargs: "dict(net_arch=[...])"` | `hidden_sizes` | read as data, never run |
| `learning_rate` (default 1e-4) | `lr` | a number; rl-zoo's `lin_` schedules are refused |
| `batch_size` (32), `buffer_size` (1e6), `gamma` (0.99) | same names | |
| `learning_starts` (100) | `learning_starts`, `warmup_random: true` | SB3 acts at random until then |
| `train_freq` (4) | `train_freq` | SB3 counts vector steps: times `n_envs` env steps |
| `gradient_steps` (1) | `gradient_steps` | -1 is SB3's: one per env step of the round |
| `target_update_interval` (10000) | `target_period` | SB3 counts env steps, qlax updates: times the updates per env step |
| `tau` (1.0) | `target` | 1: `periodic`; below 1 refused (SB3 moves by tau every interval) |
| `exploration_initial_eps` (1.0), `exploration_final_eps` (0.05) | `eps_start`, `eps_end` | with `eps_schedule: linear` |
| `exploration_fraction` (0.1) | `eps_decay_steps` | the fraction of `n_timesteps`, in vector steps |
| `max_grad_norm` (10) | `max_grad_norm` | |
| `normalize` | refused | qlax's `obs_scaling: statistics` is close, not the same: set it yourself |

SB3's fixed choices come with them: Huber loss (`loss: huber`, delta 1), Adam (with PyTorch's
epsilon 1e-8, qlax's default `adam_eps`), one-step targets without double Q, a hard target
copy, observations as the environment gives them (`obs_scaling: none`), bootstrapping
through time limits, and PyTorch's initial weights (`weight_init: pytorch`). Keys that
change the environment (`frame_stack`, `env_wrapper`, `env_kwargs`) are refused: give qlax
the environment they make.
"""

from __future__ import annotations

import ast
from typing import Any

from qlax.settings.config import ConfigError, short

# Stable-Baselines3's DQN defaults, where rl-zoo's entry leaves a key out.
SB3_DEFAULTS = {"learning_rate": 1e-4, "buffer_size": 1_000_000, "learning_starts": 100, "batch_size": 32,
                "tau": 1.0, "gamma": 0.99, "train_freq": 4, "gradient_steps": 1, "target_update_interval": 10_000,
                "exploration_fraction": 0.1, "exploration_initial_eps": 1.0, "exploration_final_eps": 0.05,
                "max_grad_norm": 10.0, "n_envs": 1, "policy": "MlpPolicy"}
_IGNORED = {"optimize_memory_usage": "a memory layout of SB3's buffer"}
_REFUSED = {"frame_stack": "stack the frames in the environment you give qlax",
            "env_wrapper": "wrap the environment you give qlax",
            "env_kwargs": "make the environment with them and give qlax the object",
            "normalize": "qlax's obs_scaling: statistics is close, not the same; set it yourself",
            "replay_buffer_class": "qlax's replay: uniform or prioritized",
            "replay_buffer_kwargs": "qlax's replay settings"}
POLICIES = {"MlpPolicy": "mlp", "CnnPolicy": "nature"}


def translate(hyperparams: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """(qlax settings, notes on what was left out) for one rl-zoo DQN entry; a key with no
    qlax counterpart is refused in one line."""
    given = dict(hyperparams)
    notes = [f"{key}: ignored ({why})" for key, why in _IGNORED.items() if given.pop(key, None) is not None]
    for key, why in _REFUSED.items():
        if key in given:
            raise ConfigError(f"rl-zoo key {key} = {short(given[key])}: no qlax counterpart; {why}")
    unknown = sorted(set(given) - set(SB3_DEFAULTS) - {"n_timesteps", "policy_kwargs"})
    if unknown:
        raise ConfigError(f"rl-zoo key {unknown[0]}: not a DQN hyperparameter qlax translates "
                          f"(known: {', '.join(sorted(set(SB3_DEFAULTS) | {'n_timesteps', 'policy_kwargs'}))})")
    if "n_timesteps" not in given:
        raise ConfigError("rl-zoo entry: n_timesteps is missing; it is the budget")
    p = {**SB3_DEFAULTS, **given}
    if not isinstance(p["learning_rate"], (int, float)):
        raise ConfigError(f"rl-zoo key learning_rate = {short(p['learning_rate'])}: only a constant rate translates")
    if p["tau"] != 1.0:
        raise ConfigError(f"rl-zoo key tau = {p['tau']}: SB3 moves the target by tau every target_update_interval "
                          f"steps; qlax's polyak target moves every update: only tau 1 (a copy) translates")
    if p["policy"] not in POLICIES:
        raise ConfigError(f"rl-zoo key policy = {short(p['policy'])}: one of {', '.join(POLICIES)}")
    n_envs, total = int(p["n_envs"]), int(float(p["n_timesteps"]))
    train_freq = _steps(p["train_freq"]) * n_envs  # SB3 counts calls of the vector env's step
    updates = train_freq if p["gradient_steps"] == -1 else int(p["gradient_steps"])
    settings = {
        "total_steps": total, "num_envs": n_envs, "q_function": POLICIES[p["policy"]],
        "hidden_sizes": _net_arch(p.get("policy_kwargs")), "activation": "relu", "lr": float(p["learning_rate"]),
        "batch_size": int(p["batch_size"]), "buffer_size": int(float(p["buffer_size"])), "gamma": float(p["gamma"]),
        "learning_starts": int(p["learning_starts"]), "warmup_random": True, "train_freq": train_freq,
        "gradient_steps": int(p["gradient_steps"]),
        "target": "periodic", "target_period": max(1, round(int(p["target_update_interval"]) * updates / train_freq)),
        "eps_schedule": "linear", "eps_start": float(p["exploration_initial_eps"]),
        "eps_end": float(p["exploration_final_eps"]),
        "eps_decay_steps": max(1, round(float(p["exploration_fraction"]) * total / n_envs)),
        "max_grad_norm": float(p["max_grad_norm"]),
        "loss": "huber", "huber_delta": 1.0, "optimizer": "adam", "n_step": 1, "double_q": False,
        "obs_scaling": "none", "truncation": "bootstrap", "weight_init": "pytorch",
    }
    return settings, notes


def _steps(train_freq: Any) -> int:
    """SB3's train_freq: a count of steps, or [count, "step"]; per episode is refused."""
    if isinstance(train_freq, (list, tuple)):
        if len(train_freq) != 2 or train_freq[1] != "step":
            raise ConfigError(f"rl-zoo key train_freq = {short(train_freq)}: only a count of steps translates")
        train_freq = train_freq[0]
    if not isinstance(train_freq, int) or train_freq < 1:
        raise ConfigError(f"rl-zoo key train_freq = {short(train_freq)}: expected a whole number of steps >= 1")
    return train_freq


def _net_arch(policy_kwargs: Any) -> list[int]:
    """The hidden sizes of rl-zoo's `policy_kwargs: "dict(net_arch=[256, 256])"`, read as
    data (ast), never run, or of the same as a mapping (`{"net_arch": [256, 256]}`, what
    SB3 itself takes); SB3's [64, 64] without it."""
    if policy_kwargs is None:
        return [64, 64]
    try:
        if isinstance(policy_kwargs, dict):
            kwargs = dict(policy_kwargs)
        else:
            call = ast.parse(str(policy_kwargs), mode="eval").body
            if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and call.func.id == "dict"
                    and not call.args):
                raise ValueError
            kwargs = {k.arg: ast.literal_eval(k.value) for k in call.keywords}
        if set(kwargs) != {"net_arch"}:
            raise ValueError
        sizes = kwargs["net_arch"]
        if not (isinstance(sizes, list) and sizes and all(isinstance(s, int) and s > 0 for s in sizes)):
            raise ValueError
    except (SyntaxError, ValueError):
        raise ConfigError(f"rl-zoo key policy_kwargs = {short(policy_kwargs)}: only dict(net_arch=[sizes...]) "
                          f"translates") from None
    return sizes
