r"""A tour of scalar curvature by automatic differentiation: round spheres, Gauss–Bonnet, maps.

Three checks of `flows`' curvature in float64. (1) The round metric on $S^2$
and $S^3$ has $R = n(n-1)$ = 2 and 6; at the quadrature nodes the error should
be at rounding level (~1e-13 at degree 16). (2) Gauss–Bonnet, $\int_M \tfrac12 R\, dV_g =
2\pi\chi(M)$, for a seeded random smooth metric $g = g_\mathrm{ref} + aH$
(`flows.random_metric`, band limit $K$, amplitude $a$) on $S^2$ ($\chi = 2$)
and $T^2$ ($\chi = 0$). The metric is band-limited, so it is held exactly by
the coarsest grid that resolves it and is the same smooth field at every
resolution (checked: nodal values on the finest grid agree to ~1e-15); only
the quadrature rule is refined. $R\sqrt{\det g}$ is smooth but not
band-limited, so the error $|\int \tfrac12 R\, dV_g - 2\pi\chi|$ should fall
spectrally with the resolution, from ~1e-4 (S^2 degree 8) or ~1e-6 (T^2,
n = 8) to rounding level, ~1e-14 or below, by S^2 degree 32–40 and T^2
n = 24. (3) Maps of $R$ for the same metrics: on $T^2$ it changes sign
(mean zero) with $|R| \lesssim 0.3$ for the defaults; on $S^2$ it stays near
the round value 2 (about 1.6 to 2.5 for the defaults). A metric too rough for the
finest rules (a large band limit or amplitude) is flagged: the Gauss–Bonnet record's
`converged` is false, with a warning, when the finest error exceeds `CONVERGED` =
1e-10 of $\int \tfrac12|R|\, dV_g$; `holds_metric` marks the rules that hold the
metric exactly (hollow markers in the figure where not). Outputs in `--out`:
`curvature_tour.json` (every number), `gauss_bonnet.png`, `curvature_maps.png`.
Runs in about 45 s on two CPU cores, almost all of it XLA compilation.

Usage: `python experiments/curvature_tour.py --out DIR [--seed S] [--band-limit K] [--amplitude A]`
"""

import argparse
import json
import math
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from _common import atomic_write, directory, elapsed, integer, number, progress, seed
from matplotlib.colors import TwoSlopeNorm
from matplotlib.figure import Figure  # the object API: saves through Agg, no pyplot state

import flows
import solvers

jax.config.update("jax_enable_x64", True)

SPHERE_DEGREES = (8, 12, 16, 24, 32, 40)  # S^2 quadrature degree L
TORUS_SIZES = (8, 12, 16, 24, 32)  # T^2 grid points per axis n
ROUND_DEGREE = 16  # quadrature degree of the round-sphere check
# Gauss–Bonnet has converged when the finest rule's error is at most this fraction of
# the scale int |R|/2 dV_g (the defaults reach ~1e-14 of it; float64 rounding)
CONVERGED = 1e-10


def curvature_and_density(
    metric: flows.AbstractMetric, manifolds: list[flows.AbstractManifold]
) -> list[tuple[np.ndarray, np.ndarray]]:
    """$R$ and $dV_g/d\\mu$ of `metric` at the nodes of each manifold (one batch, one compile)."""
    points = jnp.concatenate([m.nodes for m in manifolds])
    scalar = np.asarray(flows.scalar_curvature(metric, points))
    density = np.asarray(flows.volume_density(metric, points))
    splits = np.cumsum([m.nodes.shape[0] for m in manifolds])[:-1]
    return list(zip(np.split(scalar, splits), np.split(density, splits), strict=True))


def round_sphere_error(dim: int) -> dict:
    """Max |R - n(n-1)| of the round metric at the nodes of S^dim."""
    sphere = flows.Sphere(dim, ROUND_DEGREE)
    scalar = flows.scalar_curvature(flows.reference_metric(sphere), sphere.nodes)
    exact = dim * (dim - 1)
    error = float(jnp.max(jnp.abs(scalar - exact)))
    progress(f"round S^{dim}: R = {exact} to {error:.1e} at {sphere.nodes.shape[0]} nodes")
    return {
        "degree": ROUND_DEGREE,
        "nodes": sphere.nodes.shape[0],
        "exact": exact,
        "max_abs_error": error,
    }


