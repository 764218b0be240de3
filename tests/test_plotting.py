"""Learning curves are written where --out says, or nowhere."""

import pytest

from qlax import cli


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
