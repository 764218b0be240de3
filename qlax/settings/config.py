"""Typed, validated training configuration, split into static and dynamic settings.

`TrainConfig` is a frozen dataclass: every setting a run reads, with its type and
allowed range declared next to it, so that bad input is refused with one clear line
before anything is traced or compiled.

Its settings are of two kinds. Static ones fix shapes, counts and code paths (num_envs,
buffer_size, batch_size, num_centers, hidden_sizes, chunk_steps, loss, ...): changing
one compiles a new program. Dynamic ones (`DYNAMIC_SETTINGS`: learning rate, gamma, the
epsilon schedule's numbers, target period and tau, Huber delta, RBF sigma, ...) are
traced values, an `HParams` inside each member's training state, so one compiled
program trains members with different values side by side and changing them never
recompiles.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import re
import types
import typing
from typing import Any, Iterable

import numpy as np
import yaml

from qlax.components import contract
from qlax.components.contract import ALGORITHMS
from qlax.components.exploration import EXPLORER_SETTINGS, EXPLORERS, SCHEDULE_SETTINGS, SCHEDULES
from qlax.components.learner import OPTIMIZERS, TARGET_SETTINGS, TARGETS
from qlax.components.losses import PENALTIES, PENALTY_SETTINGS
from qlax.components.networks import OBSERVATION_KINDS, TORSO_SETTINGS, TORSOS, WEIGHT_INITS
from qlax.components.replay import BUFFER_SETTINGS, BUFFERS
from qlax.core.errors import ConfigError, one_line, short  # noqa: F401 (short: re-exported)
from qlax.core.hparams import DYNAMIC_SETTINGS, HParams  # noqa: F401 (re-exported)


INT32_MAX = 2**31 - 1  # every integer setting lives in an int32 in the compiled program


# Greedy episodes per member: a bound on what an evaluation costs in time (its memory is
# bounded apart, `evaluation.EVAL_BATCH` episodes at a time). 100,000 CartPole episodes are
# 5e7 env steps per member; a 1,000-episode check has a standard error of 3% of the spread.
MAX_EVAL_EPISODES = 100_000
MAX_CHECK_EPISODES = 1_000


def _field(default: Any, help: str, *, low: float | None = None, high: float | None = None,
           low_open: bool = False, choices: tuple[str, ...] | None = None):
    meta = {"help": help, "low": low, "high": high, "low_open": low_open, "choices": choices}
    if isinstance(default, list):
        return dataclasses.field(default_factory=lambda: list(default), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """One training run: environment, algorithm, Q-function, replay, exploration, learning rule, budget."""

    algorithm: str = _field("dqn", "dqn: replay and a target network (with double Q, n-step, prioritized replay, "
                            "dueling, noisy nets as options); c51 / qrdqn: distributional DQN (categorical / "
                            "quantile); iqn: implicit quantile networks; mdqn: Munchausen-DQN (a log-policy bonus and a soft value); pqn: rollouts, "
                            "Q(lambda) and epochs of minibatches, no replay, no target",
                            choices=tuple(ALGORITHMS))

    # Environment and budget.
    env: str = _field("CartPole-v1", "environment: a gymnax id (qlax envs), gymnasium:ID, atari:GAME, envpool:ID, "
                      "navix:ID, jumanji:ID, or module.path:factory for your own JAX environment")
    num_envs: int = _field(16, "parallel environments per seed", low=1)
    total_steps: int = _field(160_000, "environment steps per seed (num_envs per vector step)", low=1)
    seeds: int = _field(1, "independent seeds trained at once (vmapped)", low=1)
    seed: int = _field(0, "base PRNG seed; seed i uses fold_in(seed, i)", low=0)
    chunk_steps: int = _field(500, "vector steps per compiled chunk (one progress update)", low=1)
    obs_low: list[float] | None = _field(None, "lower observation bounds for scaling (default: the observation "
                                         "space's; dimensions without finite bounds use running statistics)")
    obs_high: list[float] | None = _field(None, "upper observation bounds for scaling (default: the observation "
                                          "space's)")
    obs_scaling: str = _field("bounds", "bounds: finite bounds map to [-1, 1] and only dimensions without them "
                              "use running statistics; statistics: every dimension by running mean and std (a "
                              "standardized dimension's scale is at least 1/100 of max(|mean|, 1), or of the "
                              "distance to its farther bound where shorter: a 0/1 cell stays within +-100); none: "
                              "observations as the env gives them (binary grids such as MinAtar's); a Discrete "
                              "observation's one-hot stays 0/1 under each",
                              choices=("bounds", "statistics", "none"))
    obs_stats: str = _field("warmup", "running observation statistics: estimated until learning_starts "
                            "transitions are stored, then frozen (warmup), or updated throughout (always)",
                            choices=("warmup", "always"))

    # Q-function.
    q_function: str = _field("linear_rbf", "Q-function family: linear over RBF features, an MLP, a "
                             "convolution then the MLP layers (grid and image observations), or the Nature "
                             "DQN's three convolutions over stacked pixel frames then the MLP layers (Atari); auto: the one the "
                             "observations call for (nature over pixel frames, conv over grids, else mlp)",
                             choices=TORSOS)
    num_centers: int = _field(500, "linear_rbf: random RBF centers, uniform in [-1, 1]^obs_dim", low=1)
    sigma: float = _field(0.5, "linear_rbf: RBF width", low=0.0, low_open=True)
    init_scale: float = _field(0.1, "linear_rbf: standard deviation of the initial linear weights", low=0.0)
    hidden_sizes: list[int] = _field([64, 64], "mlp: units of each hidden layer")
    activation: str = _field("relu", "mlp: hidden activation", choices=("relu", "tanh", "elu", "gelu", "silu"))
    layer_norm: bool = _field(False, "mlp: layer norm after each hidden layer (nature: and each convolution)")
    dueling: bool = _field(False, "mlp: dueling head, value + advantage - mean advantage")
    weight_init: str = _field("lecun_normal", "mlp, conv, nature: initial weights of the hidden layers and "
                              "convolutions (the Q head's stay LeCun normal; noisy layers keep their own): LeCun "
                              "normal (flax's default) or He normal (purejaxql's Atari network); pytorch: every "
                              "layer, head and biases included, as PyTorch starts it (SB3's networks)",
                              choices=tuple(WEIGHT_INITS))
    conv_channels: list[int] = _field([16], "conv: channels of each 3x3 convolution (same padding)")
    conv_stride: int = _field(1, "conv: stride of each 3x3 convolution (2: a quarter of the outputs, so the "
                              "dense layers after it cost a quarter)", low=1, high=2)
    noisy_sigma0: float = _field(0.5, "exploration noisy: initial noise scale of the factorised Gaussian "
                                 "layers (sigma = sigma0 / sqrt(inputs))", low=0.0, low_open=True)

    # Distributional heads.
    num_atoms: int = _field(51, "c51: atoms of each action's return distribution", low=2)
    v_min: float = _field(0.0, "c51: smallest atom")
    v_max: float = _field(100.0, "c51: largest atom")
    num_quantiles: int = _field(50, "qrdqn: quantiles of each action's return distribution; iqn: quantile "
                                "fractions sampled by each pass (acting uses their midpoints)", low=1)
    quantile_embedding: int = _field(64, "iqn: cosines cos(pi i tau) embedding each quantile fraction", low=1)

    # Munchausen-DQN.
    munchausen_alpha: float = _field(0.9, "mdqn: weight of the log-policy bonus of the action taken",
                                     low=0.0, high=1.0)
    munchausen_tau: float = _field(0.03, "mdqn: temperature of the softmax policy of the target Q-values",
                                   low=0.0, low_open=True)
    munchausen_clip: float = _field(-1.0, "mdqn: lower clip of the bonus's tau * log-policy", high=0.0)

    # PQN.
    num_steps: int = _field(32, "pqn: vector steps per rollout", low=1)
    num_epochs: int = _field(4, "pqn: passes over each rollout", low=1)
    num_minibatches: int = _field(4, "pqn: minibatches per pass (must divide num_steps x num_envs)", low=1)
    td_lambda: float = _field(0.65, "pqn: lambda of the Q(lambda) returns (0: one-step targets, 1: Monte Carlo "
                              "up to the rollout's end)", low=0.0, high=1.0)

    # Replay.
    buffer_size: int = _field(100_000, "replay capacity in transitions", low=1)
    batch_size: int = _field(32, "transitions per gradient step", low=1)
    replay: str = _field("uniform", "how batches are drawn", choices=tuple(BUFFERS))
    per_alpha: float = _field(0.6, "prioritized: priority = (|td error| + eps)^alpha", low=0.0, high=1.0)
    per_beta: float = _field(0.4, "prioritized: importance exponent at the start, annealed to 1 over the budget",
                             low=0.0, high=1.0)
    learning_starts: int = _field(1_000, "stored transitions before the first update (0: from the first one "
                                  "stored, SB3's 0)", low=0)
    n_step: int = _field(1, "steps summed into each bootstrap target (n-step returns)", low=1)
    gradient_steps: int = _field(1, "gradient steps per update round; -1: one per env step of the round (SB3's -1)",
                                 low=-1)
    train_freq: int | None = _field(None, "env steps between update rounds (default: num_envs, one per vector step)",
                                    low=1)
    warmup_random: bool = _field(False, "act uniformly at random until learning_starts transitions are stored")

    # Exploration.
    eps_schedule: str = _field("exponential", "epsilon schedule over vector steps",
                               choices=SCHEDULES)
    eps_start: float = _field(1.0, "initial epsilon (the constant one for 'constant')", low=0.0, high=1.0)
    eps_end: float = _field(0.01, "final epsilon", low=0.0, high=1.0)
    eps_decay: float = _field(0.9997, "exponential: factor per vector step", low=0.0, high=1.0, low_open=True)
    eps_decay_steps: int = _field(10_000, "linear: vector steps from eps_start to eps_end", low=1)
    exploration: str = _field("epsilon_greedy", "epsilon_greedy: one random action per coin; ez_greedy: a random "
                              "action repeated for a power-law number of steps (temporally extended, "
                              "Dabney et al. 2021); noisy: greedy on a network with factorised Gaussian noisy "
                              "layers (Fortunato et al. 2018), epsilon unused", choices=tuple(EXPLORERS))
    ez_mu: float = _field(2.0, "ez_greedy: repeat lengths n have P(n >= k) = k^(1 - ez_mu) (smaller: longer)",
                          low=1.0, low_open=True)

    # Learning rule.
    lr: float = _field(5e-3, "learning rate (of `optimizer`)", low=0.0, low_open=True)
    gamma: float = _field(0.99, "discount", low=0.0, high=1.0)
    loss: str = _field("huber", "TD error penalty", choices=tuple(PENALTIES))
    huber_delta: float = _field(1.0, "Huber transition point (qrdqn: the quantile Huber loss's kappa)",
                                low=0.0, low_open=True)
    max_grad_norm: float | None = _field(None, "clip gradients to this global norm (default: no clipping)",
                                         low=0.0, low_open=True)
    optimizer: str = _field("adam", "adam, or radam (Adam with a rectified variance, which warms its steps up; "
                            "purejaxql's PQN on Atari)", choices=tuple(OPTIMIZERS))
    adam_eps: float = _field(1e-8, "epsilon of `optimizer` (Adam's or RAdam's), added to the root of its "
                             "second-moment estimate: larger, it shrinks the steps of parameters whose gradients "
                             "are small (Rainbow's 1.5e-4; optax's and PyTorch's default 1e-8)",
                             low=0.0, low_open=True)
    lr_decay: bool = _field(False, "decay the learning rate linearly from `lr` to 0 over the gradient steps of "
                            "the budget (PQN's; SB3's linear schedules)")
    double_q: bool = _field(False, "double Q-learning: online argmax, target evaluation")
    gradient: str = _field("semi", "semi-gradient target, or the seed's residual gradient",
                           choices=("semi", "residual"))
    target: str = _field("periodic", "bootstrap parameters", choices=tuple(TARGETS))
    target_period: int = _field(100, "periodic: updates between target refreshes", low=1)
    tau: float = _field(0.005, "polyak: target step size", low=0.0, high=1.0, low_open=True)
    truncation: str = _field("bootstrap", "on a time limit, bootstrap (correct) or treat as terminal (the seed)",
                             choices=("bootstrap", "terminal"))

    # Stopping and evaluation.
    early_stop: bool = _field(True, "freeze a member once it reaches the threshold (see stop_on)")
    stop_on: str = _field("train_average", "what early_stop watches: the 100-episode training average, or "
                          "a greedy evaluation of stop_eval_episodes episodes after every chunk",
                          choices=("train_average", "greedy"))
    stop_eval_episodes: int = _field(20, "greedy stop_on: episodes of the check after every chunk (bounded: each "
                                     "chunk runs it, up to an episode's step limit each)",
                                     low=1, high=MAX_CHECK_EPISODES)
    stop_eval_z: float = _field(0.0, "greedy stop_on: the check passes when its mean minus this many standard "
                                "errors reaches the threshold (0: the mean itself)", low=0.0)
    solve_threshold: float | None = _field(None, "return that counts as solved (default: the env's)")
    eval_episodes: int = _field(100, "greedy evaluation episodes per seed (bounded by what they cost: up to an "
                                "episode's step limit each, for every member)", low=1, high=MAX_EVAL_EPISODES)
    keep_best: bool = _field(False, "greedy-check every member after every chunk (stop_eval_episodes "
                             "episodes) and keep the parameters of its best check: load_policy(best=True), "
                             "qlax eval --best")

    # Settings by the kind of observation (generic presets).
    by_observation: dict[str, dict[str, Any]] | None = _field(
        None, "settings that apply where the environment's observations are of one kind, keyed by kind (vector, "
        "one_hot, grid, image: `q_function: auto`'s kinds), e.g. {grid: {batch_size: 32}}: resolved when the run "
        "starts and saved as plain settings; a setting given later (--set, replace, a grid) wins over it")

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with `changes` applied, validated. A change of `env` takes the new
        environment's own bounds and threshold (`ENV_SETTINGS`) unless `changes` sets them,
        or the new env is the same task from another source (`gymnasium:CartPole-v1` for
        `CartPole-v1`)."""
        from qlax.envs import task_id  # qlax.envs imports this module

        unknown = sorted(set(changes) - set(field_names()))
        if unknown:
            raise ConfigError(unknown_key_message(unknown[0]))
        if "env" in changes and not (isinstance(changes["env"], str) and task_id(changes["env"]) == task_id(self.env)):
            changes = {**{name: None for name in ENV_SETTINGS}, **changes}
        if "by_observation" not in changes:
            changes["by_observation"] = given_win(self.by_observation, changes)
        return dataclasses.replace(self, **changes).validated()

    def for_observation(self, kind: str) -> TrainConfig:
        """This config where the observations are of `kind` (`networks.observation_kind`): its
        `by_observation` settings for that kind applied, the others dropped."""
        _check_kind(kind)
        settings = (self.by_observation or {}).get(kind, {})
        try:
            return dataclasses.replace(self, **settings, by_observation=None).validated()
        except ConfigError as error:
            raise ConfigError(f"by_observation.{kind}: {error}") from None

    @property
    def vector_steps(self) -> int:
        """Vector steps in the budget: total_steps rounded up to whole vector steps."""
        return math.ceil(self.total_steps / self.num_envs)

    @property
    def env_steps_per_round(self) -> int:
        """Env steps between update rounds: train_freq, or one round per vector step."""
        return self.train_freq if self.train_freq is not None else self.num_envs

    @property
    def updates_per_round(self) -> int:
        """Gradient steps per update round: gradient_steps, or with -1 one per env step of the round."""
        return self.env_steps_per_round if self.gradient_steps == -1 else self.gradient_steps

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def owned(self) -> TrainConfig:
        """A copy with every setting that nothing this config chose reads (`owners`) back at its
        default: for switching algorithm or component in Python, where the old choice's
        settings would be refused (`preset.replace(algorithm="pqn").owned()`); `by_observation`
        keeps, for each kind, the settings that its kind's config reads."""
        kinds = self.by_observation or {}
        read_by_kind = {kind: owners(dataclasses.replace(self, **settings)) for kind, settings in kinds.items()}
        read, defaults = set(owners(self)).union(*read_by_kind.values()), TrainConfig()
        by_kind = {kind: {k: v for k, v in settings.items() if k in read_by_kind[kind]}
                   for kind, settings in kinds.items()}
        return dataclasses.replace(self, **{name: getattr(defaults, name) for name in field_names()
                                            if name not in read}, by_observation=by_kind or None)

    def hparams(self) -> HParams:
        """This config's dynamic settings as traced-ready scalars."""
        return HParams.of(self)

    def validated(self) -> TrainConfig:
        """Check every field's type and range, then the relations between fields."""
        values = {}
        for f in dataclasses.fields(self):
            values[f.name] = _check_field(f, getattr(self, f.name))
        cfg = dataclasses.replace(self, **values)  # coerced values (1 -> 1.0) even where they compare equal
        cfg._check_relations()
        return cfg

    def _check_relations(self) -> None:
        contract.module(self.algorithm).check(self)  # the relations of the settings it reads
        for name in ("hidden_sizes", "conv_channels"):
            if any(h < 1 for h in getattr(self, name)):
                raise ConfigError(f"{name} = {short(getattr(self, name))}: every layer needs at least 1 unit")
        if self.exploration == "noisy" and self.q_function == "linear_rbf":
            raise ConfigError("exploration 'noisy' needs a network with noisy layers: set q_function to "
                              "'mlp', 'conv' or 'nature'")
        if self.q_function == "nature" and (self.obs_scaling != "bounds" or self.obs_low is not None
                                            or self.obs_high is not None):
            raise ConfigError("q_function 'nature' divides pixels by 255, as the Nature DQN does: leave "
                              "obs_scaling, obs_low and obs_high unset")
        if self.obs_scaling == "none" and (self.obs_low is not None or self.obs_high is not None):
            raise ConfigError("obs_low/obs_high are set but obs_scaling = 'none' ignores bounds: drop them "
                              "(--set obs_low=null --set obs_high=null) or use obs_scaling 'bounds'")
        if self.obs_low is not None and self.obs_high is not None:
            if len(self.obs_low) != len(self.obs_high) or any(  # compared as the program holds them
                    np.float32(lo) >= np.float32(hi) for lo, hi in zip(self.obs_low, self.obs_high)):
                raise ConfigError(
                    f"obs_low {short(self.obs_low)} and obs_high {short(self.obs_high)}: need equal lengths "
                    f"and obs_low < obs_high in every dimension")
        for kind in self.by_observation or {}:  # each kind's settings with the rest, before any run
            self.for_observation(kind)




