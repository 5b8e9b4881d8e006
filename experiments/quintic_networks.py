r"""Kähler-potential networks on the Fermat quintic: evolving against frozen kernels, and Kähler–Ricci flow.

A centred MLP $\phi_\theta$ of the bihomogeneous features gives
$g_\theta = \partial\bar\partial(K_\mathrm{FS} + \phi_\theta)$ on $X$, starting at
Fubini–Study. Four flows of $\theta$ (`flows.PotentialFlow`), each integrated by
diffrax (Tsit5, adaptive) on the training points:

- `evolving`: gradient flow of the Monge–Ampère loss $L_2$ (the NTK moves);
- `frozen`: the same for the network linearised at $\theta_0$ (frozen NTK);
- `kahler_ricci`: $\partial_t\phi = \log(\eta/\bar\eta)$, projected onto the network's tangent space;
- `kahler_ricci_smoothed`: the same velocity averaged by a normalised Gaussian of width `--sigma` in FS distance.

Reported: σ on training and held-out test points against flow time (the
gradient flows run to `--t1-gradient`, the Kähler–Ricci flows to
`--t1-kahler-ricci`: their time scales differ), and the evolving flow's kernel
drift $\|\Theta_{t_1} - \Theta_0\|_F/\|\Theta_0\|_F$ of $\Theta(z, z') = \nabla_\theta\phi(z)\cdot\nabla_\theta\phi(z')$
on a fixed probe set. Output in --out: quintic_networks.json (`sigma_fs_test`;
per flow `sigma_test` at the end, `sigma_train`, the curves; `kernel_drift`)
and quintic_networks.png.

Measured at the defaults (300 training, 200 test points, width 16; 400 s on two
busy CPU cores): test σ from Fubini–Study's 0.336 to 0.100 (evolving), 0.348
(frozen), 0.276 (Kähler–Ricci) and 0.256 (smoothed, σ = 0.1); training σ 0.049,
0.31, 0.005, 0.005; kernel drift of the evolving flow 2.8. The frozen kernel
barely learns and the Kähler–Ricci flows, projected onto a model with more
parameters than points, fit the training points without generalising; the
evolving network, whose kernel moves, is the one that generalises.

Usage: python experiments/quintic_networks.py --out DIR [--surface {quintic,cubic}] [--points N] ...
"""

import argparse
import math
import time
import warnings
from pathlib import Path

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from _common import progress, save_figure, write_json
from matplotlib.figure import Figure

import flows

jax.config.update("jax_enable_x64", True)

