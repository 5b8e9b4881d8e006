r"""Manifolds: the compact spaces the flows run on, each with a quadrature rule.

The contract (`AbstractManifold`, `base.py`): a manifold gives quadrature
`nodes` and `weights` ($\sum_a w_a f(x_a) \approx \int_M f\, d\mu$, $\mu$ the
volume measure of $g_\mathrm{ref}$), the reference metric `reference(x)`, charts
`chart(x, u)` whose differential at $u = 0$ is the $g_\mathrm{ref}$-orthonormal
`frame(x)` (curvature is differentiated in them), the geodesic `distance`, and a
spectral basis: `transform` to coefficients, `evaluate` anywhere,
`laplace_eigenvalues` and `spectral_multiply` (what kernels and linear
predictions use). Points live in a fixed representation $\mathbb{R}^D$ (chart
coordinates on tori, ambient coordinates on spheres) and symmetric 2-tensors as
$D \times D$ component fields (docs/conventions.md, Normalisations and tensors).

Rooms: `base.py` (the contract), `torus.py` (the flat torus on a uniform grid,
Fourier series), `sphere.py` (the round $S^2$, $S^3$ with product Gauss rules),
`harmonics.py` (their real orthonormal spherical harmonics), `separable.py`
(the harmonic transforms and derivatives by separation of variables, on $S^2$'s
Gauss–Legendre × uniform grid and on $S^3$'s Hopf grid).
"""

from .base import AbstractManifold as AbstractManifold
from .sphere import Sphere as Sphere
from .torus import Torus as Torus