# Settings that describe one environment: a change of env drops them (a preset's CartPole
# bounds mean nothing to Asterix) unless the same change sets them again.
ENV_SETTINGS = ("obs_low", "obs_high", "solve_threshold")


def static_key(config: TrainConfig) -> str:
    """What the compiled per-member program depends on: every setting it reads (`owners`) but
    the dynamic ones and those only the host reads (seeds, seed, eval_episodes). Equal keys
    share one program."""
    host_only = ("seeds", "seed", "eval_episodes")
    read = owners(config)
    # Counts given as "what the rest implies" key as the count they resolve to, so that
    # gradient_steps -1 (SB3's) and train_freq null share the program of their values.
    resolved = {"gradient_steps": config.updates_per_round, "train_freq": config.env_steps_per_round}
    return repr(sorted((k, resolved.get(k, v)) for k, v in config.to_dict().items()
                       if k in read and k not in DYNAMIC_SETTINGS and k not in host_only))


# Who reads each setting. The run (trainer, evaluation, reports) reads RUN_SETTINGS whatever
# else is chosen; the algorithm module declares its own (`SETTINGS`); a setting that chooses
# a component (COMPONENT_SETTINGS' keys) brings in the settings of the component it chooses.
RUN_SETTINGS = ("algorithm", "env", "num_envs", "total_steps", "seeds", "seed", "chunk_steps", "obs_low", "obs_high",
                "obs_scaling", "q_function", "exploration", "truncation", "early_stop", "stop_on",
                "stop_eval_episodes", "stop_eval_z", "solve_threshold", "eval_episodes", "keep_best", "by_observation")
