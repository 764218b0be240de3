"""Atari 2600 games (the Arcade Learning Environment) with the standard DQN preprocessing.

    atari:Pong                                   a game, as ALE's ids spell it (ALE/Pong-v5)
    atari:Breakout:life_loss=false,sticky=0.25   options after a second colon
    atari:Pong@async                             the copies stepped in worker processes

Each copy is the game's emulator (ale-py, ROMs included) behind `Atari`, a Gymnasium
environment that preprocesses on the host, in numpy, as DQN did (Mnih et al. 2015) and as
Gymnasium's `AtariPreprocessing` + `FrameStackObservation` do (tests/envs/test_atari.py checks
the numbers are theirs):
- reset: the game reset, then 1..noop_max no-op frames (a random start);
- step: the action repeated for 4 frames, rewards summed, the last two frames max-pooled
  (sprites that flicker), the pooled 210x160 grayscale screen resized to 84x84 by area
  averaging (OpenCV's INTER_AREA, written out in numpy: the same bytes, without OpenCV);
- the last 4 such frames stacked: (4, 84, 84) uint8, the first frame repeated at a reset.

What learning sees apart from what returns count: the reward is clipped to its sign
(`clip_rewards`), and with `life_loss` a lost life ends the learning episode (terminated:
no bootstrap past it) while the game goes on: the next episode starts where it stands,
without a reset. Returns count the game's own score to the game's end: the info keys
the Gymnasium adapter reads (`SCORE_KEY`, `GAME_OVER_KEY`). A game is cut after
`max_frames` frames (108,000: 30 minutes of play, 27,000 steps) as a truncation.

Options: life_loss (default true), sticky (the probability that the emulator repeats the
previous action, ALE v5's 0.25 against the DQN setting 0.0 here), noop_max (30),
clip_rewards (true), max_frames (108000).
"""

from __future__ import annotations

import difflib
import functools
import math

import numpy as np

from qlax.core.errors import short
from qlax.envs import gymnasium_adapter
from qlax.envs.base import EnvError, EnvSpec, VecEnv
from qlax.envs.gymnasium_adapter.vector import GAME_OVER_KEY, SCORE_KEY

try:
    import ale_py
    import gymnasium
except ImportError:
    raise EnvError("env 'atari:...' needs ale-py and gymnasium: pip install 'qlax[atari]'") from None

gymnasium.register_envs(ale_py)

FRAME_SKIP = 4
SCREEN = 84  # the resized frame's height and width
STACK = 4
OPTIONS = {"life_loss": True, "sticky": 0.0, "noop_max": 30, "clip_rewards": True, "max_frames": 108_000}


@functools.cache
def games() -> list[str]:
    """Every game ALE has, by the name its v5 ids give it (Pong, SpaceInvaders, ...)."""
    registry = gymnasium.registry
    return sorted(i[len("ALE/"):-len("-v5")] for i in registry if i.startswith("ALE/") and i.endswith("-v5"))


def _option(name: str, key: str, value: str):
    """One option's value, checked."""
    default = OPTIONS[key]
    try:
        if isinstance(default, bool):
            if value.lower() not in ("true", "false", "1", "0"):
                raise ValueError
            parsed = value.lower() in ("true", "1")
        elif isinstance(default, int):
            parsed = int(value)
            if parsed < (1 if key == "max_frames" else 0):
                raise ValueError
        else:
            parsed = float(value)
            if not 0.0 <= parsed <= 1.0:
                raise ValueError
    except ValueError:
        allowed = {bool: "true or false", int: "an integer >= 1" if key == "max_frames" else "an integer >= 0",
                   float: "a probability in [0, 1]"}[type(default)]
        raise EnvError(f"env = {short(name)}: {key}={value[:20]}: expected {allowed}") from None
    return parsed


def parse(env_id: str) -> tuple[str, dict]:
    """(game, options) of `GAME[:key=value,...]`, checked."""
    name = f"atari:{env_id}"
    game, _, rest = env_id.partition(":")
    if game not in games():
        close = difflib.get_close_matches(game[:60], games(), n=1)
        hint = f"did you mean '{close[0]}'?" if close else f"ALE has {len(games())}, e.g. Pong, Breakout, Seaquest"
        raise EnvError(f"env = {short(name)}: unknown Atari game {short(game, 40)} ({hint})")
    options = {}
    for item in filter(None, rest.split(",")):
        key, sep, value = item.partition("=")
        if not sep or key not in OPTIONS:
            raise EnvError(f"env = {short(name)}: {short(item, 40)} is not an option; write key=value with key "
                           f"one of {', '.join(OPTIONS)}")
        options[key] = _option(name, key, value)
    return game, options


