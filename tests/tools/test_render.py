"""Rendering the newer sources: image observations drawn as their newest frame, Gymnasium
environments by their own render(), and a clear refusal of anything else."""

import dataclasses

import numpy as np
import pytest
import yaml
from PIL import Image

gymnasium = pytest.importorskip("gymnasium")

import gym_probes  # noqa: E402
import qlax  # noqa: E402
from qlax.envs import EnvSpec  # noqa: E402
from qlax.settings.config import TrainConfig  # noqa: E402
from qlax.tools import cli, render  # noqa: E402


def test_an_atari_observation_is_drawn_as_its_newest_frame_scaled_up():
    atari = pytest.importorskip("qlax.envs.atari")
    game = atari.Atari("Pong")
    game.reset(seed=0)
    for _ in range(40):
        obs, *_ = game.step(2)
    assert not np.array_equal(obs[-1], obs[0])  # the stack's frames differ: the newest one matters
    picture = np.asarray(render.drawing("atari:Pong")(obs.reshape(-1)))
    expected = np.kron(obs[-1], np.ones((4, 4), np.uint8))  # 84 x 84 scaled 4 times (to at most 400), grey
    assert picture.shape == (336, 336, 3)
    for channel in range(3):
        np.testing.assert_array_equal(picture[..., channel], expected)


def image_spec(shape, dtype="uint8", high=255.0) -> EnvSpec:
    size = int(np.prod(shape))
    return EnvSpec(id="images", obs_shape=shape, obs_dim=size, num_actions=2, max_episode_steps=None,
                   obs_low=np.zeros(size, np.float32), obs_high=np.full(size, high, np.float32),
                   solve_threshold=None, obs_dtype=dtype)


def test_images_of_any_layout_are_drawn_and_other_arrays_are_not():
    rng = np.random.default_rng(0)
    stack = rng.integers(0, 256, (32, 32, 4), dtype=np.uint8)  # channels last: a frame stack, newest last
    drawn = np.asarray(render.image_drawing(image_spec((32, 32, 4)))(stack.reshape(-1)))
    np.testing.assert_array_equal(drawn[::12, ::12, 1], stack[..., -1])  # scaled 400/32 -> 12 times
    rgb = rng.random((3, 20, 30)).astype(np.float32)  # channels first, RGB floats in [0, 1]
    drawn = np.asarray(render.image_drawing(image_spec((3, 20, 30), "float32", 1.0))(rgb.reshape(-1)))
    np.testing.assert_array_equal(drawn[::20, ::20], np.rint(np.moveaxis(rgb, 0, -1) * 255).astype(np.uint8))
    for spec in (image_spec((10, 10, 4), "float32", 1.0),  # a MinAtar grid: too small to be a picture
                 image_spec((64,)),  # a vector
                 dataclasses.replace(image_spec((32, 32), "float32"), obs_high=np.full(32 * 32, 7.0))):
        assert render.image_drawing(spec) is None


def train(config: TrainConfig, out, env=None):
    qlax.train(config, out=out, env=env, progress=False)


TINY = TrainConfig(num_envs=2, total_steps=80, chunk_steps=40, seeds=1, q_function="mlp", hidden_sizes=[8],
                   buffer_size=100, batch_size=4, learning_starts=20, eval_episodes=1, early_stop=False)


def check_counter_gif(path, frames: int):
    """The GIF shows the probe's episode: frame t red 40 t, as many frames as the episode has
    steps (3 for an even tag, which terminates; 5 for an odd one, cut by the time limit)."""
    gif = Image.open(path)
    assert gif.n_frames == frames
    centre = []
    for t in range(gif.n_frames):
        gif.seek(t)
        centre.append(gif.convert("RGB").getpixel((200, 200)))
    assert [red for red, _, _ in centre] == [40 * t for t in range(frames)]
    odd = centre[0][1] == 255
    assert frames == (gym_probes.LIMIT if odd else gym_probes.TERMINAL_STEP)


@pytest.mark.slow
def test_a_gymnasium_id_renders_its_own_frames_one_per_step(tmp_path, capsys):
    out = tmp_path / "run"
    train(TINY.replace(env="gymnasium:gym_probes:gym_probes/Counter-v0"), out)
    assert cli.main(["render", str(out)]) == 0
    path, frames = capsys.readouterr().out.strip().rsplit(": ", 1)
    assert path == str(out / "episode-seed0.gif")
    check_counter_gif(path, int(frames.split()[0]))