COMPONENT_SETTINGS = {"q_function": TORSO_SETTINGS, "exploration": EXPLORER_SETTINGS,
                      "eps_schedule": SCHEDULE_SETTINGS, "replay": BUFFER_SETTINGS, "target": TARGET_SETTINGS,
                      "loss": PENALTY_SETTINGS}


def owners(config: TrainConfig) -> dict[str, str]:
    """Each setting that `config`'s choices read -> what reads it ("the run", "algorithm
    pqn", "q_function mlp", "target periodic", ...); a setting missing here is never read."""

    read = {name: "the run" for name in RUN_SETTINGS}
    read.update({name: f"algorithm {config.algorithm}" for name in contract.module(config.algorithm).SETTINGS})
    chosen = [name for name in COMPONENT_SETTINGS if name in read]
    while chosen:
        switch = chosen.pop(0)
        choice = getattr(config, switch)
        for name in COMPONENT_SETTINGS[switch].get(choice, ()):
            read.setdefault(name, f"{switch} {choice}")
            if name in COMPONENT_SETTINGS:
                chosen.append(name)
    return read


def readers(name: str) -> str:
    """Every choice that reads setting `name`: "algorithm dqn, c51 or qrdqn", "target periodic", ...."""

    tables = {"algorithm": {a: contract.module(a).SETTINGS for a in ALGORITHMS}, **COMPONENT_SETTINGS}
    found = []
    for switch, table in tables.items():
        choices = [choice for choice, names in table.items() if name in names]
        if choices:
            found.append(f"{switch} {', '.join(choices[:-1])} or {choices[-1]}" if len(choices) > 1
                         else f"{switch} {choices[0]}")
    return "; ".join(found) or "nothing"


