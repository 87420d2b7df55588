"""NIST StRD nonlinear least-squares reference problems.

This module reads the 27 nonlinear regression datasets of the NIST Statistical
Reference Datasets (StRD) project and pairs each with its model function, so
that minimizers can be validated against the certified parameter values,
standard deviations and residual sums of squares.

The data files are *not* part of the installed package and are never needed at
run time; a source checkout ships them in its test tree, ``tests/data/nist-strd``
(public-domain reference data). They are looked up in the directory named by the
environment variable :data:`NIST_DIR_ENV` or, failing that, in
``tests/data/nist-strd`` under one of the ancestors of the current working directory
or of this file, i.e. the checkout's own copy (see :func:`default_nist_dir`).

Every model function has the signature ``model(x, b, xp=numpy)`` and only uses
arithmetic, ``b[i]`` indexing and ``xp.exp``, ``xp.log``, ``xp.sin``,
``xp.cos``, ``xp.arctan`` and ``xp.pi``, so it works with ``numpy`` as well as
with ``jax.numpy`` passed as ``xp`` (and with complex parameters, which allows
complex-step differentiation with numpy).

Examples
--------
>>> from zfitlite.testing.nist import load_problem  # doctest: +SKIP
>>> prob = load_problem("MGH09")  # doctest: +SKIP
>>> prob.rss(prob.certified)  # doctest: +SKIP
0.00030750560384...
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

__all__ = [
    "NIST_DIR_ENV",
    "PROBLEM_NAMES",
    "NistProblem",
    "default_nist_dir",
    "load_all",
    "load_problem",
]

#: Environment variable that, when set, names the directory holding the
#: NIST StRD ``*.dat`` files.
NIST_DIR_ENV = "ZFITLITE_NIST_DIR"

_REL_DATA_DIR = Path("tests", "data", "nist-strd")

#: Signature of a model function: ``model(x, b, xp=numpy) -> predictions``.
ModelFn = Callable[..., Any]


# ---------------------------------------------------------------------------
# Model functions, transcribed from the ``Model:`` section of each file.
# Parameters are 0-based here: ``b[0]`` is the file's ``b1``.
# ---------------------------------------------------------------------------


def _bennett5(x: Any, b: Any, xp: ModuleType = np) -> Any:
    """``y = b1 * (b2+x)**(-1/b3)``."""
    return b[0] * (b[1] + x) ** (-1 / b[2])


def _exp_saturation(x: Any, b: Any, xp: ModuleType = np) -> Any:
    """``y = b1*(1-exp[-b2*x])`` (BoxBOD, Misra1a)."""
    return b[0] * (1 - xp.exp(-b[1] * x))


def _chwirut(x: Any, b: Any, xp: ModuleType = np) -> Any:
    """``y = exp[-b1*x]/(b2+b3*x)`` (Chwirut1, Chwirut2)."""
    return xp.exp(-b[0] * x) / (b[1] + b[2] * x)


def _danwood(x: Any, b: Any, xp: ModuleType = np) -> Any:
    """``y = b1*x**b2``."""
    return b[0] * x ** b[1]


def _enso(x: Any, b: Any, xp: ModuleType = np) -> Any:
    """ENSO: constant, annual cycle and two further cycles of period b4, b7."""
    two_pi_x = 2 * xp.pi * x
    return (
        b[0]
        + b[1] * xp.cos(two_pi_x / 12)
        + b[2] * xp.sin(two_pi_x / 12)
        + b[4] * xp.cos(two_pi_x / b[3])
        + b[5] * xp.sin(two_pi_x / b[3])
        + b[7] * xp.cos(two_pi_x / b[6])
        + b[8] * xp.sin(two_pi_x / b[6])
    )


def _eckerle4(x: Any, b: Any, xp: ModuleType = np) -> Any:
    """``y = (b1/b2) * exp[-0.5*((x-b3)/b2)**2]``."""
    return (b[0] / b[1]) * xp.exp(-0.5 * ((x - b[2]) / b[1]) ** 2)


def _gauss(x: Any, b: Any, xp: ModuleType = np) -> Any:
    """Exponential background plus two Gaussian peaks (Gauss1, 2, 3)."""
    return (
        b[0] * xp.exp(-b[1] * x)
        + b[2] * xp.exp(-((x - b[3]) ** 2) / b[4] ** 2)
        + b[5] * xp.exp(-((x - b[6]) ** 2) / b[7] ** 2)
    )


def _rational_cubic(x: Any, b: Any, xp: ModuleType = np) -> Any:
    """``y = (b1+b2*x+b3*x**2+b4*x**3) / (1+b5*x+b6*x**2+b7*x**3)``."""
    num = b[0] + b[1] * x + b[2] * x**2 + b[3] * x**3
    den = 1 + b[4] * x + b[5] * x**2 + b[6] * x**3
    return num / den


def _kirby2(x: Any, b: Any, xp: ModuleType = np) -> Any:
    """``y = (b1 + b2*x + b3*x**2) / (1 + b4*x + b5*x**2)``."""
    return (b[0] + b[1] * x + b[2] * x**2) / (1 + b[3] * x + b[4] * x**2)


def _lanczos(x: Any, b: Any, xp: ModuleType = np) -> Any:
    """``y = b1*exp(-b2*x) + b3*exp(-b4*x) + b5*exp(-b6*x)`` (Lanczos1-3)."""
    return b[0] * xp.exp(-b[1] * x) + b[2] * xp.exp(-b[3] * x) + b[4] * xp.exp(-b[5] * x)


def _mgh09(x: Any, b: Any, xp: ModuleType = np) -> Any:
    """``y = b1*(x**2+x*b2) / (x**2+x*b3+b4)``."""
    return b[0] * (x**2 + x * b[1]) / (x**2 + x * b[2] + b[3])


def _mgh10(x: Any, b: Any, xp: ModuleType = np) -> Any:
    """``y = b1 * exp[b2/(x+b3)]``."""
    return b[0] * xp.exp(b[1] / (x + b[2]))


def _mgh17(x: Any, b: Any, xp: ModuleType = np) -> Any:
    """``y = b1 + b2*exp[-x*b4] + b3*exp[-x*b5]``."""
    return b[0] + b[1] * xp.exp(-x * b[3]) + b[2] * xp.exp(-x * b[4])


def _misra1b(x: Any, b: Any, xp: ModuleType = np) -> Any:
    """``y = b1 * (1-(1+b2*x/2)**(-2))``."""
    return b[0] * (1 - (1 + b[1] * x / 2) ** (-2))


def _misra1c(x: Any, b: Any, xp: ModuleType = np) -> Any:
    """``y = b1 * (1-(1+2*b2*x)**(-.5))``."""
    return b[0] * (1 - (1 + 2 * b[1] * x) ** (-0.5))


def _misra1d(x: Any, b: Any, xp: ModuleType = np) -> Any:
    """``y = b1*b2*x*((1+b2*x)**(-1))``."""
    return b[0] * b[1] * x * ((1 + b[1] * x) ** (-1))


def _nelson(x: Any, b: Any, xp: ModuleType = np) -> Any:
    """``log[y] = b1 - b2*x1 * exp[-b3*x2]``; x has columns (x1, x2).

    The model predicts ``log(y)``; :func:`load_problem` stores ``log(y)`` as
    the response so that ``y - model(x, b)`` are the certified residuals.
    """
    return b[0] - b[1] * x[:, 0] * xp.exp(-b[2] * x[:, 1])


def _rat42(x: Any, b: Any, xp: ModuleType = np) -> Any:
    """``y = b1 / (1+exp[b2-b3*x])``."""
    return b[0] / (1 + xp.exp(b[1] - b[2] * x))


def _rat43(x: Any, b: Any, xp: ModuleType = np) -> Any:
    """``y = b1 / ((1+exp[b2-b3*x])**(1/b4))``."""
    return b[0] / ((1 + xp.exp(b[1] - b[2] * x)) ** (1 / b[3]))


def _roszman1(x: Any, b: Any, xp: ModuleType = np) -> Any:
    """``y = b1 - b2*x - arctan[b3/(x-b4)]/pi``."""
    return b[0] - b[1] * x - xp.arctan(b[2] / (x - b[3])) / xp.pi


@dataclass(frozen=True)
class _ModelSpec:
    """Model of one dataset: file's formula text, function, response transform."""

    formula: str
    function: ModelFn
    log_response: bool = False


