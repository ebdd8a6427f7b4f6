"""Type stubs of the compiled extension ``embspace._core`` (Rust, PyO3)."""

from typing import Literal, final, overload

import numpy as np
import numpy.typing as npt

__all__ = [
    "SparseGram",
    "__version__",
    "csr_from_coo",
    "csr_matvec",
    "csr_transpose",
    "knn",
    "knn_screen_candidates",
    "knn_screened",
    "max_threads",
    "tie_expectation",
    "tie_overlap",
    "wals_gramian",
    "wals_half_sweep",
    "wals_half_sweep_from",
    "wals_kernels",
    "wals_loss",
]

__version__: str

@final
class SparseGram:
    def __new__(
        cls,
        indptr: npt.NDArray[np.int64],
        indices: npt.NDArray[np.int32],
        data: npt.NDArray[np.float32],
        n_cols: int,
        num_threads: int = 0,
    ) -> SparseGram: ...
    @property
    def n_rows(self) -> int: ...
    @property
    def n_cols(self) -> int: ...
    def apply(
        self, x: npt.NDArray[np.float64], num_threads: int = 0
    ) -> npt.NDArray[np.float64]: ...
    def matmat(
        self, x: npt.NDArray[np.float64], num_threads: int = 0
    ) -> npt.NDArray[np.float64]: ...

def max_threads() -> int: ...
def csr_from_coo(
    n_rows: int,
    n_cols: int,
    rows: npt.NDArray[np.int64],
    cols: npt.NDArray[np.int64],
    values: npt.NDArray[np.float32],
    duplicates: str = "error",
    num_threads: int = 0,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int32], npt.NDArray[np.float32]]: ...
def csr_matvec(
    indptr: npt.NDArray[np.int64],
    indices: npt.NDArray[np.int32],
    data: npt.NDArray[np.float32],
    n_cols: int,
    x: npt.NDArray[np.float64],
    num_threads: int = 0,
) -> npt.NDArray[np.float64]: ...
def csr_transpose(
    n_rows: int,
    n_cols: int,
    indptr: npt.NDArray[np.int64],
    indices: npt.NDArray[np.int32],
    data: npt.NDArray[np.float32],
    num_threads: int = 0,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int32], npt.NDArray[np.float32]]: ...
def knn(
    data: npt.NDArray[np.float32],
    k: int,
    metric: str = "cosine",
    queries: npt.NDArray[np.int64] | None = None,
    num_threads: int = 0,
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]: ...
def knn_screened(d: int) -> bool: ...
def knn_screen_candidates(
    data: npt.NDArray[np.float32],
    k: int,
    metric: str = "cosine",
    queries: npt.NDArray[np.int64] | None = None,
    num_threads: int = 0,
) -> npt.NDArray[np.uint64]: ...
def tie_overlap(
    a: npt.NDArray[np.float32],
    b: npt.NDArray[np.float32],
    table_a: npt.NDArray[np.int64],
    table_b: npt.NDArray[np.int64],
    k: int,
    metric: str = "cosine",
    tolerance: float = 9.5367431640625e-07,
    num_threads: int = 0,
) -> npt.NDArray[np.uint32]: ...
def tie_expectation(
    counts: npt.NDArray[np.uint32],
    k: npt.NDArray[np.uint32],
    num_threads: int = 0,
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]: ...
@overload
def wals_half_sweep(
    indptr: npt.NDArray[np.int64],
    indices: npt.NDArray[np.int32],
    data: npt.NDArray[np.float32],
    n_cols: int,
    fixed: npt.NDArray[np.float32],
    solve_into: npt.NDArray[np.float32],
    *,
    unobserved_weight: float,
    regularization: float,
    solved_weights: npt.NDArray[np.float32] | None = None,
    fixed_weights: npt.NDArray[np.float32] | None = None,
    solver: str = "cholesky",
    cg_steps: int = 3,
    reg_scaling: str = "none",
    num_threads: int = 0,
    loss: Literal["terms"] = "terms",
) -> tuple[float, float, float]: ...
@overload
def wals_half_sweep(
    indptr: npt.NDArray[np.int64],
    indices: npt.NDArray[np.int32],
    data: npt.NDArray[np.float32],
    n_cols: int,
    fixed: npt.NDArray[np.float32],
    solve_into: npt.NDArray[np.float32],
    *,
    unobserved_weight: float,
    regularization: float,
    solved_weights: npt.NDArray[np.float32] | None = None,
    fixed_weights: npt.NDArray[np.float32] | None = None,
    solver: str = "cholesky",
    cg_steps: int = 3,
    reg_scaling: str = "none",
    num_threads: int = 0,
    loss: Literal["total"],
) -> float: ...
@overload
def wals_half_sweep_from(
    indptr: npt.NDArray[np.int64],
    indices: npt.NDArray[np.int32],
    data: npt.NDArray[np.float32],
    n_cols: int,
    fixed: npt.NDArray[np.float32],
    solve_into: npt.NDArray[np.float32],
    *,
    unobserved_weight: float,
    regularization: float,
    solved_weights: npt.NDArray[np.float32] | None = None,
    fixed_weights: npt.NDArray[np.float32] | None = None,
    solver: str = "cholesky",
    cg_steps: int = 3,
    reg_scaling: str = "none",
    num_threads: int = 0,
    loss: Literal["terms"] = "terms",
) -> tuple[tuple[float, float, float], tuple[float, float, float]]: ...
@overload
def wals_half_sweep_from(
    indptr: npt.NDArray[np.int64],
    indices: npt.NDArray[np.int32],
    data: npt.NDArray[np.float32],
    n_cols: int,
    fixed: npt.NDArray[np.float32],
    solve_into: npt.NDArray[np.float32],
    *,
    unobserved_weight: float,
    regularization: float,
    solved_weights: npt.NDArray[np.float32] | None = None,
    fixed_weights: npt.NDArray[np.float32] | None = None,
    solver: str = "cholesky",
    cg_steps: int = 3,
    reg_scaling: str = "none",
    num_threads: int = 0,
    loss: Literal["total"],
) -> tuple[float, float]: ...
def wals_loss(
    indptr: npt.NDArray[np.int64],
    indices: npt.NDArray[np.int32],
    data: npt.NDArray[np.float32],
    n_cols: int,
    row_factors: npt.NDArray[np.float32],
    col_factors: npt.NDArray[np.float32],
    *,
    unobserved_weight: float,
    regularization: float,
    row_weights: npt.NDArray[np.float32] | None = None,
    col_weights: npt.NDArray[np.float32] | None = None,
    reg_scaling: str = "none",
    num_threads: int = 0,
) -> tuple[float, float, float]: ...
def wals_gramian(
    factors: npt.NDArray[np.float32], num_threads: int = 0
) -> npt.NDArray[np.float64]: ...
def wals_kernels() -> str: ...
