"""Continuum metric flows: manifolds, metrics, curvature, losses, kernels and flows.

The mathematics of the project (see `shared/DESIGN.md`): manifolds with
quadrature, metric modules, curvature by automatic differentiation, loss
functionals and their functional derivatives, kernels, and the flows built
from them (Ricci, Ricci–DeTurck, Perelman's fixed-measure and lambda forms,
smoothed and componentwise), network metrics and their NTKs, and Calabi–Yau
hypersurfaces in CP^n. `flows.testing` holds property checks for users. `solvers`
integrates flows.
"""

from ._cosine import CosineNTK as CosineNTK
from ._curvature import LocalGeometry as LocalGeometry
from ._curvature import chart_geometry as chart_geometry
from ._curvature import christoffel as christoffel
from ._curvature import covariant_hessian as covariant_hessian
from ._curvature import geometry_from_jet as geometry_from_jet
from ._curvature import gradient as gradient
from ._curvature import hessian as hessian
from ._curvature import laplacian as laplacian
from ._curvature import local_geometry as local_geometry
from ._curvature import log_density_jet as log_density_jet
from ._curvature import log_jet as log_jet
from ._curvature import nodal_geometry as nodal_geometry
from ._curvature import reference_geometry as reference_geometry
from ._curvature import ricci as ricci
from ._curvature import riemann as riemann
from ._curvature import scalar_curvature as scalar_curvature
from ._curvature import volume_density as volume_density
from ._entropy import conjugate_heat_velocity as conjugate_heat_velocity
from ._entropy import perelman_entropy as perelman_entropy
from ._ground_state import GroundState as GroundState
from ._ground_state import PerelmanLambdaLoss as PerelmanLambdaLoss
from ._ground_state import ground_state as ground_state
from ._hypersurfaces import Hypersurface as Hypersurface
from ._hypersurfaces import PointSample as PointSample
from ._hypersurfaces import fs_distance as fs_distance
from ._hypersurfaces import patch_geometry as patch_geometry
from ._hypersurfaces import point_sample as point_sample
from ._hypersurfaces import sample_points as sample_points
from ._hypersurfaces import sigma_measure as sigma_measure
from ._kahler import complex_hessian as complex_hessian
from ._kahler import fubini_study_potential as fubini_study_potential
from ._kahler import kahler_metric as kahler_metric
from ._kahler import ricci_form as ricci_form
from ._kernels import AbstractKernel as AbstractKernel
from ._kernels import DeltaKernel as DeltaKernel
from ._kernels import GaussianKernel as GaussianKernel
from ._kernels import RescaledKernel as RescaledKernel
from ._linear import mode_rates as mode_rates
from ._linear import predicted_mode_rates as predicted_mode_rates
from ._losses import AbstractFunctional as AbstractFunctional
from ._losses import AbstractLoss as AbstractLoss
from ._losses import CalabiLoss as CalabiLoss
from ._losses import EinsteinHilbertLoss as EinsteinHilbertLoss
from ._losses import PerelmanLoss as PerelmanLoss
from ._losses import RicciSquaredLoss as RicciSquaredLoss
from ._losses import functional_derivative as functional_derivative
from ._losses import log_density_gradient as log_density_gradient
from ._manifolds import AbstractManifold as AbstractManifold
from ._manifolds import Sphere as Sphere
from ._manifolds import Torus as Torus
from ._metrics import AbstractMetric as AbstractMetric
from ._metrics import NetworkMetric as NetworkMetric
from ._metrics import NodalMetric as NodalMetric
from ._metrics import RandomPerturbation as RandomPerturbation
from ._metrics import SpectralInterpolant as SpectralInterpolant
from ._metrics import check_nodal_values as check_nodal_values
from ._metrics import conformal_metric as conformal_metric
from ._metrics import evaluate_at as evaluate_at
from ._metrics import pack_symmetric as pack_symmetric
from ._metrics import random_metric as random_metric
from ._metrics import reference_metric as reference_metric
from ._metrics import unpack_symmetric as unpack_symmetric
from ._network_flows import LinearisedParameterFlow as LinearisedParameterFlow
from ._network_flows import ParameterFlow as ParameterFlow
from ._network_flows import nodal_loss as nodal_loss
from ._networks import ComponentNetworkMetric as ComponentNetworkMetric
from ._networks import CosineNetwork as CosineNetwork
from ._networks import LinearisedMetric as LinearisedMetric
from ._networks import ReLUNetwork as ReLUNetwork
from ._networks import component_ntk as component_ntk
from ._networks import cosine_network_metric as cosine_network_metric
from ._networks import metric_ntk as metric_ntk
from ._networks import ntk_product as ntk_product
from ._networks import orthonormal_unpack as orthonormal_unpack
from ._networks import relu_network_metric as relu_network_metric
from ._relu_ntk import ReLUNTK as ReLUNTK
from ._relu_ntk import network_inputs as network_inputs
from ._vector_fields import FLOW_NAMES as FLOW_NAMES
from ._vector_fields import AbstractFlow as AbstractFlow
from ._vector_fields import ComponentwiseFlow as ComponentwiseFlow
from ._vector_fields import MetricFlow as MetricFlow
from ._vector_fields import VolumeNormalised as VolumeNormalised
from ._vector_fields import deturck_term as deturck_term
from ._vector_fields import make_flow as make_flow
from ._vector_fields import mean_trace as mean_trace
from ._vector_fields import perelman_flow as perelman_flow
from ._vector_fields import perelman_lambda_flow as perelman_lambda_flow
from ._vector_fields import ricci_deturck_flow as ricci_deturck_flow
from ._vector_fields import ricci_flow as ricci_flow
