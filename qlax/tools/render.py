"""One greedy episode of a trained seed, drawn frame by frame into a GIF (pillow).

Each environment is drawn as it looks, one frame per step (the state acted on):
- from the observation alone: CartPole, Acrobot and MountainCar as Gymnasium draws them,
  MinAtar grids as coloured cells, and image observations of any source (Atari's frame
  stacks from atari: and envpool:, RGB screens): the newest frame, scaled up;
- Gymnasium environments (gymnasium:ID, a gymnasium.Env object) by their own `render()`
  in rgb_array mode: the episode is played on one host copy made to render, the policy
  acting on its observations (the VecEnv's copies are the trainer's, made without a
  renderer, and its auto-reset would hide the last frame).
Others are refused in one line that says what is drawable.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image, ImageDraw

from qlax.core.files import write_whole
from qlax.envs import EnvError, drawing_hook, env_spec, make_env, source_of
from qlax.program.evaluation import episode_limit
from qlax.runs.policy import load_policy
from qlax.runs.rundir import load_members
from qlax.settings.config import ConfigError, short

WIDTH, HEIGHT = 600, 400
# One colour per MinAtar channel (matplotlib's tab10; Seaquest has the most channels, 10).
CHANNEL_COLOURS = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
                   (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207)]


ROLLOUT_CHUNK = 256  # steps per compiled scan: an episode stops at the end of the chunk it ends in
MAX_FRAMES = 3000  # a GIF shows at most the first 3,000 steps (a minute; Atari's frames 113 KB each)
MIN_PIXELS = 16  # an observation is an image if both its sides have at least this many


def rollout(env_id: str, policy, key: jax.Array, limit: int = MAX_FRAMES) -> np.ndarray:
    """Observations seen at each step of one greedy episode, (steps, obs_dim), at most `limit`."""
    env = make_env(env_id, 1)
    k_reset, k_steps = jax.random.split(key)
    obs, env_state = env.reset(k_reset)

    @jax.jit
    def chunk(carry, keys):
        def step(carry, k):
            obs, env_state, done = carry
            action = policy(obs[0])[None]
            step = env.step(k, env_state, obs, action)
            return (step.obs, step.env_state, done | step.game_over[0]), (obs[0], done)

        return jax.lax.scan(step, carry, keys)

    steps = min(episode_limit(env.spec), limit)
    keys = jax.random.split(k_steps, steps)
    keys = jnp.resize(keys, (-(-steps // ROLLOUT_CHUNK) * ROLLOUT_CHUNK, *keys.shape[1:]))  # whole chunks: one compile
    carry, seen = (obs, env_state, jnp.bool_(False)), []
    for start in range(0, len(keys), ROLLOUT_CHUNK):
        carry, (observations, done_before) = chunk(carry, keys[start:start + ROLLOUT_CHUNK])
        seen.append(np.asarray(observations)[~np.asarray(done_before)])
        if bool(carry[2]):
            break
    return np.concatenate(seen)[:steps]


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


def draw_acrobot(obs: np.ndarray) -> Image.Image:
    """Two 1 m links hanging from a pivot (angle 0: straight down), and the goal line 1 m above it."""
    cos1, sin1, cos2, sin2 = (float(v) for v in obs[:4])
    theta1, theta2 = math.atan2(sin1, cos1), math.atan2(sin2, cos2)
    image = Image.new("RGB", (WIDTH, HEIGHT), "white")
    draw = ImageDraw.Draw(image)
    scale, pivot = HEIGHT / 4.4, (WIDTH / 2, HEIGHT / 2)

    def at(x: float, y: float) -> tuple[float, float]:  # metres from the pivot, y up -> pixels
        return pivot[0] + x * scale, pivot[1] - y * scale

    elbow = (math.sin(theta1), -math.cos(theta1))
    tip = (elbow[0] + math.sin(theta1 + theta2), elbow[1] - math.cos(theta1 + theta2))
    draw.line([at(-2.2, 1.0), at(2.2, 1.0)], fill="black", width=1)
    for start, end in ((0.0, 0.0), elbow), (elbow, tip):
        draw.line([at(*start), at(*end)], fill=(0, 204, 204), width=10)
    for x, y in (0.0, 0.0), elbow:
        cx, cy = at(x, y)
        draw.ellipse([cx - 6, cy - 6, cx + 6, cy + 6], fill=(204, 204, 0))
    return image


def draw_mountaincar(obs: np.ndarray) -> Image.Image:
    """The hill y = 0.45 sin(3x) + 0.55 over x in [-1.2, 0.6], the car on it, the flag at 0.5."""
    position = float(obs[0])
    image = Image.new("RGB", (WIDTH, HEIGHT), "white")
    draw = ImageDraw.Draw(image)
    scale = WIDTH / 1.8

    def at(x: float, y: float) -> tuple[float, float]:
        return (x + 1.2) * scale, HEIGHT - 20 - y * scale

    def height(x: float) -> float:
        return 0.45 * math.sin(3 * x) + 0.55

    draw.line([at(x, height(x)) for x in np.linspace(-1.2, 0.6, 100)], fill="black", width=2)
    flag = at(0.5, height(0.5))
    draw.line([flag, (flag[0], flag[1] - 50)], fill="black", width=2)
    draw.polygon([(flag[0], flag[1] - 50), (flag[0], flag[1] - 40), (flag[0] + 25, flag[1] - 45)], fill=(204, 204, 0))
    angle = math.atan(1.35 * math.cos(3 * position))  # the slope dy/dx at the car
    base = at(position, height(position))

    def turn(dx: float, dy: float) -> tuple[float, float]:  # pixels from the car's base, along the slope
        return (base[0] + dx * math.cos(angle) + dy * math.sin(angle),
                base[1] - dx * math.sin(angle) + dy * math.cos(angle))

    draw.polygon([turn(-20, -10), turn(20, -10), turn(20, -30), turn(-20, -30)], fill=(60, 60, 60))
    for dx in (-12, 12):
        cx, cy = turn(dx, -6)
        draw.ellipse([cx - 6, cy - 6, cx + 6, cy + 6], fill=(128, 128, 128))
    return image


def draw_grid(obs: np.ndarray) -> Image.Image:
    """A (rows, columns, channels) 0/1 grid: each lit cell in its channel's colour (the last lit
    channel on top), with a key of the channels beside it."""
    rows, cols, channels = obs.shape
    cell = HEIGHT // max(rows, cols)
    image = Image.new("RGB", (WIDTH, HEIGHT), "black")
    draw = ImageDraw.Draw(image)
    draw.rectangle([0, 0, cols * cell - 1, rows * cell - 1], fill=(40, 40, 40))
    for r in range(rows):
        for c in range(cols):
            lit = np.flatnonzero(obs[r, c] > 0.5)
            if lit.size:
                draw.rectangle([c * cell + 1, r * cell + 1, (c + 1) * cell - 1, (r + 1) * cell - 1],
                               fill=CHANNEL_COLOURS[lit[-1] % len(CHANNEL_COLOURS)])
    for k in range(channels):
        top = 40 + 24 * k
        draw.rectangle([cols * cell + 20, top, cols * cell + 36, top + 16], fill=CHANNEL_COLOURS[k % len(CHANNEL_COLOURS)])
        draw.text((cols * cell + 44, top + 2), f"channel {k}", fill="white")
    return image


def draw_picture(pixels: np.ndarray) -> Image.Image:
    """An (H, W) grey or (H, W, 3) RGB uint8 image, scaled up by a whole factor to at most HEIGHT tall."""
    factor = max(1, HEIGHT // pixels.shape[0])
    return Image.fromarray(pixels).convert("RGB").resize((pixels.shape[1] * factor, pixels.shape[0] * factor),
                                                         Image.NEAREST)


def newest_frame(obs: np.ndarray, channels_first: bool, scale: float) -> np.ndarray:
    """The picture an image observation shows, uint8: its RGB image with 3 channels, else the
    last channel (a frame stack's newest frame, or the one grey channel); `scale` maps its
    values to bytes (255 for [0, 1] floats)."""
    if obs.ndim == 3:
        obs = np.moveaxis(obs, 0, -1) if channels_first else obs
        obs = obs if obs.shape[-1] == 3 else obs[..., -1]
    return np.clip(np.rint(obs * scale), 0, 255).astype(np.uint8)


def image_drawing(spec) -> Callable[[np.ndarray], Image.Image] | None:
    """How to draw an observation of `spec` if it is an image: (H, W), (H, W, C) or (C, H, W)
    (the channels the shorter end axis), both sides at least MIN_PIXELS, of bytes or of values
    bounded by [0, 1] or [0, 255]; None otherwise."""
    shape = tuple(spec.obs_shape)
    if len(shape) not in (2, 3):
        return None
    channels_first = len(shape) == 3 and shape[0] < shape[-1]
    sides = shape if len(shape) == 2 else (shape[1:] if channels_first else shape[:-1])
    channels = 1 if len(shape) == 2 else min(shape[0], shape[-1])
    if min(sides) < MIN_PIXELS or channels >= min(sides):
        return None
    low, high = np.unique(spec.obs_low), np.unique(spec.obs_high)
    if spec.obs_dtype == "uint8":
        scale = 1.0
    elif low.tolist() == [0.0] and high.tolist() in ([1.0], [255.0]):
        scale = 255.0 / high[0]
    else:
        return None
    return lambda obs: draw_picture(newest_frame(np.asarray(obs).reshape(shape), channels_first, scale))


DRAWINGS = {"CartPole-v1": draw_cartpole, "Acrobot-v1": draw_acrobot, "MountainCar-v0": draw_mountaincar}
DRAWABLE = (f"{', '.join(DRAWINGS)}, the MinAtar games, image observations (atari:, envpool: Atari, RGB "
            f"screens), Gymnasium environments that render rgb_array, and JAX environments with a "
            f"draw(obs) -> (height, width, 3) uint8 method")


def drawing(env_id: str) -> Callable[[np.ndarray], Image.Image] | None:
    """How to draw one observation of `env_id`; None for an environment drawn by its own
    renderer (a Gymnasium one); EnvError for an environment qlax cannot draw."""
    if env_id in DRAWINGS:
        return DRAWINGS[env_id]
    draw = drawing_hook(env_id)
    if draw is not None:  # your JAX environment's own drawing, first
        return lambda obs: Image.fromarray(np.asarray(draw(obs), np.uint8))
    spec = env_spec(env_id)
    if is_grid(spec):  # qlax flattens the grid; the env emits (rows, columns, channels)
        return lambda obs: draw_grid(obs.reshape(spec.obs_shape))
    image = image_drawing(spec)
    if image is not None:
        return image
    if source_of(env_id) == "gymnasium":
        return None
    raise EnvError(f"env = '{env_id}': qlax render cannot draw it; it draws {DRAWABLE}")


def is_grid(spec) -> bool:
    """Whether `spec`'s observations are a (rows, columns, channels) grid of 0/1 cells (MinAtar's)."""
    return len(spec.obs_shape) == 3 and bool(np.all(spec.obs_low >= 0) and np.all(spec.obs_high <= 1))


def _stamp(image: Image.Image, t: int) -> Image.Image:
    """Print the step number, which also keeps the GIF writer from merging equal frames; the
    frame in GIF's palette mode, as the writer would make it (a third of the memory)."""
    ImageDraw.Draw(image).text((10, 10), f"step {t + 1}", fill=(128, 128, 128))
    return image.convert("P", palette=Image.Palette.ADAPTIVE)


