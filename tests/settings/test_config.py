"""Settings: presets, types, ranges and relations, checked before anything runs."""

import dataclasses

import pytest

import qlax
from qlax.components.networks import OBSERVATION_KINDS
from qlax.settings import config
from qlax.settings.config import ConfigError, TrainConfig, from_dict, load_yaml


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
    with pytest.raises(ConfigError, match="unknown setting 'learning_rate': qlax calls it 'lr'"):
        c.replace(learning_rate=1e-3)  # SB3's name: suggested by meaning, not by spelling (learning_starts)
    with pytest.raises(ConfigError, match="qlax calls it 'target_period'"):
        c.replace(target_update_interval=100)


def test_settings_by_observation_apply_to_their_kind_and_yield_to_settings_given_later():
    from qlax.program.trainer import for_observations
    from qlax.runs.experiment import by_observation_line

    dqn = qlax.presets.load("dqn")
    assert (dqn.batch_size, dqn.by_observation) == (64, {"grid": {"batch_size": 32, "obs_scaling": "none"}})
    assert dqn.for_observation("grid") == dataclasses.replace(dqn, batch_size=32, obs_scaling="none",
                                                              by_observation=None)
    assert dqn.for_observation("vector") == dataclasses.replace(dqn, by_observation=None)
    assert dqn.replace(lr=1e-4).for_observation("grid").batch_size == 32  # another setting leaves it
    given = dqn.replace(batch_size=48)  # --set batch_size=48: the person's value holds on every kind
    assert given.by_observation == {"grid": {"obs_scaling": "none"}}
    assert given.for_observation("grid").batch_size == 48
    assert for_observations(dqn.replace(env="Breakout-MinAtar")).batch_size == 32  # a 10x10x4 grid
    assert for_observations(dqn).batch_size == 64  # CartPole's vector
    assert for_observations(dqn.replace(env="Breakout-MinAtar", batch_size=64)).batch_size == 64
    on_grid = dqn.replace(env="Breakout-MinAtar")  # what a run with progress prints of it
    assert by_observation_line(on_grid, for_observations(on_grid)) == \
        "by_observation: obs_scaling 'none', batch_size 32 for this env's observations"
    assert by_observation_line(dqn, for_observations(dqn)) is None
    assert dqn.replace(algorithm="pqn").owned().by_observation == {"grid": {"obs_scaling": "none"}}  # no batches
    # A setting only a kind reads is kept: the grid's convolution keeps its channels.
    conv_on_grids = TrainConfig(q_function="mlp", conv_channels=[32], by_observation={"grid": {"q_function": "conv"}})
    assert conv_on_grids.owned().for_observation("grid").conv_channels == [32]
    with pytest.raises(ConfigError, match="'grids' is not a kind of observation: one of vector, one_hot, grid, image"):
        dqn.for_observation("grids")


def test_the_generic_rainbow_takes_dqns_grid_settings_on_grids_only():
    from qlax.program.trainer import for_observations

    rainbow = qlax.presets.load("rainbow")
    on_grid = for_observations(rainbow.replace(env="Breakout-MinAtar"))
    assert (on_grid.conv_stride, on_grid.batch_size, on_grid.obs_scaling) == (2, 32, "none")
    assert (on_grid.algorithm, on_grid.exploration, on_grid.replay) == ("qrdqn", "noisy", "prioritized")
    assert for_observations(rainbow) == dataclasses.replace(rainbow, by_observation=None)  # CartPole's vector


@pytest.mark.parametrize("value, message", [
    ({"pixels": {"batch_size": 32}}, "by_observation: 'pixels' is not a kind of observation: one of vector, "
                                     "one_hot, grid, image"),
    ({"grid": {"batch_sise": 32}}, "unknown setting 'batch_sise' (did you mean 'batch_size'?)"),
    ({"grid": {"batch_size": 0}}, "batch_size = 0: out of range, allowed >= 1"),
    ({"grid": {"env": "Breakout-MinAtar"}}, "by_observation.grid: env cannot depend on the observations"),
    ({"grid": 32}, "by_observation.grid = 32: expected settings"),
    ([32], "by_observation = [32]: expected kinds of observation mapped to settings"),
    ({"grid": {1: 2}}, "by_observation.grid: 1 is not a setting's name"),
    ({"image": {"q_function": "nature", "obs_scaling": "statistics"}},  # checked with the rest when loaded
     "by_observation.image: q_function 'nature' divides pixels by 255"),
])
def test_settings_by_observation_are_checked_as_settings(value, message):
    with pytest.raises(ConfigError) as caught:
        from_dict({"by_observation": value})
    assert message in str(caught.value)


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
    from qlax.program.trainer import make_train

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
    assert trainer.config == qlax.trainer.for_observations(config) and qlax.presets.description(name)


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


# Every setting has one owner: what reads it is declared next to it, a changed setting that
# nothing chosen reads is refused, and the declarations are checked against what the program
# really reads while it is built and traced.

class _Recording(TrainConfig):
    """A config that notes every setting read from it."""

    def __getattribute__(self, name):
        if name in _FIELDS:
            _READ.add(name)
        return object.__getattribute__(self, name)


