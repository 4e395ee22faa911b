"""Evaluation of frozen (or fine-tuned) encoders: linear probes, k-NN, fine-tuning."""

from ssl_shared.evaluation.features import extract_features
from ssl_shared.evaluation.finetune import finetune_classifier
from ssl_shared.evaluation.knn import knn_classify
from ssl_shared.evaluation.linear_probe import (
    linear_probe_classification,
    linear_probe_regression,
    r2_per_dimension,
    r2_score,
    ridge_predictions,
)

__all__ = [
    "extract_features",
    "finetune_classifier",
    "knn_classify",
    "linear_probe_classification",
    "linear_probe_regression",
    "r2_per_dimension",
    "r2_score",
    "ridge_predictions",
]
