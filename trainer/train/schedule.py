"""Learning-rate schedule as a pure function of the step."""

from __future__ import annotations

import math


def learning_rate(step: int, total_steps: int, base_lr: float, warmup_steps: int) -> float:
    """Linear warm-up to ``base_lr`` over ``warmup_steps``, then cosine decay to 1% of it.

    Raises
    ------
    ValueError
        If ``total_steps < 1``, ``step < 0`` or ``warmup_steps < 0``.
    """
    if total_steps < 1 or step < 0 or warmup_steps < 0:
        raise ValueError(
            f"bad schedule args step={step}, total={total_steps}, warmup={warmup_steps}")
    if step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return base_lr * (0.01 + 0.99 * 0.5 * (1.0 + math.cos(math.pi * progress)))
