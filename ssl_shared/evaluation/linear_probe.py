"""Linear probes on frozen features.

- Classification: multinomial logistic regression, ``min_W,b  CE(W f + b, y) + (wd / 2) ||W||^2``,
  solved full-batch with L-BFGS on standardised features; reports top-1 accuracy on the test set.
- Regression (e.g. physical state from pixels): ridge regression in closed form on standardised
  features, ``W = (F^T F + lambda I)^-1 F^T Y``; reports ``R^2`` averaged over target dimensions,
  ``R^2_j = 1 - sum_i (y_ij - yhat_ij)^2 / sum_i (y_ij - mean_j)^2``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _standardise(train: torch.Tensor, test: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    mean, std = train.mean(0), train.std(0).clamp_min(1e-6)
    return (train - mean) / std, (test - mean) / std


def _check(train_x: torch.Tensor, train_y: torch.Tensor, test_x: torch.Tensor, test_y: torch.Tensor) -> None:
    if train_x.ndim != 2 or test_x.ndim != 2 or train_x.shape[1] != test_x.shape[1]:
        raise ValueError(f"features must be (N, D) with equal D, got {tuple(train_x.shape)} and {tuple(test_x.shape)}")
    if train_x.shape[0] != train_y.shape[0] or test_x.shape[0] != test_y.shape[0]:
        raise ValueError(
            f"features and targets differ in length: {train_x.shape[0]} vs {train_y.shape[0]}, "
            f"{test_x.shape[0]} vs {test_y.shape[0]}"
        )


def linear_probe_classification(
    train_x: torch.Tensor,
    train_y: torch.Tensor,
    test_x: torch.Tensor,
    test_y: torch.Tensor,
    weight_decay: float = 1e-3,
    max_iter: int = 200,
) -> float:
    """Test accuracy (0..1) of an L2-regularised softmax regression trained on ``train_x``."""
    _check(train_x, train_y, test_x, test_y)
    train_x, test_x = _standardise(train_x.double(), test_x.double())
    num_classes = int(max(train_y.max(), test_y.max())) + 1
    W = torch.zeros(train_x.shape[1], num_classes, dtype=torch.float64, requires_grad=True)
    b = torch.zeros(num_classes, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([W, b], max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = F.cross_entropy(train_x @ W + b, train_y.long()) + 0.5 * weight_decay * (W**2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        return float(((test_x @ W + b).argmax(1) == test_y.long()).double().mean())


def r2_per_dimension(y_true: torch.Tensor, y_pred: torch.Tensor) -> torch.Tensor:
    """``R^2_j`` of every target dimension (float64); NaN where the target is constant (``R^2`` undefined)."""
    y_true, y_pred = y_true.double().reshape(len(y_true), -1), y_pred.double().reshape(len(y_pred), -1)
    ss_res = ((y_true - y_pred) ** 2).sum(0)
    ss_tot = ((y_true - y_true.mean(0)) ** 2).sum(0)
    valid = ss_tot > 1e-12
    return torch.where(valid, 1 - ss_res / torch.where(valid, ss_tot, 1.0), float("nan"))


def r2_score(y_true: torch.Tensor, y_pred: torch.Tensor) -> float:
    """Coefficient of determination averaged over target dimensions (constant targets are skipped)."""
    per_dim = r2_per_dimension(y_true, y_pred)
    valid = ~torch.isnan(per_dim)
    if not valid.any():
        raise ValueError("every target dimension is constant: R^2 is undefined")
    return float(per_dim[valid].mean())


def ridge_predictions(
    train_x: torch.Tensor, train_y: torch.Tensor, test_x: torch.Tensor, ridge: float = 1e-2
) -> torch.Tensor:
    """Ridge regression fitted on ``(train_x, train_y)``, evaluated at ``test_x`` (float64, ``(N_test, targets)``).

    Features are standardised with the training mean and std, the targets centred; the penalty is
    ``ridge * N_train``, i.e. ``W = (F^T F + ridge * N I)^-1 F^T (Y - mean(Y))``.
    """
    if ridge < 0:
        raise ValueError(f"ridge must be >= 0, got {ridge}")
    train_x, test_x = _standardise(train_x.double(), test_x.double())
    y = train_y.double().reshape(len(train_y), -1)
    y_mean = y.mean(0)
    gram = train_x.T @ train_x + ridge * len(train_x) * torch.eye(train_x.shape[1], dtype=torch.float64)
    W = torch.linalg.solve(gram, train_x.T @ (y - y_mean))
    return test_x @ W + y_mean


def linear_probe_regression(
    train_x: torch.Tensor, train_y: torch.Tensor, test_x: torch.Tensor, test_y: torch.Tensor, ridge: float = 1e-2
) -> float:
    """Test ``R^2`` of ridge regression from features to (multi-dimensional) targets."""
    _check(train_x, train_y, test_x, test_y)
    return r2_score(test_y, ridge_predictions(train_x, train_y, test_x, ridge))
