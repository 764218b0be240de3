"""Every code block in the README and the docs runs, so no example can go stale.

- ```python blocks run in order, one namespace per page, in a fresh directory; a line
  `print(...)  # TEXT` claims what it prints: the printed line must be TEXT, or TEXT must
  start with it followed by a colon and a remark;
- ```bash blocks run with bash there (`qlax` on the PATH), except set-up lines that
  create a virtual environment and pip-install (CI runs the README's set-up itself);
- ```yaml blocks are preset files: they load and validate;
- unlabelled blocks are transcripts and diagrams: each `$ qlax ...` line followed by a
  `qlax: error: ...` line is run, and must fail with exactly that line (up to a `...`).
"""

import os
import re
import shlex
import socket
import subprocess
import sys
from pathlib import Path

import pytest

import qlax
from qlax.tools import cli

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.M | re.S)
SET_UP = re.compile(r"-m venv|pip install")
CLAIM = re.compile(r"^(\s*)print\((.*)\)\s+#\s+(.*)$", re.M)  # print(ARGS)  # what it prints

pytestmark = pytest.mark.slow


def blocks(page: Path, language: str) -> list[str]:
    return [body for lang, body in FENCE.findall(page.read_text()) if lang == language]


def page_id(page: Path) -> str:
    return str(page.relative_to(ROOT))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# Pages whose blocks train for tens of thousands of steps: compiled with XLA's optimizations
# (the `learning` mark), their Python blocks' four tests took 49 s instead of 63 s in one
# process, and your-config.md's command line, which trains what its Python block trained,
# finds that program in the session's compilation cache (7.2 s instead of 11.1 s). Every
# other block runs for moments, and compiles faster at -O0.
TRAIN_AT_LENGTH = {"README.md", "docs/tutorials/first-run.md", "docs/tutorials/steering.md",
                   "docs/tutorials/your-config.md"}


def page_param(page: Path):
    """`page` as a test parameter named by its path, marked `learning` where it trains at length."""
    return pytest.param(page, marks=[pytest.mark.learning] if page_id(page) in TRAIN_AT_LENGTH else [],
                        id=page_id(page))


@pytest.mark.parametrize("page", [page_param(p) for p in PAGES if blocks(p, "python")])
def test_python_blocks_run(page, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": "__docs__", "__claim__": claim}
    for code in blocks(page, "python"):
        exec(compile(with_claims_checked(code), f"{page_id(page)}", "exec"), namespace)


def with_claims_checked(code: str) -> str:
    """`code` with each `print(ARGS)  # TEXT` line turned into a call of `claim`."""
    return CLAIM.sub(lambda m: f"{m[1]}__claim__({m[3]!r}, {m[2]})", code)


def claim(said: str, *values, sep=" "):
    """A documented `print(...)  # said` line: print, and check that it printed what it says."""
    printed = sep.join(str(v) for v in values)
    print(printed)
    assert said == printed or said.startswith(printed + ":"), f"the page says {said!r}, the code printed {printed!r}"


def test_a_printed_claim_is_checked():
    checked = with_claims_checked("x = [1]\nprint(x, len(x))  # [1] 1: one")
    exec(checked, {"__claim__": claim})
    with pytest.raises(AssertionError, match="the page says"):
        exec(checked.replace("[1]\n", "[2]\n", 1), {"__claim__": claim})


@pytest.mark.parametrize("page", [page_param(p) for p in PAGES if any(not SET_UP.search(b) for b in blocks(p, "bash"))])
def test_bash_blocks_run(page, tmp_path):
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
           "QLAX_PORT": str(free_port())}
    for code in blocks(page, "bash"):
        if SET_UP.search(code):
            continue
        done = subprocess.run(["bash", "-euo", "pipefail", "-c", code], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, f"{code}\n{done.stderr[-2000:]}"


@pytest.mark.parametrize("page", [p for p in PAGES if blocks(p, "yaml")], ids=page_id)
def test_yaml_blocks_are_valid_presets(page, tmp_path):
    for i, text in enumerate(blocks(page, "yaml")):
        path = tmp_path / f"block{i}.yaml"
        path.write_text(text)
        assert isinstance(qlax.presets.load(str(path)), qlax.TrainConfig)


def transcript_errors() -> list[tuple[str, str, str]]:
    """(page, command, expected error line) of every `$ qlax` line followed by an error."""
    found = []
    for page in PAGES:
        for text in blocks(page, ""):
            lines = text.splitlines()
            for command, answer in zip(lines, lines[1:]):
                if command.startswith("$ qlax ") and answer.startswith("qlax: error:"):
                    found.append((page_id(page), command[2:], answer))
    return found


@pytest.mark.parametrize("page,command,expected", transcript_errors(), ids=lambda v: v if "/" in v else None)
def test_transcribed_errors_are_what_qlax_says(page, command, expected, capsys):
    assert cli.main(shlex.split(command)[1:]) == 2
    said = capsys.readouterr().err.strip().splitlines()[-1]
    shown = expected.split("...")
    assert said.startswith(shown[0].rstrip()), (said, expected)
    position = 0
    for piece in shown:  # every shown piece appears, in order
        position = said.find(piece.strip(), position)
        assert position >= 0, (said, expected)


def test_the_algorithms_page_names_everything_each_registry_lists():
    from qlax.algorithms import ALGORITHMS
    from qlax.components.exploration import EXPLORERS, SCHEDULES
    from qlax.components.learner import TARGETS
    from qlax.components.losses import PENALTIES
    from qlax.components.networks import TORSOS
    from qlax.components.replay import BUFFERS

    page = (ROOT / "docs" / "algorithms.md").read_text()
    for registry in (ALGORITHMS, BUFFERS, EXPLORERS, SCHEDULES, TARGETS, PENALTIES, TORSOS):
        for name in registry:
            assert re.search(rf"\b{name}\b", page), name


def test_the_reference_lists_every_setting_with_what_reads_it(monkeypatch):
    from qlax.settings import config

    monkeypatch.syspath_prepend(str(Path(__file__).parents[1]))
    import mkdocs_hooks

    table = mkdocs_hooks.settings_table().splitlines()
    assert [row.split(" | ")[0] for row in table[2:]] == [f"| `{name}`" for name in config.field_names()]
    assert "| `munchausen_tau` | `0.03` | > 0 | algorithm mdqn |  | mdqn: temperature" in "\n".join(table)
    assert "| `lr` | `0.005` | > 0 | algorithm dqn, c51, qrdqn, iqn, mdqn or pqn | yes |" in "\n".join(table)
    page = mkdocs_hooks.on_page_markdown("before\n" + mkdocs_hooks.MARKER + "\nafter")
    assert page.startswith("before\n| setting |") and page.endswith("\nafter")


@pytest.mark.slow
@pytest.mark.learning
def test_the_acrobot_example_solves_as_it_says(tmp_path):
    """docs/tutorials/your-config.md's written-out Acrobot preset solves with every seed."""
    page = next(p for p in PAGES if p.name == "your-config.md")
    block = next(text for text in blocks(page, "yaml") if "DQN on Acrobot" in text)
    (tmp_path / "acrobot.yaml").write_text(block)
    result = qlax.train(qlax.presets.load(str(tmp_path / "acrobot.yaml")), progress=False)  # its 8 seeds
    assert all(result.solved), result.eval_mean_return
