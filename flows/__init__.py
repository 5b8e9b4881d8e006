r"""Continuum metric flows: the mathematics of metric flows with neural networks, in JAX.

The package follows J. Halverson and F. Ruehle, "Metric Flows with Neural
Networks", arXiv:2310.19870: a metric evolving under gradient descent on a loss
moves by the kernel of the network that represents it, and Perelman's Ricci flow
is the local limit of such flows. Its conventions (normalisations, well-posedness,
the cosine network's kernels, Calabi–Yau hypersurfaces) are written out in
docs/conventions.md.

The data flows through it in one direction:

    manifold -> { metric -> curvature -> loss,  kernel } -> flow

- Manifolds (`Torus`, `Sphere`): quadrature nodes and weights, a reference
  metric, charts and a spectral basis.
- Metrics (`NodalMetric`, `NetworkMetric`, ...) and their curvature, computed by
  automatic differentiation in the manifold's charts.
- Losses (`PerelmanLoss`, `PerelmanLambdaLoss`, ...) and their functional
  derivatives $\delta L/\delta g$.
- Kernels (`GaussianKernel`, `SpectralGaussian`, `CosineNTK`, `ReLUNTK`, ...),
  siblings of the metrics: they need only the manifold.
- Flows (`MetricFlow`, `ComponentwiseFlow`, `make_flow`, ...): diffrax vector
  fields $\partial_t G = V(G)$ on nodal metric values, with their linear
  predictions (`predicted_mode_rates`, `sphere_extinction_time`, ...).
- Network metrics (`ComponentNetworkMetric`, ...): one network per component,
  their empirical NTKs, and the flows of their parameters.

Beside this chain stands the Calabi–Yau wing: hypersurfaces in $\mathbb{CP}^n$
sampled by points (`Hypersurface`, `PointSample`), Kähler potentials and their
curvature, the Monge–Ampère loss and the flows of metric values at points
(`PointKernelFlow`, `PotentialFlow`). It shares only the ReLU kernel with the
chain. `flows.testing` holds property checks for users; the `solvers` package
integrates flows (flows never imports it).
"""

