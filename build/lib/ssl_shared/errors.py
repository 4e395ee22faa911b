"""Exception types shared by the three trainers and their command lines.

* :class:`UserError`: the user's input (a flag, a JSON option, a data folder, an image, a checkpoint, an
  output folder) cannot be used. Command lines print its one-line message and exit with
  :data:`EXIT_USER_ERROR` (2, as argparse does), without a traceback. It subclasses ``ValueError`` so
  library callers can keep catching ``ValueError``.
* :class:`NonFiniteLossError`: a loss became NaN or inf. The trainers raise it before the optimizer step
  that would spread it, so the last checkpoint on disk is the last good state; command lines exit with
  :data:`EXIT_NON_FINITE` (3).

Anything else is an internal error and keeps its traceback.
"""

from __future__ import annotations

EXIT_USER_ERROR = 2
EXIT_NON_FINITE = 3


class UserError(ValueError):
    """Bad input from the user; the message is one line naming the flag or file, the value and what is allowed."""


class NonFiniteLossError(FloatingPointError):
    """A loss is NaN or inf; the message names the loss and the step."""

    def __init__(self, loss_name: str, value: float, step: int, where: str = "") -> None:
        self.loss_name = loss_name
        self.value = value
        self.step = step
        suffix = f" ({where})" if where else ""
        super().__init__(f"non-finite {loss_name} ({value}) at step {step}{suffix}; stopped before the optimizer step")