def gauss_bonnet_study(
    name: str,
    coarsest: flows.AbstractManifold,
    manifolds: list[flows.AbstractManifold],
    euler: int,
    args: argparse.Namespace,
) -> tuple[dict, np.ndarray]:
    """Gauss–Bonnet errors of one random metric, built on `coarsest`, over the rules `manifolds`.

    Returns the JSON record and $R$ at the nodes of the finest rule, `manifolds[-1]`.
    """
    key = jax.random.key(args.seed)
    metric = flows.random_metric(
        coarsest, key, band_limit=args.band_limit, amplitude=args.amplitude
    )
    fields = curvature_and_density(metric, manifolds)
    exact = 2 * math.pi * euler
    integrals = [
        float(m.integrate(jnp.asarray(0.5 * scalar * density)))
        for m, (scalar, density) in zip(manifolds, fields, strict=True)
    ]
    errors = [abs(integral - exact) for integral in integrals]
    progress(f"{name} Gauss–Bonnet errors: " + ", ".join(f"{e:.1e}" for e in errors))
    scalar, density = fields[-1]
    scale = float(manifolds[-1].integrate(jnp.asarray(0.5 * np.abs(scalar) * density)))
    converged = bool(errors[-1] <= CONVERGED * scale)
    if not converged:
        progress(
            f"warning: {name} Gauss–Bonnet has not converged on the finest rule: error "
            f"{errors[-1]:.1e} against {CONVERGED:.0e} of int |R|/2 dV = {scale:.3g}; lower "
            "--band-limit or --amplitude"
        )

    # The same key on the finest grid gives the same metric: compare nodal values.
    finest = manifolds[-1]
    rebuilt = flows.random_metric(finest, key, band_limit=args.band_limit, amplitude=args.amplitude)
    mismatch = float(jnp.max(jnp.abs(rebuilt.at_nodes() - jax.vmap(metric)(finest.nodes))))
    progress(f"{name} metric rebuilt on {finest!r} matches to {mismatch:.1e}")

    sphere = isinstance(finest, flows.Sphere)
    resolutions = [m.degree if sphere else m.n for m in manifolds]
    holding = coarsest.degree if sphere else coarsest.n
    record = {
        "resolution": "quadrature degree L" if sphere else "grid points per axis n",
        "resolutions": resolutions,
        "holds_metric": [r >= holding for r in resolutions],
        "nodes": [m.nodes.shape[0] for m in manifolds],
        "euler_characteristic": euler,
        "exact": exact,
        "integral_half_R_dV": integrals,
        "abs_error": errors,
        "scale_int_abs_half_R_dV": scale,
        "converged": converged,
        "metric_built_on": repr(coarsest),
        "max_metric_mismatch_on_finest_grid": mismatch,
    }
    return record, fields[-1][0]


def plot_gauss_bonnet(record: dict, args: argparse.Namespace, path: Path) -> None:
    fig = Figure(figsize=(6.4, 4.6), layout="constrained")
    ax = fig.add_subplot()
    for name, label, marker in (
        ("S2", r"$S^2$ ($\chi = 2$), degree $L$", "o"),
        ("T2", r"$T^2$ ($\chi = 0$), $n$ points per axis", "s"),
    ):
        study = record[name]
        x, y = np.asarray(study["resolutions"]), np.asarray(study["abs_error"])
        held = np.asarray(study["holds_metric"])
        line = ax.semilogy(x, y, label=label)[0]
        ax.semilogy(x[held], y[held], marker, color=line.get_color())
        ax.semilogy(x[~held], y[~held], marker, color=line.get_color(), mfc="none")
    rounding = 4 * math.pi * np.finfo(np.float64).eps
    ax.axhline(rounding, color="grey", linestyle=":", label=r"$4\pi\,\epsilon_\mathrm{mach}$")
    ax.set_xlabel(r"resolution ($S^2$: quadrature degree $L$; $T^2$: grid points per axis $n$)")
    ax.set_ylabel(r"$|\int \frac{1}{2} R \, dV_g - 2\pi\chi|$")
    ax.set_title(
        "Gauss–Bonnet for a random metric\n"
        f"seed {args.seed}, band limit {args.band_limit}, amplitude {args.amplitude}"
        "\nhollow markers: rules too coarse to hold the metric"
    )
    ax.grid(True, which="major", alpha=0.3)
    ax.legend()
    with atomic_write(path, "wb") as f:
        fig.savefig(f, format="png", dpi=150)


