r"""The Calabi–Yau wing: metrics on hypersurfaces $X = \{p = 0\} \subset \mathbb{CP}^n$ and their flows.

The contract, stage by stage:

- a **hypersurface** (`Hypersurface`) gives points (`sample_points`, distributed
  by the Fubini–Study volume form), and at each point its patch, eliminated
  coordinate, $\Omega$ and weight (`patch_geometry`; bundled, weights normalised,
  as a `PointSample` by `point_sample`);
- a **potential** (`KahlerPotential`, or None for Fubini–Study) gives a Kähler
  metric $g = J^\top\partial\bar\partial(\log|z|^2 + \phi)\bar J$ on the points
  (`KahlerPotential.metric`, `pulled_back_metric`), and its curvature
  (`hypersurface_curvature`);
- a **point kernel** gives `apply`: the kernel sum $\sum_b k(x, z_b)\, V_b$ of
  values at source points, at target points (`point_kernel_apply` for a pairwise
  $k$ such as `FSGaussian`); an `AbstractPointKernel` uses it to turn a gradient
  at the training points into velocities at training and test points (`velocity`);
- a **point flow** (`PointKernelFlow`, `PotentialFlow`) gives $V$ on point
  values: $\partial_t h$ for metric values at points, $\dot\theta$ for a
  potential's parameters.

How far a metric is from Ricci-flat is measured by the σ measure and the
Monge–Ampère losses (`sigma_measure`, `MongeAmpereLoss`). Conventions:
docs/conventions.md, Calabi–Yau hypersurfaces.

The wing stands apart from the Riemannian rooms: it imports only `flows._misc`,
`flows._types` and `flows._kernels` (for `ReLUNTK`). Rooms, from the ground up:
`projective.py` (Kähler geometry of $\mathbb{CP}^n$, the FS distance),
`hypersurface.py` (the polynomial, patches, $\Omega$, weights), `sampling.py`
(points and samples), `symmetry.py` (points moved by symmetries of $X$),
`kernel_apply.py` (matrix-free kernel sums on point clouds), `clustering.py`
(nearest points, clusters), `losses.py` (σ,
Monge–Ampère), `potentials.py` (Kähler potential networks), `curvature.py`,
`point_kernels.py`, `point_flows.py` (flows of metric values) and
`potential_flows.py` (flows of a potential's parameters).
"""

from .balanced import AlgebraicPotential as AlgebraicPotential
from .balanced import BalancedResult as BalancedResult
from .balanced import donaldson_balanced as donaldson_balanced
from .chern import ChernIntegrals as ChernIntegrals
from .chern import chern_curvature as chern_curvature
from .chern import chern_densities as chern_densities
from .chern import chern_integrals as chern_integrals
from .chern import chern_numbers as chern_numbers
from .clustering import cluster_points as cluster_points
from .clustering import mean_nearest_distance as mean_nearest_distance
from .clustering import nearest_points as nearest_points
from .curvature import hypersurface_curvature as hypersurface_curvature
from .curvature import ricci_measure as ricci_measure
from .curvature import scalar_curvature_mean as scalar_curvature_mean
from .hypersurface import Hypersurface as Hypersurface
from .hypersurface import patch_geometry as patch_geometry
from .kernel_apply import FSGaussian as FSGaussian
from .kernel_apply import point_kernel_apply as point_kernel_apply
from .kernel_apply import point_mesh as point_mesh
from .kernel_apply import sharded_point_kernel_apply as sharded_point_kernel_apply
from .losses import MongeAmpereLoss as MongeAmpereLoss
from .losses import check_metric_values as check_metric_values
from .losses import curve_metric as curve_metric
from .losses import sigma_measure as sigma_measure
from .point_flows import PointKernelFlow as PointKernelFlow
from .point_flows import to_complex as to_complex
from .point_flows import to_real as to_real
from .point_kernels import AbstractPointKernel as AbstractPointKernel
from .point_kernels import ClusteredPointKernel as ClusteredPointKernel
from .point_kernels import LocalPointKernel as LocalPointKernel
from .point_kernels import NearestPointKernel as NearestPointKernel
from .point_kernels import PairPointKernel as PairPointKernel
from .point_kernels import ReLUPointNTK as ReLUPointNTK
from .point_kernels import gaussian_point_kernel as gaussian_point_kernel
from .point_kernels import relu_point_kernel as relu_point_kernel
from .potential_flows import POTENTIAL_REGIMES as POTENTIAL_REGIMES
from .potential_flows import PotentialFlow as PotentialFlow
from .potential_flows import log_eta_ratio as log_eta_ratio
from .potentials import BihomogeneousNetwork as BihomogeneousNetwork
from .potentials import KahlerPotential as KahlerPotential
from .potentials import bihomogeneous_features as bihomogeneous_features
from .potentials import bihomogeneous_potential as bihomogeneous_potential
from .potentials import kahler_potential as kahler_potential
from .potentials import pulled_back_metric as pulled_back_metric
from .projective import complex_hessian as complex_hessian
from .projective import fs_distance as fs_distance
from .projective import fs_distance_squared as fs_distance_squared
from .projective import fubini_study_potential as fubini_study_potential
from .projective import kahler_metric as kahler_metric
from .projective import ricci_form as ricci_form
from .sampling import PointSample as PointSample
from .sampling import chart_sample as chart_sample
from .sampling import perturb_points as perturb_points
from .sampling import point_sample as point_sample
from .sampling import sample_near as sample_near
from .sampling import sample_points as sample_points
from .sampling import subsample as subsample
from .spectral_basis import SpectralBasis as SpectralBasis
from .spectral_flows import SMOOTHINGS as SMOOTHINGS
from .spectral_flows import NewtonResult as NewtonResult
from .spectral_flows import SpectralPotential as SpectralPotential
from .spectral_flows import SpectralRicciFlow as SpectralRicciFlow
from .spectral_flows import newton_fixed_point as newton_fixed_point
from .spectral_functionals import SpectralGradientFlow as SpectralGradientFlow
from .spectrum import Spectrum as Spectrum
from .spectrum import laplacian_eigenvalues as laplacian_eigenvalues
from .spectrum import laplacian_spectrum as laplacian_spectrum
from .symmetry import SymmetryAugmentation as SymmetryAugmentation
