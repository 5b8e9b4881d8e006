r"""The house rules of the code's layout, read from the imports of every module.

- No module imports a private module (a dotted path with a component starting
  with `_`) of another package: `solvers` and `experiments` use `flows`' public
  names, nobody reaches into diffrax's or JAX's internals. A test may, when it
  says so: a `white-box` comment on the import line or the line above.
- No import runs upward: `flows` never imports `solvers` or `experiments`;
  `solvers` never imports `experiments`; no experiment program imports another
  program (only the shared `experiments/_*.py` helpers).
- The Calabi–Yau wing (`flows/_calabi_yau/`) stands beside the Riemannian
  rooms: it imports only `flows._misc`, `flows._types` and `flows._kernels`.
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
OURS = ("flows", "solvers", "experiments", "tests")
CALABI_YAU_MAY_IMPORT = {"flows._misc", "flows._types", "flows._kernels", "flows._calabi_yau"}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, absolute dotted module) for every import in `path`, relative ones resolved."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = _module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module
            out.append((node.lineno, module))
            # `from .pkg import _private` imports a private module too
            out += [(node.lineno, f"{module}.{a.name}") for a in node.names if a.name != "*"]
    return out


def _files(*folders: str) -> list[Path]:
    return sorted(p for f in folders for p in (ROOT / f).rglob("*.py") if ".venv" not in p.parts)


def _white_box(path: Path, line: int) -> bool:
    lines = path.read_text().splitlines()
    return any("white-box" in lines[i] for i in (line - 1, line - 2) if 0 <= i < len(lines))


def _is_module(dotted: str) -> bool:
    """Whether `dotted` names one of our modules or packages (not a name inside one)."""
    path = ROOT.joinpath(*dotted.split("."))
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


@pytest.mark.parametrize("path", _files(*OURS), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_private_import_across_packages(path):
    own = _module_name(path).split(".")[0]
    for line, module in _imports(path):
        top, *rest = module.split(".")
        if top == own or not any(part.startswith("_") for part in rest):
            continue
        if top in OURS and not _is_module(module):
            continue  # a private name from a public module is the module's business, not a path
        if module.rsplit(".", 1)[-1].startswith("__"):
            continue  # dunder names (`__version__`) are not private modules
        if own == "tests" and _white_box(path, line):
            continue
        pytest.fail(f"{path.relative_to(ROOT)}:{line} imports the private {module!r} of {top!r}")


@pytest.mark.parametrize(
    "path", _files("flows", "solvers", "experiments"), ids=lambda p: str(p.relative_to(ROOT))
)
def test_no_upward_import(path):
    here = _module_name(path)
    forbidden = {
        "flows": ("solvers", "experiments"),
        "solvers": ("experiments",),
        "experiments": (),
    }[here.split(".")[0]]
    for line, module in _imports(path):
        top = module.split(".")[0]
        assert top not in forbidden, f"{here}:{line} imports {module} (upward)"
        if here.startswith("experiments."):
            # the programs run as scripts: a sibling is imported by its bare name
            sibling = (ROOT / "experiments" / top).with_suffix(".py").exists()
            assert not (sibling and not top.startswith("_")), (
                f"{here}:{line} imports the program {module}; shared code goes in experiments/_*.py"
            )
            assert not module.startswith("solvers.demo"), (
                f"{here}:{line} imports the metric-flows command ({module}); use the library's names"
            )


def test_calabi_yau_wing_stands_apart():
    wing = _files("flows/_calabi_yau")
    assert wing, "flows/_calabi_yau/ holds the Calabi–Yau wing"
    for path in wing:
        for line, module in _imports(path):
            if not module.startswith("flows.") or not _is_module(module):
                continue
            room = ".".join(module.split(".")[:2])
            assert room in CALABI_YAU_MAY_IMPORT, (
                f"{path.relative_to(ROOT)}:{line} imports {module}; the Calabi–Yau wing uses only "
                f"{sorted(CALABI_YAU_MAY_IMPORT)}"
            )


def test_the_walk_finds_imports():
    """The reader itself: it resolves relative imports (a walker that saw nothing would pass)."""
    found = dict(_imports(ROOT / "flows" / "__init__.py"))
    assert any(m.startswith("flows._manifolds") for m in found.values())
    assert "flows" in [m for _, m in _imports(ROOT / "solvers" / "_solve.py")]
    mods = [m for _, m in _imports(ROOT / "tests" / "test_architecture.py")]
    assert "ast" in mods and "pathlib.Path" in mods