SURFACES = {"quintic": flows.Hypersurface.fermat_quintic, "cubic": flows.Hypersurface.fermat_cubic}


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add = parser.add_argument
    add("--surface", choices=sorted(SURFACES), default="quintic")
    add("--points", type=int, default=300, help="training points")
    add("--test-points", type=int, default=200, help="held-out test points")
    add("--width", type=int, default=16)
    add("--depth", type=int, default=2)
    add("--t1-gradient", type=float, default=300.0, help="flow time of evolving/frozen")
    add("--t1-kahler-ricci", type=float, default=1.0, help="flow time of the Kähler–Ricci flows")
    add("--sigma", type=float, default=0.1, help="width of the smoothed flow's Gaussian")
    add("--saves", type=int, default=6)
    add("--probe", type=int, default=100, help="probe points of the kernel drift")
    add(
        "--flows", nargs="+", choices=flows.POTENTIAL_REGIMES, default=list(flows.POTENTIAL_REGIMES)
    )
    add("--seed", type=int, default=0)
    add("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    for name in ("points", "test_points", "width", "depth", "probe"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
    if args.saves < 2:
        parser.error("--saves must be >= 2")
    for name in ("t1_gradient", "t1_kahler_ricci", "sigma"):
        value = getattr(args, name)
        if not (math.isfinite(value) and value > 0):
            parser.error(f"--{name.replace('_', '-')} must be a finite number > 0")
    return args


def split(sample, count):
    """The first `count` points and the rest, each with weights of mean 1."""
    rest = np.arange(count, sample.count)
    return flows.subsample(sample, np.arange(count)), flows.subsample(sample, rest)


@eqx.filter_jit
def _tangent_kernel(flow, theta, points):
    jac = jax.vmap(lambda z: jax.grad(lambda th: flow.potential(th)(z))(theta))(points)
    return jac @ jac.T


def run(regime, phi, train, test, args):
    start = time.perf_counter()
    gradient = regime in ("evolving", "frozen")
    flow = flows.PotentialFlow(
        phi,
        train,
        regime,
        flows.MongeAmpereLoss(2.0),
        sigma=args.sigma if regime == "kahler_ricci_smoothed" else None,
    )
    t1 = args.t1_gradient if gradient else args.t1_kahler_ricci
    ts = jnp.linspace(0.0, t1, args.saves)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Complex dtype support in Diffrax")
        sol = diffrax.diffeqsolve(
            diffrax.ODETerm(flow),
            diffrax.Tsit5(),
            0.0,
            t1,
            t1 / 100,
            flow.theta0,
            saveat=diffrax.SaveAt(ts=ts),
            stepsize_controller=diffrax.PIDController(rtol=1e-4, atol=1e-7),
            max_steps=5000,
            throw=False,
        )
    thetas = [th for th in sol.ys if bool(jnp.all(jnp.isfinite(th)))]
    sigma_train = [float(flows.sigma_measure(train, flow.metric(th))[0]) for th in thetas]
    sigma_test = [float(flows.sigma_measure(test, flow.metric(th, test))[0]) for th in thetas]
    record = {
        "t1": t1,
        "ts": [float(t) for t in ts[: len(thetas)]],
        "sigma_train": sigma_train,
        "sigma_test_curve": sigma_test,
        "sigma_test": sigma_test[-1],
        "steps": int(sol.stats["num_steps"]),
        "result": str(sol.result),
        "seconds": time.perf_counter() - start,
    }
    if regime == "evolving":
        probe = test.points[: args.probe]
        k0 = _tangent_kernel(flow, thetas[0], probe)
        k1 = _tangent_kernel(flow, thetas[-1], probe)
        record["kernel_drift"] = float(jnp.linalg.norm(k1 - k0) / jnp.linalg.norm(k0))
    progress(
        f"{regime}: train sigma {sigma_train[0]:.4f} -> {sigma_train[-1]:.4f}, test "
        f"{sigma_test[0]:.4f} -> {sigma_test[-1]:.4f} by t = {t1:g} ({record['steps']} steps, "
        f"{record['seconds']:.0f} s)"
    )
    return record


def figure(record, args):
    fig = Figure(figsize=(7.5, 4.2), layout="constrained")
    ax = fig.subplots()
    for name, rec in record["flows"].items():
        x = np.asarray(rec["ts"]) / rec["t1"]
        (line,) = ax.semilogy(
            x, rec["sigma_train"], "-o", ms=3, label=f"{name} (t1 = {rec['t1']:g}): train"
        )
        ax.semilogy(x, rec["sigma_test_curve"], "--", color=line.get_color(), label="test")
    ax.axhline(record["sigma_fs_test"], color="0.6", lw=0.8, label="Fubini–Study (test)")
    ax.set_xlabel(r"flow time $t / t_1$")
    ax.set_ylabel(r"$\sigma$")
    ax.set_title(f"Kähler-potential network on the Fermat {args.surface} ({args.points} points)")
    ax.legend(fontsize=7, ncol=2)
    save_figure(fig, args.out / "quintic_networks.png")


def main(argv=None) -> dict:
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    surface = SURFACES[args.surface]()
    key = jax.random.key(args.seed)
    total = args.points + args.test_points
    sample = flows.point_sample(surface, flows.sample_points(surface, key, total))
    train, test = split(sample, args.points)
    phi = flows.kahler_potential(
        surface.ambient_dim, jax.random.fold_in(key, 1), width=args.width, depth=args.depth
    )
    sigma_fs = float(flows.sigma_measure(test, test.g_fs)[0])
    progress(
        f"Fermat {args.surface}: {train.count} training and {test.count} test points; "
        f"sigma of Fubini-Study on the test points {sigma_fs:.4f}"
    )
    runs = {regime: run(regime, phi, train, test, args) for regime in args.flows}
    record = {
        "surface": args.surface,
        "sigma_fs_test": sigma_fs,
        "flows": runs,
        "kernel_drift": runs.get("evolving", {}).get("kernel_drift"),
        "points": train.count,
        "test_points": test.count,
        "width": args.width,
        "depth": args.depth,
        "seed": args.seed,
        "device": str(jax.devices()[0]),
    }
    for name, rec in runs.items():
        record[name] = {"sigma_test": rec["sigma_test"]}
    figure(record, args)
    write_json(args.out / "quintic_networks.json", record)
    return record


if __name__ == "__main__":
    main()
