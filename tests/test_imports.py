"""Imports only go down: qlax is packages by layer, every module sits in its layer's package,
imports (anywhere in the file, inside functions too) reach only its own layer or lower ones,
and no modules import each other in a circle. A new module must be given its layer here."""

import ast
from pathlib import Path

import qlax

PACKAGE = Path(qlax.__file__).parent

# Layer = package, lowest first. Within a layer modules may import each other, without circles.
# The environments sit below the components: the networks read the environments' interface
# (envs.base: the spec, the one-hot entries, the legal actions), and no environment source
# imports a component.
LAYERS = {
    "core": ["core", "core.errors", "core.hparams", "core.types", "core.program_cache", "core.files", "core.devices"],
    "envs": ["envs", "envs.base", "envs.gymnax_adapter", "envs.jax_adapter", "envs.envpool_adapter",
             "envs.jumanji_adapter", "envs.navix_adapter", "envs.atari", "envs.gymnasium_adapter",
             "envs.gymnasium_adapter.source", "envs.gymnasium_adapter.saved_spec", "envs.gymnasium_adapter.observations",
             "envs.gymnasium_adapter.vector", "envs.gymnasium_adapter.pool", "envs.gymnasium_adapter.host",
             "envs.gymnasium_adapter.rendering", "envs.gymnasium_adapter.tables"],
    "components": ["components", "components.features", "components.normalization", "components.exploration",
                   "components.losses", "components.nstep", "components.learner", "components.networks",
                   "components.replay", "components.replay.uniform", "components.replay.prioritized",
                   "components.contract"],
    "settings": ["settings", "settings.config", "settings.presets", "settings.sweep", "settings.zoo"],
    "algorithms": ["algorithms", "algorithms.agent", "algorithms.dqn", "algorithms.c51", "algorithms.qrdqn",
                   "algorithms.iqn", "algorithms.mdqn", "algorithms.pqn"],
    "program": ["program", "program.episodes", "program.placement", "program.evaluation", "program.trainer",
                "program.memory"],
    "runs": ["runs", "runs.callbacks", "runs.pbt", "runs.reports", "runs.tracking", "runs.progress", "runs.interrupt",
             "runs.checkpoint", "runs.rundir", "runs.plotting", "runs.policy", "runs.gymnasium_backend",
             "runs.experiment", "runs.run_evaluation"],
    "tools": ["tools", "tools.render", "tools.cli"],
    "": [""],  # the package's own face, qlax/__init__.py
}


def modules() -> dict[str, Path]:
    """Every module of qlax by its dotted name under the package ('' for the package itself)."""
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The qlax modules `name` imports anywhere in its file: for `from qlax.a import b`, qlax.a
    and qlax.a.b where that is a module. The package's face (qlax/__init__.py) is not counted:
    Python runs it before any module of the package, whoever imports what."""
    here = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the importing module's package, up level - 1
                up = ["qlax", *filter(None, here.split("."))]
                up = up[:len(up) - (node.level - 1)]
                base = ".".join([*up, base] if base else up)
            targets = [f"{base}.{alias.name}" for alias in node.names] + [base]
        else:
            continue
        for target in targets:
            module = target.partition("qlax.")[2] if target.startswith("qlax.") else ""
            while module and module not in known:
                module = module.rpartition(".")[0]
            if module and module != name and not name.startswith(module + "."):
                found.add(module)
    return found


def test_every_module_has_a_layer():
    placed = [m for layer in LAYERS.values() for m in layer]
    assert len(placed) == len(set(placed))
    assert sorted(placed) == sorted(modules()), "give each new module its layer in LAYERS"


def test_every_module_sits_in_its_layers_package():
    misplaced = [f"{m} is in layer {layer!r}" for layer, names in LAYERS.items() for m in names
                 if m.partition(".")[0] != layer]
    assert not misplaced, misplaced


def test_imports_only_go_down():
    rank = {m: i for i, layer in enumerate(LAYERS.values()) for m in layer}
    found = modules()
    upward = [f"{m} ({list(LAYERS)[rank[m]]}) imports {t} ({list(LAYERS)[rank[t]]})"
              for m, path in found.items() for t in imports(m, path, set(found)) if rank[t] > rank[m]]
    assert not upward, upward


def test_no_modules_import_each_other_in_a_circle():
    found = modules()
    graph = {m: imports(m, path, set(found)) for m, path in found.items()}
    done, path_now, circles = set(), [], []

    def visit(m):
        if m in path_now:
            circles.append(path_now[path_now.index(m):] + [m])
            return
        if m in done:
            return
        path_now.append(m)
        for t in sorted(graph[m]):
            visit(t)
        path_now.pop()
        done.add(m)

    for m in sorted(graph):
        visit(m)
    assert not circles, circles


def test_the_tests_mirror_the_layers():
    """Each folder of tests is a layer's package, and holds only test modules."""
    tests = Path(__file__).parent
    folders = {p.name: p for p in tests.iterdir() if p.is_dir() and not p.name.startswith((".", "__"))}
    assert set(folders) <= set(LAYERS) - {""}, sorted(set(folders) - set(LAYERS))
    for folder in folders.values():
        strays = [p.name for p in folder.glob("*.py") if not p.name.startswith("test_")]
        assert not strays, f"{folder.name}/ holds non-test modules: {strays}"
