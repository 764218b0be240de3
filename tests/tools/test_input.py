"""Bad input of every kind: one `qlax: error:` line, exit 2, nothing compiled, nothing written.

YAML is read by one safe loader wherever qlax reads it; every setting is checked for its
type, its range and what an int32 or a float32 can hold, as it is given.
"""

import dataclasses
import random
import time
import typing

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qlax.runs import experiment
from qlax.settings.config import DYNAMIC_SETTINGS, ConfigError, TrainConfig, load_yaml
from qlax.tools import cli

BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 9)}]\n" for i in range(8))
BAD_YAML = ["[1,", "{", "]", "@x", "*x", "%TAG !x! tag:x,2000:", "`x`", "a\x07b", "a: b: c", "a:\n\tb: 1",
            "!!python/object/apply:os.system ['true']", "!!python/name:os.system", "!!float 1", "&a [*a]", BOMB,
            "[" * 200, "{1: 2}", "{a: 1, a: 2}", "a: 1\n---\nb: 2", "'x", '"x', "\x00", "\ud800", "? [a]\n: b"]


@pytest.fixture
def no_run(monkeypatch):
    """Fail the test if bad input gets as far as planning a run (before anything compiles)."""
    def refuse(*args, **kwargs):
        raise AssertionError("bad input reached the run")
    monkeypatch.setattr(experiment, "_plan", refuse)


def run_cli(argv: list[str], capsys) -> tuple[int, str]:
    """(exit code, stderr) of the command run in this process."""
    try:
        code = cli.main(argv)
    except SystemExit as exit:  # argparse's own refusals
        code = exit.code
    captured = capsys.readouterr()
    assert captured.out == ""
    return code, captured.err


def assert_one_error_line(code: int, err: str) -> None:
    assert code == 2, err
    assert err.startswith("qlax: error: ") and err.count("\n") == 1 and err.endswith("\n"), err
    assert len(err.encode()) < 500 and "Traceback" not in err, err


def test_numbers_read_as_yaml_1_2_and_quoted_ones_stay_strings():
    assert [load_yaml(t, "x") for t in ("1e-3", "5E-4", "1e6", "-2.5e+2", "1.0e3", "3", "0.5")] == \
        [1e-3, 5e-4, 1e6, -250.0, 1000.0, 3, 0.5]
    assert [load_yaml(t, "x") for t in ('"0.5"', "'1e-3'", "2020-01-01", "=", "nan")] == \
        ["0.5", "1e-3", "2020-01-01", "=", "nan"]
    assert load_yaml(b"lr: 1e-3\nhidden_sizes: [64, 64]\n", "x") == {"lr": 1e-3, "hidden_sizes": [64, 64]}


@pytest.mark.parametrize("text", BAD_YAML + [b"lr: \xff\n", "x" * 1_000_001], ids=range(len(BAD_YAML) + 2))
def test_bad_yaml_is_one_line_naming_its_source(text):
    started = time.perf_counter()
    with pytest.raises(ConfigError) as refused:
        load_yaml(text, "--set lr=...")
    message = str(refused.value)
    assert message.startswith("--set lr=...: ") and "\n" not in message and len(message) < 400
    assert time.perf_counter() - started < 0.5


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("[]{}:,-?!&*'\"#|>%@` \t\n\rxa1.e\x00\x85\ud800")), max_size=60))
def test_any_text_is_a_value_or_one_error_line(text):
    try:
        load_yaml(text, "source")
    except ConfigError as err:
        assert str(err).startswith("source: ") and "\n" not in str(err)


def fields_by_kind() -> dict[str, list[dataclasses.Field]]:
    """TrainConfig's scalar numeric settings: integers, and numbers with and without a range."""
    hints = typing.get_type_hints(TrainConfig)
    kinds = {"int": [], "positive float": [], "ranged float": [], "free float": []}
    for f in dataclasses.fields(TrainConfig):
        hint = hints[f.name]
        if typing.get_origin(hint) is list:
            continue
        hint = typing.get_args(hint)[0] if typing.get_origin(hint) else hint  # int | None -> int
        meta = f.metadata
        if hint is int:
            kinds["int"].append(f)
        elif hint is float:
            bounded = meta["low"] is not None or meta["high"] is not None
            positive = meta["low"] == 0.0 and meta["low_open"]
            kinds["positive float" if positive else "ranged float" if bounded else "free float"].append(f)
    return kinds


