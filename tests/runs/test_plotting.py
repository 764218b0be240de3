"""Learning curves are written where --out says, or nowhere."""

import pytest

from qlax.tools import cli


@pytest.mark.parametrize("out", ["/dev/full", "x.", "curve.xyz", "curve", "."])
def test_plot_refuses_an_out_that_is_not_an_image_path_and_writes_nothing(out, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "metrics.csv").write_text("seed,env_steps\n")
    before = sorted(p.name for p in tmp_path.rglob("*"))
    assert cli.main(["plot", "run", "--out", out]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"qlax: error: --out '{out}': name an image file ending .png, .pdf, .svg") \
        and err.count("\n") == 1
    assert sorted(p.name for p in tmp_path.rglob("*")) == before


def test_members_frozen_at_the_threshold_are_read_from_the_last_chunk(tmp_path):
    from qlax.runs.plotting import _frozen

    rows = ["seed,env_steps,epsilon,avg_return_100,episodes,loss,stopped,diverged,greedy_return",
            "0,100,1,10,1,nan,0,0,nan", "1,100,1,10,1,nan,0,0,nan", "2,100,1,10,1,nan,0,0,nan",
            "0,200,1,475,2,nan,1,0,nan", "1,200,1,30,2,nan,0,0,nan", "2,200,1,476,2,nan,1,0,nan"]
    (tmp_path / "metrics.csv").write_text("\n".join(rows) + "\n")
    assert _frozen(tmp_path, 3).tolist() == [True, False, True]
