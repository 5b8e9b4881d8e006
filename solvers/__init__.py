"""Integration of metric flows with diffrax.

`solve(flow, g0, t0, t1, ...)` integrates any `flows.AbstractFlow`, with
events (degenerate metric, non-finite state, fixed point, curvature blow-up),
a progress meter, checkpoint and resume (`checkpoint=PATH`; `checkpoint_info`
reads where a checkpointed run stands), and a prediction of the amplification
of rounding that refuses hopeless runs of ill-posed flows (docs/conventions.md,
Well-posedness). It asks the flow only for what `flows.AbstractFlow` promises.
`solve_network(metric, loss, t0, t1, kernel=...)` integrates a network metric's
flow in the evolving, frozen or infinite-width regime.
`solve_points(flow, h_train, h_test, t0, t1, ...)` integrates a kernel flow of
metric values at points of a Calabi–Yau hypersurface.
`train_potential(potential, train, test, ...)` trains a Kähler potential network
on hypersurface points by minibatches (Optax), evolving or frozen.
Every solver says why it stopped by a `StopReason` (a string enumeration).
`atomic_write(path)` is the one atomic file writer (checkpoints, program outputs);
`output_path` (the type of `--out`), `output_directory(path)`, `run_program(main, name)` and
`error_message(error)` are what a command-line
program needs: an output folder checked before any work, and every expected
failure (and Ctrl-C) as one message and an exit status.
`solvers` imports `flows`; `flows` never imports `solvers`.
"""

from ._amplification import Amplification as Amplification
from ._amplification import IllPosedError as IllPosedError
from ._amplification import predicted_amplification as predicted_amplification
from ._checkpoint import atomic_write as atomic_write
from ._checkpoint import checkpoint_info as checkpoint_info
from ._integrate import SOLVERS as SOLVERS
from ._network import REGIMES as REGIMES
from ._network import NetworkSolution as NetworkSolution
from ._network import solve_network as solve_network
from ._perelman_pair import PairSolution as PairSolution
from ._perelman_pair import conjugate_heat as conjugate_heat
from ._points import POINT_SOLVERS as POINT_SOLVERS
from ._points import PointSolution as PointSolution
from ._points import solve_points as solve_points
from ._potential_training import TRAINING_REGIMES as TRAINING_REGIMES
from ._potential_training import PotentialTraining as PotentialTraining
from ._potential_training import train_potential as train_potential
from ._program import OutputError as OutputError
from ._program import error_message as error_message
from ._program import output_directory as output_directory
from ._program import output_path as output_path
from ._program import run_program as run_program
from ._solution import Solution as Solution
from ._solution import StopReason as StopReason
from ._solution import observables as observables
from ._solve import MAX_SAVES as MAX_SAVES
from ._solve import solve as solve