def bad_values(f: dataclasses.Field, kind: str, rng: random.Random) -> list[str]:
    """Texts that no setting of `f`'s kind accepts, as --set would get them."""
    quoted = [f'"{rng.choice([0.5, 1, 100, 1e-3])}"', f"'{rng.randint(1, 9)}'"]
    nan_inf = [".nan", ".inf", "-.inf", ".NaN"]
    if kind == "int":
        low = f.metadata["low"]
        return quoted + nan_inf + [str(2**31), str(2**63 + rng.randint(0, 9)), "1" + "0" * rng.randint(30, 400),
                                   "0x" + "f" * 40, "0.5", "1e40", str(int(low) - 1 - rng.randint(0, 5))]
    overflow = ["1e39", "-1e39", "1e309", "1" + "0" * rng.randint(39, 400)]
    if kind == "positive float":
        return quoted + nan_inf + overflow + ["1e-46", "1e-320", "4e-324", "0", "-1e-3"]
    if kind == "ranged float":
        low, high = f.metadata["low"], f.metadata["high"]
        beyond = ([str(low - 0.5)] if low is not None else []) + ([str(high + 0.5)] if high is not None else [])
        return quoted + nan_inf + overflow + beyond
    return quoted + nan_inf + overflow


def good_value(f: dataclasses.Field) -> str:
    return repr(TrainConfig().to_dict()[f.name]).replace("None", "null")


def fuzz_cases(count: int, seed: int = 0) -> list[list[str]]:
    """`count` bad invocations drawn from every class of bad input, reproducibly."""
    rng = random.Random(seed)
    kinds = fields_by_kind()
    dynamic = [(f, kind) for kind, fs in kinds.items() for f in fs if f.name in DYNAMIC_SETTINGS]
    static = [f.name for fs in kinds.values() for f in fs if f.name not in DYNAMIC_SETTINGS]

    def bad(f: dataclasses.Field, kind: str) -> str:
        return rng.choice(bad_values(f, kind, rng) + BAD_YAML)

    def unknown() -> str:
        return "".join(rng.choice("abcdefghijklmnopqrstuvwxyz_") for _ in range(rng.randint(1, 300))) + "q9"

    def bad_set() -> list[str]:
        kind = rng.choice(list(kinds))
        f = rng.choice(kinds[kind])
        later = ["--set", f"{f.name}={good_value(f)}"] if rng.random() < 0.5 else []  # hides nothing
        return ["train", "--set", f"{f.name}={bad(f, kind)}", *later]

    def bad_grid_value() -> list[str]:
        f, kind = rng.choice(dynamic)
        return ["sweep", "--grid", f"{f.name}={good_value(f)},{bad(f, kind)}"]

    makers = [
        bad_set, bad_set, bad_set, bad_grid_value,
        lambda: ["train", rng.choice(["--seeds", "--steps"]),
                 rng.choice([str(2**31), str(2**64), "0", "-3", "1.5", "abc", "9" * 5000])],
        lambda: ["train", "--seeds", "2", "--set", f"seeds={rng.choice(['-.inf', '-inf', '0', str(2**40)])}"],
        lambda: ["train", "--set", f"{unknown()}={rng.randint(0, 9)}"],
        lambda: ["sweep", "--grid", f"{rng.choice(static)}=1,2"],
        lambda: ["sweep", "--grid", f"{unknown()}=1,2"],
        lambda: ["sweep", "--grid", "lr=" + ",".join(["1e-3"] * rng.randint(101, 1000)),
                 "--grid", "gamma=" + ",".join(["0.9"] * rng.randint(101, 1000))],
        lambda: ["sweep", "--grid", rng.choice(["lr", "lr=", "=1,2", "lr=,,"])],
    ]
    return [rng.choice(makers)() for _ in range(count)]


@pytest.mark.parametrize("batch", range(6))
def test_fuzzed_bad_invocations_exit_2_with_one_line_and_write_nothing(batch, capsys, no_run, tmp_path):
    for i, argv in enumerate(fuzz_cases(50, seed=batch)):
        out = tmp_path / f"run-{i}"
        started = time.perf_counter()
        assert_one_error_line(*run_cli(argv + ["--out", str(out)], capsys))
        assert time.perf_counter() - started < 5, argv
        assert not out.exists(), argv