# The formula texts are the whitespace-normalised ``Model:`` lines of the
# files (everything between the "N Parameters" line and the starting values);
# ``load_problem`` checks them against the file so that a data file that does
# not match its transcribed model is rejected instead of silently misfitted.
_MODELS: dict[str, _ModelSpec] = {
    "Bennett5": _ModelSpec("y = b1 * (b2+x)**(-1/b3) + e", _bennett5),
    "BoxBOD": _ModelSpec("y = b1*(1-exp[-b2*x]) + e", _exp_saturation),
    "Chwirut1": _ModelSpec("y = exp[-b1*x]/(b2+b3*x) + e", _chwirut),
    "Chwirut2": _ModelSpec("y = exp(-b1*x)/(b2+b3*x) + e", _chwirut),
    "DanWood": _ModelSpec("y = b1*x**b2 + e", _danwood),
    "ENSO": _ModelSpec(
        "y = b1 + b2*cos( 2*pi*x/12 ) + b3*sin( 2*pi*x/12 )"
        " + b5*cos( 2*pi*x/b4 ) + b6*sin( 2*pi*x/b4 )"
        " + b8*cos( 2*pi*x/b7 ) + b9*sin( 2*pi*x/b7 ) + e",
        _enso,
    ),
    "Eckerle4": _ModelSpec("y = (b1/b2) * exp[-0.5*((x-b3)/b2)**2] + e", _eckerle4),
    "Gauss1": _ModelSpec(
        "y = b1*exp( -b2*x ) + b3*exp( -(x-b4)**2 / b5**2 ) + b6*exp( -(x-b7)**2 / b8**2 ) + e",
        _gauss,
    ),
    "Gauss2": _ModelSpec(
        "y = b1*exp( -b2*x ) + b3*exp( -(x-b4)**2 / b5**2 ) + b6*exp( -(x-b7)**2 / b8**2 ) + e",
        _gauss,
    ),
    "Gauss3": _ModelSpec(
        "y = b1*exp( -b2*x ) + b3*exp( -(x-b4)**2 / b5**2 ) + b6*exp( -(x-b7)**2 / b8**2 ) + e",
        _gauss,
    ),
    "Hahn1": _ModelSpec(
        "y = (b1+b2*x+b3*x**2+b4*x**3) / (1+b5*x+b6*x**2+b7*x**3) + e",
        _rational_cubic,
    ),
    "Kirby2": _ModelSpec("y = (b1 + b2*x + b3*x**2) / (1 + b4*x + b5*x**2) + e", _kirby2),
    "Lanczos1": _ModelSpec("y = b1*exp(-b2*x) + b3*exp(-b4*x) + b5*exp(-b6*x) + e", _lanczos),
    "Lanczos2": _ModelSpec("y = b1*exp(-b2*x) + b3*exp(-b4*x) + b5*exp(-b6*x) + e", _lanczos),
    "Lanczos3": _ModelSpec("y = b1*exp(-b2*x) + b3*exp(-b4*x) + b5*exp(-b6*x) + e", _lanczos),
    "MGH09": _ModelSpec("y = b1*(x**2+x*b2) / (x**2+x*b3+b4) + e", _mgh09),
    "MGH10": _ModelSpec("y = b1 * exp[b2/(x+b3)] + e", _mgh10),
    "MGH17": _ModelSpec("y = b1 + b2*exp[-x*b4] + b3*exp[-x*b5] + e", _mgh17),
    "Misra1a": _ModelSpec("y = b1*(1-exp[-b2*x]) + e", _exp_saturation),
    "Misra1b": _ModelSpec("y = b1 * (1-(1+b2*x/2)**(-2)) + e", _misra1b),
    "Misra1c": _ModelSpec("y = b1 * (1-(1+2*b2*x)**(-.5)) + e", _misra1c),
    "Misra1d": _ModelSpec("y = b1*b2*x*((1+b2*x)**(-1)) + e", _misra1d),
    "Nelson": _ModelSpec("log[y] = b1 - b2*x1 * exp[-b3*x2] + e", _nelson, log_response=True),
    "Rat42": _ModelSpec("y = b1 / (1+exp[b2-b3*x]) + e", _rat42),
    "Rat43": _ModelSpec("y = b1 / ((1+exp[b2-b3*x])**(1/b4)) + e", _rat43),
    "Roszman1": _ModelSpec(
        "pi = 3.141592653589793238462643383279E0 y = b1 - b2*x - arctan[b3/(x-b4)]/pi + e",
        _roszman1,
    ),
    "Thurber": _ModelSpec(
        "y = (b1 + b2*x + b3*x**2 + b4*x**3) / (1 + b5*x + b6*x**2 + b7*x**3) + e",
        _rational_cubic,
    ),
}

