"""The README's demo (``python -m zfitlite``) runs, reads well, and its batch errors are honest."""

from __future__ import annotations

import re

import numpy as np

from zfitlite import demo
from zfitlite.testing.batch import decay_data


def test_the_demo_runs_reads_well_and_its_batch_errors_are_honest(capsys, monkeypatch):
    """One run of the whole demo (it is the slowest test file: no second run)."""
    batches = []
    original = demo.batch_demo

    def keep(*args, **kwargs):
        batches.append(original(*args, **kwargs))
        return batches[-1]

    monkeypatch.setattr(demo, "batch_demo", keep)
    assert demo.main([]) == 0
    out = capsys.readouterr().out
    assert "batch 2000 of 2000 valid" in out
    # the blank profile columns of frac and lambda are explained
    assert "profile errors computed for mu, sigma only" in out
    # the batch's parameters are named as in its header, y = a exp(-k t)
    assert "y = a exp(-k t)" in out and re.search(r"^    a : ", out, re.M)
    assert re.search(r"^    k : ", out, re.M) and "p0" not in out.split("3) Personalisation")[1]
    # the per-subject line: named values with their errors, rounded to the error
    line = re.search(r"^   subject-0: (.*)$", out, re.M).group(1)
    parts = re.fullmatch(r"a = (\d+\.(\d+)) ± (0\.(0*)\d+), k = (\d+\.(\d+)) ± (0\.(0*)\d+)", line)
    assert parts, line
    for _value, decimals, error, zeros in (parts.groups()[:4], parts.groups()[4:]):
        assert len(decimals) == len(error) - 2  # the value rounded as its error
        assert len(error) - 2 - len(zeros) == 3  # three significant digits of the error
    result = batches[0]
    assert result.names == ("a", "k")
    # pulls (fit - truth) / error over 2000 subjects: mean 0 and spread 1 within ~6 sigma
    truth = decay_data(2000, npoints=(5, 20), missing=0.1, noise=demo._NOISE, seed=7)["params"]
    pulls = (result.x - truth) / result.hesse_errors
    assert np.all(np.abs(pulls.mean(axis=0)) < 0.15)
    assert np.all(np.abs(pulls.std(axis=0) - 1.0) < 0.1)
