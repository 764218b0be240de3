"""Atari: the preprocessing against Gymnasium's own wrappers, what learning sees apart from
what returns count, frames stored as bytes, and the Nature torso against flax's convolutions."""

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

pytest.importorskip("ale_py")
gymnasium = pytest.importorskip("gymnasium")

from qlax.components import networks  # noqa: E402
from qlax.components.replay import uniform  # noqa: E402
from qlax.core.types import Transition  # noqa: E402
from qlax.envs import EnvError, EnvSpec  # noqa: E402
from qlax.envs import atari  # noqa: E402
from qlax.settings.config import ConfigError, TrainConfig  # noqa: E402


def play(env, seed: int, actions: np.ndarray):
    """(observations, rewards, terminated, truncated, infos) of `actions` from a seeded reset;
    an ended episode is reset (unseeded) and its next observation recorded as the step's."""
    obs, _ = env.reset(seed=seed)
    record = [[obs], [], [], [], []]
    for action in actions:
        obs, reward, terminated, truncated, info = env.step(int(action))
        if terminated or truncated:
            obs, _ = env.reset()
        for column, value in zip(record, (obs, reward, terminated, truncated, info)):
            column.append(value)
    return record


def test_preprocessing_matches_gymnasiums_wrappers_byte_for_byte():
    """Same seed, same actions: the same (4, 84, 84) frames and rewards as Gymnasium's
    AtariPreprocessing (no-op starts, frame skip 4 with max-pooling, 84x84 grayscale by
    OpenCV's INTER_AREA) under FrameStackObservation(4), through a game over and its reset."""
    pytest.importorskip("cv2")
    from gymnasium.wrappers import AtariPreprocessing, FrameStackObservation

    reference = FrameStackObservation(AtariPreprocessing(
        gymnasium.make("ALE/Breakout-v5", frameskip=1, repeat_action_probability=0.0)), 4)
    ours = atari.Atari("Breakout", life_loss=False, clip_rewards=False)
    actions = np.random.default_rng(0).integers(0, 4, 700)
    expected, got = play(reference, 3, actions), play(ours, 3, actions)
    assert sum(expected[2]) >= 1  # a game over and its reset were compared too
    np.testing.assert_array_equal(np.stack(got[0]), np.stack(expected[0]))
    assert got[1] == expected[1] and got[2] == expected[2] and got[3] == expected[3]
    assert got[0][0].dtype == np.uint8 and got[0][0].shape == (4, 84, 84)


def test_area_resize_is_opencvs_inter_area():
    cv2 = pytest.importorskip("cv2")
    rng = np.random.default_rng(1)
    for source, size in (((210, 160), (84, 84)), ((250, 160), (84, 84)), ((97, 61), (40, 23)), ((168, 100), (84, 84))):
        image = rng.integers(0, 256, source, dtype=np.uint8)
        expected = cv2.resize(image, size[::-1], interpolation=cv2.INTER_AREA)
        np.testing.assert_array_equal(atari.AreaResize(source, size)(image), expected)
    with pytest.raises(ValueError, match="not whole on some axis"):
        atari.AreaResize((64, 64), (32, 32))  # OpenCV's integer path, not this one


def test_rewards_are_clipped_for_learning_and_scored_unclipped():
    actions = np.random.default_rng(2).integers(0, 6, 400)
    clipped = play(atari.Atari("SpaceInvaders"), 5, actions)
    raw = play(atari.Atari("SpaceInvaders", clip_rewards=False), 5, actions)
    scores = np.array([info[atari.SCORE_KEY] for info in clipped[4]])
    assert scores.max() > 1  # aliens are worth 5 to 30 points
    np.testing.assert_array_equal(scores, raw[1])
    np.testing.assert_array_equal(clipped[1], np.sign(raw[1]))
    np.testing.assert_array_equal(np.stack(clipped[0]), np.stack(raw[0]))


def test_a_lost_life_ends_the_learning_episode_not_the_game():
    """With life_loss a lost life is terminated for learning, the reset that follows leaves
    the game where it stands, and only the game's end is a game over: step for step the
    same frames and scores as the game played without it."""
    actions = np.random.default_rng(3).integers(0, 4, 500)
    lives = play(atari.Atari("Breakout"), 7, actions)
    whole = play(atari.Atari("Breakout", life_loss=False), 7, actions)
    np.testing.assert_array_equal(np.stack(lives[0]), np.stack(whole[0]))
    scores = [info[atari.SCORE_KEY] for info in lives[4]]
    assert scores == [info[atari.SCORE_KEY] for info in whole[4]]
    lives_left = np.array([5] + [info["lives"] for info in lives[4]])
    game_over = np.array([info[atari.GAME_OVER_KEY] for info in lives[4]])
    lost = (lives_left[1:] < lives_left[:-1]) & ~game_over
    assert lost.sum() >= 2 and game_over.sum() >= 1
    np.testing.assert_array_equal(lives[2], lost | np.array(whole[2]))  # terminated: a life lost, or the game
    np.testing.assert_array_equal(game_over, np.array(whole[2]) | np.array(whole[3]))