_FIELDS, _READ = set(config.field_names()), set()
_SMALL = TrainConfig(num_envs=4, total_steps=400, chunk_steps=10, num_centers=8)
_NET = dict(q_function="mlp", hidden_sizes=[8])
_REPLAY = dict(buffer_size=100, learning_starts=10, batch_size=8)
_CHOICES = {
    "dqn, linear_rbf": _REPLAY,
    "dqn, prioritized, polyak, noisy, double Q": dict(**_NET, **_REPLAY, replay="prioritized", target="polyak",
                                                      exploration="noisy", n_step=3, double_q=True),
    "dqn residual, online": dict(**_NET, **_REPLAY, gradient="residual", target="online", loss="squared"),
    "c51, ez_greedy, constant": dict(**_NET, **_REPLAY, algorithm="c51", exploration="ez_greedy",
                                     eps_schedule="constant"),
    "qrdqn, keep_best, greedy checks": dict(**_NET, **_REPLAY, algorithm="qrdqn", keep_best=True, stop_on="greedy"),
    "iqn, noisy, dueling, double Q": dict(**_NET, **_REPLAY, algorithm="iqn", exploration="noisy", dueling=True,
                                          double_q=True, num_quantiles=4, quantile_embedding=8),
    "mdqn, noisy, dueling, n-step": dict(**_NET, **_REPLAY, algorithm="mdqn", exploration="noisy", dueling=True,
                                         n_step=2, munchausen_tau=0.1),
    "pqn, mlp": dict(**_NET, algorithm="pqn", lr_decay=True, num_steps=8, num_minibatches=2, num_epochs=1),
    "pqn, conv, noisy": dict(hidden_sizes=[8], q_function="conv", env="Breakout-MinAtar", algorithm="pqn", obs_scaling="none",
                             exploration="noisy", num_steps=8, num_minibatches=2, num_epochs=1),
}


@pytest.mark.parametrize("choice", _CHOICES)
def test_the_settings_a_program_reads_are_the_ones_its_owners_declare(choice):
    import jax

    from qlax.program import trainer

    chosen = _SMALL.replace(**_CHOICES[choice])
    recording = dataclasses.replace(_Recording(**chosen.to_dict()), **dict.fromkeys(config.DYNAMIC_SETTINGS))
    _READ.clear()
    program = trainer._build(recording)  # built and traced (shapes only), reading the config as it goes
    jax.eval_shape(program.run_chunk, jax.eval_shape(program.init, jax.random.PRNGKey(0), chosen.hparams()))
    declared = set(config.owners(chosen))
    assert _READ <= declared, f"read but declared by no owner: {sorted(_READ - declared)}"
    static_declared = declared - set(config.DYNAMIC_SETTINGS) - set(config.RUN_SETTINGS)
    assert static_declared <= _READ, f"declared but never read: {sorted(static_declared - _READ)}"


def test_every_setting_has_an_owner_and_every_preset_reads_what_it_sets():
    from qlax.settings import presets

    owned = set().union(*(config.owners(_SMALL.replace(**c)) for c in _CHOICES.values()),
                        config.owners(TrainConfig(eps_schedule="linear")), config.owners(TrainConfig(
                            eps_schedule="exponential", q_function="conv", env="Breakout-MinAtar")))
    assert owned == set(config.field_names())
    for name in presets.names():
        preset = presets.load(name)
        for kind in OBSERVATION_KINDS:
            config.check_owned(preset.for_observation(kind))


@pytest.mark.parametrize("changes, message", [
    (dict(algorithm="pqn", double_q=True), "never reads double_q = True (read by algorithm dqn, c51, qrdqn or iqn)"),
    (dict(algorithm="pqn", target="polyak", tau=0.01), "tau = 0.01 (read by target polyak)"),
    (dict(algorithm="pqn", replay="prioritized"), "replay = 'prioritized' (read by algorithm dqn, c51, qrdqn, iqn or mdqn)"),
    (dict(algorithm="c51", q_function="mlp", gradient="residual", target="online"),
     "gradient = 'residual' (read by algorithm dqn)"),
    (dict(q_function="linear_rbf", dueling=True), "dueling = True (read by q_function mlp, conv, nature or auto)"),
    (dict(q_function="mlp", exploration="noisy", eps_decay=0.5), "eps_decay = 0.5 (read by eps_schedule exponential)"),
])
def test_a_changed_setting_that_nothing_chosen_reads_is_refused_naming_its_readers(changes, message):
    from qlax.runs.experiment import start

    chosen = TrainConfig(num_envs=4).replace(**changes)
    with pytest.raises(ConfigError) as caught:
        start(chosen)
    assert message in str(caught.value) and "\n" not in str(caught.value)
    config.check_owned(TrainConfig(algorithm="pqn", double_q=False))  # a default given again is no change
    switched = chosen.owned()  # Python's way to switch: the settings nothing reads go back to their defaults
    config.check_owned(switched)
    assert switched.algorithm == chosen.algorithm and switched.q_function == chosen.q_function


def test_a_grid_over_a_setting_nothing_reads_is_refused_and_unread_settings_leave_the_compile_key():
    from qlax.runs.experiment import start

    pqn = TrainConfig(num_envs=4, algorithm="pqn", q_function="mlp")
    with pytest.raises(ConfigError, match="--grid 'target_period': .* never reads it"):
        start(pqn, grid={"target_period": [100, 200]})
    unread = dataclasses.replace(pqn, double_q=True)  # as a config written before settings had owners
    assert config.static_key(unread) == config.static_key(pqn)
    assert config.static_key(pqn.replace(num_steps=16)) != config.static_key(pqn)