def render_episode(run_dir: str | Path, seed: int = 0, out: str | Path | None = None,
                   setting: int = 0, env: Any = None) -> tuple[Path, int]:
    """Write one greedy episode of seed `seed` (of setting `setting`, for a sweep) to `out`
    (default: the run directory's episode-seed<seed>.gif, episode-setting<j>-seed<i>.gif for
    a sweep); returns (path, number of frames). `env`: the run's environment given
    again (`rundir.load_members`): an object, or a factory's name."""
    if out is not None:
        out = Path(out)
        if out.suffix.lower() != ".gif" or out.is_dir():
            raise ConfigError(f"--out {short(str(out))}: name a GIF file ending .gif")
    members = load_members(run_dir, env=env)
    config = members.config
    draw = drawing(config.env)
    if draw is None:  # a Gymnasium environment's own render(): one host copy, checked before the policy loads
        from qlax.envs.gymnasium_adapter import rendering

        host_env = rendering.renderer(config.env)
    policy, _ = load_policy(run_dir, seed, setting, env=env)
    if out is None:
        which = f"setting{setting}-seed{seed}" if members.grid else f"seed{seed}"
        out = Path(run_dir) / f"episode-{which}.gif"
    key = jax.random.PRNGKey(config.seed + seed)
    if draw is None:
        pictures = rendering.rendered_episode(host_env, policy, int(jax.random.randint(key, (), 0, 2**31 - 1)),
                                                      MAX_FRAMES)
        frames = [_stamp(draw_picture(p), t) for t, p in enumerate(pictures)]
    else:
        frames = [_stamp(draw(o), t) for t, o in enumerate(rollout(config.env, policy, key))]
    write_whole(out, lambda partial: frames[0].save(partial, format="GIF", save_all=True, append_images=frames[1:],
                                                    duration=20, loop=0, optimize=False))
    return Path(out), len(frames)
