"""Integration of metric flows with diffrax.

`solve(flow, g0, t0, t1, ...)` integrates any `flows.AbstractFlow`, with
events (degenerate metric, non-finite state, fixed point, curvature blow-up),
a progress meter, checkpoint and resume (`checkpoint=PATH`; `checkpoint_info`
reads where a checkpointed run stands), and a prediction of the amplification
of rounding that refuses hopeless runs of ill-posed flows (`shared/DESIGN.md` 2.1).
`solve_network(metric, loss, t0, t1, kernel=...)` integrates a network metric's
flow in the evolving, frozen or infinite-width regime.
`train_potential(potential, train, test, ...)` trains a Kähler potential network
on hypersurface points by minibatches (Optax), evolving or frozen.
`solvers` imports `flows`; `flows` never imports `solvers`.
"""

from ._checkpoint import checkpoint_info as checkpoint_info
from ._perelman_pair import PairSolution as PairSolution
from ._perelman_pair import conjugate_heat as conjugate_heat
from ._points import POINT_SOLVERS as POINT_SOLVERS
from ._points import PointSolution as PointSolution
from ._points import solve_points as solve_points
from ._potential_training import TRAINING_REGIMES as TRAINING_REGIMES
from ._potential_training import PotentialTraining as PotentialTraining
from ._potential_training import train_potential as train_potential
from ._solve import MAX_SAVES as MAX_SAVES
from ._solve import SOLVERS as SOLVERS
from ._solve import Amplification as Amplification
from ._solve import IllPosedError as IllPosedError
from ._solve import Solution as Solution
from ._solve import observables as observables
from ._solve import predicted_amplification as predicted_amplification
from ._solve import solve as solve
from ._training import REGIMES as REGIMES
from ._training import NetworkSolution as NetworkSolution
from ._training import solve_network as solve_network
