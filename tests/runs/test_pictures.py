"""Pictures that tell the truth: learning curves of what the policy does, with the env and
its threshold, readable sweeps; episodes drawn as the environments look, or refused."""

import contextlib
import io
import math
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest
import yaml
from PIL import Image

from qlax.runs import plotting, reports
from qlax.settings.config import TrainConfig
from qlax.settings.sweep import Members
from qlax.tools import cli, render

pytestmark = pytest.mark.slow  # every test here trains or starts processes

TINY = ["--seeds", "2", "--steps", "400", "--set", "num_envs=4", "--set", "chunk_steps=50", "--set", "eval_episodes=2",
        "--set", "learning_starts=50", "--set", "buffer_size=200"]


def train(argv: list[str]) -> str:
    """What `qlax train argv` prints (it must succeed)."""
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert cli.main(["train", *argv]) == 0
    return printed.getvalue()


@pytest.fixture(scope="module")
def breakout(tmp_path_factory):
    """The shipped MinAtar preset, briefly, with greedy checks (keep_best) and no threshold."""
    out = tmp_path_factory.mktemp("breakout")
    printed = train(["breakout-minatar-dqn", *TINY, "--set", "stop_eval_episodes=2", "--set", "keep_best=true",
                     "--set", "solve_threshold=null", "--out", str(out)])
    return out, printed


def test_a_run_without_a_threshold_claims_no_solves(breakout, capsys):
    out, printed = breakout
    lines = printed.splitlines()
    assert "  no threshold" in lines[-6]  # the last progress line
    assert lines[-4] == "greedy evaluation, 2 episodes per seed (no threshold):"
    assert all(line.startswith(f"  seed   {i}: mean return ") and line.endswith("  (400 env steps)")
               and "solved" not in line and " - " not in line for i, line in enumerate(lines[-3:-1]))
    assert lines[-1].startswith("no threshold, 2 seeds  |  wall ")
    assert cli.main(["eval", str(out)]) == 0
    evaluated = capsys.readouterr().out.splitlines()
    assert all(line.rstrip() == line and "solved" not in line and not line.endswith("-") for line in evaluated[:2])
    assert evaluated[2].startswith("no threshold, 2 seeds over 2 episodes each on Breakout-MinAtar  |")


def test_the_learning_curve_shows_the_greedy_checks_where_there_are_some(breakout):
    out, _ = breakout
    steps, returns, column = plotting.read_curve(out)
    assert column == "greedy_return" and np.isfinite(returns).all() and returns.shape == (2, 2)
    ax = plotting.figure([out]).axes[0]
    assert ax.get_ylabel() == "greedy return (check after each chunk)" and "Breakout-MinAtar" in ax.get_title()
    assert not [line for line in ax.get_lines() if "solved at" in line.get_label()]  # no threshold to draw


def test_render_draws_minatar_as_coloured_cells_into_the_run_directory(breakout, capsys):
    out, _ = breakout
    assert cli.main(["render", str(out)]) == 0
    gif = Image.open(out / "episode-seed0.gif")
    assert capsys.readouterr().out == f"{out / 'episode-seed0.gif'}: {gif.n_frames} frames\n"
    colours = {colour for _, colour in gif.convert("RGB").getcolors(maxcolors=4096)}
    paddle, ball, bricks = (render.CHANNEL_COLOURS[k] for k in (0, 1, 3))
    assert {paddle, ball, bricks} <= colours


def test_render_draws_mountaincar_into_the_run_directory(tmp_path, capsys):
    out = tmp_path / "run"
    train(["mountaincar-rbf", *TINY, "--set", "num_centers=8", "--out", str(out)])
    assert cli.main(["render", str(out), "--seed", "1"]) == 0
    path, frames = capsys.readouterr().out.strip().rsplit(": ", 1)
    gif = Image.open(path)
    assert path == str(out / "episode-seed1.gif") and gif.n_frames == int(frames.split()[0])
    assert gif.n_frames == 200  # a barely trained car never reaches the flag: the 200-step time limit ends it


