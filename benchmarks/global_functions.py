"""Classic global-optimisation test functions with known minima (for bench_global_suite).

Built from the literature, not from one library's list: the survey of Jamil & Yang (2013,
"A literature survey of benchmark functions for global optimisation problems"), the
Dixon-Szegö set (Branin, Goldstein-Price, Six-hump camel, Hartmann 3/6, Shekel 5/7/10),
Moré, Garbow & Hillstrom (1981, least-squares test problems written as sums of squares),
and the functions common to the CEC-style suites (Ackley, Rastrigin, Griewank, Levy,
Schwefel, ...) in several dimensions. Each entry: a name, a numpy function of one 1-D
array, the box, and the known minimum value ``fstar``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

pi = np.pi


@dataclass(frozen=True)
class TestFunction:
    name: str
    f: Callable[[np.ndarray], float]
    bounds: tuple[tuple[float, float], ...]
    fstar: float

    @property
    def dim(self) -> int:
        return len(self.bounds)


# -- n-dimensional ------------------------------------------------------------------------
def ackley(x):
    n = x.size
    return (
        -20 * np.exp(-0.2 * np.sqrt(np.sum(x**2) / n))
        - np.exp(np.sum(np.cos(2 * pi * x)) / n)
        + 20
        + np.e
    )


def rastrigin(x):
    return 10 * x.size + np.sum(x**2 - 10 * np.cos(2 * pi * x))


def griewank(x):
    i = np.arange(1, x.size + 1)
    return 1 + np.sum(x**2) / 4000 - np.prod(np.cos(x / np.sqrt(i)))


def levy(x):
    w = 1 + (x - 1) / 4
    return (
        np.sin(pi * w[0]) ** 2
        + np.sum((w[:-1] - 1) ** 2 * (1 + 10 * np.sin(pi * w[:-1] + 1) ** 2))
        + (w[-1] - 1) ** 2 * (1 + np.sin(2 * pi * w[-1]) ** 2)
    )


def michalewicz(x):
    i = np.arange(1, x.size + 1)
    return -np.sum(np.sin(x) * np.sin(i * x**2 / pi) ** 20)


def schwefel(x):
    return 418.9828872724338 * x.size - np.sum(x * np.sin(np.sqrt(np.abs(x))))


def styblinski_tang(x):
    return 0.5 * np.sum(x**4 - 16 * x**2 + 5 * x)


def zakharov(x):
    i = np.arange(1, x.size + 1)
    s = np.sum(0.5 * i * x)
    return np.sum(x**2) + s**2 + s**4


def dixon_price(x):
    i = np.arange(2, x.size + 1)
    return (x[0] - 1) ** 2 + np.sum(i * (2 * x[1:] ** 2 - x[:-1]) ** 2)


def rosenbrock(x):
    return np.sum(100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2)


def sphere(x):
    return np.sum(x**2)


def sum_powers(x):
    i = np.arange(1, x.size + 1)
    return np.sum(np.abs(x) ** (i + 1))


def rotated_ellipsoid(x):
    return np.sum(np.cumsum(x**2))


def trid(x):
    return np.sum((x - 1) ** 2) - np.sum(x[1:] * x[:-1])


def powell(x):
    a, b, c, d = x[0::4], x[1::4], x[2::4], x[3::4]
    return np.sum((a + 10 * b) ** 2 + 5 * (c - d) ** 2 + (b - 2 * c) ** 4 + 10 * (a - d) ** 4)


def alpine1(x):
    return np.sum(np.abs(x * np.sin(x) + 0.1 * x))


def salomon(x):
    r = np.sqrt(np.sum(x**2))
    return 1 - np.cos(2 * pi * r) + 0.1 * r


def qing(x):
    i = np.arange(1, x.size + 1)
    return np.sum((x**2 - i) ** 2)


def brown(x):
    a, b = x[:-1] ** 2, x[1:] ** 2
    return np.sum(a ** (b + 1) + b ** (a + 1))


def exponential(x):
    return -np.exp(-0.5 * np.sum(x**2))


def perm0(x, beta=10.0):
    n = x.size
    i = np.arange(1, n + 1)
    return sum(np.sum((i + beta) * (x**j - 1.0 / i**j)) ** 2 for j in range(1, n + 1))


def cosine_mixture(x):
    return -0.1 * np.sum(np.cos(5 * pi * x)) + np.sum(x**2)


def variably_dimensioned(x):  # Moré-Garbow-Hillstrom 25
    i = np.arange(1, x.size + 1)
    s = np.sum(i * (x - 1))
    return np.sum((x - 1) ** 2) + s**2 + s**4


def broyden_tridiagonal(x):  # Moré-Garbow-Hillstrom 30
    xp = np.concatenate([[0.0], x, [0.0]])
    r = (3 - 2 * x) * x - xp[:-2] - 2 * xp[2:] + 1
    return np.sum(r**2)


def trigonometric(x):  # Moré-Garbow-Hillstrom 26
    n = x.size
    i = np.arange(1, n + 1)
    r = n - np.sum(np.cos(x)) + i * (1 - np.cos(x)) - np.sin(x)
    return np.sum(r**2)


def _nd(name, f, lo, hi, fstar, dims):
    out = []
    for d in dims:
        fs = fstar(d) if callable(fstar) else fstar
        out.append(TestFunction(f"{name}-{d}", f, ((lo, hi),) * d, float(fs)))
    return out


# -- two-dimensional -----------------------------------------------------------------------
def branin(x):
    a, b, c, r, s, t = 1, 5.1 / (4 * pi**2), 5 / pi, 6, 10, 1 / (8 * pi)
    return a * (x[1] - b * x[0] ** 2 + c * x[0] - r) ** 2 + s * (1 - t) * np.cos(x[0]) + s


def goldstein_price(x):
    a, b = x
    return (1 + (a + b + 1) ** 2 * (19 - 14 * a + 3 * a**2 - 14 * b + 6 * a * b + 3 * b**2)) * (
        30 + (2 * a - 3 * b) ** 2 * (18 - 32 * a + 12 * a**2 + 48 * b - 36 * a * b + 27 * b**2)
    )


def six_hump_camel(x):
    a, b = x
    return (4 - 2.1 * a**2 + a**4 / 3) * a**2 + a * b + (-4 + 4 * b**2) * b**2


def three_hump_camel(x):
    a, b = x
    return 2 * a**2 - 1.05 * a**4 + a**6 / 6 + a * b + b**2


def beale(x):
    a, b = x
    return (1.5 - a + a * b) ** 2 + (2.25 - a + a * b**2) ** 2 + (2.625 - a + a * b**3) ** 2


def booth(x):
    return (x[0] + 2 * x[1] - 7) ** 2 + (2 * x[0] + x[1] - 5) ** 2


def matyas(x):
    return 0.26 * (x[0] ** 2 + x[1] ** 2) - 0.48 * x[0] * x[1]


def easom(x):
    return -np.cos(x[0]) * np.cos(x[1]) * np.exp(-((x[0] - pi) ** 2) - (x[1] - pi) ** 2)


def bukin6(x):
    return 100 * np.sqrt(np.abs(x[1] - 0.01 * x[0] ** 2)) + 0.01 * np.abs(x[0] + 10)


def cross_in_tray(x):
    a, b = x
    e = np.abs(100 - np.sqrt(a**2 + b**2) / pi)
    return -0.0001 * (np.abs(np.sin(a) * np.sin(b) * np.exp(e)) + 1) ** 0.1


def drop_wave(x):
    r2 = x[0] ** 2 + x[1] ** 2
    return -(1 + np.cos(12 * np.sqrt(r2))) / (0.5 * r2 + 2)


def eggholder(x):
    a, b = x
    return -(b + 47) * np.sin(np.sqrt(np.abs(b + a / 2 + 47))) - a * np.sin(
        np.sqrt(np.abs(a - (b + 47)))
    )


def holder_table(x):
    a, b = x
    return -np.abs(np.sin(a) * np.cos(b) * np.exp(np.abs(1 - np.sqrt(a**2 + b**2) / pi)))


def schaffer2(x):
    a, b = x
    return 0.5 + (np.sin(a**2 - b**2) ** 2 - 0.5) / (1 + 0.001 * (a**2 + b**2)) ** 2


def schaffer4(x):
    a, b = x
    return 0.5 + (np.cos(np.sin(np.abs(a**2 - b**2))) ** 2 - 0.5) / (1 + 0.001 * (a**2 + b**2)) ** 2


def shubert(x):
    i = np.arange(1, 6)
    return np.sum(i * np.cos((i + 1) * x[0] + i)) * np.sum(i * np.cos((i + 1) * x[1] + i))


def levy13(x):
    a, b = x
    return (
        np.sin(3 * pi * a) ** 2
        + (a - 1) ** 2 * (1 + np.sin(3 * pi * b) ** 2)
        + (b - 1) ** 2 * (1 + np.sin(2 * pi * b) ** 2)
    )


def mccormick(x):
    a, b = x
    return np.sin(a + b) + (a - b) ** 2 - 1.5 * a + 2.5 * b + 1


def himmelblau(x):
    a, b = x
    return (a**2 + b - 11) ** 2 + (a + b**2 - 7) ** 2


def bohachevsky1(x):
    a, b = x
    return a**2 + 2 * b**2 - 0.3 * np.cos(3 * pi * a) - 0.4 * np.cos(4 * pi * b) + 0.7


def bohachevsky2(x):
    a, b = x
    return a**2 + 2 * b**2 - 0.3 * np.cos(3 * pi * a) * np.cos(4 * pi * b) + 0.3


def bohachevsky3(x):
    a, b = x
    return a**2 + 2 * b**2 - 0.3 * np.cos(3 * pi * a + 4 * pi * b) + 0.3


def leon(x):
    return 100 * (x[1] - x[0] ** 3) ** 2 + (1 - x[0]) ** 2


def hosaki(x):
    a, b = x
    return (1 - 8 * a + 7 * a**2 - 7 / 3 * a**3 + 0.25 * a**4) * b**2 * np.exp(-b)


def treccani(x):
    a, b = x
    return a**4 + 4 * a**3 + 4 * a**2 + b**2


def zettl(x):
    a, b = x
    return (a**2 + b**2 - 2 * a) ** 2 + 0.25 * a


def trefethen(x):
    a, b = x
    return (
        np.exp(np.sin(50 * a))
        + np.sin(60 * np.exp(b))
        + np.sin(70 * np.sin(a))
        + np.sin(np.sin(80 * b))
        - np.sin(10 * (a + b))
        + 0.25 * (a**2 + b**2)
    )


def adjiman(x):
    a, b = x
    return np.cos(a) * np.sin(b) - a / (b**2 + 1)


def ackley2(x):
    return -200 * np.exp(-0.02 * np.sqrt(x[0] ** 2 + x[1] ** 2))


def bartels_conn(x):
    a, b = x
    return np.abs(a**2 + b**2 + a * b) + np.abs(np.sin(a)) + np.abs(np.cos(b))


def egg_crate(x):
    a, b = x
    return a**2 + b**2 + 25 * (np.sin(a) ** 2 + np.sin(b) ** 2)


def periodic(x):
    return 1 + np.sum(np.sin(x) ** 2) - 0.1 * np.exp(-np.sum(x**2))


def freudenstein_roth(x):  # MGH 2
    a, b = x
    return (-13 + a + ((5 - b) * b - 2) * b) ** 2 + (-29 + a + ((b + 1) * b - 14) * b) ** 2


def powell_badly_scaled(x):  # MGH 3
    a, b = x
    return (1e4 * a * b - 1) ** 2 + (np.exp(-a) + np.exp(-b) - 1.0001) ** 2


def jennrich_sampson(x):  # MGH 6, m = 10
    i = np.arange(1, 11)
    return np.sum((2 + 2 * i - (np.exp(i * x[0]) + np.exp(i * x[1]))) ** 2)


def giunta(x):
    t = 16 / 15 * x - 1
    return 0.6 + np.sum(np.sin(t) + np.sin(t) ** 2 + 0.02 * np.sin(4 * t))


def price4(x):
    a, b = x
    return (2 * a**3 * b - b**3) ** 2 + (6 * a - b**2 + b) ** 2


def matyas_like_rotated(x):  # Jamil & Yang: "Rotated ellipse 2"
    a, b = x
    return a**2 - a * b + b**2


def camel_leon_chung(x):  # Jamil & Yang: "Chung Reynolds" (2-d)
    return np.sum(x**2) ** 2


def brent(x):
    a, b = x
    return (a + 10) ** 2 + (b + 10) ** 2 + np.exp(-(a**2) - b**2)


def keane_unconstrained_cube(x):  # Jamil & Yang: "Cube" function
    return 100 * (x[1] - x[0] ** 3) ** 2 + (1 - x[0]) ** 2


# -- fixed dimension 3-6 ---------------------------------------------------------------------
_H3A = np.array([[3.0, 10, 30], [0.1, 10, 35], [3.0, 10, 30], [0.1, 10, 35]])
_H3P = 1e-4 * np.array(
    [[3689, 1170, 2673], [4699, 4387, 7470], [1091, 8732, 5547], [381, 5743, 8828]]
)
_H6A = np.array(
    [
        [10, 3, 17, 3.5, 1.7, 8],
        [0.05, 10, 17, 0.1, 8, 14],
        [3, 3.5, 1.7, 10, 17, 8],
        [17, 8, 0.05, 10, 0.1, 14],
    ]
)
_H6P = 1e-4 * np.array(
    [
        [1312, 1696, 5569, 124, 8283, 5886],
        [2329, 4135, 8307, 3736, 1004, 9991],
        [2348, 1451, 3522, 2883, 3047, 6650],
        [4047, 8828, 8732, 5743, 1091, 381],
    ]
)
_HALPHA = np.array([1.0, 1.2, 3.0, 3.2])


def hartmann3(x):
    return -np.sum(_HALPHA * np.exp(-np.sum(_H3A * (x - _H3P) ** 2, axis=1)))


def hartmann6(x):
    return -np.sum(_HALPHA * np.exp(-np.sum(_H6A * (x - _H6P) ** 2, axis=1)))


_SHEKEL_A = np.array(
    [
        [4, 4, 4, 4],
        [1, 1, 1, 1],
        [8, 8, 8, 8],
        [6, 6, 6, 6],
        [3, 7, 3, 7],
        [2, 9, 2, 9],
        [5, 5, 3, 3],
        [8, 1, 8, 1],
        [6, 2, 6, 2],
        [7, 3.6, 7, 3.6],
    ],
    dtype=float,
)
_SHEKEL_C = np.array([0.1, 0.2, 0.2, 0.4, 0.4, 0.6, 0.3, 0.7, 0.5, 0.5])


def shekel(m):
    def f(x):
        return -np.sum(1.0 / (np.sum((x - _SHEKEL_A[:m]) ** 2, axis=1) + _SHEKEL_C[:m]))

    return f


def colville(x):
    a, b, c, d = x
    return (
        100 * (a**2 - b) ** 2
        + (a - 1) ** 2
        + (c - 1) ** 2
        + 90 * (c**2 - d) ** 2
        + 10.1 * ((b - 1) ** 2 + (d - 1) ** 2)
        + 19.8 * (b - 1) * (d - 1)
    )


def wolfe(x):
    a, b, c = x
    return 4 / 3 * (a**2 + b**2 - a * b) ** 0.75 + c


def helical_valley(x):  # MGH 7
    a, b, c = x
    theta = np.arctan2(b, a) / (2 * pi)
    return 100 * ((c - 10 * theta) ** 2 + (np.sqrt(a**2 + b**2) - 1) ** 2) + c**2


def box_betts(x):  # Dixon-Szegö style exponential quadratic sum (Box 1966)
    i = np.arange(1, 11)
    g = np.exp(-0.1 * i * x[0]) - np.exp(-0.1 * i * x[1]) - (np.exp(-0.1 * i) - np.exp(-i)) * x[2]
    return np.sum(g**2)


def miele_cantrell(x):
    a, b, c, d = x
    return (np.exp(-a) - b) ** 4 + 100 * (b - c) ** 6 + np.tan(c - d) ** 4 + a**8


def kowalik_osborne(x):  # MGH 15
    y = np.array(
        [0.1957, 0.1947, 0.1735, 0.16, 0.0844, 0.0627, 0.0456, 0.0342, 0.0323, 0.0235, 0.0246]
    )
    u = np.array([4, 2, 1, 0.5, 0.25, 1 / 6, 0.125, 0.1, 1 / 12, 1 / 14, 0.0625])
    r = y - x[0] * (u**2 + u * x[1]) / (u**2 + u * x[2] + x[3])
    return np.sum(r**2)


def powell_singular(x):  # MGH 13
    return powell(x)


def wood(x):  # MGH 14
    return colville(x)


def beale_mgh(x):  # MGH 5
    return beale(x)


def biggs_exp5(x):  # Jamil & Yang: Biggs EXP5
    t = 0.1 * np.arange(1, 12)
    y = np.exp(-t) - 5 * np.exp(-10 * t) + 3 * np.exp(-4 * t)
    r = x[2] * np.exp(-t * x[0]) - x[3] * np.exp(-t * x[1]) + 3 * np.exp(-t * x[4]) - y
    return np.sum(r**2)


def functions() -> list[TestFunction]:
    """The whole suite (over 100 instances)."""
    dims = (2, 5, 10)
    nd = [
        *_nd("Ackley", ackley, -32.768, 32.768, 0.0, dims),
        *_nd("Rastrigin", rastrigin, -5.12, 5.12, 0.0, dims),
        *_nd("Griewank", griewank, -600.0, 600.0, 0.0, dims),
        *_nd("Levy", levy, -10.0, 10.0, 0.0, dims),
        *_nd("Schwefel", schwefel, -500.0, 500.0, 0.0, dims),
        *_nd("StyblinskiTang", styblinski_tang, -5.0, 5.0, lambda d: -39.16616570377142 * d, dims),
        *_nd("Zakharov", zakharov, -5.0, 10.0, 0.0, dims),
        *_nd("DixonPrice", dixon_price, -10.0, 10.0, 0.0, dims),
        *_nd("Rosenbrock", rosenbrock, -5.0, 10.0, 0.0, dims),
        *_nd("Sphere", sphere, -5.12, 5.12, 0.0, dims),
        *_nd("SumOfPowers", sum_powers, -1.0, 1.0, 0.0, (2, 5)),
        *_nd("RotatedEllipsoid", rotated_ellipsoid, -65.536, 65.536, 0.0, dims),
        *_nd("Trid", trid, -4.0, 4.0, lambda d: -d * (d + 4) * (d - 1) / 6, (2,)),
        *_nd("Trid", trid, -25.0, 25.0, lambda d: -d * (d + 4) * (d - 1) / 6, (5,)),
        *_nd("Trid", trid, -100.0, 100.0, lambda d: -d * (d + 4) * (d - 1) / 6, (10,)),
        *_nd("Powell", powell, -4.0, 5.0, 0.0, (4, 8)),
        *_nd("Alpine1", alpine1, -10.0, 10.0, 0.0, (2, 5)),
        *_nd("Salomon", salomon, -100.0, 100.0, 0.0, (2, 5)),
        *_nd("Qing", qing, -500.0, 500.0, 0.0, (2, 5)),
        *_nd("Brown", brown, -1.0, 4.0, 0.0, (2, 5)),
        *_nd("Exponential", exponential, -1.0, 1.0, -1.0, (2, 5, 10)),
        *_nd("Perm0", perm0, -2.0, 2.0, 0.0, (2,)),
        *_nd("CosineMixture", cosine_mixture, -1.0, 1.0, lambda d: -0.1 * d, (2, 4)),
        *_nd("VariablyDimensioned", variably_dimensioned, -5.0, 5.0, 0.0, (5, 10)),
        *_nd("BroydenTridiagonal", broyden_tridiagonal, -2.0, 2.0, 0.0, (5, 10)),
        *_nd("Michalewicz", michalewicz, 0.0, pi, -1.8013034100985537, (2,)),
        *_nd("Michalewicz", michalewicz, 0.0, pi, -4.687658179102, (5,)),
    ]
    two = [
        ("Branin", branin, ((-5, 10), (0, 15)), 0.39788735772973816),
        ("GoldsteinPrice", goldstein_price, ((-2, 2),) * 2, 3.0),
        ("SixHumpCamel", six_hump_camel, ((-3, 3), (-2, 2)), -1.0316284534898774),
        ("ThreeHumpCamel", three_hump_camel, ((-5, 5),) * 2, 0.0),
        ("Beale", beale, ((-4.5, 4.5),) * 2, 0.0),
        ("Booth", booth, ((-10, 10),) * 2, 0.0),
        ("Matyas", matyas, ((-10, 10),) * 2, 0.0),
        ("Easom", easom, ((-100, 100),) * 2, -1.0),
        ("Bukin6", bukin6, ((-15, -5), (-3, 3)), 0.0),
        ("CrossInTray", cross_in_tray, ((-10, 10),) * 2, -2.062611870822739),
        ("DropWave", drop_wave, ((-5.12, 5.12),) * 2, -1.0),
        ("Eggholder", eggholder, ((-512, 512),) * 2, -959.6406627208506),
        ("HolderTable", holder_table, ((-10, 10),) * 2, -19.208502567886743),
        ("Schaffer2", schaffer2, ((-100, 100),) * 2, 0.0),
        ("Schaffer4", schaffer4, ((-100, 100),) * 2, 0.29257863203598033),
        ("Shubert", shubert, ((-10, 10),) * 2, -186.7309088310239),
        ("Levy13", levy13, ((-10, 10),) * 2, 0.0),
        ("McCormick", mccormick, ((-1.5, 4), (-3, 4)), -1.913222954981037),
        ("Himmelblau", himmelblau, ((-5, 5),) * 2, 0.0),
        ("Bohachevsky1", bohachevsky1, ((-100, 100),) * 2, 0.0),
        ("Bohachevsky2", bohachevsky2, ((-100, 100),) * 2, 0.0),
        ("Bohachevsky3", bohachevsky3, ((-100, 100),) * 2, 0.0),
        ("Leon", leon, ((-1.2, 1.2),) * 2, 0.0),
        ("Hosaki", hosaki, ((0, 5), (0, 6)), -2.345811576101292),
        ("Treccani", treccani, ((-5, 5),) * 2, 0.0),
        ("Zettl", zettl, ((-5, 10),) * 2, -0.003791237220468656),
        ("Trefethen", trefethen, ((-10, 10),) * 2, -3.3068686474752402),
        ("Adjiman", adjiman, ((-1, 2), (-1, 1)), -2.0218067833370204),
        ("Ackley2", ackley2, ((-32, 32),) * 2, -200.0),
        ("BartelsConn", bartels_conn, ((-500, 500),) * 2, 1.0),
        ("EggCrate", egg_crate, ((-5, 5),) * 2, 0.0),
        ("Periodic", periodic, ((-10, 10),) * 2, 0.9),
        ("FreudensteinRoth", freudenstein_roth, ((-10, 10),) * 2, 0.0),
        ("PowellBadlyScaled", powell_badly_scaled, ((-10, 10),) * 2, 0.0),
        ("JennrichSampson", jennrich_sampson, ((-1, 1),) * 2, 124.36218235561473),
        ("Giunta", giunta, ((-1, 1),) * 2, 0.06447042053690566),
        ("Price4", price4, ((-10, 10),) * 2, 0.0),
        ("RotatedEllipse2", matyas_like_rotated, ((-500, 500),) * 2, 0.0),
        ("ChungReynolds", camel_leon_chung, ((-100, 100),) * 2, 0.0),
        ("Brent", brent, ((-10, 10),) * 2, np.exp(-200.0)),
        ("Cube", keane_unconstrained_cube, ((-10, 10),) * 2, 0.0),
    ]
    fixed = [
        ("Hartmann3", hartmann3, ((0, 1),) * 3, -3.862782147820756),
        ("Hartmann6", hartmann6, ((0, 1),) * 6, -3.322368011415515),
        ("Shekel5", shekel(5), ((0, 10),) * 4, -10.153199679058231),
        ("Shekel7", shekel(7), ((0, 10),) * 4, -10.402940566818664),
        ("Shekel10", shekel(10), ((0, 10),) * 4, -10.536409816692046),
        ("Colville", colville, ((-10, 10),) * 4, 0.0),
        ("Wolfe", wolfe, ((0, 2),) * 3, 0.0),
        ("HelicalValley", helical_valley, ((-10, 10),) * 3, 0.0),
        ("BoxBetts", box_betts, ((0.9, 1.2), (9, 11.2), (0.9, 1.2)), 0.0),
        ("MieleCantrell", miele_cantrell, ((-1, 1),) * 4, 0.0),
        ("KowalikOsborne", kowalik_osborne, ((-5, 5),) * 4, 3.0750560385e-4),
        ("PowellSingular", powell_singular, ((-4, 5),) * 4, 0.0),
        ("BealeMGH", beale_mgh, ((-4.5, 4.5),) * 2, 0.0),
        ("BiggsExp5", biggs_exp5, ((0, 20),) * 5, 0.0),
    ]
    out = list(nd)
    for name, f, b, fs in two + fixed:
        out.append(TestFunction(name, f, tuple((float(lo), float(hi)) for lo, hi in b), float(fs)))
    return out


#: A quick subset for development (``ZFITLITE_BENCH_FAST=1``).
FAST = (
    "Ackley-2",
    "Rastrigin-5",
    "Griewank-2",
    "Levy-5",
    "Schwefel-2",
    "StyblinskiTang-5",
    "Rosenbrock-5",
    "Branin",
    "GoldsteinPrice",
    "SixHumpCamel",
    "Easom",
    "Eggholder",
    "HolderTable",
    "Shubert",
    "Hartmann3",
    "Hartmann6",
    "Shekel5",
    "Shekel10",
    "Michalewicz-2",
    "Zakharov-10",
    "KowalikOsborne",
    "Bukin6",
    "CrossInTray",
    "Schaffer2",
)
