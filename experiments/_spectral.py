"""The spectral route to the quintic's Calabi–Yau metric, shared by `quintic_spectral.py` and the bench."""

import time

import jax
from _common import progress

import flows

# The Fermat quintic's symmetry group: the basis holds only its invariant functions.
SYMMETRY = "fermat"


def newton_route(surface, train, test, ks, budget: float, target: float = 1e-3) -> dict:
    """Newton's fixed point at each degree of `ks` in turn, within `budget` seconds.

    The seconds counted are the basis, the training points' geometry and Newton's
    solve (compilation included); the test σ after each degree is not counted. A
    degree is not started when the last one's seconds, times the growth from the one
    before, would take the total over the budget; one that ends over it is not counted.
    Returns the rows (k, σ, standard error, seconds, cumulative seconds), the cumulative
    seconds at which test σ first reached `target` (None if never), and the smallest σ
    reached within the budget. Each row's `wall_seconds` runs from the call's start,
    the test σ included.
    """
    rows, spent, reached, stop = [], 0.0, None, "all degrees run"
    begin = time.perf_counter()
    for k in ks:
        if len(rows) >= 2:
            growth = max(rows[-1]["seconds"] / rows[-2]["seconds"], 1.0)
            if spent + growth * rows[-1]["seconds"] > budget:
                stop = f"k = {k} predicted to end over the budget"
                break
        start = time.perf_counter()
        basis = flows.SpectralBasis(surface, train, k, symmetry=SYMMETRY)
        flow = flows.SpectralRicciFlow(basis, train)
        result = flows.newton_fixed_point(flow)
        c_star = jax.block_until_ready(result.coefficients)
        seconds = time.perf_counter() - start
        if spent + seconds > budget:
            stop = f"k = {k} ended over the budget ({spent + seconds:.0f} s)"
            break
        spent += seconds
        sigma, error = flows.SpectralPotential(basis, c_star).sigma(test)
        rows.append(
            {
                "k": k,
                "basis_size": basis.size,
                "sigma_test": float(sigma),
                "sigma_test_error": float(error),
                "converged": bool(result.converged),
                "seconds": seconds,
                "cumulative_seconds": spent,
                "wall_seconds": time.perf_counter() - begin,
            }
        )
        progress(
            f"spectral Newton k = {k}: test sigma {float(sigma):.3e} at {spent:.1f} s "
            f"({seconds:.1f} s this degree)"
        )
        if reached is None and float(sigma) <= target:
            reached = spent
    best = min((r["sigma_test"] for r in rows), default=None)
    return {"rows": rows, "time_to_target": reached, "best_sigma": best, "stop": stop}