def test_names_and_options():
    assert atari.parse("Pong") == ("Pong", {})
    assert atari.parse("Breakout:life_loss=false,sticky=0.25,max_frames=4000") == \
        ("Breakout", {"life_loss": False, "sticky": 0.25, "max_frames": 4000})
    spec = atari.spec("Breakout:max_frames=4000")
    assert spec.id == "atari:Breakout:max_frames=4000" and spec.obs_dtype == "uint8" and spec.host
    assert spec.obs_shape == (4, 84, 84) and spec.num_actions == 4 and spec.max_episode_steps == 1000
    with pytest.raises(EnvError, match="unknown Atari game 'Pongg' \\(did you mean 'Pong'\\?\\)"):
        atari.parse("Pongg")
    with pytest.raises(EnvError, match="'lives=3' is not an option"):
        atari.parse("Pong:lives=3")
    with pytest.raises(EnvError, match=r"sticky=2: expected a probability in \[0, 1\]"):
        atari.parse("Pong:sticky=2")
    assert atari.Atari("Pong").reset(seed=0)[0].shape == (4, 84, 84)
    assert isinstance(getattr(atari, "Pong:noop_max=0")(), atari.Atari)  # the Gymnasium adapter's factory


def test_frames_are_stored_as_bytes_and_come_back_exactly():
    frames = np.random.default_rng(4).integers(0, 256, (3, 4 * 84 * 84), dtype=np.uint8)
    batch = Transition(obs=frames, action=np.array([0, 5, 2], np.int32), reward=np.array([1, -1, 0.5], np.float32),
                       next_obs=frames[::-1], terminated=np.array([False, True, False]),
                       discount=np.array([0.99, 0.0, 0.9801], np.float32))
    state = jax.jit(uniform.add)(uniform.init(jax.tree.map(lambda x: x[0], batch), 5), batch)
    assert state.storage.dtype == jnp.uint8
    assert state.storage.shape[1] == 2 * 4 * 84 * 84 + 4 + 4 + 1 + 4  # 56 KB: two frame stacks and a few words
    stored = jax.tree.map(lambda x: np.asarray(x[:3]), uniform.contents(state))
    for field in ("obs", "action", "reward", "next_obs", "terminated", "discount"):
        assert getattr(stored, field).dtype == getattr(batch, field).dtype
        np.testing.assert_array_equal(getattr(stored, field), getattr(batch, field))


FRAMES = EnvSpec(id="frames", obs_shape=(4, 84, 84), obs_dim=4 * 84 * 84, num_actions=6, max_episode_steps=None,
                 obs_low=np.zeros(4 * 84 * 84, np.float32), obs_high=np.full(4 * 84 * 84, 255.0, np.float32),
                 solve_threshold=None, obs_dtype="uint8")


@pytest.mark.parametrize("size, stride", [(8, 4), (4, 2), (3, 1)])
def test_valid_conv_is_flax_conv(size, stride):
    x = jax.random.normal(jax.random.PRNGKey(0), (2, 21, 19, 3))
    flax_conv = nn.Conv(5, (size, size), (stride, stride), padding="VALID")
    params = jax.jit(flax_conv.init)(jax.random.PRNGKey(1), x)
    expected = jax.jit(flax_conv.apply)(params, x)
    got = jax.jit(networks.ValidConv(5, size, stride).apply)(params, x)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("layer_norm", [False, True])
def test_nature_torso_is_flax_convs_over_frames_divided_by_255(layer_norm):
    config = TrainConfig(q_function="nature", hidden_sizes=[512], layer_norm=layer_norm)
    q = networks.build(config, FRAMES)
    params = jax.jit(q.init)(jax.random.PRNGKey(0), config.hparams())
    layers = params["net"]["params"]
    assert [layers[f"ValidConv_{i}"]["kernel"].shape for i in range(3)] == \
        [(8, 8, 4, 32), (4, 4, 32, 64), (3, 3, 64, 64)]
    frames = jax.random.randint(jax.random.PRNGKey(1), (3, 4 * 84 * 84), 0, 256).astype(jnp.uint8)

    @jax.jit  # one program, not one per operation
    def by_flax(layers, frames):
        x = jnp.transpose(frames.reshape(3, 4, 84, 84) / 255.0, (0, 2, 3, 1))
        for i, (channels, size, stride) in enumerate(networks.NATURE_CONVS):
            x = nn.Conv(channels, (size, size), (stride, stride), padding="VALID").apply(
                {"params": layers[f"ValidConv_{i}"]}, x)
            if layer_norm:
                x = nn.LayerNorm().apply({"params": layers[f"LayerNorm_{i}"]}, x)
            x = nn.relu(x)
        x = nn.Dense(512).apply({"params": layers["Dense_0"]}, x.reshape(3, -1))
        if layer_norm:
            x = nn.LayerNorm().apply({"params": layers["LayerNorm_3"]}, x)
        return nn.Dense(6).apply({"params": layers["Dense_1"]}, nn.relu(x))

    np.testing.assert_allclose(jax.jit(q.apply)(params, frames), by_flax(layers, frames), rtol=1e-4, atol=1e-5)