class AreaResize:
    """Area-averaging shrink of uint8 images, bit for bit OpenCV's `cv2.resize(...,
    interpolation=cv2.INTER_AREA)` where a factor is not a whole number (Atari's 210x160 to
    84x84: 2.5 and 1.9; OpenCV averages whole-factor shrinks another way).

    OpenCV weighs each source pixel by the share of the output cell it covers, in float32:
    per output column a short sum of weighted source columns, then per output row a short
    sum of weighted rows of that, rounded to nearest (ties to even). The tables and the
    float32 operations, in OpenCV's order, are its own, so the bytes are equal.
    """

    def __init__(self, source: tuple[int, int], size: tuple[int, int]):
        if any(s < d for s, d in zip(source, size)) or all(s % d == 0 for s, d in zip(source, size)):
            raise ValueError(f"AreaResize shrinks {source} by a factor that is not whole on some axis; "
                             f"{size} is not such a size")
        self.rows = _area_table(source[0], size[0])
        self.cols = _area_table(source[1], size[1])

    def __call__(self, image: np.ndarray) -> np.ndarray:
        (row_index, row_weight), (col_index, col_weight) = self.rows, self.cols
        pixels = image.astype(np.float32)
        across = pixels[:, col_index[:, 0]] * col_weight[:, 0]
        for k in range(1, col_index.shape[1]):
            across += pixels[:, col_index[:, k]] * col_weight[:, k]
        out = across[row_index[:, 0]] * row_weight[:, 0, None]
        for k in range(1, row_index.shape[1]):
            out += across[row_index[:, k]] * row_weight[:, k, None]
        return np.rint(out, out=out).astype(np.uint8)  # weights sum to 1: within [0, 255]


