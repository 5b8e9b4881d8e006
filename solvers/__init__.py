"""Integration of metric flows (diffrax set-up, parameter-space flows, devices, checkpoints).

`solvers` imports `flows`; `flows` never imports `solvers`. The flows and their
integration land with the issue "Losses, kernels and flows integrated by
diffrax"; this package holds only what is implemented, which so far is nothing
beyond the package itself.
"""