def test_he_normal_scales_the_hidden_layers_and_convolutions_not_the_head():
    """He normal draws LeCun normal's numbers times sqrt(2) (both truncated normals over the
    fan-in), so from one key the two networks differ by exactly that, the head not at all."""
    config = TrainConfig(q_function="nature", hidden_sizes=[512], layer_norm=True)
    lecun, he = (jax.jit(networks.build(config.replace(weight_init=init), FRAMES).init)(
        jax.random.PRNGKey(0), config.hparams())["net"]["params"] for init in ("lecun_normal", "he_normal"))
    for name in ("ValidConv_0", "ValidConv_1", "ValidConv_2", "Dense_0"):
        np.testing.assert_allclose(he[name]["kernel"], np.sqrt(2.0) * lecun[name]["kernel"], rtol=1e-6)
        np.testing.assert_array_equal(he[name]["bias"], lecun[name]["bias"])
    np.testing.assert_array_equal(he["Dense_1"]["kernel"], lecun["Dense_1"]["kernel"])  # the Q head
    fan_in = 3136  # 7 x 7 x 64 into the 512 units
    assert abs(float(np.std(he["Dense_0"]["kernel"])) - np.sqrt(2.0 / fan_in)) < 0.02 * np.sqrt(2.0 / fan_in)


def test_the_nature_torso_refuses_what_it_cannot_read():
    with pytest.raises(ConfigError, match="q_function 'nature' divides pixels by 255"):
        TrainConfig().replace(q_function="nature", obs_scaling="none")
    with pytest.raises(ConfigError, match="the Nature DQN's convolutions read pixel frames"):
        networks.build(TrainConfig(q_function="nature"), dataclasses.replace(FRAMES, obs_high=FRAMES.obs_high / 255))
    with pytest.raises(ConfigError, match=r"observations of shape \(210, 160, 3\)"):  # ALE's raw RGB screen
        networks.build(TrainConfig(q_function="nature"), dataclasses.replace(
            FRAMES, obs_shape=(210, 160, 3), obs_dim=210 * 160 * 3))


@pytest.mark.slow
@pytest.mark.learning
def test_dqn_trains_on_breakout_counting_games_not_lives():
    """End to end through the Gymnasium adapter: uint8 frames into byte rows and the
    Nature torso; the training returns count games (a random Breakout game loses its 5
    lives in about 200 steps), while learning's episodes end at every lost life."""
    pytest.importorskip("qlax.envs.gymnasium_adapter")
    import qlax

    config = TrainConfig(env="atari:Breakout:max_frames=4000", q_function="nature", hidden_sizes=[16], num_envs=2,
                         total_steps=1200, chunk_steps=200, buffer_size=1200, batch_size=4, learning_starts=100,
                         train_freq=8, eps_schedule="constant", eps_start=1.0, early_stop=False, eval_episodes=1)
    result = qlax.train(config, progress=False)
    buffer = result.state.agent.replay
    assert buffer.storage.dtype == jnp.uint8
    stored = uniform.contents(jax.tree.map(lambda x: x[0], buffer))
    lives_lost = int(np.sum(np.asarray(stored.terminated)))
    games = int(result.state.stats.episodes[0])
    assert 2 <= games <= 12 and lives_lost >= 3 * games  # 5 learning episodes to a game
    assert result.eval_returns.shape == (1, 1) and float(result.eval_returns[0, 0]).is_integer()


@pytest.mark.slow
def test_async_workers_play_the_same_games_as_one_process():
    """`atari:Pong@async` (the copies in worker processes, one per core) against `atari:Pong`:
    the copies are seeded from the run's keys, whichever process steps them, so a run
    stores the same frames and counts the same returns."""
    from qlax.runs.experiment import start

    config = TrainConfig(q_function="mlp", hidden_sizes=[8], num_envs=2, total_steps=80, chunk_steps=20,
                         buffer_size=100, batch_size=4, learning_starts=20, early_stop=False, eval_episodes=1)

    def run(env):
        started = start(config.replace(env=env))
        state = started.state
        for _ in range(started.trainer.num_chunks):
            state, _ = started.population.run_chunk(state)
        return jax.tree.map(np.asarray, state)

    sync, parallel = run("atari:Pong"), run("atari:Pong@async")
    jax.tree.map(np.testing.assert_array_equal, sync, parallel)
    frames = uniform.contents(jax.tree.map(lambda x: x[0], sync.agent.replay)).obs.reshape(-1, 4, 84, 84)
    filled = frames[:int(sync.agent.replay.size[0])]
    assert len(filled) == 80 and len({frame.tobytes() for frame in filled[:, -1]}) > 10  # the games move
