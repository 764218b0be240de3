"""A user's broken environment: every way the protocol can break gets one line naming the
env and what is wrong, before anything compiles (one Gymnasium case fails at run time).

Cases are generated from a working environment (`user_env.Corridor`, or a Box one) with
one part replaced: spaces, sizes and bounds, time limit and threshold, attributes that
raise, reset and step that fail or return the wrong things, and factories that exit,
are interrupted or are not factories at all.
"""

import sys
import textwrap

import jax.numpy as jnp
import pytest

from qlax import envs
from qlax.envs import Box, Discrete, EnvError, TimeStep
from qlax.tools import cli
from user_env import Corridor


class Broken(Corridor):
    """A Corridor with parts of the protocol replaced."""

    def __init__(self, **parts):
        super().__init__()
        for name, value in parts.items():
            setattr(self, name, value)


class Vector:
    """A Box-observation environment whose spaces, time limit or observations a case chooses."""

    def __init__(self, observation_space=None, actions=2, limit=None, obs_dtype=jnp.float32, **attributes):
        self.observation_space = observation_space or Box((2,), 0.0, 1.0)
        self.action_space = Discrete(actions)
        self.max_episode_steps = limit
        self.dtype = obs_dtype
        self.__dict__.update(attributes)

    def reset(self, key):
        return jnp.zeros(2, self.dtype), jnp.int32(0)

    def step(self, key, state, action):
        return TimeStep(jnp.zeros(2, self.dtype), state, jnp.float32(0), jnp.bool_(False), jnp.bool_(False))


def raising(attribute: str, error: BaseException):
    """A Corridor whose `attribute` raises `error` when read."""
    def read(self):
        raise error
    return type("Raising", (Corridor,), {attribute: property(read, lambda self, value: None)})()


def step_returning(make_out):
    env = Broken()
    env.step = lambda key, state, action: make_out(Corridor.step(env, key, state, action))
    return env


def fails(error: BaseException):
    def call(*args):
        raise error
    return call


CASES = {
    # spaces
    "a continuous action space": (Broken(action_space=Box((1,), -1.0, 1.0)),
                                  "Q-learning needs a discrete action space"),
    "no observation_space": (Broken(observation_space=None), "has no observation_space"),
    "an unknown space": (Broken(observation_space=object()), "qlax trains on Box and Discrete observations"),
    "Discrete(2.7)": (Vector(Discrete(2.7)), "observation_space.n = 2.7: expected a whole number >= 1"),
    "Discrete('3')": (Vector(Discrete("3")), "observation_space.n = '3': expected a whole number >= 1"),
    "no actions": (Vector(actions=0), "action_space.n = 0: expected a whole number >= 1"),
    "negative actions": (Vector(actions=-3), "action_space.n = -3: expected a whole number >= 1"),
    "True actions": (Vector(actions=True), "action_space.n = True: expected a whole number >= 1"),
    "a negative shape": (Vector(Box((-1, 2), 0.0, 1.0)), "observation_space.shape = -1: expected a whole number >= 1"),
    "a Box of 149 GiB": (Vector(Box((200_000, 200_000), 0.0, 1.0)), "qlax flattens an observation into at most"),
    "low of the wrong length": (Vector(Box((2,), [0.0, 0.0, 0.0], 1.0)),
                                "observation_space.low = [0.0, 0.0, 0.0]: expected a number or an array of the "
                                "space's shape (2,)"),
    "high of the wrong length": (Vector(Box((2,), 0.0, [1.0, 2.0, 3.0])), "observation_space.high = [1.0, 2.0, 3.0]"),
    "a word for a bound": (Vector(Box((2,), "low", 1.0)), "observation_space.low = 'low'"),
    "shape unlike the space": (Broken(observation_space=Box((3,))),
                               "reset returns observations of shape (); observation_space says (3,)"),
    "complex observations": (Vector(obs_dtype=jnp.complex64), "reset returns complex64 observations"),
    # time limit and threshold
    "a bool time limit": (Vector(limit=True), "max_episode_steps = True: expected a positive integer or None"),
    "a zero time limit": (Vector(limit=0), "max_episode_steps = 0"),
    "a fractional time limit": (Vector(limit=2.5), "max_episode_steps = 2.5"),
    "a threshold in words": (Vector(solve_threshold="high"), "solve_threshold = 'high': expected a number"),
    "a list threshold": (Vector(solve_threshold=[1, 2]), "solve_threshold = [1, 2]: expected a number"),
    "a bool threshold": (Vector(solve_threshold=True), "solve_threshold = True: expected a number"),
    # attributes that raise when read
    **{f"{attribute} raises": (raising(attribute, RuntimeError("boom")),
                               f"reading its {attribute} failed: RuntimeError: boom")
       for attribute in ("observation_space", "action_space", "max_episode_steps", "solve_threshold",
                         "action_mask")},
    "a space interrupted": (raising("observation_space", KeyboardInterrupt()),
                            "reading its observation_space failed: KeyboardInterrupt"),
    # reset and step
    "no reset": (Broken(reset=None), "has no reset() method"),
    "reset raises": (Broken(reset=fails(ValueError("bad seed"))), "reset(key) failed: ValueError: bad seed"),
    "reset exits": (Broken(reset=fails(SystemExit(3))), "reset(key) failed: SystemExit: 3"),
    "reset returns one value": (Broken(reset=lambda key: jnp.int32(0)), "reset(key) must return (obs, state)"),
    "step raises": (Broken(step=fails(RuntimeError("no"))), "step(key, state, action) failed: RuntimeError: no"),
    "step returns four values": (step_returning(lambda out: tuple(out)[:4]),
                                 "terminated and truncated apart; it returned 4 values"),
    "step grows its state": (step_returning(lambda out: out._replace(state=(out.state, out.state))),
                             "step returns a state of another structure"),
    "a vector reward": (step_returning(lambda out: out._replace(reward=jnp.zeros(3))),
                        "step's reward must be a scalar"),
}


