"""Array aliases shared across the package.

``D`` is the dimension of the manifold's *representation* (the chart dimension
on a torus, the ambient dimension ``n + 1`` on a sphere), ``n`` the intrinsic
dimension and ``N`` the number of quadrature nodes.
"""

from jaxtyping import Array, Float

Point = Float[Array, " D"]
Points = Float[Array, "N D"]
Weights = Float[Array, " N"]
Matrix = Float[Array, "D D"]
ChartVector = Float[Array, " n"]
ChartMatrix = Float[Array, "n n"]
Frame = Float[Array, "D n"]
Scalar = Float[Array, ""]
