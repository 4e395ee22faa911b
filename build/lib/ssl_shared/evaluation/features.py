"""Run a frozen encoder over a dataset."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset


@torch.no_grad()
def extract_features(
    encoder: nn.Module, dataset: Dataset, batch_size: int = 256, device: torch.device | str = "cpu"
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(features (N, D), labels (N, ...))`` of every item, in dataset order, with the encoder in eval mode."""
    was_training = encoder.training
    encoder.eval()
    feats, labels = [], []
    for batch in DataLoader(dataset, batch_size=batch_size, shuffle=False):
        feats.append(encoder(batch["image"].to(device)).float().cpu())
        labels.append(torch.as_tensor(batch["label"]))
    encoder.train(was_training)
    return torch.cat(feats), torch.cat(labels)
