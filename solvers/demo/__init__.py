r"""`metric-flows`: the comparison demo, the project's front door.

One command compares Perelman's Ricci flow with its non-local generalisation
(Gaussian kernels of several widths σ) and with a network's evolving, frozen
and infinite-width NTK flows, on $T^2$, $S^2$, $S^3$ and the Fermat quintic,
prints progress lines as it goes and writes a report folder. Its sections,
each beside an analytic prediction:

- **torus** ($T^2$, $n^2$ nodes): Perelman's flow in its well-posed $\lambda$
  form (`flows.MetricFlow(..., "lambda")`, $f$ the minimiser of $\mathcal F$;
  the local fixed-measure flow is ill-posed: docs/conventions.md, Well-posedness), local
  (σ = 0) and smoothed by the Gaussian $k_\sigma$. From $g = e^{2u}\delta$,
  $u = a\cos kx$, $a = 10^{-4}$ (linear regime; one solve per $k \le 4$),
  R's $(k, 0)$ Fourier mode decays like $e^{-\gamma_k t}$,
  $\gamma_k = k^2 e^{-\sigma^2k^2/2}$; the rates are fitted and compared
  (as `experiments/torus_modes.py`). From $u = 0.2(\cos x\cos y + \tfrac12\sin(2x + y))$
  the flow runs to $t = 0.2$: $\int R^2 dV$ beside its linearisation (every
  mode of $R_0$ decaying at $\gamma_k$), and $\lambda$, which the local flow raises (the smoothed forms are not gradient flows of $\lambda$).
- **s2**, **s3**: the round unit $S^n$ to extinction under the same flows, which
  on a round sphere are all Ricci flow, $\partial_t g = \int k_\sigma(-2\,\mathrm{Ric})$
  ($f$ is constant; integrated without the λ form's ground-state solve). Locally
  $g(t) = (1 - 2(n-1)t)g_\mathrm{ref}$, extinct at $T = 1/(2(n-1))$; smoothed,
  $T(\sigma) = 1/(2(n-1)(1 - \beta_\sigma))$ with
  $\beta_\sigma = \frac1n\int_0^\pi e^{-d^2/2\sigma^2}\sin^{n+1}d\,\mathrm{d}d
  / \int_0^\pi e^{-d^2/2\sigma^2}\sin^{n-1}d\,\mathrm{d}d$
  (`experiments/sphere_extinction.py`). The solve stops at its degenerate-metric
  event, $c(t) = 10^{-4}$, predicted at $(1 - 10^{-4})T$.
- **network** ($T^2$): a cosine network metric (one network per component,
  `--width` features, its NTK tending to $k_{0.5}$) descends $L_P = -2\mathcal F$
  from a seeded random metric with its NTK evolving, frozen at initialisation,
  and at infinite width (`solvers.solve_network`): the loss and the kernel drift
  against $t$, and the $L^2(\mu)$ distances between the regimes.
- **quintic**: metric values at `--points` training points of one chart of the
  Fermat quintic flow under the σ loss by explicit Euler (gradient descent,
  `solvers.solve_points`) through the local kernel and the normalised Gaussian
  in FS distance (`--quintic-sigma`); σ of the training points and of nearby
  test points (kicked by 0.01, `flows.sample_near`) against $t$. Beside it the
  quintic's own Kähler–Ricci flow in its spectral representation
  (`flows.SpectralBasis` of degree 4, invariant under the Fermat symmetries;
  `flows.SpectralRicciFlow`), local and smoothed by the same Gaussian, from
  Fubini–Study on 4 × `--points` training points: test σ on as many fresh
  points against $t$. The local flow settles on its fixed point at the rate of
  the smallest eigenvalue of $-\square_g$ the basis holds (≈ 17.4); the smoothed
  one more slowly.

The kernel width is traced, not compiled in: on each manifold every σ, and
σ = 0 (the local flow), runs through one compiled program (`flows.SpectralGaussian`:
`flows.GaussianKernel`'s exact spectral multiplier with σ an array). JAX
compilation dominates the run time; this is what keeps the default run short.

Output in `--out` (default `results/metric-flows`; files written atomically):
`report.json` (every number), `mode_decay.png`, `curvature_loss.png` (the
torus and network rows), `extinction.png`, `quintic_sigma.png` (those of the
sections run) and `summary.md`.

Usage: metric-flows [--manifolds torus,s2,s3,quintic] [--flows local,smoothed,evolving,frozen,infinite]
[--sigmas 0.1,0.3,0.5] [--n 16] [--degree 10] [--width 32] [--points 300] [--steps 100]
[--quintic-sigma 0.3] [--seed 0] [--dtype float64] [--quick] [--out DIR]

The package: `_cli` (flags, `parse_args`, `main`, and `command`, the console script), `_sections` (the `run_*`
sections and their science defaults), `_figures` (`plot_*`) and `_report`
(progress lines, JSON, summary.md). The kernel, the predictions and the
distances it compares against are `flows`' public ones.
"""

from .. import atomic_write as atomic_write
from ._cli import command as command
from ._cli import main as main
from ._cli import parse_args as parse_args
