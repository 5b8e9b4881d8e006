r"""The public names of `flows`, `solvers` and `flows.testing`, snapshotted.

A reorganisation of the packages must not change what a user can import: this
test fails on any name that disappears or appears. A deliberate addition is
added to its list here, in the change that makes it. Submodules (`flows.testing`,
`solvers.demo`) are imported by name and left out: they are attributes only once imported.
"""

import types

import flows
import flows.testing
import solvers

FLOWS = [
    "AbstractFlow",
    "AbstractFunctional",
    "AbstractKernel",
    "AbstractLoss",
    "AbstractManifold",
    "AbstractMetric",
    "AbstractPointKernel",
    "BihomogeneousNetwork",
    "CalabiLoss",
    "ClusteredPointKernel",
    "ComponentNetworkMetric",
    "ComponentwiseFlow",
    "CosineNTK",
    "CosineNetwork",
    "DeltaKernel",
    "EinsteinHilbertLoss",
    "FLOW_NAMES",
    "FSGaussian",
    "GaussianKernel",
    "GroundState",
    "Hypersurface",
    "KahlerPotential",
    "LinearisedMetric",
    "LinearisedParameterFlow",
    "LocalGeometry",
    "LocalPointKernel",
    "MetricFlow",
    "MongeAmpereLoss",
    "NearestPointKernel",
    "NetworkMetric",
    "NodalMetric",
    "POTENTIAL_REGIMES",
    "PairPointKernel",
    "ParameterFlow",
    "PerelmanLambdaLoss",
    "PerelmanLoss",
    "PointKernelFlow",
    "PointSample",
    "PotentialFlow",
    "RandomPerturbation",
    "ReLUNTK",
    "ReLUNetwork",
    "ReLUPointNTK",
    "RescaledKernel",
    "RicciSquaredLoss",
    "SpectralGaussian",
    "SpectralInterpolant",
    "Sphere",
    "Torus",
    "VolumeNormalised",
    "bihomogeneous_features",
    "bihomogeneous_potential",
    "chart_geometry",
    "chart_sample",
    "check_metric_values",
    "check_nodal_values",
    "christoffel",
    "cluster_points",
    "complex_hessian",
    "component_ntk",
    "conformal_metric",
    "conjugate_heat_velocity",
    "cosine_network_metric",
    "covariant_hessian",
    "curve_metric",
    "deturck_term",
    "evaluate_at",
    "fs_distance",
    "fs_distance_squared",
    "fubini_study_potential",
    "functional_derivative",
    "gaussian_point_kernel",
    "geometry_from_jet",
    "gradient",
    "ground_state",
    "hessian",
    "hypersurface_curvature",
    "kahler_metric",
    "kahler_potential",
    "laplacian",
    "local_geometry",
    "log_density_gradient",
    "log_density_jet",
    "log_eta_ratio",
    "log_jet",
    "make_flow",
    "mean_nearest_distance",
    "mean_trace",
    "metric_ntk",
    "mode_rates",
    "nearest_points",
    "network_inputs",
    "nodal_geometry",
    "nodal_loss",
    "ntk_product",
    "orthonormal_unpack",
    "pack_symmetric",
    "patch_geometry",
    "perelman_entropy",
    "perelman_flow",
    "perelman_lambda_flow",
    "perturb_points",
    "point_kernel_apply",
    "point_mesh",
    "point_sample",
    "predicted_mode_rates",
    "pulled_back_metric",
    "random_metric",
    "reference_geometry",
    "reference_metric",
    "relu_network_metric",
    "relu_point_kernel",
    "ricci",
    "ricci_deturck_flow",
    "ricci_flow",
    "ricci_form",
    "ricci_measure",
    "riemann",
    "sample_near",
    "sample_points",
    "scalar_curvature",
    "scalar_curvature_mean",
    "sharded_point_kernel_apply",
    "sigma_measure",
    "smoothed_mode_decay_rate",
    "sphere_extinction_time",
    "sphere_smoothing_beta",
    "subsample",
    "to_complex",
    "to_real",
    "unpack_symmetric",
    "volume_density",
]

SOLVERS = [
    "Amplification",
    "IllPosedError",
    "MAX_SAVES",
    "NetworkSolution",
    "POINT_SOLVERS",
    "PairSolution",
    "PointSolution",
    "PotentialTraining",
    "REGIMES",
    "SOLVERS",
    "Solution",
    "StopReason",
    "TRAINING_REGIMES",
    "atomic_write",
    "checkpoint_info",
    "conjugate_heat",
    "observables",
    "predicted_amplification",
    "solve",
    "solve_network",
    "solve_points",
    "train_potential",
]

TESTING = [
    "AbstractManifold",
    "Array",
    "Float",
    "Isometry",
    "NodalMetric",
    "PointSample",
    "SpectralInterpolant",
    "Sphere",
    "Torus",
    "assert_commutes",
    "assert_fixed_point",
    "assert_kahler_ricci_fixed_point",
    "assert_point_fixed_point",
    "curve_metrics",
    "equivariance_residual",
    "eqx",
    "fixed_point_residual",
    "flat_metrics",
    "jax",
    "jnp",
    "kahler_ricci_residual",
    "math",
    "np",
    "point_fixed_point_residual",
    "push_forward",
    "push_forward_values",
    "random_metric",
    "random_metrics",
    "rotations",
    "st",
    "translations",
]


def _public(module) -> list[str]:
    """The public attributes of `module`, less its submodules (present only once imported)."""

    def submodule(value) -> bool:
        return isinstance(value, types.ModuleType) and value.__name__.startswith(
            module.__name__ + "."
        )

    return sorted(
        n for n in dir(module) if not n.startswith("_") and not submodule(getattr(module, n))
    )


def test_flows_public_names():
    assert _public(flows) == sorted(FLOWS)


def test_solvers_public_names():
    assert _public(solvers) == sorted(SOLVERS)


def test_flows_testing_public_names():
    assert _public(flows.testing) == sorted(TESTING)