from ._calabi_yau import POTENTIAL_REGIMES as POTENTIAL_REGIMES
from ._calabi_yau import SMOOTHINGS as SMOOTHINGS
from ._calabi_yau import AbstractPointKernel as AbstractPointKernel
from ._calabi_yau import AlgebraicPotential as AlgebraicPotential
from ._calabi_yau import BalancedResult as BalancedResult
from ._calabi_yau import BihomogeneousNetwork as BihomogeneousNetwork
from ._calabi_yau import ChernIntegrals as ChernIntegrals
from ._calabi_yau import ClusteredPointKernel as ClusteredPointKernel
from ._calabi_yau import FSGaussian as FSGaussian
from ._calabi_yau import Hypersurface as Hypersurface
from ._calabi_yau import KahlerPotential as KahlerPotential
from ._calabi_yau import LocalPointKernel as LocalPointKernel
from ._calabi_yau import MongeAmpereLoss as MongeAmpereLoss
from ._calabi_yau import NearestPointKernel as NearestPointKernel
from ._calabi_yau import NewtonResult as NewtonResult
from ._calabi_yau import PairPointKernel as PairPointKernel
from ._calabi_yau import PointKernelFlow as PointKernelFlow
from ._calabi_yau import PointSample as PointSample
from ._calabi_yau import PotentialFlow as PotentialFlow
from ._calabi_yau import ReLUPointNTK as ReLUPointNTK
from ._calabi_yau import SpectralBasis as SpectralBasis
from ._calabi_yau import SpectralGradientFlow as SpectralGradientFlow
from ._calabi_yau import SpectralPotential as SpectralPotential
from ._calabi_yau import SpectralRicciFlow as SpectralRicciFlow
from ._calabi_yau import Spectrum as Spectrum
from ._calabi_yau import SymmetryAugmentation as SymmetryAugmentation
from ._calabi_yau import bihomogeneous_features as bihomogeneous_features
from ._calabi_yau import bihomogeneous_potential as bihomogeneous_potential
from ._calabi_yau import chart_sample as chart_sample
from ._calabi_yau import check_metric_values as check_metric_values
from ._calabi_yau import chern_curvature as chern_curvature
from ._calabi_yau import chern_densities as chern_densities
from ._calabi_yau import chern_integrals as chern_integrals
from ._calabi_yau import chern_numbers as chern_numbers
from ._calabi_yau import cluster_points as cluster_points
from ._calabi_yau import complex_hessian as complex_hessian
from ._calabi_yau import curve_metric as curve_metric
from ._calabi_yau import donaldson_balanced as donaldson_balanced
from ._calabi_yau import fs_distance as fs_distance
from ._calabi_yau import fs_distance_squared as fs_distance_squared
from ._calabi_yau import fubini_study_potential as fubini_study_potential
from ._calabi_yau import gaussian_point_kernel as gaussian_point_kernel
from ._calabi_yau import hypersurface_curvature as hypersurface_curvature
from ._calabi_yau import kahler_metric as kahler_metric
from ._calabi_yau import kahler_potential as kahler_potential
from ._calabi_yau import laplacian_eigenvalues as laplacian_eigenvalues
from ._calabi_yau import laplacian_spectrum as laplacian_spectrum
from ._calabi_yau import log_eta_ratio as log_eta_ratio
from ._calabi_yau import mean_nearest_distance as mean_nearest_distance
from ._calabi_yau import nearest_points as nearest_points
from ._calabi_yau import newton_fixed_point as newton_fixed_point
from ._calabi_yau import patch_geometry as patch_geometry
from ._calabi_yau import perturb_points as perturb_points
from ._calabi_yau import point_kernel_apply as point_kernel_apply
from ._calabi_yau import point_mesh as point_mesh
from ._calabi_yau import point_sample as point_sample
from ._calabi_yau import pulled_back_metric as pulled_back_metric
from ._calabi_yau import relu_point_kernel as relu_point_kernel
from ._calabi_yau import ricci_form as ricci_form
from ._calabi_yau import ricci_measure as ricci_measure
from ._calabi_yau import sample_near as sample_near
from ._calabi_yau import sample_points as sample_points
from ._calabi_yau import scalar_curvature_mean as scalar_curvature_mean
from ._calabi_yau import sharded_point_kernel_apply as sharded_point_kernel_apply
from ._calabi_yau import sigma_measure as sigma_measure
from ._calabi_yau import subsample as subsample
from ._calabi_yau import to_complex as to_complex
from ._calabi_yau import to_real as to_real
from ._kernels import AbstractKernel as AbstractKernel
from ._kernels import CosineNTK as CosineNTK
from ._kernels import DeltaKernel as DeltaKernel
from ._kernels import GaussianKernel as GaussianKernel
from ._kernels import ReLUNTK as ReLUNTK
from ._kernels import RescaledKernel as RescaledKernel
from ._kernels import SpectralGaussian as SpectralGaussian
from ._kernels import network_inputs as network_inputs
from ._losses import AbstractFunctional as AbstractFunctional
from ._losses import AbstractLoss as AbstractLoss
from ._losses import CalabiLoss as CalabiLoss
from ._losses import EinsteinHilbertLoss as EinsteinHilbertLoss
from ._losses import GroundState as GroundState
from ._losses import PerelmanLambdaLoss as PerelmanLambdaLoss
from ._losses import PerelmanLoss as PerelmanLoss
from ._losses import RicciSquaredLoss as RicciSquaredLoss
from ._losses import conjugate_heat_velocity as conjugate_heat_velocity
from ._losses import functional_derivative as functional_derivative
from ._losses import ground_state as ground_state
from ._losses import log_density_gradient as log_density_gradient
from ._losses import perelman_entropy as perelman_entropy
from ._manifolds import AbstractManifold as AbstractManifold
from ._manifolds import Sphere as Sphere
from ._manifolds import Torus as Torus
from ._metrics import AbstractMetric as AbstractMetric
from ._metrics import LocalGeometry as LocalGeometry
from ._metrics import NetworkMetric as NetworkMetric
from ._metrics import NodalMetric as NodalMetric
from ._metrics import RandomPerturbation as RandomPerturbation
from ._metrics import SpectralInterpolant as SpectralInterpolant
from ._metrics import chart_geometry as chart_geometry
from ._metrics import check_nodal_values as check_nodal_values
from ._metrics import christoffel as christoffel
from ._metrics import conformal_metric as conformal_metric
from ._metrics import covariant_hessian as covariant_hessian
from ._metrics import evaluate_at as evaluate_at
from ._metrics import geometry_from_jet as geometry_from_jet
from ._metrics import gradient as gradient
from ._metrics import hessian as hessian
from ._metrics import laplacian as laplacian
from ._metrics import local_geometry as local_geometry
from ._metrics import log_density_jet as log_density_jet
from ._metrics import log_jet as log_jet
from ._metrics import nodal_geometry as nodal_geometry
from ._metrics import pack_symmetric as pack_symmetric
from ._metrics import random_metric as random_metric
from ._metrics import reference_geometry as reference_geometry
from ._metrics import reference_metric as reference_metric
from ._metrics import ricci as ricci
from ._metrics import riemann as riemann
from ._metrics import scalar_curvature as scalar_curvature
from ._metrics import unpack_symmetric as unpack_symmetric
from ._metrics import volume_density as volume_density
from ._misc import available_memory as available_memory
from ._misc import check_memory as check_memory
from ._networks import ComponentNetworkMetric as ComponentNetworkMetric
from ._networks import CosineNetwork as CosineNetwork
from ._networks import LinearisedMetric as LinearisedMetric
from ._networks import LinearisedParameterFlow as LinearisedParameterFlow
from ._networks import ParameterFlow as ParameterFlow
from ._networks import ReLUNetwork as ReLUNetwork
from ._networks import component_ntk as component_ntk
from ._networks import cosine_network_metric as cosine_network_metric
from ._networks import metric_ntk as metric_ntk
from ._networks import nodal_loss as nodal_loss
from ._networks import ntk_product as ntk_product
from ._networks import orthonormal_unpack as orthonormal_unpack
from ._networks import relu_network_metric as relu_network_metric
from ._vector_fields import FLOW_NAMES as FLOW_NAMES
from ._vector_fields import AbstractFlow as AbstractFlow
from ._vector_fields import ComponentwiseFlow as ComponentwiseFlow
from ._vector_fields import MetricFlow as MetricFlow
from ._vector_fields import VolumeNormalised as VolumeNormalised
from ._vector_fields import deturck_term as deturck_term
from ._vector_fields import make_flow as make_flow
from ._vector_fields import mean_trace as mean_trace
from ._vector_fields import mode_rates as mode_rates
from ._vector_fields import perelman_flow as perelman_flow
from ._vector_fields import perelman_lambda_flow as perelman_lambda_flow
from ._vector_fields import predicted_mode_rates as predicted_mode_rates
from ._vector_fields import ricci_deturck_flow as ricci_deturck_flow
from ._vector_fields import ricci_flow as ricci_flow
from ._vector_fields import smoothed_mode_decay_rate as smoothed_mode_decay_rate
from ._vector_fields import sphere_extinction_time as sphere_extinction_time
from ._vector_fields import sphere_smoothing_beta as sphere_smoothing_beta