def ink(image: Image.Image, colour) -> np.ndarray:
    """(x, y) of the pixels of `colour`."""
    ys, xs = np.nonzero(np.all(np.asarray(image) == colour, axis=-1))
    return np.stack([xs, ys], axis=1)


def test_the_drawings_follow_the_observation():
    down = ink(render.draw_acrobot(np.array([1.0, 0.0, 1.0, 0.0, 0.0, 0.0])), (0, 204, 204))
    up = ink(render.draw_acrobot(np.array([-1.0, 0.0, 1.0, 0.0, 0.0, 0.0])), (0, 204, 204))
    pivot_y, goal_y = render.HEIGHT / 2, render.HEIGHT / 2 - render.HEIGHT / 4.4
    assert down[:, 1].min() >= pivot_y - 5  # hanging: every link pixel below the pivot
    assert up[:, 1].min() < goal_y  # upright: the tip above the goal line
    left, right = (ink(render.draw_mountaincar(np.array([x, 0.0])), (60, 60, 60))[:, 0].mean() for x in (-1.0, 0.4))
    assert left < render.WIDTH / 3 < 2 * render.WIDTH / 3 < right
    grid = np.zeros((10, 10, 4))
    grid[9, 3, 0] = grid[2, 5, 3] = 1
    cells = render.draw_grid(grid)
    cell = render.HEIGHT // 10
    assert cells.getpixel((3 * cell + cell // 2, 9 * cell + cell // 2)) == render.CHANNEL_COLOURS[0]
    assert cells.getpixel((5 * cell + cell // 2, 2 * cell + cell // 2)) == render.CHANNEL_COLOURS[3]


def test_a_sweep_of_six_settings_stays_readable(tmp_path):
    config = TrainConfig(num_envs=4, total_steps=400, chunk_steps=50, seeds=2, learning_starts=50)
    grid = {"lr": [1e-4, 2e-4, 5e-4, 1e-3, 2e-3, 5e-3]}
    members = Members.of(config, grid)
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config.to_dict()))
    (tmp_path / "grid.yaml").write_text(yaml.safe_dump(grid))
    metrics = reports.MetricsFile(tmp_path / "metrics.csv", members)
    metrics.start()
    with metrics:
        for chunk in (1, 2):
            n = members.count
            metrics.write(SimpleNamespace(env_steps=np.full(n, 200 * chunk), epsilon=np.ones(n),
                                          avg_return_100=np.arange(n) * 10.0 + chunk, episodes=np.ones(n),
                                          loss=np.zeros(n), stopped=np.zeros(n), diverged=np.zeros(n),
                                          greedy_return=np.full(n, math.nan), episode_length=np.full(n, 20.0),
                                          updates=np.full(n, 150 * chunk), learning_rate=np.full(n, 1e-3)))
    fig = plotting.figure([tmp_path])
    fig.draw_without_rendering()  # lays the figure out
    ax, legend = fig.axes[0], fig.legends[0]
    lines = [line for line in ax.get_lines() if "lr=" in line.get_label()]
    assert len(lines) == 6 and len({line.get_color() for line in lines}) == 6
    assert len(legend.get_texts()) == 7  # six settings and the threshold
    assert legend.get_window_extent().y1 < ax.get_window_extent().y0  # below the axes, not over the curves
    assert all(band.get_alpha() <= 0.2 for band in ax.collections)


def test_plotting_leaves_a_scripts_own_matplotlib_backend_alone():
    code = ("import sys, matplotlib; matplotlib.use('svg'); import qlax.runs.plotting; "
            "print(matplotlib.get_backend(), 'matplotlib.pyplot' in sys.modules)")
    printed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert printed.split() == ["svg", "False"]  # no backend chosen, no pyplot imported