@pytest.mark.parametrize("case", CASES)
def test_a_broken_environment_gets_one_line_naming_it_and_what_is_wrong(case):
    env, message = CASES[case]
    name = envs.register(env)
    with pytest.raises(EnvError) as caught:
        envs.env_spec(name)
    text = str(caught.value)
    assert message in text and "\n" not in text and name in text


FACTORIES = {
    "sys.exit(3)": ("def make():\n    sys.exit(3)", "make'() failed: SystemExit: 3"),
    "sys.exit()": ("def make():\n    sys.exit()", "make'() failed: SystemExit"),
    "KeyboardInterrupt": ("def make():\n    raise KeyboardInterrupt", "make'() failed: KeyboardInterrupt"),
    "an error": ("def make():\n    raise OSError('no display')", "make'() failed: OSError: no display"),
    "exits on import": ("sys.exit(4)\ndef make():\n    pass", "cannot import module"),
    "returns None": ("def make():\n    return None", "has no observation_space"),
    "not callable": ("make = 3", "has no callable 'make'"),
}


@pytest.mark.parametrize("case", FACTORIES)
def test_a_broken_factory_gets_one_line_and_exit_2(case, tmp_path, monkeypatch, capsys):
    source, message = FACTORIES[case]
    module = f"factory_{abs(hash(case))}"
    (tmp_path / f"{module}.py").write_text(f"import sys\n{textwrap.dedent(source)}\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    assert cli.main(["train", "--set", f"env={module}:make", "--out", "run"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err and f"{module}:make" in err, err
    assert not (tmp_path / "run").exists()
    sys.modules.pop(module, None)


@pytest.mark.parametrize("name", ["qlax.tools.cli:main", "qlax.tools.cli:make_parser", "gymnasium:qlax.tools.cli:main",
                                  "qlax.cli:main"])  # qlax.cli: the command's old path
def test_the_qlax_command_is_no_environment_factory(name, capsys):
    assert cli.main(["train", "--set", f"env={name}"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is the qlax command, not an environment factory" in err


def test_a_gymnasium_env_whose_observations_change_shape_while_it_runs_ends_in_one_line(tmp_path, monkeypatch,
                                                                                          capsys):
    pytest.importorskip("gymnasium")
    (tmp_path / "shifting.py").write_text(textwrap.dedent("""
        import gymnasium as gym
        import numpy as np

        class Shifting(gym.Env):
            observation_space = gym.spaces.Box(-1.0, 1.0, (3,), np.float32)
            action_space = gym.spaces.Discrete(2)
            steps = 0

            def reset(self, seed=None, options=None):
                super().reset(seed=seed)
                return np.zeros(3, np.float32), {}

            def step(self, action):
                self.steps += 1
                return np.zeros(3 if self.steps < 30 else 4, np.float32), 0.0, False, self.steps % 10 == 0, {}

        def make():
            return Shifting()
        """))
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    argv = ["train", "--seeds", "1", "--steps", "400", "--set", "env=gymnasium:shifting:make", "--set", "num_envs=4",
            "--set", "num_centers=8", "--set", "chunk_steps=50", "--set", "learning_starts=50",
            "--set", "buffer_size=200", "--out", "run"]
    assert cli.main(argv) == 2
    assert capsys.readouterr().err == ("qlax: error: env = 'gymnasium:shifting:make': step on the host failed: "
                                       "ValueError: it returned observations of shape (4,), where its "
                                       "observation_space says (3,)\n")


def test_a_box2d_environment_without_box2d_names_the_extra(capsys, monkeypatch):
    gymnasium = pytest.importorskip("gymnasium")

    def missing(*args, **kwargs):  # what Gymnasium raises where Box2D is not installed
        raise gymnasium.error.DependencyNotInstalled('Box2D is not installed, run `pip install "gymnasium[box2d]"`')

    monkeypatch.setattr(gymnasium, "make", missing)
    assert cli.main(["train", "--set", "env=gymnasium:LunarLander-v3", "--set", "q_function=mlp"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("qlax: error: env = 'gymnasium:LunarLander-v3': 'LunarLander-v3' "
                                                   "needs a package that is not installed")
    assert err.rstrip().endswith("pip install 'qlax[box2d]'")