#: Names of the 27 NIST StRD nonlinear regression datasets, sorted.
PROBLEM_NAMES: tuple[str, ...] = tuple(sorted(_MODELS))


# ---------------------------------------------------------------------------
# Problem container
# ---------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class NistProblem:
    """One NIST StRD nonlinear least-squares problem.

    Equality and hashing are by identity (the fields hold arrays); all arrays
    are read-only.

    Attributes
    ----------
    name : str
        Dataset name, e.g. ``"MGH09"``.
    difficulty : str
        NIST level of difficulty: ``"Lower"``, ``"Average"`` or ``"Higher"``.
    x : numpy.ndarray
        Predictor values, shape ``(m,)``, or ``(m, k)`` for ``k > 1``
        predictors (only Nelson, with ``k = 2``).
    y : numpy.ndarray
        Response values, shape ``(m,)``. For models stated for a transformed
        response (Nelson: ``log[y] = ...``) this is the transformed response,
        so that ``y - model(x, b)`` are the residuals of the certified fit.
    starts : tuple of numpy.ndarray
        The two NIST starting points ("Start 1" far from, "Start 2" closer to
        the solution), each of shape ``(p,)``.
    certified : numpy.ndarray
        Certified parameter values, shape ``(p,)``.
    certified_sd : numpy.ndarray
        Certified standard deviations of the parameters, shape ``(p,)``.
    certified_rss : float
        Certified residual sum of squares.
    model : callable
        ``model(x, b, xp=numpy)`` returning the predictions for parameters
        ``b`` (indexable, length ``p``) with array namespace ``xp`` (``numpy``
        or ``jax.numpy``).
    formula : str
        The model formula as printed in the data file (whitespace-normalised).
    """

    name: str
    difficulty: str
    x: np.ndarray = field(repr=False)
    y: np.ndarray = field(repr=False)
    starts: tuple[np.ndarray, np.ndarray] = field(repr=False)
    certified: np.ndarray
    certified_sd: np.ndarray = field(repr=False)
    certified_rss: float
    model: ModelFn = field(repr=False)
    formula: str = ""

    @property
    def n_params(self) -> int:
        """int : Number of model parameters ``p``."""
        return int(self.certified.shape[0])

    @property
    def n_obs(self) -> int:
        """int : Number of observations ``m``."""
        return int(self.y.shape[0])

    def residuals(self, b: Any, xp: ModuleType = np) -> Any:
        """Residuals ``y - model(x, b)``.

        Parameters
        ----------
        b : array_like
            Parameter values, length :attr:`n_params`.
        xp : module, optional
            Array namespace used for the evaluation (``numpy`` by default, or
            ``jax.numpy``).

        Returns
        -------
        array
            Residuals of shape ``(n_obs,)``, an array of ``xp``.
        """
        return xp.asarray(self.y) - self.model(self.x, b, xp)

    def rss(self, b: Any, xp: ModuleType = np) -> Any:
        """Residual sum of squares ``sum((y - model(x, b))**2)``.

        Parameters
        ----------
        b : array_like
            Parameter values, length :attr:`n_params`.
        xp : module, optional
            Array namespace used for the evaluation (``numpy`` by default).

        Returns
        -------
        float or array
            A Python float for ``xp=numpy``, otherwise a 0-d array of ``xp``
            (so that the result stays differentiable / traceable with jax).
        """
        r = self.residuals(b, xp)
        total = xp.sum(r * r)
        return float(total) if xp is np else total


