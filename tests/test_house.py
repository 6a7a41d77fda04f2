"""The house stays in shape: no import cycle among the package's modules, no function-level
import of the project's own modules except the listed ones (each with its reason), no module past
about 400 lines except the listed ones."""

import ast
from pathlib import Path
from typing import Dict, List, Set, Tuple

import cfc_control

PACKAGE = Path(cfc_control.__file__).parent
MAX_LINES = 400
# Modules over MAX_LINES, with why they are not split yet.
LONG_MODULES: Dict[str, str] = {}
# (module, imported module) -> why the import is inside a function.
FUNCTION_IMPORTS = {
    ("cfc_control", "cfc_control.tasks.registry"): "registering the tasks is a side effect of importing the "
                                                   "package, kept in one function with no names left behind",
    ("cfc_control.bench.models", "cfc_control.models.ltc"): "guarded: a benchmark row says 'not available' "
                                                            "instead of the whole benchmark failing",
    ("cfc_control.experts.base", "cfc_control.experts.lqr"): "an expert's kind is imported when one is made "
                                                              "(experts/ is maintained apart)",
    ("cfc_control.experts.base", "cfc_control.experts.mpc"): "as for the LQR",
    ("cfc_control.experts.base", "cfc_control.experts.sb3"): "stable-baselines3 is imported only when an SB3 "
                                                              "expert is loaded",
    ("cfc_control.tasks.registry", "cfc_control.tasks.env"): "builds envs; `import cfc_control` (which "
                                                             "registers the tasks) reads TOML files only",
    ("cfc_control.bench.node", "cfc_control.models"): "a benchmark imports what its rows need when they run",
    ("cfc_control.bench.node", "cfc_control.policies"): "as for bench.node",
    ("cfc_control.bench.runner", "cfc_control.policies"): "as for bench.node",
    ("cfc_control.bench.runner", "cfc_control.runtime.c_export.build"): "as for bench.node: the C rows exist only "
                                                                          "where a compiler does",
    ("cfc_control.bench.runner", "cfc_control.runtime.c_export.kernel"): "as for bench.runner's C rows",
    ("cfc_control.bench.runner", "cfc_control.runtime.export"): "as for bench.node (onnxruntime's row)",
    ("cfc_control.runtime.backend", "cfc_control.runtime.c_export.build"): "the C generator and builder load only "
                                                                           "when a C kernel is asked for",
    ("cfc_control.runtime.backend", "cfc_control.runtime.c_export.kernel"): "as for the builder",
    ("cfc_control.runtime.c_export.build", "cfc_control.runtime.c_export.source"): "as for the builder",
    ("cfc_control.view", "cfc_control.viewer"): "MuJoCo picks its rendering backend (MUJOCO_GL) when first "
                                                "imported, and view settles that variable first",
    ("cfc_control.view", "cfc_control.viewer.live"): "as for viewer",
    ("cfc_control.view", "cfc_control.viewer.scene"): "as for viewer",
}