def check_owned(config: TrainConfig) -> None:
    """Refuse, in one line, settings changed from their defaults that nothing `config` chose
    reads (a run labelled "PQN + double Q" would be plain PQN), naming what would read each."""
    read, defaults = owners(config), TrainConfig()
    unread = [name for name in field_names() if name not in read and getattr(config, name) != getattr(defaults, name)]
    if unread:
        what = ", ".join(f"{name} = {short(getattr(config, name), 30)} (read by {readers(name)})"
                         for name in unread)
        it = "it" if len(unread) == 1 else "them"
        raise ConfigError(f"{_chosen(config)} never reads {what}: drop {it} (give {it} {'its' if it == 'it' else 'their'} "
                          f"default) or choose what reads {it}")


def check_grid_owned(config: TrainConfig, grid: dict[str, list] | None) -> None:
    """Refuse a grid over a setting that nothing `config` chose reads: its members would differ
    in name only."""
    read = owners(config)
    for key in grid or {}:
        if key not in read:
            raise ConfigError(f"--grid {short(key)}: {_chosen(config)} never reads it (read by {readers(key)}); "
                              f"every setting would train the same run")


def _chosen(config: TrainConfig) -> str:
    """'algorithm pqn with q_function mlp, exploration epsilon_greedy, ...': the choices that decide who reads what."""
    read = owners(config)
    switches = [f"{name} {getattr(config, name)}" for name in COMPONENT_SETTINGS if name in read]
    return f"algorithm {config.algorithm} with " + ", ".join(switches)