# ---------------------------------------------------------------------------
# Locating and parsing the data files
# ---------------------------------------------------------------------------


def default_nist_dir() -> Path | None:
    """Locate the directory holding the NIST StRD ``*.dat`` files.

    The lookup order is:

    1. the environment variable :data:`NIST_DIR_ENV` (``ZFITLITE_NIST_DIR``),
       returned as given even if it does not exist (an explicit setting is
       never silently overridden);
    2. for the current working directory and then for the directory of this
       file, every ancestor ``a`` (starting with the directory itself) is
       tried as ``a / "tests" / "data" / "nist-strd"``: the copy shipped in the
       test tree of a source checkout, found from anywhere inside the checkout
       and from an editable install of it. Nothing outside the checkout is
       searched.

    Returns
    -------
    pathlib.Path or None
        The directory, or ``None`` if no candidate holding ``*.dat`` files
        was found. The package never needs the data at run time.
    """
    env = os.environ.get(NIST_DIR_ENV)
    if env:
        return Path(env).expanduser()

    starts: list[Path] = []
    try:
        starts.append(Path.cwd().resolve())
    except OSError:  # the working directory may have been removed
        pass
    starts.append(Path(__file__).resolve().parent)

    seen: set[Path] = set()
    for start in starts:
        for ancestor in (start, *start.parents):
            candidate = ancestor / _REL_DATA_DIR
            if candidate in seen:
                continue
            seen.add(candidate)
            if candidate.is_dir() and any(candidate.glob("*.dat")):
                return candidate
    return None


