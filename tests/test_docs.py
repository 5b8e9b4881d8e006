"""The pages in docs/: their examples run as written, and every public name is documented.

- Each page's ```python blocks run in order in one namespace, and what they
  compute is checked (finite numbers, and the page's own claims).
- Every public name of `flows`, `solvers` and `flows.testing` (their `__all__`
  where defined, otherwise every public attribute that is not a module; for
  `flows.testing`, the names defined there) has a docstring of its own if it
  is a class or a function, and appears in the code of at least one page, so
  a new public name without documentation fails here.
- Links between the pages, the gallery's images and the README's
  "Documentation" section resolve.
"""

import inspect
import math
import re
import types
from pathlib import Path

import jax
import numpy as np
import pytest

import flows
import flows.testing
import solvers

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PAGES = ("manifolds", "metrics", "kernels", "losses", "flows", "solvers", "quintic")
GALLERY = ("mode_decay", "curvature_loss", "extinction", "quintic_sigma")


def _text(page: str) -> str:
    return (DOCS / f"{page}.md").read_text()


def _blocks(page: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", _text(page), flags=re.S)


def _run(page: str) -> dict:
    namespace: dict = {}
    for i, block in enumerate(_blocks(page)):
        exec(compile(block, f"docs/{page}.md, python block {i + 1}", "exec"), namespace)
    return namespace


def _finite_numbers(namespace: dict) -> int:
    """Assert that every number and numeric array the page left behind is finite; count them."""
    count = 0
    for name, value in namespace.items():
        if name.startswith("__"):
            continue
        if isinstance(value, (list, tuple)) and value and all(isinstance(v, float) for v in value):
            value = np.asarray(value)
        if isinstance(value, (float, complex)) or (
            isinstance(value, (jax.Array, np.ndarray)) and np.issubdtype(value.dtype, np.number)
        ):
            assert np.all(np.isfinite(np.asarray(value))), name
            count += 1
    return count


def _check_manifolds(ns):
    assert math.isclose(float(ns["area"]), 4 * math.pi, rel_tol=1e-12)
    assert math.isclose(float(ns["antipodal"]), math.pi, rel_tol=1e-12)
    assert abs(float(ns["between"]) - math.cos(0.3) * math.sin(2.2)) < 1e-12


def _check_metrics(ns):
    assert 0 < abs(float(ns["gauss_bonnet"])) < 1e-3  # quadrature error, not zero
    assert float(ns["conformal_error"]) < 1e-8


def _check_kernels(ns):
    assert 1e-4 < float(ns["quadrature_error"]) < 1e-2  # the page quotes 1.3e-3
    assert 0 < float(ns["ntk_error"]) < 0.2


def _check_losses(ns):
    assert abs(float(ns["difference"])) > 1  # a real directional derivative, not 0 = 0
    assert float(ns["state"].value) < 0


def _check_flows(ns):
    assert ns["local_rate"] == 32 and 0 < ns["smoothed_rate"] < ns["local_rate"]
    ns["test_flat_metrics_are_fixed"]()  # the hypothesis example (fixed points of perelman)


def _check_solvers(ns):
    assert ns["run"].stop_reason == "reached t1" and np.all(np.isfinite(ns["run"].values))
    assert ns["spread"][1] < ns["spread"][0]
    assert "exp(32" in ns["refusal"]


def _check_quintic(ns):
    assert 0.2 < float(ns["sigma"]) < 0.55 and 0 < float(ns["error"]) < 0.1
    assert ns["sample"].points.shape == (60, 5)


CHECKS = {
    "manifolds": _check_manifolds,
    "metrics": _check_metrics,
    "kernels": _check_kernels,
    "losses": _check_losses,
    "flows": _check_flows,
    "solvers": _check_solvers,
    "quintic": _check_quintic,
}


@pytest.mark.parametrize("page", PAGES)
def test_page_examples_run(page):
    assert _blocks(page), f"docs/{page}.md has no python example"
    namespace = _run(page)
    assert _finite_numbers(namespace) >= 1
    CHECKS[page](namespace)


def _public(module, own: str | None = None) -> dict:
    names = getattr(module, "__all__", None)
    if names is None:
        names = [
            name
            for name, obj in vars(module).items()
            if not name.startswith("_")
            and not isinstance(obj, types.ModuleType)
            and (own is None or getattr(obj, "__module__", None) == own)
        ]
    return {name: getattr(module, name) for name in names}


PUBLIC = {
    **{f"flows.{n}": o for n, o in _public(flows).items()},
    **{f"solvers.{n}": o for n, o in _public(solvers).items()},
    **{f"flows.testing.{n}": o for n, o in _public(flows.testing, "flows.testing").items()},
}


def _docstring(name: str, obj) -> str:
    # a class's own docstring, not one inherited or generated (dataclasses write the signature)
    doc = vars(obj).get("__doc__") if inspect.isclass(obj) else getattr(obj, "__doc__", None)
    doc = inspect.cleandoc(doc or "")
    return "" if doc.startswith(name.rsplit(".", 1)[-1] + "(") else doc


def test_public_names_are_found():
    assert len(PUBLIC) > 100
    assert "flows.testing.assert_fixed_point" in PUBLIC and "flows.testing.Isometry" in PUBLIC
    assert "flows.testing.st" not in PUBLIC  # imported helpers are not flows.testing's names


def test_every_public_class_and_function_has_a_docstring():
    missing = [
        name
        for name, obj in PUBLIC.items()
        if (inspect.isclass(obj) or callable(obj)) and len(_docstring(name, obj)) < 10
    ]
    assert not missing, f"public names without a docstring: {missing}"


def _code_tokens() -> set[str]:
    code = []
    for path in DOCS.glob("*.md"):
        code += re.findall(r"```.*?```|`[^`\n]+`", path.read_text(), flags=re.S)
    return set(re.findall(r"[A-Za-z_]\w*", "\n".join(code)))


def test_every_public_name_is_in_the_docs():
    tokens = _code_tokens()
    missing = [name for name in PUBLIC if name.rsplit(".", 1)[-1] not in tokens]
    assert not missing, f"public names that no page of docs/ mentions (in code): {missing}"


def _links(text: str) -> list[str]:
    targets = re.findall(r"\]\(([^)\s]+)\)", text)
    return [t.split("#")[0] for t in targets if not re.match(r"[a-z]+:", t) and t.split("#")[0]]


def test_links_and_gallery_resolve():
    index = (DOCS / "index.md").read_text()
    for page in (*PAGES, "gallery"):
        assert f"({page}.md)" in index, page
    for path in DOCS.glob("*.md"):
        for target in _links(path.read_text()):
            assert (path.parent / target).is_file(), (path.name, target)
    gallery = (DOCS / "gallery.md").read_text()
    for name in GALLERY:
        image = DOCS / "gallery" / f"{name}.png"
        assert f"(gallery/{name}.png)" in gallery and image.is_file()
        assert image.stat().st_size < 150_000, image  # committed images stay small


def test_readme_links_the_docs():
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Documentation", 1)[1].split("\n## ", 1)[0]
    assert readme.index("## Documentation") < readme.index("## Concepts and conventions")
    for target in ("docs/index.md", *(f"docs/{p}.md" for p in PAGES), "docs/gallery.md"):
        assert f"({target})" in section, target
    images = re.findall(r"!\[[^\]]*\]\((docs/gallery/[^)]+\.png)\)", section)
    assert len(images) >= 2
    for target in _links(section):
        assert (ROOT / target).is_file(), target