def field_limits(name: str) -> tuple[float, float]:
    """(low, high) that setting `name` may take: its declared range (an open end just inside)."""
    meta = {f.name: f.metadata for f in dataclasses.fields(TrainConfig)}[name]
    low = -math.inf if meta["low"] is None else meta["low"]
    high = math.inf if meta["high"] is None else meta["high"]
    return (float(np.nextafter(np.float32(low), np.float32(np.inf))) if meta["low_open"] else low), high


def field_names() -> list[str]:
    return [f.name for f in dataclasses.fields(TrainConfig)]


def field_help() -> dict[str, str]:
    """Each setting's meaning, with its allowed names where a registry lists them."""
    def text(f: dataclasses.Field) -> str:
        choices = f.metadata["choices"]
        return f.metadata["help"] + (f" (one of: {', '.join(choices)})" if choices else "")

    return {f.name: text(f) for f in dataclasses.fields(TrainConfig)}


# Names other libraries (SB3, rl-zoo, CleanRL) give qlax's settings: suggested by meaning.
ALIASES = {"learning_rate": "lr", "target_update_interval": "target_period", "target_network_frequency": "target_period",
           "exploration_initial_eps": "eps_start", "exploration_final_eps": "eps_end", "start_e": "eps_start",
           "end_e": "eps_end", "n_timesteps": "total_steps", "total_timesteps": "total_steps", "n_envs": "num_envs",
           "discount": "gamma", "net_arch": "hidden_sizes", "max_norm": "max_grad_norm", "seed_count": "seeds",
           "update_every": "train_freq", "n_steps": "n_step", "lambda": "td_lambda", "gae_lambda": "td_lambda",
           "num_envs_per_seed": "num_envs", "env_id": "env", "target_update_freq": "target_period"}