_NUM = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eEdD][-+]?\d+)?"
_PARAM_RE = re.compile(rf"^\s*b(\d+)\s*=\s*({_NUM})\s+({_NUM})\s+({_NUM})\s+({_NUM})\s*$")
_RSS_RE = re.compile(rf"Residual\s+Sum\s+of\s+Squares:\s*({_NUM})", re.IGNORECASE)
_NOBS_RE = re.compile(r"Number\s+of\s+Observations:\s*(\d+)", re.IGNORECASE)
_DIFFICULTY_RE = re.compile(r"\b(Lower|Average|Higher)\s+Level\s+of\s+Difficulty", re.IGNORECASE)
_DATA_LINES_RE = re.compile(r"^\s*Data\s*\(\s*lines\s+(\d+)\s+to\s+(\d+)\s*\)", re.IGNORECASE)
_DATA_HEADER_RE = re.compile(r"^\s*Data:\s+(y\b.*)$")
_NPARAMS_RE = re.compile(r"^\s*(\d+)\s+Parameters\b", re.IGNORECASE)
_MODEL_RE = re.compile(r"^\s*Model:", re.IGNORECASE)
_STARTS_RE = re.compile(r"^\s*Starting\s+values", re.IGNORECASE)


def _to_float(token: str) -> float:
    """Convert a number token of a data file (Fortran ``D`` exponents too)."""
    return float(token.replace("D", "E").replace("d", "e"))


def _parse_rows(lines: Sequence[str], ncols: int) -> np.ndarray | None:
    """Parse non-blank lines into an ``(n, ncols)`` array, or ``None``."""
    rows = []
    for line in lines:
        tokens = line.split()
        if not tokens:
            continue
        if len(tokens) != ncols:
            return None
        try:
            rows.append([_to_float(t) for t in tokens])
        except ValueError:
            return None
    if not rows:
        return None
    return np.array(rows, dtype=np.float64)


