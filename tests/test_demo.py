"""The README's demo (``python -m zfitlite``) runs, and its batch errors are honest."""

from __future__ import annotations

import numpy as np

from zfitlite import demo
from zfitlite.testing.batch import decay_data


def test_the_demo_runs_and_every_fit_is_valid(capsys):
    assert demo.main(["--quiet"]) == 0
    assert "batch 2000 of 2000 valid" in capsys.readouterr().out


def test_batch_errors_are_honest():
    """Pulls (fit - truth) / error over 2000 subjects: mean 0 and spread 1 within ~6 sigma."""
    result = demo.batch_demo(verbose=False)
    truth = decay_data(2000, npoints=(5, 20), missing=0.1, noise=demo._NOISE, seed=7)["params"]
    pulls = (result.x - truth) / result.hesse_errors
    assert np.all(np.abs(pulls.mean(axis=0)) < 0.15)
    assert np.all(np.abs(pulls.std(axis=0) - 1.0) < 0.1)
