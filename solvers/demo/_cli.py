"""The `metric-flows` command line: flags, their defaults and checks, and `main`.

`parse_args(argv)` turns flags into the run's choices (a bad flag or value exits
with status 2, naming the flag); `main(argv)` runs the chosen sections, draws
the figures and writes report.json and summary.md into `--out`.
"""

import argparse
import json
import math
import os
import time
from pathlib import Path

import jax

from .. import atomic_write, output_directory, output_path, run_program
from . import _report
from ._figures import plot_curvature_loss, plot_extinction, plot_modes, plot_quintic
from ._report import _plain, _progress, _write_text, summary_markdown
from ._sections import (
    _DEGENERATE_TOL,
    _FLOAT64_ONLY,
    _QUINTIC_SIGMA,
    SIGMA_MAX,
    run_network,
    run_quintic,
    run_sphere,
    run_torus,
)

MANIFOLDS = ("torus", "s2", "s3", "quintic")
FLOWS = ("local", "smoothed", "evolving", "frozen", "infinite")
_NETWORK_REGIMES = ("evolving", "frozen", "infinite")
DEFAULT_OUT = Path("results") / "metric-flows"

# Sizes: (default, --quick). Compilation, not arithmetic, dominates both.
_SIZES = {
    "n": (16, 8),
    "degree": (10, 4),
    "width": (32, 8),
    "points": (300, 60),
    "steps": (100, 20),
    "sigmas": ((0.1, 0.3, 0.5), (0.3,)),
}
# --quick runs each kind of computation once: S^3 repeats S^2's program on another grid, and
# the frozen and infinite-width regimes repeat the evolving one's code with another kernel
_QUICK_MANIFOLDS = ("torus", "s2", "quintic")
_QUICK_FLOWS = ("local", "smoothed", "evolving")


def _choices(kind: str, allowed: tuple[str, ...]):
    def parse(text: str) -> list[str]:
        items = [s.strip() for s in text.split(",") if s.strip()]
        bad = [s for s in items if s not in allowed]
        if not items or bad:
            raise argparse.ArgumentTypeError(
                f"{kind} must be a comma-separated subset of {','.join(allowed)}, got {text!r}"
            )
        return list(dict.fromkeys(items))

    return parse


