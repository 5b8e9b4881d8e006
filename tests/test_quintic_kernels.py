"""experiments/quintic_kernels.py: its noised test sets, each on its own rows, and its refusals.

The program's section-3 run and its other refusals are tested in tests/test_point_flows.py.
Here: `--noise` scales that would name one test set twice (a repeated scale, or two
equal to `%g`'s 6 significant digits) and a `--sigma` that `flows.FSGaussian` refuses
are refused at parse time, and `grouped_test_sample` gives every test set the rows of
its own points, counted by position.
"""

import jax
import numpy as np
import pytest

import flows

from .helpers import experiment_program, refusal


@pytest.fixture(scope="module")
def program():
    return experiment_program("quintic_kernels")


def test_noise_scales_naming_one_test_set_twice_are_refused(program, tmp_path, capsys):
    """`--noise 0.01 0.01` ran with exit status 0 and reported, for every test set after the
    repeated one, σ of one set's metric values at another set's points (the fresh test
    gain 1.35 where it is 0.80 without the repeat)."""
    cases = [
        (["--noise", "0.01", "0.01"], "--noise 0.01 is given twice"),
        (["--noise", "0.03", "0.1", "0.1000001"], "--noise 0.1 and 0.1000001 are one test set's"),
        (["--sigma", "1e-200"], "argument --sigma: FSGaussian: sigma = 1e-200 is too small"),
    ]
    for argv, message in cases:
        assert message in refusal(program, argv, tmp_path, capsys)
    args = program.parse_args(["--noise", "0.1", "0.100001", "--out", str(tmp_path)])
    assert [program.noise_label(s) for s in args.noise] == ["noise 0.1", "noise 0.100001"]
    assert program.parse_args(["--noise", "--out", str(tmp_path)]).noise == []


def test_each_test_set_has_its_own_rows(program):
    """The rows of each set, counted by its position among the parts: its own points, and σ
    of the set at the start read from them is the set's own σ."""
    quintic = flows.Hypersurface.fermat_quintic()
    full = flows.point_sample(quintic, flows.sample_points(quintic, jax.random.key(2), 300))
    sample = flows.chart_sample(full)
    cut = [0, 4, 9, sample.count]
    parts = [
        (name, flows.subsample(sample, np.arange(a, b)))
        for name, a, b in zip(["noise 0.01", "noise 0.1", "test"], cut, cut[1:], strict=False)
    ]
    test, index = program.grouped_test_sample(parts)
    assert test.count == sample.count and list(index) == ["noise 0.01", "noise 0.1", "test"]
    for name, part in parts:
        own, rows = index[name]
        assert own is part
        np.testing.assert_array_equal(np.asarray(test.points)[rows], np.asarray(part.points))
        np.testing.assert_array_equal(np.asarray(test.weights)[rows], np.asarray(part.weights))
        assert float(flows.sigma_measure(part, test.g_fs[rows])[0]) == float(
            flows.sigma_measure(part, part.g_fs)[0]
        )
    # a name given twice would hide one set behind the other: refused
    with pytest.raises(ValueError, match="repeated test-set names"):
        program.grouped_test_sample([parts[0], ("noise 0.01", parts[1][1]), parts[2]])
