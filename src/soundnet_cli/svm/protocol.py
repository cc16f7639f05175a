"""The two SVM protocols (``paper``, ``pooled``; see :mod:`soundnet_cli.svm`) and their settings:
:class:`SvmProtocol` says how features become SVM instances, how C is set and which solver fits."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import SvmError

PROTOCOLS = ("paper", "pooled")
#: The paper loops every clip to this many seconds.
PAPER_SECONDS = 10.0
#: The paper's SVM regularisation.
PAPER_C = 0.01
#: C values the pooled protocol chooses from by inner cross-validation. On standardised features
#: larger C rarely wins and liblinear crawls without converging (measured on ESC-50:
#: ``benchmarks/RESULTS.md``).
DEFAULT_C_GRID = (0.0001, 0.001, 0.01, 0.1)
#: Solvers of the SVM objective (see :class:`SvmProtocol`) and their default iteration limits.
SOLVERS = ("newton", "liblinear")
SOLVER_MAX_ITER = {"newton": 50, "liblinear": 2000}


@dataclass(frozen=True)
class SvmProtocol:
    """How features become SVM instances and how C is set.

    Attributes
    ----------
    name
        ``"paper"`` or ``"pooled"``.
    C
        Regularisation of the paper protocol (0.01 as the original).
    c_grid
        Candidates for the pooled protocol's inner cross-validation (one value: no inner CV).
    input_scale
        Factor on [-1, 1] audio; ``None``: the network's own (256; the original ESC-50
        evaluation used 512).
    solver
        ``"newton"``: :func:`~soundnet_cli.svm.solver.fit_squared_hinge`, all classes at once in
        dense products; ``"liblinear"``: ``sklearn.svm.LinearSVC`` (dual coordinate descent for
        the paper protocol as the original, ``dual="auto"`` for pooled). Both minimise the
        same strongly convex objective, whose minimiser is unique.
    tol
        Stopping tolerance (``LinearSVC``'s ``tol``; the Newton solver applies liblinear's
        primal rule with it).
    max_iter
        Iteration limit (``None``: 2,000 liblinear iterations or 50 Newton iterations); fits
        that hit it are reported as not converged.
    """

    name: str = "pooled"
    C: float = PAPER_C
    c_grid: tuple[float, ...] = DEFAULT_C_GRID
    input_scale: float | None = None
    solver: str = "newton"
    tol: float = 1e-4
    max_iter: int | None = None

    def __post_init__(self) -> None:
        if self.name not in PROTOCOLS:
            raise SvmError(f"unknown protocol {self.name!r}; choose from {', '.join(PROTOCOLS)}")
        if self.solver not in SOLVERS:
            raise SvmError(f"unknown solver {self.solver!r}; choose from {', '.join(SOLVERS)}")
        if not self.tol > 0 or (self.max_iter is not None and self.max_iter < 1):
            raise SvmError(f"tol must be positive and max_iter at least 1 "
                           f"(tol={self.tol}, max_iter={self.max_iter})")
        if not self.C > 0 or not self.c_grid or any(not c > 0 for c in self.c_grid):
            raise SvmError(f"C values must be positive (C={self.C}, grid={list(self.c_grid)})")
        if self.input_scale is not None and not self.input_scale > 0:
            raise SvmError(f"input scale must be positive (got {self.input_scale})")

    @property
    def iterations(self) -> int:
        """The solver's iteration limit (``max_iter`` or its default)."""
        return self.max_iter if self.max_iter is not None else SOLVER_MAX_ITER[self.solver]

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"name": self.name, "solver": self.solver, "tol": self.tol,
                             "max_iter": self.iterations}
        if self.name == "paper":
            d.update(C=self.C, loop_seconds=PAPER_SECONDS, loss="squared_hinge")
            if self.solver == "liblinear":
                d["dual"] = True  # liblinear's dual coordinate descent, as the original
        else:
            d.update(c_grid=list(self.c_grid), features="mean+max over time, standardised")
        return d
