"""The import graph points one way: align → {labeling_app, reward} → foundation (ARCHITECTURE.md).

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
    module.write_text("import os\n\ndef f():\n    from reward.model import RewardModel\n    import align.cli\n")
    assert imported_packages(module) == [(4, "reward"), (5, "align")]