def unknown_key_message(key: str) -> str:
    import difflib

    if key in ALIASES:
        return f"unknown setting {short(key)}: qlax calls it '{ALIASES[key]}' (--set {ALIASES[key]}=...)"
    close = difflib.get_close_matches(key[:100], field_names(), n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else " (`qlax presets --show NAME` lists every setting)"
    return f"unknown setting {short(key)}{hint}"


def check_setting(name: str, value: Any) -> Any:
    """One setting's value, checked on its own (type and range) and coerced; relations are
    checked with the whole config."""
    fields = {f.name: f for f in dataclasses.fields(TrainConfig)}
    if name not in fields:
        raise ConfigError(unknown_key_message(name))
    return _check_field(fields[name], value)


def from_dict(values: dict[str, Any], base: TrainConfig | None = None) -> TrainConfig:
    """A validated config from `values` over `base` (default: the field defaults)."""
    return (base or TrainConfig()).replace(**values)


_TYPE_NAMES = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}
_FLOAT32_MAX = float(np.finfo(np.float32).max)


def _check_field(f: dataclasses.Field, value: Any) -> Any:
    """`value` coerced to the field's type, or a ConfigError naming the field and its range."""
    kind, optional, is_list = _field_kinds()[f.name]
    if value is None:
        if optional:
            return None
        raise ConfigError(f"{f.name}: a value is required ({_TYPE_NAMES[kind]})")
    if f.name == "by_observation":
        return _check_by_observation(value)
    if is_list:
        if not isinstance(value, (list, tuple)) or not value:
            plural = "integers" if kind is int else "numbers"
            raise ConfigError(f"{f.name} = {short(value)}: expected a non-empty list of {plural}")
        return [_representable(f"{f.name}[{i}]", _coerce(f"{f.name}[{i}]", v, kind), kind)
                for i, v in enumerate(value)]
    value = _representable(f.name, _coerce(f.name, value, kind), kind)
    meta = f.metadata
    if meta["choices"] is not None and value not in meta["choices"]:
        raise ConfigError(f"{f.name} = {short(value)}: must be one of {', '.join(meta['choices'])}")
    low, high = meta["low"], meta["high"]
    seen = float(np.float32(value)) if kind is float else value  # the range holds for what the program reads
    too_low = low is not None and (seen <= low if meta["low_open"] else seen < low)
    too_high = high is not None and seen > high
    if too_low or too_high:
        as32 = f" ({seen:g} as a float32)" if f"{seen:g}" != f"{value:g}" else ""
        raise ConfigError(f"{f.name} = {short(value)}{as32}: out of range, allowed {_range_text(kind, meta)}")
    return value