@pytest.mark.parametrize("argv,message", [
    (["--set", "lr=abc", "--set", "lr=1e-3"], "lr = 'abc': expected a number"),
    (["--seeds", "2", "--set", "seeds=-inf"], "seeds = '-inf': expected an integer"),
    (["--set", "total_steps=\"0.5\""], "total_steps = '0.5': expected an integer"),
    (["--set", "eps_end='0.5'"], "eps_end = '0.5': expected a number"),
    (["--set", "sigma=1e-46"], "sigma = 1e-46 (0 as a float32): out of range, allowed > 0"),
    (["--set", "huber_delta=1e-320"], "huber_delta = 1e-320 (0 as a float32): out of range, allowed > 0"),
    (["--set", "solve_threshold=.nan"], "solve_threshold = nan: expected a finite number that fits a float32"),
    (["--set", "lr=1e39"], "lr = 1e+39: expected a finite number that fits a float32"),
    (["--steps", str(2**63)], "total_steps = 9223372036854775808: out of range, allowed at most 2147483647"),
    (["--set", "target_period=2147483648"], "target_period = 2147483648: out of range, allowed at most 2147483647"),
    (["--set", "seed=" + "9" * 4000], "seed = 999999999999999999...9999999999999999999: out of range, allowed at most"),
    (["--set", "obs_low=[0, 0, 0, 1e300]"], "obs_low[3] = 1e+300: expected a finite number"),
    (["--set", "obs_low=[0, 0, 0, 0]", "--set", "obs_high=[1, 1, 1, 1e-46]"],
     "need equal lengths and obs_low < obs_high"),
    (["--set", "lr=[1,"], "--set 'lr=[1,': not valid YAML: while parsing a flow node, expected the node content"),
    (["--set", "lr=" + BOMB], "aliases expand to more than 20,000 values"),
    (["--set", "lr=!!python/object/apply:os.system ['true']"], "tags such as tag:yaml.org,2002:python/object/app"),
])
def test_each_class_of_bad_value_gets_its_own_clear_line(argv, message, capsys, no_run, tmp_path):
    code, err = run_cli(["train", *argv, "--out", str(tmp_path / "run")], capsys)
    assert_one_error_line(code, err)
    assert message in err


def test_a_huge_grid_is_refused_from_its_size_before_its_values_are_read(capsys, no_run):
    started = time.perf_counter()
    code, err = run_cli(["sweep", "--grid", "lr=" + ",".join(["x["] * 100_000), "--grid",
                         "gamma=" + ",".join(["0.9"] * 1000)], capsys)
    assert time.perf_counter() - started < 1
    assert_one_error_line(code, err)
    assert "'lr' (100,000 values) x 'gamma' (1,000 values) make 100,000,000 settings; a sweep trains at most " \
           "10,000 settings" in err


@pytest.mark.parametrize("file,text,message", [
    ("config.yaml", "lr: [1,\n", "config.yaml: not valid YAML"),
    ("config.yaml", b"lr: \xe9\n", "config.yaml: not UTF-8 text (byte 0xe9 at offset 4)"),
    ("config.yaml", "- 1\n", "config.yaml: expected a mapping of setting: value, found list"),
    ("config.yaml", "lr: '1e-3'\n", "config.yaml: lr = '1e-3': expected a number"),
    ("config.yaml", "lr: 1\nlr: 2\n", "config.yaml: not valid YAML: key 'lr' appears twice"),
    ("grid.yaml", "lr: [0.001, !!python/name:os.system]\n", "grid.yaml: not valid YAML: tags such as"),
    ("grid.yaml", "lr: [0.001, 1.0e+39]\n", "grid.yaml: lr = 1e+39: expected a finite number"),
    ("grid.yaml", "num_envs: [4, 8]\n", "grid.yaml: --grid num_envs: a static setting"),
])
def test_a_run_directorys_yaml_is_read_as_safely(tmp_path, capsys, file, text, message):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text("env: CartPole-v1\n")
    (run / file).write_bytes(text if isinstance(text, bytes) else text.encode())
    before = sorted(p.name for p in run.iterdir())
    for argv in (["eval", str(run)], ["resume", str(run)]):
        code, err = run_cli(argv, capsys)
        assert_one_error_line(code, err)
        assert message in err
    assert sorted(p.name for p in run.iterdir()) == before