def _sigmas(text: str) -> list[float]:
    try:
        values = [float(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--sigmas must be comma-separated numbers, got {text!r}"
        ) from None
    if not values or any(not (math.isfinite(v) and v > 0) for v in values):
        raise argparse.ArgumentTypeError(f"--sigmas must be finite numbers > 0, got {text!r}")
    if any(v > SIGMA_MAX for v in values):
        raise argparse.ArgumentTypeError(
            f"--sigmas must be <= {SIGMA_MAX:g}, got {text!r}: past σ ≈ 8.5 the Gaussian on T² is "
            "the torus mean to float64 rounding (every mode's multiplier e^(-σ²k²/2) below 2.2e-16)"
        )
    return sorted(set(values))


def _width(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text!r}")
    return value


def _positive(minimum: int, maximum: int | None = None):
    """argparse type: an integer in [minimum, maximum] (a bad value: exit 2, the flag named)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
        if maximum is not None and value > maximum:
            raise argparse.ArgumentTypeError(f"must be <= {maximum}, got {value}")
        return value

    return parse


_seed = _positive(0, 2**32 - 1)  # jax.random.key(seed) takes any of these


def _not_run(args: argparse.Namespace) -> dict[str, str]:
    """The sections these --manifolds and --flows name but cannot run, each with the reason."""
    chosen = set(args.flows)
    regimes = ",".join(r for r in _NETWORK_REGIMES if r in chosen)
    out = {}
    if not chosen & {"local", "smoothed"}:
        for name in args.manifolds:
            out[name] = f"--flows {','.join(args.flows)} has neither local nor smoothed, which " + (
                "its mode-decay and curvature section needs (the network section runs on T²)"
                if name == "torus"
                else "it needs (the network regimes run on the torus only)"
            )
    if regimes and "torus" not in args.manifolds:
        out["network"] = f"--flows {regimes} run on the torus, which --manifolds does not name"
    return out


def _selected_sections(args: argparse.Namespace) -> list[str]:
    """The report sections these --manifolds and --flows select, in the order they run."""
    chosen = set(args.flows)
    geometric = bool(chosen & {"local", "smoothed"})
    out = [m for m in ("torus", "s2", "s3") if m in args.manifolds and geometric]
    if "torus" in args.manifolds and chosen & set(_NETWORK_REGIMES):
        out.append("network")
    if "quintic" in args.manifolds and geometric:
        out.append("quintic")
    return out


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="metric-flows",
        description="Compare Perelman's Ricci flow, its non-local (kernel-smoothed) generalisation "
        "and a network's NTK flows on T², S², S³ and the Fermat quintic; write a report folder.",
    )
    add = parser.add_argument
    add(
        "--manifolds",
        type=_choices("--manifolds", MANIFOLDS),
        default=None,
        help=f"comma-separated subset of {','.join(MANIFOLDS)} (default: all; --quick: "
        f"{','.join(_QUICK_MANIFOLDS)})",
    )
    add(
        "--flows",
        type=_choices("--flows", FLOWS),
        default=None,
        help="comma-separated subset of " + ",".join(FLOWS) + " (default: all; --quick: "
        f"{','.join(_QUICK_FLOWS)}). local: Perelman's flow (σ = 0; λ form on T², Ricci flow on "
        "the round spheres, where the two agree); smoothed: the same smoothed by k_σ for each "
        "of --sigmas; evolving, frozen, infinite: the NTK regimes of a cosine network on T². "
        "On the quintic, local and smoothed choose the local and the Gaussian point kernel. "
        "A manifold the chosen flows cannot run (s2, s3 and the quintic without local or "
        "smoothed; the network regimes without the torus) is skipped with a progress line and "
        "a note in summary.md; nothing at all to run is an error",
    )
    add(
        "--sigmas",
        type=_sigmas,
        default=None,
        help=f"comma-separated kernel widths 0 < σ <= {SIGMA_MAX:g} of the smoothed flows (default "
        "0.1,0.3,0.5; --quick 0.3). A rate the run cannot resolve (a wide kernel's slow mode, "
        "which decays by less than the integrator's noise) is reported as not resolved",
    )
    add(
        "--n",
        type=_positive(6),
        default=None,
        help="T² grid points per axis (default 16; --quick 8)",
    )
    add(
        "--degree",
        type=_positive(2),
        default=None,
        help="quadrature degree of S² and S³ (default 10; --quick 4)",
    )
    add(
        "--width",
        type=_positive(1),
        default=None,
        help="cosine-network features per metric component (default 32; --quick 8)",
    )
    add(
        "--points",
        type=_positive(10),
        default=None,
        help="training points on the quintic (default 300; --quick 60)",
    )
    add(
        "--steps",
        type=_positive(1),
        default=None,
        help="gradient-descent steps on the quintic (default 100; --quick 20)",
    )
    add(
        "--quintic-sigma",
        type=_width,
        default=_QUINTIC_SIGMA,
        help=f"width of the quintic's Gaussian point kernel in FS distance (default {_QUINTIC_SIGMA})",
    )
    add(
        "--seed",
        type=_seed,
        default=0,
        help="seed of every random choice: the network's random base metric and features on "
        "T², the quintic's points (an integer in 0..2^32 - 1; default 0)",
    )
    add(
        "--dtype",
        choices=("float32", "float64"),
        default="float64",
        help="floating-point precision (default float64); float32 draws the network's random "
        "metric in single precision, so the same --seed sets another problem",
    )
    add(
        "--quick",
        action="store_true",
        help="the smallest sizes and the fewest compiled programs (for tests): one σ, and unless "
        "given, --manifolds "
        + ",".join(_QUICK_MANIFOLDS)
        + " and --flows "
        + ",".join(_QUICK_FLOWS),
    )
    add(
        "--out",
        type=output_path,
        default=DEFAULT_OUT,
        help=f"report folder (default {DEFAULT_OUT})",
    )
    args = parser.parse_args(argv)
    column = 1 if args.quick else 0
    for name, sizes in _SIZES.items():
        if getattr(args, name) is None:
            value = sizes[column]
            setattr(args, name, list(value) if name == "sigmas" else value)
    if args.manifolds is None:
        args.manifolds = list(_QUICK_MANIFOLDS if args.quick else MANIFOLDS)
    if args.flows is None:
        args.flows = list(_QUICK_FLOWS if args.quick else FLOWS)
    sections = _selected_sections(args)
    if not sections:
        parser.error(
            f"nothing to run for --manifolds {','.join(args.manifolds)} and --flows "
            f"{','.join(args.flows)}: the network regimes run on the torus, and every manifold "
            "needs local or smoothed"
        )
    if args.dtype == "float32" and all(name in _FLOAT64_ONLY for name in sections):
        parser.error(
            f"--dtype float32: {', '.join(sections)} need float64 ("
            + "; ".join(f"{name}: {_FLOAT64_ONLY[name]}" for name in sections)
            + ")"
        )
    return args


def main(argv: list[str] | None = None) -> None:
    """The `metric-flows` command: run the demo (flags: `metric-flows --help`), write the report folder.

    The console script runs it through `command` (exit status 0, 1 with a message, 2 on a bad
    flag, 130 on Ctrl-C).
    """
    args = parse_args(argv)
    # Compilation dominates this program: like the test suite (tests/conftest.py), ask XLA to
    # compile fast (about 13% less CPU here; numerics unchanged) unless XLA_FLAGS is set. JAX
    # reads it when its backend starts, at the first computation, so it does nothing in a
    # process that has computed already.
    os.environ.setdefault("XLA_FLAGS", "--xla_backend_optimization_level=0")
    jax.config.update("jax_enable_x64", args.dtype == "float64")
    args.out = output_directory(args.out)
    _report.start_clock()
    started = time.strftime("%Y-%m-%d %H:%M:%S")
    chosen = set(args.flows)
    sigmas = ([0.0] if "local" in chosen else []) + (args.sigmas if "smoothed" in chosen else [])
    regimes = [r for r in _NETWORK_REGIMES if r in chosen]
    kernels = [k for k in ("local", "smoothed") if k in chosen]
    report = {
        "config": {
            "manifolds": args.manifolds,
            "flows": args.flows,
            "sigmas": args.sigmas,
            "n": args.n,
            "degree": args.degree,
            "width": args.width,
            "points": args.points,
            "steps": args.steps,
            "quintic_sigma": args.quintic_sigma,
            "seed": args.seed,
            "dtype": args.dtype,
            "quick": args.quick,
            "started": started,
            "device": str(jax.devices()[0]),
            "jax": jax.__version__,
        },
        "sections_seconds": {},
        "figures": [],
    }
    _progress(
        f"metric-flows: {', '.join(args.manifolds)}; flows {', '.join(args.flows)}; "
        f"σ {args.sigmas}; {args.dtype}; output {args.out}"
    )
    tasks = {
        "torus": lambda: run_torus(args, sigmas),
        "s2": lambda: run_sphere(args, 2, sigmas),
        "s3": lambda: run_sphere(args, 3, sigmas),
        "network": lambda: run_network(args, regimes),
        "quintic": lambda: run_quintic(args, kernels),
    }
    sections = _selected_sections(args)
    report["skipped"] = {}
    for name, reason in _not_run(args).items():
        report["skipped"][name] = reason
        _progress(f"{name}: not run ({reason})")
    if args.dtype == "float32":
        for name, reason in _FLOAT64_ONLY.items():
            if name in sections:
                report["skipped"][name] = reason
                _progress(f"{name}: skipped in float32 ({reason})")
    tasks = [(name, tasks[name]) for name in sections if name not in report["skipped"]]
    for name, task in tasks:
        start = time.perf_counter()
        _progress(f"{name}: starting")
        report[name] = _plain(task())
        report["sections_seconds"][name] = time.perf_counter() - start
        _progress(f"{name}: done in {report['sections_seconds'][name]:.1f} s")

    figures = []
    if "torus" in report:
        plot_modes(report["torus"], args.out / "mode_decay.png")
        figures.append("mode_decay.png")
    if "torus" in report or "network" in report:
        plot_curvature_loss(
            report.get("torus"), report.get("network"), args.out / "curvature_loss.png"
        )
        figures.append("curvature_loss.png")
    spheres = {k: report[k] for k in ("s2", "s3") if k in report}
    if spheres:
        plot_extinction(spheres, args.out / "extinction.png")
        figures.append("extinction.png")
    if "quintic" in report:
        plot_quintic(report["quintic"], args.out / "quintic_sigma.png")
        figures.append("quintic_sigma.png")
    report["figures"] = figures
    report["wall_seconds"] = _report.elapsed()
    report = _plain(report)
    _write_text(args.out / "summary.md", summary_markdown(report, _DEGENERATE_TOL))
    with atomic_write(args.out / "report.json", "w") as f:
        json.dump(report, f, indent=1, allow_nan=False)
    _progress(f"wrote {args.out / 'report.json'}; total {report['wall_seconds']:.1f} s")


def command() -> None:
    """The `metric-flows` console script: `main()` under `solvers.run_program` (messages, not tracebacks)."""
    raise SystemExit(run_program(main, "metric-flows"))
