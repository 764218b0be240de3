"""One greedy episode of a trained seed, drawn frame by frame into a GIF (pillow)."""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image, ImageDraw

from qlax.envs import make_env
from qlax.rundir import load_run_config
from qlax.policy import load_policy

WIDTH, HEIGHT = 600, 400


def rollout(env_id: str, policy, key: jax.Array) -> np.ndarray:
    """Observations seen at each step of one greedy episode, (steps, obs_dim)."""
    env = make_env(env_id, 1)
    k_reset, k_steps = jax.random.split(key)
    obs, env_state = env.reset(k_reset)

    def step(carry, k):
        obs, env_state, done = carry
        action = policy(obs[0])[None]
        step = env.step(k, env_state, obs, action)
        return (step.obs, step.env_state, done | step.done[0]), (obs[0], done)

    keys = jax.random.split(k_steps, env.spec.max_episode_steps)
    _, (seen, done_before) = jax.lax.scan(step, (obs, env_state, jnp.bool_(False)), keys)
    return np.asarray(seen)[~np.asarray(done_before)]


def draw_cartpole(obs: np.ndarray) -> Image.Image:
    x, _, theta, _ = (float(v) for v in obs)
    image = Image.new("RGB", (WIDTH, HEIGHT), "white")
    draw = ImageDraw.Draw(image)
    scale = WIDTH / 4.8  # the track spans x in [-2.4, 2.4]
    ground = HEIGHT * 0.75
    cx = WIDTH / 2 + x * scale
    draw.line([(0, ground), (WIDTH, ground)], fill="black", width=1)
    draw.rectangle([cx - 25, ground - 15, cx + 25, ground + 15], fill=(60, 60, 60))
    pole = 1.0 * scale  # the pole is 2 * 0.5 m long
    tip = (cx + pole * np.sin(theta), ground - pole * np.cos(theta))
    draw.line([(cx, ground), tip], fill=(200, 120, 60), width=8)
    return image


def draw_bars(obs: np.ndarray) -> Image.Image:
    """Any environment: the observation vector as bars, clipped to [-3, 3]."""
    image = Image.new("RGB", (WIDTH, HEIGHT), "white")
    draw = ImageDraw.Draw(image)
    flat = np.clip(obs.reshape(-1), -3, 3)
    width = WIDTH / max(len(flat), 1)
    middle = HEIGHT / 2
    for i, v in enumerate(flat):
        top, bottom = sorted((middle, middle - v / 3 * (HEIGHT * 0.45)))
        draw.rectangle([i * width + 2, top, (i + 1) * width - 2, bottom], fill=(70, 110, 180))
    draw.line([(0, middle), (WIDTH, middle)], fill="black")
    return image


def _stamp(image: Image.Image, t: int) -> Image.Image:
    """Print the step number, which also keeps the GIF writer from merging equal frames."""
    ImageDraw.Draw(image).text((10, 10), f"step {t + 1}", fill="black")
    return image


def render_episode(run_dir: str | Path, seed: int = 0, out: str | Path = "episode.gif",
                   setting: int = 0) -> tuple[Path, int]:
    """Write one greedy episode of seed `seed` (of setting `setting`, for a sweep) to `out`;
    returns (path, number of frames)."""
    config = load_run_config(run_dir)
    policy, _ = load_policy(run_dir, seed, setting)
    observations = rollout(config.env, policy, jax.random.PRNGKey(config.seed + seed))
    draw = draw_cartpole if config.env == "CartPole-v1" else draw_bars
    frames = [_stamp(draw(o), t) for t, o in enumerate(observations)]
    frames[0].save(out, save_all=True, append_images=frames[1:], duration=20, loop=0, optimize=False)
    return Path(out), len(frames)
