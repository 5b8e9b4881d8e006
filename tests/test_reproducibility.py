"""Reproducibility: the same --seed gives identical output files.

Every random choice in `flows`, `solvers` and `experiments/` comes from an explicit
seed: a JAX key (`jax.random.key(seed)`, split or `fold_in`-ed) or a NumPy generator
seeded from one (`sample_points`, `cluster_points`), and each program that draws
anything takes `--seed`. Two programs, at their smallest sizes, run in-process
(`main(argv)`) twice with one seed into two folders; every file they write is
compared byte for byte:

- `experiments/quintic_sigma.py --points 60` (Shiffman–Zelditch points on the Fermat
  quintic, their weights and the σ measure): quintic_sigma.json;
- the `metric-flows` demo, its quintic section only (`--quick --manifolds quintic
  --flows local --points 10 --steps 1`: seeded points, a seeded test kick, a point
  flow): report.json, summary.md, quintic_sigma.png.

The only permitted differences are wall-clock timings, stripped before comparing:
the JSON keys in `TIMINGS` (each must be present) and the demo summary's first line,
"Run <date time> in <seconds> s" (`SUMMARY_TIMING`). The PNG plots no timing and is
compared as it is. A third run of quintic_sigma with another seed must differ (the
sampled points, so σ), so a program that ignored --seed would fail here.
"""

import json
import re

from .helpers import DEMO, experiment_program

# Wall-clock timings, as paths of keys in each JSON file: the only values allowed to differ.
TIMINGS = {
    "quintic_sigma.json": [("sampling_seconds",), ("weights_and_sigma_seconds",)],
    "report.json": [
        ("config", "started"),  # the date and time the run started
        ("sections_seconds",),
        ("wall_seconds",),
        ("quintic", "runs", "local", "seconds"),
        ("quintic", "spectral", "runs", "local", "seconds"),
    ],
}
# The demo summary's first line: "Run 2026-01-01 12:00:00 in 17 s (float64, JAX on cpu:0)."
SUMMARY_TIMING = re.compile(r"^Run \d{4}-\d\d-\d\d \d\d:\d\d:\d\d in \d+ s ", re.MULTILINE)

QUINTIC_SIGMA = ["--points", "60"]
DEMO_QUINTIC = [
    "--quick",
    "--manifolds",
    "quintic",
    "--flows",
    "local",
    "--points",
    "10",
    "--steps",
    "1",
]


def _without_timings(name: str, data: bytes) -> bytes:
    """The file's bytes with exactly its wall-clock timings removed."""
    if name in TIMINGS:
        record = json.loads(data)
        for path in TIMINGS[name]:
            parent = record
            for key in path[:-1]:
                parent = parent[key]
            assert path[-1] in parent, f"{name}: timing {path} missing (update TIMINGS)"
            del parent[path[-1]]
        return json.dumps(record, sort_keys=True).encode()
    if name == "summary.md":
        text, count = SUMMARY_TIMING.subn("Run <time> in <seconds> s ", data.decode())
        assert count == 1, "summary.md: its timing line changed (update SUMMARY_TIMING)"
        return text.encode()
    return data


def _outputs(folder) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def _assert_identical(first, second) -> None:
    a, b = _outputs(first), _outputs(second)
    assert sorted(a) == sorted(b) and a, (sorted(a), sorted(b))
    for name in a:
        assert _without_timings(name, a[name]) == _without_timings(name, b[name]), name


def _run(name: str, argv: list[str], out) -> None:
    experiment_program(name).main([*argv, "--out", str(out)])


def test_quintic_sigma_same_seed_same_files_other_seed_other_files(tmp_path):
    runs = {label: tmp_path / label for label in ("seed 3", "seed 3 again", "seed 4")}
    for label, out in runs.items():
        _run("quintic_sigma", [*QUINTIC_SIGMA, "--seed", label.split()[1]], out)
    _assert_identical(runs["seed 3"], runs["seed 3 again"])
    name = "quintic_sigma.json"
    same, other = (json.loads((runs[k] / name).read_text()) for k in ("seed 3", "seed 4"))
    assert (same["seed"], other["seed"]) == (3, 4)
    assert same["sigma"] != other["sigma"] and same["stderr"] != other["stderr"]


def test_demo_same_seed_same_files(tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    _run(DEMO, [*DEMO_QUINTIC, "--seed", "5"], first)
    _run(DEMO, [*DEMO_QUINTIC, "--seed", "5"], second)
    assert {"report.json", "summary.md", "quintic_sigma.png"} <= set(_outputs(first))
    _assert_identical(first, second)
