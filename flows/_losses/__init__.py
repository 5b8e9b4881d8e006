r"""Losses: functionals of a metric, and the functional derivatives that drive flows.

The contract (`AbstractFunctional`, `functionals.py`): a loss is called on a
`NodalMetric` and returns a scalar $L[g]$; its functional derivative
$E = \delta L/\delta g$, defined by $\delta L = \int E^{ij}\,\delta g_{ij}\, d\mu$,
comes from `functional_derivative(loss, metric)` by automatic differentiation in
the nodal values. Local losses (`AbstractLoss`) are quadratures of a pointwise
`density` $\ell_g(x)$: Perelman's fixed-measure $L_P = -2\mathcal F$,
Einstein–Hilbert, Calabi and $\int |\mathrm{Ric}|^2$. `ground_state.py` gives
Perelman's $\lambda(g) = \min_f \mathcal F$ as the ground state of $-4\Delta + R$
and the loss $-2\lambda$; `entropy.py` gives $\mathcal F$ with a free measure and
the conjugate heat equation of Perelman's pair.
"""

from .entropy import conjugate_heat_velocity as conjugate_heat_velocity
from .entropy import perelman_entropy as perelman_entropy
from .functionals import AbstractFunctional as AbstractFunctional
from .functionals import AbstractLoss as AbstractLoss
from .functionals import CalabiLoss as CalabiLoss
from .functionals import EinsteinHilbertLoss as EinsteinHilbertLoss
from .functionals import PerelmanLoss as PerelmanLoss
from .functionals import RicciSquaredLoss as RicciSquaredLoss
from .functionals import functional_derivative as functional_derivative
from .functionals import log_density_gradient as log_density_gradient
from .ground_state import GroundState as GroundState
from .ground_state import PerelmanLambdaLoss as PerelmanLambdaLoss
from .ground_state import ground_state as ground_state
