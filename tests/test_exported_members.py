"""Each package's `__all__` lists exactly its public names, and every listed name exists."""

import importlib

import pytest


@pytest.mark.parametrize("package", ["foundation", "align", "reward", "labeling_app"])
def test_all_is_complete_and_valid(package):
    module = importlib.import_module(package)
    public = {n for n in vars(module) if not n.startswith("_")}
    submodules = {n for n in public if type(getattr(module, n)).__name__ == "module"}
    assert set(module.__all__) == public - submodules
    for name in module.__all__:
        assert getattr(module, name) is not None
