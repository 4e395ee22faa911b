"""Fine-tuning: a linear classifier on top of the encoder, everything trained with cross-entropy."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset


def finetune_classifier(
    encoder: nn.Module,
    feature_dim: int,
    train: Dataset,
    test: Dataset,
    num_classes: int,
    epochs: int = 5,
    lr: float = 1e-3,
    batch_size: int = 64,
    device: torch.device | str = "cpu",
    seed: int = 0,
) -> float:
    """Fine-tune ``encoder`` + a new linear head on ``train``; return test accuracy (0..1).
    The encoder is modified in place (pass a copy to keep the original)."""
    torch.manual_seed(seed)
    head = nn.Linear(feature_dim, num_classes).to(device)
    params = list(encoder.parameters()) + list(head.parameters())
    opt = torch.optim.Adam(params, lr=lr)
    loader = DataLoader(train, batch_size=batch_size, shuffle=True, generator=torch.Generator().manual_seed(seed))
    encoder.train()
    for _ in range(epochs):
        for batch in loader:
            logits = head(encoder(batch["image"].to(device)))
            loss = F.cross_entropy(logits, torch.as_tensor(batch["label"]).to(device))
            opt.zero_grad()
            loss.backward()
            opt.step()
    encoder.eval()
    correct = total = 0
    with torch.no_grad():
        for batch in DataLoader(test, batch_size=256):
            pred = head(encoder(batch["image"].to(device))).argmax(1).cpu()
            correct += int((pred == torch.as_tensor(batch["label"])).sum())
            total += pred.numel()
    return correct / total