def _check_by_observation(value: Any) -> dict[str, dict[str, Any]]:
    """`by_observation` checked: kinds of observation mapped to settings, each checked on its own."""
    example = "e.g. {grid: {batch_size: 32}}"
    if not isinstance(value, dict):
        raise ConfigError(f"by_observation = {short(value)}: expected kinds of observation mapped to settings, {example}")
    checked = {}
    for kind, settings in value.items():
        _check_kind(kind, "by_observation: ")
        if not isinstance(settings, dict):
            raise ConfigError(f"by_observation.{kind} = {short(settings)}: expected settings, {example}")
        for name in settings:
            if not isinstance(name, str):
                raise ConfigError(f"by_observation.{kind}: {short(name)} is not a setting's name")
            if name in ("env", "by_observation"):
                raise ConfigError(f"by_observation.{kind}: {name} cannot depend on the observations (they come "
                                  f"from the env)")
        checked[kind] = {name: check_setting(name, v) for name, v in settings.items()}
    return checked


def _check_kind(kind: Any, where: str = "") -> None:
    if kind not in OBSERVATION_KINDS:
        raise ConfigError(f"{where}{short(kind)} is not a kind of observation: one of {', '.join(OBSERVATION_KINDS)}")


def given_win(by_observation: Any, given: Iterable[str]) -> Any:
    """`by_observation` without the settings `given` after it (a `replace`, a preset file over
    its base), so that those hold on every kind; a malformed value as it is, for its check."""
    if not isinstance(by_observation, dict):
        return by_observation
    return {kind: {k: v for k, v in settings.items() if k not in given} if isinstance(settings, dict) else settings
            for kind, settings in by_observation.items()}


def _representable(name: str, value: Any, kind: type) -> Any:
    """Integers must fit an int32 and numbers a float32, as the compiled program holds them."""
    if kind is int and not -INT32_MAX - 1 <= value <= INT32_MAX:
        raise ConfigError(f"{name} = {short(value)}: out of range, allowed at most {INT32_MAX} (a 32-bit integer)")
    if kind is float and not abs(value) <= _FLOAT32_MAX:  # also refuses nan
        raise ConfigError(f"{name} = {short(value)}: expected a finite number that fits a float32 "
                          f"(magnitude at most {_FLOAT32_MAX:.4g})")
    return value


def _coerce(name: str, value: Any, kind: type) -> Any:
    if kind is bool:
        if isinstance(value, bool):
            return value
    elif kind is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
    elif kind is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value) if abs(value) <= _FLOAT32_MAX else value  # too large: refused next, as given
    elif isinstance(value, kind):
        return value
    raise ConfigError(f"{name} = {short(value)}: expected {_TYPE_NAMES[kind]}")


@functools.cache
def _field_kinds() -> dict[str, tuple[type, bool, bool]]:
    """Each field's (scalar type, whether None is allowed, whether it is a list), from its annotation."""
    kinds = {}
    for name, hint in typing.get_type_hints(TrainConfig).items():
        optional = False
        if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
            args = [a for a in typing.get_args(hint) if a is not type(None)]
            optional = len(args) < len(typing.get_args(hint))
            hint = args[0]
        is_list = typing.get_origin(hint) is list
        kinds[name] = (typing.get_args(hint)[0] if is_list else hint, optional, is_list)
    return kinds


def range_text(name: str) -> str:
    """The values setting `name` may take, as messages write them ("[0, 1]", ">= 1")."""
    meta = {f.name: f.metadata for f in dataclasses.fields(TrainConfig)}[name]
    return _range_text(_field_kinds()[name][0], meta)


def _range_text(kind: type, meta: dict) -> str:
    low, high = meta["low"], meta["high"]
    fmt = (lambda v: str(int(v))) if kind is int else (lambda v: f"{v:g}")
    if low is not None and high is not None:
        return f"{'(' if meta['low_open'] else '['}{fmt(low)}, {fmt(high)}]"
    if low is not None:
        return f"{'>' if meta['low_open'] else '>='} {fmt(low)}"
    return f"<= {fmt(high)}"


# Reading YAML: presets, --set and --grid values, config.yaml and grid.yaml.

MAX_YAML_CHARS = 1_000_000
MAX_YAML_VALUES = 20_000  # counted as written and with aliases expanded: a "billion laughs" is refused
MAX_YAML_DEPTH = 50
_STR_TAG = "tag:yaml.org,2002:str"
_BOOL_TAG = "tag:yaml.org,2002:bool"
_INT_TAG = "tag:yaml.org,2002:int"
_FLOAT_TAG = "tag:yaml.org,2002:float"
_KEPT_TAGS = {"tag:yaml.org,2002:null", "tag:yaml.org,2002:bool", "tag:yaml.org,2002:int",
              "tag:yaml.org,2002:float"}