def _area_table(source: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """(indices, float32 weights), each (size, k): the source pixels of each output pixel along
    one axis and their weights, padded with weight 0 (OpenCV's computeResizeAreaTab)."""
    scale = 1.0 / (size / source)  # as OpenCV computes it, from its inverse
    cells = []
    for i in range(size):
        start = i * scale
        end = start + scale
        width = min(scale, source - start)
        first, last = math.ceil(start), min(math.floor(end), source - 1)
        first = min(first, last)
        cell = []
        if first - start > 1e-3:
            cell.append((first - 1, (first - start) / width))
        cell += [(j, 1.0 / width) for j in range(first, last)]
        if end - last > 1e-3:
            cell.append((last, min(end - last, 1.0, width) / width))
        cells.append(cell)
    k = max(len(cell) for cell in cells)
    index, weight = np.zeros((size, k), np.intp), np.zeros((size, k), np.float32)
    for i, cell in enumerate(cells):
        for j, (pixel, share) in enumerate(cell):
            index[i, j], weight[i, j] = pixel, np.float32(share)
    return index, weight


class Atari(gymnasium.Env):
    """One preprocessed game (see the module docstring): observations (4, 84, 84) uint8, the
    game's minimal action set, info[SCORE_KEY] the unclipped reward of the step,
    info[GAME_OVER_KEY] whether the game ended (or was cut), info["lives"]."""

    metadata = {"render_modes": []}

    def __init__(self, game: str, life_loss: bool = True, sticky: float = 0.0, noop_max: int = 30,
                 clip_rewards: bool = True, max_frames: int = 108_000):
        self.game = gymnasium.make(f"ALE/{game}-v5", obs_type="grayscale", frameskip=1,
                                   repeat_action_probability=sticky, max_num_frames_per_episode=max_frames,
                                   full_action_space=False).unwrapped
        self.ale = self.game.ale
        self.actions = list(self.ale.getMinimalActionSet())
        self.life_loss, self.noop_max, self.clip_rewards = life_loss, noop_max, clip_rewards
        height, width = self.ale.getScreenDims()
        self.resize = AreaResize((height, width), (SCREEN, SCREEN))
        self.frames = np.zeros((2, height, width), np.uint8)  # a step's last two frames, pooled into [0]
        self.stack = np.zeros((STACK, SCREEN, SCREEN), np.uint8)
        self.lives = 0
        self.mid_game = False  # a lost life ended the last episode; the game goes on
        self.observation_space = gymnasium.spaces.Box(0, 255, self.stack.shape, np.uint8)
        self.action_space = gymnasium.spaces.Discrete(len(self.actions))

    def _pooled(self) -> np.ndarray:
        np.maximum(self.frames[0], self.frames[1], out=self.frames[0])
        return self.resize(self.frames[0])

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        if self.mid_game and seed is None:  # a new learning episode in the same game
            self.mid_game = False
            return self.stack.copy(), {"lives": self.lives}
        self.mid_game = False
        self.game.reset(seed=seed)
        noops = int(self.game.np_random.integers(1, self.noop_max + 1)) if self.noop_max > 0 else 0
        for _ in range(noops):
            self.ale.act(self.actions[0])  # NOOP: the first of every minimal action set
            if self.ale.game_over():
                self.game.reset()
        self.lives = self.ale.lives()
        self.ale.getScreenGrayscale(self.frames[0])
        self.frames[1].fill(0)
        self.stack[:] = self._pooled()
        return self.stack.copy(), {"lives": self.lives}

    def step(self, action):
        ale_action = self.actions[int(action)]
        score, terminated, truncated = 0.0, False, False
        for t in range(FRAME_SKIP):
            score += self.ale.act(ale_action)
            terminated, truncated = self.ale.game_over(with_truncation=False), self.ale.game_truncated()
            if terminated or truncated:  # frames unread: the last step's shows again, as in Gymnasium's
                break
            if t >= FRAME_SKIP - 2:
                self.ale.getScreenGrayscale(self.frames[FRAME_SKIP - 1 - t])
        lives = self.ale.lives()
        game_over = terminated or truncated
        self.mid_game = self.life_loss and lives < self.lives and not game_over
        self.lives = lives
        self.stack[:-1] = self.stack[1:]
        self.stack[-1] = self._pooled()
        reward = float(np.sign(score)) if self.clip_rewards else score
        info = {SCORE_KEY: score, GAME_OVER_KEY: game_over, "lives": lives}
        return self.stack.copy(), reward, terminated or self.mid_game, truncated, info

    def close(self):
        self.game.close()


def one(env_id: str):
    """One preprocessed game: `atari:env_id` as a Gymnasium environment."""
    game, options = parse(env_id)
    return Atari(game, **options)


def __getattr__(name: str):
    """`qlax.envs.atari:GAME[:options]`: a factory of one preprocessed game, for the
    Gymnasium adapter's `module:factory` names (its worker processes import it by name)."""
    if not name[:1].isupper():
        raise AttributeError(name)
    try:
        parse(name)
    except EnvError:
        raise AttributeError(name) from None
    return functools.partial(one, name)


@functools.cache
def _num_actions(game: str) -> int:
    """The size of the game's minimal action set."""
    env = gymnasium.make(f"ALE/{game}-v5")
    env.close()
    return int(env.action_space.n)


def spec(env_id: str) -> EnvSpec:
    """(4, 84, 84) uint8 frames, the game's minimal action set, games cut at max_frames."""
    target, _, _ = env_id.partition("@")
    game, options = parse(target)
    obs_dim = STACK * SCREEN * SCREEN
    return EnvSpec(id=f"atari:{env_id}", obs_shape=(STACK, SCREEN, SCREEN), obs_dim=obs_dim,
                   num_actions=_num_actions(game), max_episode_steps={**OPTIONS, **options}["max_frames"] // FRAME_SKIP,
                   obs_low=np.zeros(obs_dim, np.float32), obs_high=np.full(obs_dim, 255.0, np.float32),
                   solve_threshold=None, host=True, obs_dtype="uint8")


def make(env_id: str, num_envs: int) -> VecEnv:
    """`num_envs` preprocessed copies, stepped on the host by the Gymnasium adapter."""
    env = gymnasium_adapter.make(f"{__name__}:{env_id}", num_envs)  # this module's factory (`__getattr__`)
    return env._replace(spec=spec(env_id))