def _parse_formula(lines: Sequence[str]) -> str:
    """Extract the whitespace-normalised model formula text."""
    start = next((i for i, ln in enumerate(lines) if _MODEL_RE.match(ln)), None)
    if start is None:
        raise ValueError("no 'Model:' section found")
    i = start + 1
    while i < len(lines) and not _NPARAMS_RE.match(lines[i]):
        i += 1
    if i == len(lines):
        raise ValueError("no 'N Parameters' line found in the 'Model:' section")
    parts = []
    for line in lines[i + 1 :]:
        if _STARTS_RE.match(line) or _PARAM_RE.match(line):
            break
        if line.strip():
            parts.append(line.strip())
    return " ".join(" ".join(parts).split())


def _parse_file(path: Path) -> dict[str, Any]:
    """Parse one NIST StRD nonlinear regression ``.dat`` file."""
    lines = path.read_text(encoding="ascii", errors="replace").splitlines()
    text = "\n".join(lines)

    # Parameters: the first contiguous block of "bN = start1 start2 cert sd".
    params: dict[int, tuple[float, float, float, float]] = {}
    for line in lines:
        match = _PARAM_RE.match(line)
        if match:
            idx = int(match.group(1))
            if idx in params:
                break
            params[idx] = tuple(_to_float(match.group(k)) for k in range(2, 6))  # type: ignore[assignment]
        elif params and line.strip():
            break
    if not params or sorted(params) != list(range(1, len(params) + 1)):
        raise ValueError(f"{path.name}: could not parse the parameter table")
    table = np.array([params[i] for i in range(1, len(params) + 1)], dtype=np.float64)
    n_params_declared = next(
        (int(m.group(1)) for ln in lines if (m := _NPARAMS_RE.match(ln))), None
    )
    if n_params_declared is not None and n_params_declared != table.shape[0]:
        raise ValueError(
            f"{path.name}: {table.shape[0]} parameters parsed, {n_params_declared} declared"
        )

    rss_match = _RSS_RE.search(text)
    if rss_match is None:
        raise ValueError(f"{path.name}: no 'Residual Sum of Squares' found")
    difficulty_match = _DIFFICULTY_RE.search(text)
    if difficulty_match is None:
        raise ValueError(f"{path.name}: no level of difficulty found")
    nobs_match = _NOBS_RE.search(text)
    n_obs_declared = int(nobs_match.group(1)) if nobs_match else None

    # Data: the last "Data:  y x ..." header names the columns.
    header_idx = None
    for i, line in enumerate(lines):
        if _DATA_HEADER_RE.match(line):
            header_idx = i
    if header_idx is None:
        raise ValueError(f"{path.name}: no 'Data:  y  x' header found")
    header_match = _DATA_HEADER_RE.match(lines[header_idx])
    assert header_match is not None
    columns = header_match.group(1).split()
    ncols = len(columns)

    data = None
    range_match = next((m for ln in lines if (m := _DATA_LINES_RE.match(ln))), None)
    if range_match is not None:
        first, last = int(range_match.group(1)), int(range_match.group(2))
        if header_idx < first - 1 <= last - 1 < len(lines):
            data = _parse_rows(lines[first - 1 : last], ncols)
    if data is None or (n_obs_declared is not None and data.shape[0] != n_obs_declared):
        # Fall back to everything after the column header.
        data = _parse_rows(lines[header_idx + 1 :], ncols)
    if data is None:
        raise ValueError(f"{path.name}: could not parse the data section")
    if n_obs_declared is not None and data.shape[0] != n_obs_declared:
        raise ValueError(
            f"{path.name}: {data.shape[0]} observations parsed, {n_obs_declared} declared"
        )

    return {
        "table": table,
        "rss": _to_float(rss_match.group(1)),
        "difficulty": difficulty_match.group(1).capitalize(),
        "data": data,
        "columns": columns,
        "formula": _parse_formula(lines),
    }