class _Loader(yaml.SafeLoader):
    """YAML's safe loader for settings: scalars are null, booleans, integers, floats or strings,
    as YAML 1.2's core schema reads them; no tags, no dates, no merge keys; mapping keys are
    unique strings. YAML 1.1's other readings are not taken: yes, no, on and off, 1:30 and
    1_000 stay strings, 010 is ten (not eight), and 1e-3 is a number."""

    yaml_implicit_resolvers = {first: [(tag, regexp) for tag, regexp in resolvers if tag in _KEPT_TAGS
                                       and tag not in (_BOOL_TAG, _INT_TAG, _FLOAT_TAG)]
                               for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}

    depth = values = 0

    def compose_node(self, parent, index):
        event = self.peek_event()
        tag = getattr(event, "tag", None)
        if tag not in (None, "!"):
            raise yaml.composer.ComposerError(None, None, f"tags such as {one_line(tag, 40)} are not allowed",
                                              event.start_mark)
        self.values += 1
        too_many = f"more than {MAX_YAML_VALUES:,} values" if self.values > MAX_YAML_VALUES else \
            f"values nested more than {MAX_YAML_DEPTH} deep" if self.depth == MAX_YAML_DEPTH else None
        if too_many:
            raise yaml.composer.ComposerError(None, None, too_many, event.start_mark)
        self.depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key, _ in node.value:
            if key.tag != _STR_TAG:
                raise yaml.constructor.ConstructorError(None, None, "every key must be a string", key.start_mark)
            if key.value in seen:
                raise yaml.constructor.ConstructorError(None, None, f"key {short(key.value, 40)} appears twice",
                                                        key.start_mark)
            seen.add(key.value)
        return super().construct_mapping(node, deep)


def _construct_int(loader: _Loader, node: yaml.ScalarNode) -> int:
    """A YAML 1.2 core integer: decimal (leading zeros included), 0o octal or 0x hexadecimal."""
    text = loader.construct_scalar(node)
    base = {"0o": 8, "0x": 16}.get(text[:2], 10)
    return int(text[2:] if base != 10 else text, base)


# YAML 1.2's core schema (https://yaml.org/spec/1.2.2/#1032-tag-resolution)
_Loader.add_implicit_resolver(_BOOL_TAG, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))
_Loader.add_implicit_resolver(_INT_TAG, re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$"),
                              list("-+0123456789"))
_Loader.add_implicit_resolver(_FLOAT_TAG, re.compile(r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
                                                     r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"),
                              list("-+0123456789."))
_Loader.add_constructor(_INT_TAG, _construct_int)


def load_yaml(text: str | bytes, source: str) -> Any:
    """The value of one YAML document (bytes must be UTF-8), read safely; every problem is one
    ConfigError line that names `source` (e.g. "--set lr=...", "preset 'x'", "runs/a/config.yaml")."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as err:
            raise ConfigError(f"{source}: not UTF-8 text (byte 0x{text[err.start]:02x} at offset {err.start})") \
                from None
    if len(text) > MAX_YAML_CHARS:
        raise ConfigError(f"{source}: {len(text):,} characters of YAML; at most {MAX_YAML_CHARS:,} are read")
    try:
        size, value = _parse(text)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        what = ", ".join(part for part in (err.context, err.problem) if part)
        raise ConfigError(f"{source}: not valid YAML: {one_line(what, 160)}{where}") from None
    except yaml.reader.ReaderError as err:
        raise ConfigError(f"{source}: not valid YAML: character {err.character:#06x} at position "
                          f"{err.position} is not allowed") from None
    except ValueError as err:  # an integer with more digits than Python converts
        raise ConfigError(f"{source}: not valid YAML: {one_line(str(err), 120)}") from None
    if size > MAX_YAML_VALUES:
        raise ConfigError(f"{source}: aliases expand to more than {MAX_YAML_VALUES:,} values, or contain themselves")
    return value


def _parse(text: str) -> tuple[float, Any]:
    """(nodes after expanding aliases, the value: None when there are too many)."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return 0, None
        size = _expanded_size(node, {}, set())
        return size, loader.construct_document(node) if size <= MAX_YAML_VALUES else None
    finally:
        loader.dispose()


def _expanded_size(node: yaml.Node, sizes: dict[int, float], open_: set[int]) -> float:
    """How many nodes `node` stands for once every alias is expanded (aliases share nodes);
    inf for an alias inside the value it names."""
    if id(node) in open_:
        return math.inf
    if id(node) not in sizes:
        open_.add(id(node))
        children = [n for pair in node.value for n in pair] if isinstance(node, yaml.MappingNode) else \
            node.value if isinstance(node, yaml.SequenceNode) else []
        sizes[id(node)] = 1 + sum(_expanded_size(child, sizes, open_) for child in children)
        open_.discard(id(node))
    return sizes[id(node)]
