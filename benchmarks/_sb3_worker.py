"""Stable-Baselines3's DQN timed on settings given as JSON; run by host_envs.py in benchmarks/.venv-sb3.

    python _sb3_worker.py '{"env": {...}, "dqn": {...}, "warmup_steps": N, "timed_steps": N, "threads": N}'

env: {"maker": a name in ENV_MAKERS, "id": the Gymnasium id, "num_envs": n, "vec_env": "dummy" (SB3's
DummyVecEnv, one process) or "subproc" (SubprocVecEnv, a process per copy)}; policy: SB3's
policy name (MlpPolicy, CnnPolicy); dqn: keyword arguments of `stable_baselines3.DQN` (plus
"net_arch"). The model first learns
`warmup_steps` env steps untimed (past learning_starts, so every timed step also learns),
then `timed_steps` more, timed. threads: PyTorch's threads (0: its default, one per core).
Prints one JSON line: env steps/s of the timed part and
the versions. No qlax here: this venv holds only SB3, PyTorch and Gymnasium.
"""

import functools
import json
import sys
import time

import gymnasium
import stable_baselines3
import torch
from stable_baselines3 import DQN
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv

VEC_ENVS = {"dummy": DummyVecEnv, "subproc": SubprocVecEnv}


def gymnasium_env(settings: dict):
    """n copies of a Gymnasium id in SB3's vector env, as SB3's examples build them."""
    return make_vec_env(settings["id"], n_envs=settings["num_envs"], seed=0,
                        vec_env_cls=VEC_ENVS[settings.get("vec_env", "dummy")])


def ale_game(game_id: str, **kwargs):
    """gymnasium.make of an ALE id, registering ale-py's ids first: SubprocVecEnv's workers
    start in fresh processes, where they are not registered yet. render_mode as SB3's
    make_vec_env sets it for an id."""
    import ale_py

    gymnasium.register_envs(ale_py)
    return gymnasium.make(game_id, **{"render_mode": "rgb_array", **kwargs})


def atari_env(settings: dict):
    """n copies of an ALE NoFrameskip-v4 game through SB3's AtariWrapper (no-op starts, frame
    skip 4 with max-pooling, 84x84 gray, a lost life as an end, clipped rewards; FIRE after a
    reset) and 4 frames stacked, as rl-baselines3-zoo trains DQN on Atari."""
    from stable_baselines3.common.env_util import make_atari_env
    from stable_baselines3.common.vec_env import VecFrameStack

    return VecFrameStack(make_atari_env(functools.partial(ale_game, settings["id"]), n_envs=settings["num_envs"],
                                        seed=0, vec_env_cls=VEC_ENVS[settings.get("vec_env", "dummy")]), n_stack=4)


ENV_MAKERS = {"gymnasium": gymnasium_env, "atari": atari_env}


def main():
    settings = json.loads(sys.argv[1])
    if settings["threads"]:
        torch.set_num_threads(settings["threads"])
    env = ENV_MAKERS[settings["env"]["maker"]](settings["env"])
    dqn = dict(settings["dqn"])
    net_arch = dqn.pop("net_arch")
    model = DQN(settings["policy"], env, policy_kwargs={"net_arch": net_arch}, device=settings.get("device", "cpu"), seed=0, verbose=0, **dqn)
    model.learn(total_timesteps=settings["warmup_steps"])
    started = time.perf_counter()
    model.learn(total_timesteps=settings["timed_steps"], reset_num_timesteps=False)
    seconds = time.perf_counter() - started
    env.close()
    print(json.dumps({"env_steps_per_s": settings["timed_steps"] / seconds, "timed_s": seconds,
                      "torch_threads": torch.get_num_threads(), "device": str(model.device),
                      "versions": {"stable_baselines3": stable_baselines3.__version__, "torch": torch.__version__,
                                   "gymnasium": gymnasium.__version__}}), flush=True)


if __name__ == "__main__":
    main()
