r"""Network metrics: one network per metric component, their NTKs, and the flows of their parameters.

The contract: a network metric (`ComponentNetworkMetric`) is an `AbstractMetric`
$g_\theta(x) = B(x) + s(x)\, S[f_\theta(x) - f_{\theta_0}(x)]$ that also gives its
trainable `parameters` and `with_parameters`; gradient descent on them moves the
metric by its metric-NTK, componentwise. The empirical NTK (`ntk.py`) is kept
apart from the closed-form kernels each architecture tends to (`CosineNTK`, `ReLUNTK`),
and each parameter flow is a diffrax vector field `(t, state, args)`.

Rooms: `architectures.py` (the cosine and ReLU networks), `metric.py` (the
component metric, its linearisation and constructors), `ntk.py` (the empirical
metric-NTK), `parameter_flows.py` (the evolving and frozen regimes).
"""

from .architectures import CosineNetwork as CosineNetwork
from .architectures import ReLUNetwork as ReLUNetwork
from .architectures import orthonormal_unpack as orthonormal_unpack
from .metric import ComponentNetworkMetric as ComponentNetworkMetric
from .metric import LinearisedMetric as LinearisedMetric
from .metric import cosine_network_metric as cosine_network_metric
from .metric import relu_network_metric as relu_network_metric
from .ntk import component_ntk as component_ntk
from .ntk import metric_ntk as metric_ntk
from .ntk import ntk_product as ntk_product
from .parameter_flows import LinearisedParameterFlow as LinearisedParameterFlow
from .parameter_flows import ParameterFlow as ParameterFlow
from .parameter_flows import nodal_loss as nodal_loss
