"""What the runtime raises and warns: one exception class for bad input, one warning for Δt
clamping, so a control loop can catch exactly what it expects."""

from __future__ import annotations


class BadInputError(ValueError):
    """An observation, Δt or timestamp the runner refuses: wrong shape or dtype, NaN or inf in the
    observation, Δt <= 0 or non-finite, a timestamp that does not advance. The message names what
    was wrong (and the rows, for a batch). ``rows`` lists the offending batch rows (all rows for
    a shape or dtype error). A ``ValueError``, so generic handlers still catch it."""

    def __init__(self, message: str, rows: "tuple[int, ...]" = ()) -> None:
        super().__init__(message)
        self.rows = tuple(int(r) for r in rows)


class NonFiniteOutputError(ArithmeticError):
    """The model produced a non-finite action or state from finite input (diverged weights, or
    an extreme state set by ``set_state``). The state was not updated."""


class DtClampWarning(RuntimeWarning):
    """Δt fell outside the range the policy declares and was clamped (warned once per runner;
    every clamp is counted in ``runner.stats``)."""


__all__ = ["BadInputError", "NonFiniteOutputError", "DtClampWarning"]
