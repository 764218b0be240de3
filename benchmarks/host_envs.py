"""qlax on Gymnasium environments stepped on the host against Stable-Baselines3's DQN, same settings, one run.

    python benchmarks/host_envs.py [--cases cartpole] [--seeds 1,8] [--chunks 4] [--sb3-steps 16000]
                                   [--sb3-threads 1] [--sb3-python PATH] [--sb3-device cpu]

Per case, env steps per second while training, compile and warm-up excluded:
  qlax   `gymnasium:ID` (the environments stepped on the host, one callback per vector
         step for every seed at once), for each population size of --seeds: --chunks
         chunks timed after one untimed chunk (which crosses learning_starts), early stop
         off, so every timed step acts, stores and learns (`_timing.qlax_steps_per_s`);
  qlax   pong also as `atari:Pong@async` (one seed): the copies in worker processes, one
         per core, against SB3's SubprocVecEnv below;
  qlax   the same settings on the in-program (gymnax) version of the environment, where
         there is one, for what the host costs;
  SB3    `stable_baselines3.DQN` with the same settings, translated by `sb3_settings`:
         num_envs copies (its DummyVecEnv; for pong also its SubprocVecEnv), one update
         round of gradient_steps updates on batch_size transitions per train_freq env
         steps, the same network, buffer,
         learning_starts, n-step returns, target period, learning rate, gamma, loss and
         epsilon schedule (SB3's DQN has no double Q: qlax's double Q costs it one more
         head pass per update); one seed. It learns as many env steps untimed as qlax's untimed
         chunk, then --sb3-steps more, timed, on --sb3-threads PyTorch threads (1 by default,
         SB3's advice for small networks on a CPU; on a busy 2-core machine its default of
         one thread per core made it 14x slower). It runs in benchmarks/.venv-sb3, which this
         script makes on first use (`pip install stable-baselines3 torch==2.13.0`), as a
         subprocess (`_sb3_worker.py`) that prints one JSON line. --sb3-python names another
         interpreter that has SB3, PyTorch, ale-py and OpenCV (a machine without the package
         index); --sb3-device cuda puts SB3's network on the GPU, as qlax's is on a GPU machine.

Goals (issue #13): qlax >= 5x SB3's env steps/s on CartPole and >= 3x on Pong, printed
for qlax's one seed and for its population (aggregate env steps/s of all seeds, SB3's one
seed), each against SB3 in the like vector env (@async against SubprocVecEnv); on Pong,
EnvPool inside the program >= 2x qlax's own Gymnasium path (one seed each).

Cases: `cartpole` (cartpole-dqn on gymnasium:CartPole-v1; gymnax's CartPole-v1 in the
program), `lunarlander` (rl-zoo's LunarLander DQN through `qlax.settings.zoo`, one env per
seed and an update per env step: what one seed costs where every step crosses to the host;
needs Box2D in both interpreters), `pong` (pong-dqn on atari:Pong, the Nature network, one update per 4 env
steps; EnvPool's Pong-v5 in the program; SB3's CnnPolicy on PongNoFrameskip-v4 through
its AtariWrapper and a 4-frame VecFrameStack, which also presses FIRE after a reset).
The pong case cuts the replay buffer to 20,000 transitions (the preset's 100,000 take
5.6 GB a seed; the size does not change a step's cost), learning_starts to 1,000 and a
chunk to 250 vector steps. Adding a case: a `Case` in CASES with the qlax config and the
name of the SB3 side's env maker in `_sb3_worker.ENV_MAKERS`.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Callable

from _sb3_venv import HERE, run_worker, sb3_python
from _timing import emit, qlax_steps_per_s

import qlax
from qlax.settings import zoo
from qlax.settings.config import TrainConfig

WORKER = HERE / "_sb3_worker.py"


@dataclass(frozen=True)
class Case:
    config: Callable[[], TrainConfig]  # qlax's settings, env a gymnasium: name
    in_program_env: str | None  # the same environment stepped inside the program (gymnax), if any
    sb3_env_maker: str  # a name in _sb3_worker.ENV_MAKERS
    goal: float  # qlax / SB3 env steps/s to reach
    in_program_goal: float | None = None  # in-program env / host env steps/s to reach, if any
    async_too: bool = False  # also time config.env@async (one seed) against SB3's SubprocVecEnv


def cartpole() -> TrainConfig:
    return qlax.presets.load("cartpole-dqn").replace(env="gymnasium:CartPole-v1")


def lunarlander() -> TrainConfig:
    """rl-zoo's LunarLander DQN (benchmarks/transfer.py's copy) through `qlax.settings.zoo`:
    one env, 4 env steps a round, one update of 128 per env step (SB3's gradient_steps -1)."""
    from transfer import ZOO_LUNARLANDER

    entry = {**ZOO_LUNARLANDER, "n_timesteps": 100_000,
             "policy_kwargs": f"dict(net_arch={ZOO_LUNARLANDER['policy_kwargs']['net_arch']})"}
    settings, _ = zoo.translate(entry)
    return TrainConfig(env="gymnasium:LunarLander-v3", **settings)


def pong() -> TrainConfig:
    return qlax.presets.load("pong-dqn").replace(buffer_size=20_000, learning_starts=1_000, chunk_steps=250)


CASES = {"cartpole": Case(cartpole, "CartPole-v1", "gymnasium", 5.0),
         "lunarlander": Case(lunarlander, None, "gymnasium", 1.0),  # issue #21: one seed at least SB3's
         "pong": Case(pong, "envpool:Pong-v5", "atari", 3.0, in_program_goal=2.0, async_too=True)}
SB3_POLICIES = {"mlp": "MlpPolicy", "nature": "CnnPolicy"}  # SB3's CnnPolicy is the Nature network
SB3_ENV_IDS = {"atari:Pong": "PongNoFrameskip-v4"}


def sb3_settings(config: TrainConfig, maker: str, warmup_steps: int, timed_steps: int, threads: int,
                 device: str = "cpu", vec_env: str = "dummy") -> dict:
    """qlax's DQN settings as SB3's DQN takes them (env steps where SB3 counts env steps), in
    SB3's DummyVecEnv (`vec_env` "dummy", one process) or SubprocVecEnv ("subproc")."""
    if (config.algorithm, config.activation, config.target, config.loss) != ("dqn", "relu", "periodic", "huber") \
            or config.q_function not in SB3_POLICIES:
        raise ValueError("sb3_settings translates DQN with an MLP or the Nature network of relu layers, a periodic "
                         "target and the Huber loss only")
    total = warmup_steps + timed_steps
    decay_env_steps = config.eps_decay_steps * config.num_envs
    return {
        "env": {"maker": maker, "num_envs": config.num_envs, "vec_env": vec_env,
                "id": SB3_ENV_IDS.get(config.env) or config.env.removeprefix("gymnasium:").partition("@")[0]},
        "policy": SB3_POLICIES[config.q_function],
        "dqn": {"learning_rate": config.lr, "buffer_size": config.buffer_size,
                "learning_starts": config.learning_starts, "batch_size": config.batch_size, "gamma": config.gamma,
                # in vector steps; qlax's rounds within one vector step (pong: 2 of 8 envs) as more updates
                "train_freq": config.env_steps_per_round // config.num_envs or 1,
                "gradient_steps": -1 if config.gradient_steps == -1 else
                config.gradient_steps * max(1, config.num_envs // config.env_steps_per_round),
                "n_steps": config.n_step,
                # target_period counts updates: gradient_steps per env_steps_per_round env steps
                "target_update_interval": config.target_period * config.env_steps_per_round // config.updates_per_round,
                "exploration_initial_eps": config.eps_start, "exploration_final_eps": config.eps_end,
                "exploration_fraction": min(1.0, decay_env_steps / total),
                "max_grad_norm": config.max_grad_norm or 1e10,  # qlax: no clipping unless set
                # SB3's NatureCNN ends in its own 512-unit layer, qlax's first hidden size
                "net_arch": list(config.hidden_sizes)[1 if config.q_function == "nature" else 0:]},
        "warmup_steps": warmup_steps, "timed_steps": timed_steps, "threads": threads, "device": device,
    }


def run_sb3(settings: dict, python: str | None) -> dict | None:
    """The worker's JSON line, or None (said why) if it failed."""
    return run_worker(WORKER, settings, python or sb3_python())


def sb3_vec_env(env: str) -> str:
    """SB3's like-for-like of a qlax host env: worker processes for @async, else one process."""
    return "subproc" if env.endswith("@async") else "dummy"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default="cartpole", help=f"comma-separated, of {', '.join(CASES)}")
    parser.add_argument("--seeds", default="1,8", help="qlax population sizes, comma-separated")
    parser.add_argument("--chunks", type=int, default=4, help="timed qlax chunks")
    parser.add_argument("--sb3-steps", type=int, default=16_000, help="timed SB3 env steps")
    parser.add_argument("--sb3-threads", type=int, default=1, help="PyTorch threads for SB3 (0: its default)")
    parser.add_argument("--sb3-python", help="an interpreter with SB3, PyTorch, ale-py and OpenCV (default: "
                        "benchmarks/.venv-sb3, made on first use)")
    parser.add_argument("--sb3-device", default="cpu", help="SB3's PyTorch device (cpu, cuda)")
    args = parser.parse_args()
    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    unknown = [c for c in cases if c not in CASES]
    if unknown:
        parser.error(f"unknown case(s) {', '.join(unknown)}; known: {', '.join(CASES)}")
    populations = [int(s) for s in args.seeds.split(",")]
    results = []
    for name in cases:
        case = CASES[name]
        config = case.config().replace(early_stop=False)
        print(f"{name}: {config.env}, {config.num_envs} envs per seed, batch {config.batch_size}, "
              f"{config.updates_per_round} update(s) per {config.env_steps_per_round} env steps, "
              f"MLP {config.hidden_sizes}, buffer {config.buffer_size:,}, n-step {config.n_step}", flush=True)
        rows = []
        for seeds in populations:
            measured = qlax_steps_per_s(config.replace(seeds=seeds), args.chunks)
            rows.append({"library": "qlax", "env": config.env, "seeds": seeds, **measured})
            print(f"  qlax  {seeds:>3} seed(s), host env:    {measured['steps_per_s']:>9,.0f} env steps/s", flush=True)
        if case.async_too:
            env = f"{config.env}@async"
            measured = qlax_steps_per_s(config.replace(env=env, seeds=1), args.chunks)
            rows.append({"library": "qlax", "env": env, "seeds": 1, **measured})
            print(f"  qlax    1 seed(s), host env @async: {measured['steps_per_s']:>8,.0f} env steps/s", flush=True)
        if case.in_program_env is not None:
            measured = qlax_steps_per_s(config.replace(env=case.in_program_env, seeds=1), args.chunks)
            rows.append({"library": "qlax", "env": case.in_program_env, "seeds": 1, **measured})
            print(f"  qlax    1 seed(s), in-program env: {measured['steps_per_s']:>9,.0f} env steps/s "
                  f"({case.in_program_env})", flush=True)
            host = next((row for row in rows if row["env"] == config.env and row["seeds"] == 1), None)
            if host is not None and case.in_program_goal is not None:
                ratio = measured["steps_per_s"] / host["steps_per_s"]
                print(f"  qlax in-program / host env, 1 seed: {ratio:.2f}x   goal >= {case.in_program_goal:g}x: "
                      f"{'met' if ratio >= case.in_program_goal else 'NOT met'}", flush=True)
        warmup = config.chunk_steps * config.num_envs  # as qlax's untimed chunk
        theirs = {}
        for vec_env in ("dummy", "subproc") if case.async_too else ("dummy",):
            result = run_sb3(sb3_settings(config, case.sb3_env_maker, warmup, args.sb3_steps, args.sb3_threads,
                                          args.sb3_device, vec_env), args.sb3_python)
            if result is not None:
                theirs[vec_env] = result
                print(f"  SB3     1 seed, {vec_env:>8} VecEnv: {result['env_steps_per_s']:>9,.0f} env steps/s "
                      f"(torch {result['versions']['torch']}, {result['torch_threads']} threads)", flush=True)
        ratios = {}
        for row in rows:
            sb3 = theirs.get(sb3_vec_env(row["env"]))
            if row["env"].startswith(config.env) and sb3 is not None:
                label = f"{row['env']}, {row['seeds']} seed(s)"
                ratios[label] = ratio = row["steps_per_s"] / sb3["env_steps_per_s"]
                print(f"  qlax {label} / SB3 one seed ({sb3_vec_env(row['env'])}): {ratio:.2f}x   goal >= "
                      f"{case.goal:g}x: {'met' if ratio >= case.goal else 'NOT met'}", flush=True)
        results.append({"case": name, "qlax": rows, "sb3": theirs or None,
                        "ratios": {k: round(v, 3) for k, v in ratios.items()}})
    emit({"benchmark": "host_envs", "goals": {name: CASES[name].goal for name in cases}, "results": results})


if __name__ == "__main__":
    main()
