r"""Kernels $k(x, y)$ on a manifold: what a non-local flow smooths its velocity with.

The contract (`AbstractKernel`, `base.py`): a kernel gives `smooth(manifold,
values)`, $\int k(x_a, y)\, V(y)\, d\mu(y)$ at the nodes for nodal values of any
trailing shape (what flows use); `apply(manifold, values, points=None)`, the
quadrature sum $\sum_b w_b\, k(x_p, x_b)\, V_b$; `multiplier(manifold)`, its
eigenvalue on each spectral slot where it is diagonal there (else None);
`is_local`; and `__call__(manifold, x, y)`, $k(x, y)$. Kernels import only the
manifolds: they are siblings of the metrics, not consumers of them.

Rooms: `base.py` (the contract and its checks), `gaussian.py` (the local kernel,
the normalised Gaussian, its traced-width spectral form, rescaling, Funk–Hecke
eigenvalues), `cosine.py` (the cosine network's NTK), `relu.py` (the ReLU
network's infinite-width NTK and NNGP, in closed form).
"""

from .base import AbstractKernel as AbstractKernel
from .cosine import CosineNTK as CosineNTK
from .gaussian import DeltaKernel as DeltaKernel
from .gaussian import GaussianKernel as GaussianKernel
from .gaussian import RescaledKernel as RescaledKernel
from .gaussian import SpectralGaussian as SpectralGaussian
from .relu import ReLUNTK as ReLUNTK
from .relu import network_inputs as network_inputs
