r"""Metrics and their curvature: what a flow evolves, and what it differentiates.

The contract (`AbstractMetric`, `base.py`): a metric on a manifold gives its
components $A(x)$ at any point as a $D \times D$ array in the manifold's
representation (`metric(x)`), its values at the nodes (`at_nodes()`), and its
components in the chart centred at a point (`in_chart(x, u)`, the pull-back
$J^\top A(\varphi_x(u)) J$). Curvature (`curvature.py`) is computed from
`in_chart` by automatic differentiation at $u = 0$: Christoffel symbols, Riemann,
Ricci, scalar curvature, the volume density, and the `LocalGeometry` bundle that
losses and flows read, at a point or at every node (spectrally, for a
`NodalMetric`). Curvature conventions are stated in `curvature.py` and in
docs/conventions.md, Normalisations and tensors.

Rooms: `base.py` (the contract, network-defined metrics, packing and checks of
metric values), `nodal.py` (nodal metrics through the spectral series, and the
reference, conformal and random initial metrics), `curvature.py`.
"""

from .base import AbstractMetric as AbstractMetric
from .base import NetworkMetric as NetworkMetric
from .base import check_nodal_values as check_nodal_values
from .base import evaluate_at as evaluate_at
from .base import pack_symmetric as pack_symmetric
from .base import unpack_symmetric as unpack_symmetric
from .curvature import LocalGeometry as LocalGeometry
from .curvature import chart_geometry as chart_geometry
from .curvature import christoffel as christoffel
from .curvature import covariant_hessian as covariant_hessian
from .curvature import geometry_from_jet as geometry_from_jet
from .curvature import gradient as gradient
from .curvature import hessian as hessian
from .curvature import laplacian as laplacian
from .curvature import local_geometry as local_geometry
from .curvature import log_density_jet as log_density_jet
from .curvature import log_jet as log_jet
from .curvature import nodal_geometry as nodal_geometry
from .curvature import reference_geometry as reference_geometry
from .curvature import ricci as ricci
from .curvature import riemann as riemann
from .curvature import scalar_curvature as scalar_curvature
from .curvature import volume_density as volume_density
from .nodal import NodalMetric as NodalMetric
from .nodal import RandomPerturbation as RandomPerturbation
from .nodal import SpectralInterpolant as SpectralInterpolant
from .nodal import conformal_metric as conformal_metric
from .nodal import random_metric as random_metric
from .nodal import reference_metric as reference_metric
