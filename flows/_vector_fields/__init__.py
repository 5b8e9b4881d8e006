r"""Flows of metrics: the vector fields $\partial_t G = V(G)$ that solvers integrate.

The contract (`AbstractFlow`, `base.py`): a flow on a manifold gives $V(t, G)$ on
the nodal values $G$ of a metric, callable as a diffrax vector field
`flow(t, values, args)`, together with its `name`, `velocity(metric)`,
`evaluate(values)` (compiled, what a solver asks for first) and `growth_rate()`
(the largest linear growth rate the discretisation admits, or None). A flow reads
a metric's curvature and a loss's functional derivative, and smooths its velocity
with a kernel.

Rooms: `base.py` (the contract and volume normalisation), `metric_flow.py` (the
metric-lowered Ricci and Perelman flows and the componentwise flow of any loss),
`named.py` (the named constructors and `make_flow`), `linear.py` (linear rates at
the flat torus and extinction times of round spheres, measured and predicted).
"""

from .base import AbstractFlow as AbstractFlow
from .base import VolumeNormalised as VolumeNormalised
from .base import mean_trace as mean_trace
from .linear import mode_rates as mode_rates
from .linear import predicted_mode_rates as predicted_mode_rates
from .linear import smoothed_mode_decay_rate as smoothed_mode_decay_rate
from .linear import sphere_extinction_time as sphere_extinction_time
from .linear import sphere_smoothing_beta as sphere_smoothing_beta
from .metric_flow import ComponentwiseFlow as ComponentwiseFlow
from .metric_flow import MetricFlow as MetricFlow
from .metric_flow import deturck_term as deturck_term
from .named import FLOW_NAMES as FLOW_NAMES
from .named import make_flow as make_flow
from .named import perelman_flow as perelman_flow
from .named import perelman_lambda_flow as perelman_lambda_flow
from .named import ricci_deturck_flow as ricci_deturck_flow
from .named import ricci_flow as ricci_flow
