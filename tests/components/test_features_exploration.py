"""RBF features, the Q-function, epsilon schedules and epsilon-greedy actions."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from qlax.components import exploration, features
from qlax.components.networks import linear_rbf
from qlax.settings.config import TrainConfig

rbf = jax.jit(features.rbf)  # sigma traced: one compile for every width below


def direct_rbf(x, centers, sigma):
    """exp(-|x - c|^2 / (2 sigma^2)) by broadcasting, in float64."""
    x, centers = np.asarray(x, np.float64), np.asarray(centers, np.float64)
    return np.exp(-((x[:, None, :] - centers[None, :, :]) ** 2).sum(-1) / (2 * sigma**2))


def test_rbf_matches_the_direct_formula():
    centers = features.init_centers(jax.random.PRNGKey(0), 50, 4)
    x = jax.random.uniform(jax.random.PRNGKey(1), (20, 4), minval=-1.5, maxval=1.5)
    x = x.at[0].set(centers[7]).at[1].set(centers[49])  # points on centers
    for sigma in (0.3, 1.0):
        got = np.asarray(rbf(x, centers, jnp.float32(sigma)))
        assert got.shape == (20, 50)
        np.testing.assert_allclose(got, direct_rbf(x, centers, sigma), rtol=1e-4, atol=1e-6)
        assert got[0, 7] == pytest.approx(1.0, abs=1e-5) and got[1, 49] == pytest.approx(1.0, abs=1e-5)
        assert np.all(got <= 1.0) and np.all(got >= 0.0)


def test_rbf_by_hand():
    centers = jnp.array([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0]])
    x = jnp.array([[0.0, 0.0], [1.0, 1.0]])
    got = np.asarray(rbf(x, centers, jnp.float32(0.5)))  # 2 sigma^2 = 0.5: exp(-2 d^2)
    expected = [[1.0, np.exp(-2.0), np.exp(-4.0)], [np.exp(-4.0), np.exp(-2.0), 1.0]]
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-7)


def test_init_centers_shape_range_and_spread():
    centers = np.asarray(features.init_centers(jax.random.PRNGKey(3), 2000, 3))
    assert centers.shape == (2000, 3)
    assert centers.min() >= -1.0 and centers.max() <= 1.0
    assert centers.min() < -0.95 and centers.max() > 0.95  # uses the whole cube, not a corner
    np.testing.assert_allclose(centers.mean(0), 0.0, atol=0.06)
    other = np.asarray(features.init_centers(jax.random.PRNGKey(4), 2000, 3))
    assert not np.allclose(centers, other)  # the key decides them


def test_linear_rbf_scales_observations_and_trains_only_the_weights():
    q = linear_rbf(obs_dim=2, num_actions=3, num_centers=10, obs_low=np.array([-2.0, 0.0]),
                   obs_high=np.array([2.0, 10.0]))
    params = jax.jit(q.init)(jax.random.PRNGKey(0), TrainConfig(sigma=0.5, init_scale=0.1).hparams())
    assert float(params["sigma"]) == 0.5
    obs = jnp.array([[2.0, 10.0], [0.0, 5.0]])  # scaled to [1, 1] and [0, 0]
    phi = direct_rbf(np.array([[1.0, 1.0], [0.0, 0.0]]), params["centers"], 0.5)
    np.testing.assert_allclose(q.apply(params, obs), phi @ np.asarray(params["w"]), rtol=1e-4, atol=1e-6)
    grads = jax.grad(lambda p: jnp.sum(q.apply(p, obs)))(params)
    assert float(jnp.abs(grads["centers"]).sum()) == 0.0 and float(grads["sigma"]) == 0.0
    assert float(jnp.abs(grads["w"]).sum()) > 0


def curve(kind, start, end, decay, decay_steps):
    """t -> epsilon for fixed schedule numbers."""
    return lambda t: exploration.epsilon_schedule(kind)(jnp.asarray(t), start, end, decay, decay_steps)


SEED_CURVE = curve("exponential", 1.0, 0.01, 0.999, 1)


@pytest.mark.parametrize("t", [0, 1, 10, 1000, 4602, 5000, 20000])
def test_exponential_schedule_is_the_seed_curve(t):
    # float32 rounds 0.999 by ~5e-8 relative, which t multiplies: allow 2e-4 up to t ~ 4600.
    assert float(SEED_CURVE(t)) == pytest.approx(max(0.01, 0.999**t), rel=2e-4)


def test_exponential_schedule_exact_points():
    assert float(SEED_CURVE(0)) == 1.0
    assert float(SEED_CURVE(1)) == pytest.approx(0.999, rel=1e-6)
    assert float(SEED_CURVE(10)) == pytest.approx(0.999**10, rel=1e-6)
    assert float(SEED_CURVE(5000)) == pytest.approx(0.01, rel=1e-6)  # 0.999^5000 = 0.0067 < end
    steep = curve("exponential", 0.5, 0.1, 0.5, 1)
    assert [float(steep(t)) for t in range(4)] == pytest.approx([0.5, 0.25, 0.125, 0.1])


def test_linear_and_constant_schedules():
    linear = curve("linear", 1.0, 0.1, 0.999, 100)
    assert float(linear(0)) == 1.0
    assert float(linear(50)) == pytest.approx(0.55, abs=1e-6)
    assert float(linear(25)) == pytest.approx(0.775, abs=1e-6)
    assert float(linear(100)) == pytest.approx(0.1, abs=1e-7)
    assert float(linear(101)) == pytest.approx(0.1, abs=1e-7) and float(linear(10_000)) == pytest.approx(0.1, abs=1e-7)
    constant = curve("constant", 0.3, 0.1, 0.999, 100)
    assert float(constant(0)) == float(constant(10_000)) == pytest.approx(0.3)
    with pytest.raises(ValueError, match="eps_schedule = 'cosine'"):
        exploration.epsilon_schedule("cosine")


def test_schedules_are_optaxs_with_traced_numbers():
    steps = jnp.arange(0, 30_000, 7)
    exponential = jax.jit(exploration.epsilon_schedule("exponential"))
    reference = optax.exponential_decay(init_value=0.9, transition_steps=1, decay_rate=0.9997, end_value=0.02)
    np.testing.assert_allclose(exponential(steps, jnp.float32(0.9), jnp.float32(0.02), jnp.float32(0.9997), 1.0),
                               reference(steps), rtol=1e-6)
    linear = jax.jit(exploration.epsilon_schedule("linear"))
    reference = optax.linear_schedule(init_value=1.0, end_value=0.05, transition_steps=2500)
    np.testing.assert_allclose(linear(steps, jnp.float32(1.0), jnp.float32(0.05), 0.0, jnp.float32(2500.0)),
                               reference(steps), rtol=1e-6, atol=1e-7)


greedy = jax.jit(exploration.epsilon_greedy)
ROWS = 20_000


def test_epsilon_zero_is_greedy():
    q = jax.random.normal(jax.random.PRNGKey(0), (ROWS, 3))
    actions = greedy(jax.random.PRNGKey(1), q, 0.0)
    assert actions.shape == (ROWS,) and actions.dtype == jnp.int32
    np.testing.assert_array_equal(actions, jnp.argmax(q, -1))


def test_epsilon_one_is_uniform_regardless_of_q():
    q = jnp.tile(jnp.array([[0.0, 0.0, 5.0]]), (ROWS, 1))  # greedy is always action 2
    counts = np.bincount(np.asarray(greedy(jax.random.PRNGKey(2), q, 1.0)), minlength=3)
    expected = ROWS / 3
    assert ((counts - expected) ** 2 / expected).sum() < 13.8  # chi-square, 2 dof, 99.9%


def test_epsilon_half_with_two_actions_is_greedy_three_quarters_of_the_time():
    q = jnp.tile(jnp.array([[0.0, 1.0], [1.0, 0.0]]), (ROWS // 2, 1))  # greedy 1, 0, 1, 0, ...
    actions = np.asarray(greedy(jax.random.PRNGKey(3), q, 0.5))
    is_greedy = actions == np.tile([1, 0], ROWS // 2)
    # 0.5 (no coin) + 0.5 * 0.5 (a random action that happens to be greedy); sd ~0.003.
    assert is_greedy.mean() == pytest.approx(0.75, abs=0.015)
    # ... whichever action is the greedy one
    assert is_greedy[0::2].mean() == pytest.approx(0.75, abs=0.02)
    assert is_greedy[1::2].mean() == pytest.approx(0.75, abs=0.02)


def explored_rows(key, epsilon, rows=40_000):
    """(which rows explored, the random action of every row) for one key, read off black-box.

    The coin and the random action depend on the key, not on q, so the same key under two
    q tables whose greedy actions differ (0 and 1) gives the same action exactly on the
    rows that explored; epsilon 1 shows every row's random action.
    """
    q0 = jnp.tile(jnp.array([[1.0, 0.0]]), (rows, 1))
    a0, a1 = np.asarray(greedy(key, q0, epsilon)), np.asarray(greedy(key, q0[:, ::-1], epsilon))
    random_actions = np.asarray(greedy(key, q0, 1.0))
    explored = a0 == a1
    np.testing.assert_array_equal(a0[explored], random_actions[explored])
    return explored, random_actions


def test_coin_and_random_action_are_independent():
    # With epsilon 0.5 and two actions, a random action matches the greedy one half the time:
    # P(action != greedy) = 0.5 * 0.5, whichever action is greedy.
    q = jnp.tile(jnp.array([[0.0, 1.0]]), (40_000, 1))
    for seed in (3, 4):
        actions = np.asarray(greedy(jax.random.PRNGKey(seed), q, 0.5))
        assert np.mean(actions == 0) == pytest.approx(0.25, abs=0.01)
    # Among the explored rows both actions come up about equally, and the coin tells nothing
    # about the random action (deriving both from one draw would, e.g. only u < 0.5 explores
    # and then the action is floor(2u) = 0). sd of each share ~0.0035.
    explored, random_actions = explored_rows(jax.random.PRNGKey(5), 0.5)
    assert explored.mean() == pytest.approx(0.5, abs=0.015)
    assert random_actions[explored].mean() == pytest.approx(0.5, abs=0.015)
    assert random_actions[~explored].mean() == pytest.approx(0.5, abs=0.015)
    # Three actions, epsilon 0.6: P(non-greedy) = 0.6 * 2/3 = 0.4, split evenly between the two.
    q3 = jnp.tile(jnp.array([[0.0, 2.0, 1.0]]), (40_000, 1))
    counts = np.bincount(np.asarray(greedy(jax.random.PRNGKey(6), q3, 0.6)), minlength=3) / 40_000
    np.testing.assert_allclose(counts, [0.2, 0.6, 0.2], atol=0.01)


def test_one_coin_per_row():
    q = jnp.tile(jnp.array([[0.0, 1.0]]), (ROWS, 1))
    actions = np.asarray(greedy(jax.random.PRNGKey(7), q, 0.5))
    # Rows explore independently: neighbours agree as often as independent draws would,
    # P(same) = 0.75^2 + 0.25^2 = 0.625.
    assert np.mean(actions[1:] == actions[:-1]) == pytest.approx(0.625, abs=0.015)
    again = np.asarray(greedy(jax.random.PRNGKey(8), q, 0.5))
    assert not np.array_equal(actions, again)  # the key decides


@pytest.mark.parametrize("mu", [1.5, 2.0, 3.0])
def test_repeat_lengths_have_the_zeta_tail(mu):
    lengths = np.asarray(jax.jit(exploration.repeat_lengths, static_argnums=1)(jax.random.PRNGKey(9), (ROWS,), mu))
    assert lengths.min() >= 1 and lengths.max() <= exploration.MAX_REPEAT
    for k in (2, 4, 16):
        expected = k ** (1.0 - mu)  # P(n >= k)
        tolerance = 4 * np.sqrt(expected * (1 - expected) / ROWS) + 1e-9
        assert np.mean(lengths >= k) == pytest.approx(expected, abs=tolerance), k


def test_repeat_lengths_are_capped():
    lengths = np.asarray(exploration.repeat_lengths(jax.random.PRNGKey(10), (1000,), 1.01))
    assert lengths.max() == exploration.MAX_REPEAT and lengths.min() >= 1  # P(n >= 10,000) = 0.91
    assert np.mean(lengths == exploration.MAX_REPEAT) == pytest.approx(10_000 ** -0.01, abs=0.05)


ez = jax.jit(exploration.ez_greedy)


def test_ez_greedy_keeps_a_started_action_for_its_length_then_flips_coins_again():
    q = jnp.array([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])  # greedy: 1 and 2
    repeat = exploration.Repeat(action=jnp.int32([0, 0]), left=jnp.int32([2, 0]))
    seen = []
    for step in range(4):  # epsilon 0: only the committed row 0 leaves greedy, for 2 steps
        actions, repeat = ez(jax.random.PRNGKey(step), q, 0.0, repeat, 2.0)
        seen.append(np.asarray(actions).tolist())
    assert seen == [[0, 2], [0, 2], [1, 2], [1, 2]]
    assert np.asarray(repeat.left).tolist() == [0, 0]

    key = jax.random.PRNGKey(11)  # epsilon 1: every row starts a repeat of its coin's random action
    rows = jnp.tile(q, (ROWS // 2, 1))
    actions, started = ez(key, rows, 1.0, exploration.init_repeat(ROWS), 2.0)
    k_coins, k_length = jax.random.split(key)
    _, random_actions, _ = exploration._coins(k_coins, rows, 1.0)
    np.testing.assert_array_equal(actions, random_actions)
    np.testing.assert_array_equal(started.action, actions)
    np.testing.assert_array_equal(started.left, exploration.repeat_lengths(k_length, (ROWS,), 2.0) - 1)


@pytest.mark.slow
def test_ez_greedy_runs_in_training_hold_actions_within_episodes_and_restart_at_their_ends():
    from qlax.components.replay import uniform
    from qlax.runs.experiment import start

    config = TrainConfig(seeds=1, num_envs=4, total_steps=4_000, chunk_steps=1000, buffer_size=4_000,
                         learning_starts=4_000, eps_schedule="constant", eps_start=1.0, num_centers=8)

    def consecutive_actions(exploration_kind):
        ez = {"ez_mu": 1.5} if exploration_kind == "ez_greedy" else {}  # epsilon_greedy reads no ez_mu
        run = start(config.replace(exploration=exploration_kind, **ez))
        state, _ = run.population.run_chunk(run.state)
        member = jax.tree.map(lambda leaf: np.asarray(leaf)[0], state)
        stored = uniform.contents(member.agent.replay)
        actions = np.asarray(stored.action).reshape(-1, 4).T  # (env, step): 4 rows per vector step
        ended = np.asarray(stored.terminated).reshape(-1, 4).T
        same = actions[:, 1:] == actions[:, :-1]
        within, across = same[~ended[:, :-1]], same[ended[:, :-1]]
        return within.mean(), across.mean(), across.size

    within, across, boundaries = consecutive_actions("epsilon_greedy")
    assert within == pytest.approx(0.5, abs=0.05)  # one coin per step, two actions
    within, across, boundaries = consecutive_actions("ez_greedy")
    assert within > 0.85  # P(n >= k) = k^-0.5: most spans outlast a random CartPole episode
    assert boundaries > 100 and across == pytest.approx(0.5, abs=0.15)  # a new episode flips a new coin
