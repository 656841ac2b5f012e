"""What the machine can do, measured in the same run as a benchmark (not a benchmark itself)."""

from __future__ import annotations

import time


def matmul_gflops(m: int, k: int, n: int, seconds: float = 1.0) -> float:
    """Measured fp32 GFLOP/s of ``(m, k) @ (k, n)`` with torch on this machine (CPU threads as
    torch has them), repeated for about ``seconds``."""
    import torch

    a = torch.randn(m, k)
    b = torch.randn(k, n)
    a @ b  # warm-up
    reps, t0 = 0, time.perf_counter()
    while True:
        a @ b
        reps += 1
        elapsed = time.perf_counter() - t0
        if elapsed >= seconds and reps >= 3:
            return 2.0 * m * k * n * reps / elapsed / 1e9