def _modules() -> Dict[str, Path]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = ["cfc_control", *path.relative_to(PACKAGE).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def _imported(node: ast.AST, current: str) -> List[str]:
    """The project modules an import statement loads (a ``from`` list's submodules included)."""
    names: List[str] = []
    if isinstance(node, ast.Import):
        names = [a.name for a in node.names]
    elif isinstance(node, ast.ImportFrom):
        base = node.module or ""
        if node.level:
            package = current.split(".")[: len(current.split(".")) - node.level + (current in _packages())]
            base = ".".join(package + ([base] if base else []))
        names = [base] + [f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in MODULES]
    return [n for n in names if n in MODULES]


def _packages() -> Set[str]:
    return {name for name, path in MODULES.items() if path.name == "__init__.py"}


def _module_level_imports(tree: ast.Module) -> List[ast.AST]:
    """Import statements run when the module is imported (not in functions, not TYPE_CHECKING)."""
    found: List[ast.AST] = []
    todo = list(tree.body)
    while todo:
        node = todo.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.append(node)
        elif isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            todo.extend(node.orelse)
        elif isinstance(node, (ast.If, ast.Try, ast.With, ast.ClassDef)):
            for field in ("body", "orelse", "finalbody", "handlers"):
                todo.extend(getattr(node, field, []))
        elif isinstance(node, ast.ExceptHandler):
            todo.extend(node.body)
    return found


def _graph() -> Dict[str, Set[str]]:
    graph: Dict[str, Set[str]] = {}
    for name, path in MODULES.items():
        tree = ast.parse(path.read_text())
        targets = {t for node in _module_level_imports(tree) for t in _imported(node, name)}
        # A module's own packages are initialised before it by the import machinery, not by it.
        graph[name] = {t for t in targets if t != name and not name.startswith(t + ".")}
    return graph


def _cycles(graph: Dict[str, Set[str]]) -> List[List[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    stack: List[str] = []
    on_stack: Set[str] = set()
    found: List[List[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_cycle_among_the_modules():
    assert _cycles(_graph()) == []


def test_the_cycle_check_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def _function_imports() -> Set[Tuple[str, str]]:
    found = set()
    for name, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                for sub in ast.walk(node):
                    found.update((name, target) for target in _imported(sub, name))
    return found


def test_no_function_level_import_of_the_project_but_the_listed_ones():
    found = _function_imports()
    assert sorted(found - set(FUNCTION_IMPORTS)) == []  # hoist it, or list it with its reason
    assert sorted(set(FUNCTION_IMPORTS) - found) == []  # a listed one that is gone: drop it from the list


def test_no_module_past_400_lines_but_the_listed_ones():
    long = {name for name, path in MODULES.items() if len(path.read_text().splitlines()) > MAX_LINES}
    assert sorted(long - set(LONG_MODULES)) == []
    assert sorted(set(LONG_MODULES) - long) == []


def test_every_command_is_a_console_script():
    import importlib
    import tomllib

    scripts = tomllib.loads((PACKAGE.parent / "pyproject.toml").read_text())["project"]["scripts"]
    commands = {name for name in MODULES if name.count(".") == 1 and (PACKAGE / f"{name.split('.')[1]}.py").is_file()
                and "def main(" in MODULES[name].read_text()}
    targets = {target.split(":")[0] for target in scripts.values()}
    assert commands <= targets  # every top-level `python -m cfc_control.X` command is installed too
    for name, target in scripts.items():
        module, _, attr = target.partition(":")
        assert name.startswith("cfc-") and callable(getattr(importlib.import_module(module), attr)), name


# Module basenames that several packages share, each for the same kind of thing or kept for now.
SHARED_BASENAMES = {
    "base.py": "the base class of each package (experts, models, wirings)",
    "registry.py": "the name registry of each package (models by name, tasks with Gymnasium)",
    "export.py": "the export command over runtime/export.py (runtime/ is being reworked in parallel)",
    "train.py": "the train command and experts/train.py, the expert's (experts/ is maintained apart)",
    "runner.py": "runtime/runner.py and its benchmark, bench/runner.py (the benchmark's name on the "
                 "command line: python -m cfc_control.bench runner)",
    "node.py": "runtime/node.py and its benchmark, bench/node.py (python -m cfc_control.bench node)",
    "cfc.py": "runtime/c_export/cfc.py generates the C step of models/cfc.py: one generator per cell kind, "
              "named by the kind",
    "ltc.py": "as for cfc.py",
    "baselines.py": "as for cfc.py",
}


def test_no_two_modules_share_a_basename_but_the_listed_ones():
    names: Dict[str, List[str]] = {}
    for name, path in MODULES.items():
        if path.name not in ("__init__.py", "__main__.py"):
            names.setdefault(path.name, []).append(name)
    shared = {base for base, modules in names.items() if len(modules) > 1}
    assert sorted(shared - set(SHARED_BASENAMES)) == []
    assert sorted(set(SHARED_BASENAMES) - shared) == []