def _canonical_name(name: str) -> str:
    """Map a case-insensitive dataset name (optionally ``.dat``) to its canonical form."""
    key = name.removesuffix(".dat").lower()
    for known in PROBLEM_NAMES:
        if known.lower() == key:
            return known
    raise KeyError(f"unknown NIST StRD problem {name!r}; known: {', '.join(PROBLEM_NAMES)}")


def _resolve_dir(directory: str | os.PathLike[str] | None) -> Path:
    """Return the data directory or raise a helpful error."""
    if directory is not None:
        return Path(directory)
    found = default_nist_dir()
    if found is None:
        raise FileNotFoundError(
            "NIST StRD data directory not found: set the environment variable "
            f"{NIST_DIR_ENV} or pass `directory`"
        )
    return found


def _find_file(directory: Path, name: str) -> Path:
    """Locate ``<name>.dat`` in ``directory``, case-insensitively."""
    path = directory / f"{name}.dat"
    if path.is_file():
        return path
    target = f"{name}.dat".lower()
    if directory.is_dir():
        for candidate in directory.iterdir():
            if candidate.name.lower() == target and candidate.is_file():
                return candidate
    raise FileNotFoundError(f"NIST StRD file {name}.dat not found in {directory}")


def _readonly(array: np.ndarray) -> np.ndarray:
    """Return a C-contiguous float64 copy of ``array`` marked read-only."""
    out = np.array(array, dtype=np.float64, copy=True, order="C")
    out.setflags(write=False)
    return out


def load_problem(name: str, directory: str | os.PathLike[str] | None = None) -> NistProblem:
    """Load one NIST StRD nonlinear regression problem.

    Parameters
    ----------
    name : str
        Dataset name, case-insensitive (e.g. ``"MGH09"`` or ``"mgh09"``); one
        of :data:`PROBLEM_NAMES`.
    directory : str or os.PathLike, optional
        Directory holding the ``*.dat`` files. Defaults to
        :func:`default_nist_dir`.

    Returns
    -------
    NistProblem
        The parsed problem with its model function.

    Raises
    ------
    KeyError
        If ``name`` is not a known dataset.
    FileNotFoundError
        If the data directory or the file cannot be found.
    ValueError
        If the file cannot be parsed or its model formula does not match the
        transcribed model of this module.
    """
    canonical = _canonical_name(name)
    spec = _MODELS[canonical]
    path = _find_file(_resolve_dir(directory), canonical)
    parsed = _parse_file(path)

    if parsed["formula"] != spec.formula:
        raise ValueError(
            f"{path.name}: model formula {parsed['formula']!r} does not match "
            f"the transcribed model {spec.formula!r}"
        )

    data: np.ndarray = parsed["data"]
    y = data[:, 0]
    x = data[:, 1] if data.shape[1] == 2 else data[:, 1:]
    if spec.log_response:
        y = np.log(y)
    table: np.ndarray = parsed["table"]

    return NistProblem(
        name=canonical,
        difficulty=parsed["difficulty"],
        x=_readonly(x),
        y=_readonly(y),
        starts=(_readonly(table[:, 0]), _readonly(table[:, 1])),
        certified=_readonly(table[:, 2]),
        certified_sd=_readonly(table[:, 3]),
        certified_rss=float(parsed["rss"]),
        model=spec.function,
        formula=parsed["formula"],
    )


def load_all(directory: str | os.PathLike[str] | None = None) -> list[NistProblem]:
    """Load all 27 NIST StRD nonlinear regression problems.

    Parameters
    ----------
    directory : str or os.PathLike, optional
        Directory holding the ``*.dat`` files. Defaults to
        :func:`default_nist_dir`.

    Returns
    -------
    list of NistProblem
        The problems, sorted by name (the order of :data:`PROBLEM_NAMES`).
    """
    root = _resolve_dir(directory)
    return [load_problem(name, root) for name in PROBLEM_NAMES]