@pytest.mark.slow
def test_a_gymnasium_env_object_renders_when_it_renders_rgb_array(tmp_path):
    out = tmp_path / "run"
    train(TINY, out, env=gym_probes.counter_drawn())
    path, frames = render.render_episode(out, env=gym_probes.counter_drawn(), out=tmp_path / "episode.gif")
    check_counter_gif(path, frames)


class _DrawsWithAMissingPackage(gym_probes.Counter):
    def render(self):
        raise gymnasium.error.DependencyNotInstalled('pygame is not installed, run `pip install "gymnasium[toy-text]"`')


def test_a_drawing_that_fails_is_one_line_naming_the_env():
    """FrozenLake's render() without pygame raised through `qlax render` as a traceback."""
    from qlax.envs import EnvError
    from qlax.envs.gymnasium_adapter.rendering import rendered_episode

    env = gymnasium.wrappers.TimeLimit(_DrawsWithAMissingPackage(render_mode="rgb_array"), gym_probes.LIMIT)
    with pytest.raises(EnvError) as caught:
        rendered_episode(env, lambda obs: 0, seed=0, limit=5)
    assert str(caught.value) == ("env '_DrawsWithAMissingPackage': its render() failed: DependencyNotInstalled: "
                                 'pygame is not installed, run `pip install "gymnasium[toy-text]"`')


@pytest.mark.parametrize("env, message", [
    ("gymnasium:gym_probes:counter", "env = 'gymnasium:gym_probes:counter': qlax render draws a Gymnasium "
                                     "environment by its render() in rgb_array mode; this one has render_mode=None "
                                     "(render modes ['rgb_array']): "
                                     "make it with render_mode='rgb_array'"),
    ("gymnasium:gym_probes:dict_obs", "env = 'gymnasium:gym_probes:dict_obs': qlax render draws a Gymnasium "
                                      "environment by its render() in rgb_array mode; this one has render_mode=None "
                                      "(render modes [])"),
    ("Catch-bsuite", "env = 'Catch-bsuite': qlax render cannot draw it; it draws " + render.DRAWABLE),
])
def test_what_cannot_be_drawn_is_refused_in_one_line(tmp_path, capsys, env, message):
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(TrainConfig(env=env).to_dict()))
    assert cli.main(["render", str(tmp_path), "--env", env]) == 2  # named: a factory's module may be imported
    err = capsys.readouterr().err
    assert err == f"qlax: error: {message}\n"


@pytest.mark.slow
def test_an_atari_run_renders_its_game_to_the_cut(tmp_path, capsys):
    """`qlax render` of an atari: run: the newest frames, one per step, to the game's cut at
    400 emulator frames (100 steps of 4, less the 1-30 no-op frames of the reset)."""
    pytest.importorskip("qlax.envs.atari")
    out = tmp_path / "run"
    train(TINY.replace(env="atari:Pong:max_frames=400"), out)
    assert cli.main(["render", str(out)]) == 0
    gif = Image.open(out / "episode-seed0.gif")
    assert 92 <= gif.n_frames <= 100 and gif.size == (336, 336)
    assert capsys.readouterr().out == f"{out / 'episode-seed0.gif'}: {gif.n_frames} frames\n"


@pytest.mark.slow
def test_a_gymnasium_object_made_without_a_render_mode_is_made_again_to_render(tmp_path):
    out = tmp_path / "run"
    unrendered = gymnasium.make("gym_probes/Counter-v0")  # render_mode None; its spec can make it rgb_array
    assert unrendered.render_mode is None
    train(TINY, out, env=unrendered)
    path, frames = render.render_episode(out, env=gymnasium.make("gym_probes/Counter-v0"), out=tmp_path / "episode.gif")
    check_counter_gif(path, frames)


class DrawnCorridor:
    """The user's Corridor (tests/user_env.py) with its own drawing: the agent's cell lit."""

    def __new__(cls):
        from user_env import Corridor

        env = Corridor()
        env.draw = lambda obs: np.kron(np.asarray(obs).reshape(1, -1), np.ones((20, 20)))[..., None].repeat(3, -1) * 255
        return env


@pytest.mark.slow
def test_a_jax_environment_with_a_draw_method_renders_by_it(tmp_path):
    out = tmp_path / "run"
    train(TINY.replace(env="CartPole-v1"), out, env=DrawnCorridor())
    path, frames = render.render_episode(out, env=DrawnCorridor(), out=tmp_path / "episode.gif")
    gif = Image.open(path)
    assert gif.n_frames == frames and gif.size == (100, 20)  # 5 cells of 20 x 20
    assert gif.convert("RGB").getpixel((10, 10)) == (255, 255, 255)  # the first frame: at cell 0