def plot_curvature_maps(
    torus: flows.Torus,
    torus_r: np.ndarray,
    sphere: flows.Sphere,
    sphere_r: np.ndarray,
    args: argparse.Namespace,
    path: Path,
) -> None:
    fig = Figure(figsize=(12, 4.1), layout="compressed")  # packs fixed-aspect axes
    ax_t, ax_s = fig.subplots(1, 2, width_ratios=[1, 2])  # a square and a 2:1 map

    # T^2: nodes run over the grid with the first axis slowest, so R[i, j] sits at
    # (x^1, x^2) = 2 pi (i, j) / n; transpose to put x^1 along the horizontal axis.
    n = torus.n
    grid = torus_r.reshape(n, n).T
    half_cell = math.pi / n
    bound = float(np.max(np.abs(grid)))
    image = ax_t.imshow(
        grid,
        origin="lower",
        cmap="RdBu_r",
        norm=TwoSlopeNorm(0.0, -bound, bound),
        extent=(-half_cell, 2 * math.pi - half_cell) * 2,
    )
    ticks = [0, math.pi, 2 * math.pi]
    for set_ticks, set_labels in (
        (ax_t.set_xticks, ax_t.set_xticklabels),
        (ax_t.set_yticks, ax_t.set_yticklabels),
    ):
        set_ticks(ticks)
        set_labels(["0", r"$\pi$", r"$2\pi$"])
    ax_t.set_xlabel(r"$x^1$")
    ax_t.set_ylabel(r"$x^2$")
    ax_t.set_title(rf"$T^2$, $n = {n}$: $R$ at the grid nodes")
    fig.colorbar(image, ax=ax_t, label=r"scalar curvature $R$")

    # S^2: Gauss–Legendre rings in latitude, uniform in longitude.
    x, y, z = np.asarray(sphere.nodes).T
    longitude = np.degrees(np.arctan2(y, x))
    latitude = np.degrees(np.arcsin(np.clip(z, -1.0, 1.0)))
    dots = ax_s.scatter(longitude, latitude, c=sphere_r, marker="s", cmap="viridis", linewidths=0)
    ax_s.set_xlim(-180, 180)
    ax_s.set_ylim(-90, 90)
    ax_s.set_xticks(range(-180, 181, 60))
    ax_s.set_yticks(range(-90, 91, 30))
    ax_s.set_aspect("equal")
    ax_s.set_xlabel("longitude (degrees)")
    ax_s.set_ylabel("latitude (degrees)")
    ax_s.set_title(
        rf"$S^2$, degree $L = {sphere.degree}$: $R$ at the quadrature nodes"
        " (round: $R = 2$)"
    )
    fig.colorbar(dots, ax=ax_s, label=r"scalar curvature $R$")
    # Size the markers to tile the map: a little over one azimuthal spacing, 360 / (L + 1)
    # degrees, so that no seams show between them.
    fig.draw_without_rendering()
    points_per_degree = ax_s.get_window_extent().width * 72 / fig.dpi / 360
    dots.set_sizes([(1.1 * points_per_degree * 360 / (sphere.degree + 1)) ** 2])

    fig.suptitle(
        f"Scalar curvature of a random metric: seed {args.seed}, "
        f"band limit {args.band_limit}, amplitude {args.amplitude}"
    )
    with atomic_write(path, "wb") as f:
        fig.savefig(f, format="png", dpi=150)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Scalar curvature tour: round spheres, Gauss–Bonnet convergence for a "
        "random metric on S^2 and T^2, and maps of R. Writes curvature_tour.json, "
        "gauss_bonnet.png and curvature_maps.png."
    )
    parser.add_argument(
        "--out", type=directory, required=True, metavar="DIR", help="output folder (created)"
    )
    parser.add_argument(
        "--seed", type=seed, default=0, metavar="S", help="PRNG seed of the random metric (>= 0)"
    )
    parser.add_argument(
        "--band-limit",
        type=integer(1),
        default=3,
        metavar="K",
        help="band limit K of the random metric (harmonic degree on S^2, "
        "wavenumber on T^2); default 3",
    )
    parser.add_argument(
        "--amplitude",
        type=number(above=0, below=1),
        default=0.3,
        metavar="A",
        help="amplitude a in (0, 1) of the perturbation g_ref + a H; default 0.3",
    )
    args = parser.parse_args(argv)
    # The finest grids must resolve the metric, for the same-metric check.
    largest = min(SPHERE_DEGREES[-1] // 2, (TORUS_SIZES[-1] - 1) // 2)
    if not 1 <= args.band_limit <= largest:
        parser.error(f"--band-limit must lie in 1..{largest}, got {args.band_limit}")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    args.out = solvers.output_directory(args.out)
    k = args.band_limit
    progress(
        f"seed {args.seed}, band limit {k}, amplitude {args.amplitude}; "
        f"float64: {jnp.zeros(()).dtype == jnp.float64}"
    )

    round_spheres = {f"S{dim}": round_sphere_error(dim) for dim in (2, 3)}

    # Each metric is built on the coarsest grid that holds it exactly (Sphere: band
    # limit = degree // 2; Torus: (n - 1) // 2) and evaluated at every finer rule's nodes.
    spheres = [flows.Sphere(2, degree) for degree in SPHERE_DEGREES]
    tori = [flows.Torus(2, n) for n in TORUS_SIZES]
    sphere_study, sphere_r = gauss_bonnet_study("S^2", flows.Sphere(2, 2 * k), spheres, 2, args)
    torus_study, torus_r = gauss_bonnet_study("T^2", flows.Torus(2, 2 * k + 1), tori, 0, args)
    gauss_bonnet = {"S2": sphere_study, "T2": torus_study}

    map_sphere, map_torus = spheres[-1], tori[-1]
    maps = {
        "S2": {
            "degree": map_sphere.degree,
            "R_min": float(sphere_r.min()),
            "R_max": float(sphere_r.max()),
        },
        "T2": {"n": map_torus.n, "R_min": float(torus_r.min()), "R_max": float(torus_r.max())},
    }
    plot_gauss_bonnet(gauss_bonnet, args, args.out / "gauss_bonnet.png")
    plot_curvature_maps(
        map_torus, torus_r, map_sphere, sphere_r, args, args.out / "curvature_maps.png"
    )
    progress(
        f"R on S^2 in [{maps['S2']['R_min']:.3f}, {maps['S2']['R_max']:.3f}], "
        f"on T^2 in [{maps['T2']['R_min']:.3f}, {maps['T2']['R_max']:.3f}]; plots written"
    )

    result = {
        "seed": args.seed,
        "band_limit": k,
        "amplitude": args.amplitude,
        "round_spheres": round_spheres,
        "gauss_bonnet": gauss_bonnet,
        "curvature_maps": maps,
        "runtime_s": elapsed(),
    }
    with atomic_write(args.out / "curvature_tour.json", "w") as f:
        json.dump(result, f, indent=2)
    progress(f"wrote {args.out / 'curvature_tour.json'}")


if __name__ == "__main__":
    sys.exit(solvers.run_program(main, "curvature_tour"))
