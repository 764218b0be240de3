"""Settings: presets, types, ranges and relations, checked before anything runs."""

import pytest

import qlax
from qlax.config import ConfigError, TrainConfig, from_dict, load_yaml


def test_seed_preset_is_the_notebook():
    c = qlax.presets.load("seed")
    assert (c.env, c.num_envs, c.num_centers, c.sigma, c.init_scale) == ("CartPole-v1", 16, 500, 0.5, 0.1)
    assert (c.buffer_size, c.learning_starts, c.batch_size, c.lr, c.gamma) == (100_000, 1000, 32, 5e-3, 0.99)
    assert (c.eps_schedule, c.eps_start, c.eps_end, c.eps_decay) == ("exponential", 1.0, 0.01, 0.999)
    assert (c.gradient, c.target, c.loss, c.truncation) == ("residual", "online", "squared", "terminal")
    assert (c.obs_low, c.obs_high) == ([-2.4, -3.0, -0.2, -3.0], [2.4, 3.0, 0.2, 3.0])  # obs / [2.4, 3, 0.2, 3]
    assert c.vector_steps == 10_000


def test_default_preset_is_cartpole_rbf_with_a_correct_rule():
    c = qlax.presets.load()
    assert c == qlax.presets.load("cartpole-rbf")
    assert (c.gradient, c.truncation, c.total_steps, c.num_centers) == ("semi", "bootstrap", 160_000, 500)


def test_replace_validates_and_keeps_the_rest():
    c = qlax.presets.load("cartpole-rbf").replace(lr=1e-3)
    assert c.lr == 1e-3 and c.gamma == 0.99
    with pytest.raises(ConfigError, match="lr = -1.0: out of range"):
        c.replace(lr=-1.0)
    with pytest.raises(ConfigError, match="unknown setting 'learning_rate'"):
        c.replace(learning_rate=1e-3)


def test_types_are_coerced_only_where_lossless():
    assert from_dict({"lr": 1, "num_envs": 8.0}).lr == 1.0
    with pytest.raises(ConfigError, match="expected an integer"):
        from_dict({"num_envs": True})
    with pytest.raises(ConfigError, match="expected a number"):
        from_dict({"gamma": "0.9"})


def test_obs_bounds_must_be_finite_and_ordered():
    with pytest.raises(ConfigError, match="obs_low < obs_high"):
        from_dict({"obs_low": [1.0, 0.0], "obs_high": [0.0, 1.0]})
    with pytest.raises(ConfigError, match="expected a non-empty list"):
        from_dict({"obs_low": 3.0})


def test_vector_steps_round_up():
    assert TrainConfig(total_steps=1001, num_envs=16).vector_steps == 63
    from qlax.trainer import make_train

    small = TrainConfig(total_steps=1000, num_envs=4, chunk_steps=100, num_centers=8, buffer_size=100,
                        learning_starts=10)
    assert make_train(small).num_chunks == 3
    # PQN learns after whole rollouts: the budget and the chunks round up to them.
    pqn = make_train(small.replace(algorithm="pqn", num_steps=32, num_minibatches=4))
    assert (pqn.budget, pqn.chunk_vector_steps, pqn.num_chunks) == (256, 128, 2)


def test_a_chunk_never_scans_past_the_budget():
    config = TrainConfig(total_steps=4000, num_envs=4, chunk_steps=100_000_000, num_centers=8, buffer_size=200,
                         learning_starts=50)
    trainer = qlax.trainer.make_train(config)  # builds the program, compiles nothing
    assert (trainer.budget, trainer.chunk_vector_steps, trainer.num_chunks) == (1000, 1000, 1)


def test_a_preset_file_path_loads(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("description: mine\nnum_envs: 8\nlr: 1.0e-3\n")
    config = qlax.presets.load(str(path))
    assert config.num_envs == 8 and config.lr == 1e-3


@pytest.mark.parametrize("name", qlax.presets.names())
def test_every_shipped_preset_validates_and_builds(name):
    config = qlax.presets.load(name)
    trainer = qlax.trainer.make_train(config)  # builds env, Q-function and learner; compiles nothing
    assert trainer.config == config and qlax.presets.description(name)


def test_yaml_numbers_are_read_as_yaml_1_2_core_reads_them():
    """YAML 1.1 read 010 as eight and 1:30 as ninety; a setting written so is a typo, not octal."""
    texts = ["010", "1:30", "1_000", "0o17", "0x1F", "+3", "3.", ".5", "-.inf", "0b101", "1:30.5"]
    assert [load_yaml(t, "x") for t in texts] == [10, "1:30", "1_000", 15, 31, 3, 3.0, 0.5, float("-inf"), "0b101",
                                                  "1:30.5"]
    with pytest.raises(ConfigError, match="total_steps = '1:30'"):
        TrainConfig().replace(total_steps=load_yaml("1:30", "test"))


def test_yaml_booleans_are_true_and_false_only():
    """YAML 1.1 read yes/no/on/off as booleans: `--set obs_stats=off` was refused as 'expected a
    string'. Settings read YAML 1.2's booleans, and numbers as 1.2 writes them."""
    values = load_yaml("a: yes\nb: off\nc: true\nd: False\ne: 1e-3\nf: NO", "test")
    assert values == {"a": "yes", "b": "off", "c": True, "d": False, "e": 1e-3, "f": "NO"}
    with pytest.raises(ConfigError, match="early_stop = 'yes': expected true or false"):
        TrainConfig().replace(early_stop=load_yaml("yes", "test"))
