"""The import graph points one way: align → {labeling_app, reward} → foundation (docs/architecture.md).

Every module's imports are read with `ast` (those inside functions too, where the heavy ones live),
so an arrow against that order fails here, whichever line it hides in.
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("foundation", "labeling_app", "reward", "align")
# What each package may import of the others (itself always).
ALLOWED = {
    "foundation": set(),
    "labeling_app": {"foundation"},
    "reward": {"foundation"},
    "align": {"foundation", "labeling_app", "reward"},
}


def imported_packages(path: Path) -> list[tuple[int, str]]:
    """(line, top-level package) for each import of one of our packages in `path`."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        found += [(node.lineno, n.split(".")[0]) for n in names if n.split(".")[0] in PACKAGES]
    return found


@pytest.mark.parametrize("package", PACKAGES)
def test_imports_point_down_the_layers(package):
    wrong = [f"{path.relative_to(ROOT)}:{line} imports {target}"
             for path in sorted((ROOT / package).rglob("*.py"))
             for line, target in imported_packages(path)
             if target != package and target not in ALLOWED[package]]
    assert not wrong, "imports against align → {labeling_app, reward} → foundation:\n" + "\n".join(wrong)


def test_the_checker_sees_nested_imports(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("import os\n\ndef f():\n    from reward.model import RewardModel\n"
                      "    import align.cli\n")
    assert imported_packages(module) == [(4, "reward"), (5, "align")]


def test_modules_and_functions_read_top_to_bottom():
    """No package module over 600 lines, no function over 80 (the README's layout promise)."""
    long = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            source = path.read_text(encoding="utf-8")
            if source.count("\n") > 600:
                long.append(f"{path.relative_to(ROOT)}: {source.count(chr(10))} lines")
            for node in ast.walk(ast.parse(source)):
                is_function = isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
                if is_function and node.end_lineno - node.lineno >= 80:
                    long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name}: "
                                f"{node.end_lineno - node.lineno + 1} lines")
    assert not long, "\n".join(long)


def test_readme_layout_names_every_package_module():
    """The README's layout table names each package, and each module of foundation/, reward/,
    align/loop/, align/ppo/ and align/rollout/."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    table = readme[readme.index("## Layout"):]
    for package in PACKAGES:
        assert f"`{package}/`" in table
    for folder in ("foundation", "reward", "align/loop", "align/ppo", "align/rollout"):
        for path in sorted((ROOT / folder).glob("*.py")):
            if path.name != "__init__.py":
                assert f"`{path.name}`" in table, f"README layout misses {folder}/{path.name}"


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _runtime_imports(tree: ast.AST):
    """ImportFrom nodes that run (those under `if TYPE_CHECKING:` are for annotations only)."""
    skip = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip |= {id(n) for child in node.body for n in ast.walk(child)}
    return [n for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and id(n) not in skip
            and n.level == 0 and n.module]


def test_no_import_cycles_and_no_private_names_across_modules():
    """Inside our packages the modules import each other without cycles (imports inside functions
    count: they only hide a cycle), and no module imports another's `_private` name."""
    graph, private = {}, []
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            module = _module_name(path)
            for node in _runtime_imports(ast.parse(path.read_text(encoding="utf-8"))):
                if node.module.split(".")[0] not in PACKAGES or node.module == module:
                    continue
                if not node.module.startswith(module + "."):          # a package's own submodules
                    graph.setdefault(module, set()).add(node.module)
                private += [f"{module} imports {node.module}.{a.name}" for a in node.names
                            if a.name.startswith("_") and not a.name.startswith("__")]
    cycles = []

    def visit(node, path):
        for nxt in graph.get(node, ()):
            if nxt in path:
                cycles.append(" -> ".join(path[path.index(nxt):] + [nxt]))
            elif len(path) < 12:
                visit(nxt, path + [nxt])

    for start in sorted(graph):
        visit(start, [start])
    assert not cycles, "\n".join(sorted(set(cycles))[:20])
    assert not private, "\n".join(private)


MAX_CLASS_LINES = 250


def test_no_class_is_longer_than_a_reader_can_hold():
    """A class that does several things is split by concern (as `LabelStore`'s mixins and PPO's
    experience apart from its update are): none is over 250 lines."""
    long = [f"{path.relative_to(ROOT)}: {node.name} has {node.end_lineno - node.lineno + 1} lines"
            for package in PACKAGES for path in sorted((ROOT / package).rglob("*.py"))
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
            if isinstance(node, ast.ClassDef) and node.end_lineno - node.lineno + 1 > MAX_CLASS_LINES]
    assert not long, "\n".join(long)
