"""PatchNCE, the patch-wise contrastive loss of CUT (Park, Efros, Zhang & Zhu 2020, ECCV, eq. 2-3).

``feat_q`` holds features of ``N`` sampled locations of the *output* image ``G(x)`` (queries),
``feat_k`` the features of the *same* ``N`` locations of the *input* image ``x`` (keys). A query's
positive is the key at the same location; the negatives are the keys at the other locations::

    l(v, v+, v-) = -log( exp(v.v+ / tau) / (exp(v.v+ / tau) + sum_n exp(v.v-_n / tau)) )
    L_PatchNCE  = mean over the B * N queries of l

``negatives="image"`` (CUT's default): the other ``N - 1`` locations of the same image.
``negatives="batch"`` (CUT's ``--nce_includes_all_negatives_from_minibatch``, used by SinCUT): the
other ``B * N - 1`` locations of the whole batch.

Keys are detached: gradients flow only through the query (output-image) path, as in CUT. Features are
used as given; CUT L2-normalises them in its patch-sampling MLP. Default ``tau = 0.07`` (CUT's
``--nce_T``). CUT computes the positive logit separately and writes -10 on the diagonal of the
same-image logits so that ``exp(-10 / tau)`` is negligible; here the positive simply sits on the
diagonal of one cross-entropy, the exact form of the equation above.
"""

from __future__ import annotations

from torch import Tensor, nn

from ssl_shared.losses._checks import check_choice, check_positive, check_rank, check_same_shape
from ssl_shared.losses.info_nce import info_nce_loss

PATCH_NEGATIVE_MODES = ("image", "batch")


def patch_nce_loss(feat_q: Tensor, feat_k: Tensor, temperature: float = 0.07, negatives: str = "image") -> Tensor:
    """PatchNCE loss, mean over all ``B * N`` query patches.

    Args:
        feat_q: (B, N, C) query features from the output image.
        feat_k: (B, N, C) key features from the input image at the same locations (detached inside).
        temperature: ``tau`` > 0.
        negatives: ``"image"`` (N - 1 negatives) or ``"batch"`` (B * N - 1 negatives).
    """
    check_rank("feat_q", feat_q, 3)
    check_same_shape("feat_q", feat_q, "feat_k", feat_k)
    if feat_q.shape[0] == 0 or feat_q.shape[1] == 0:
        raise ValueError(f"feat_q needs at least one image and one location, got shape {tuple(feat_q.shape)}")
    check_positive("temperature", temperature)
    check_choice("negatives", negatives, PATCH_NEGATIVE_MODES)
    feat_k = feat_k.detach()
    if negatives == "image":
        return info_nce_loss(feat_q, feat_k, critic="dot", temperature=temperature, negatives="same_image")
    channels = feat_q.shape[-1]
    return info_nce_loss(
        feat_q.reshape(-1, channels),
        feat_k.reshape(-1, channels),
        critic="dot",
        temperature=temperature,
        negatives="batch",
    )


class PatchNCELoss(nn.Module):
    """Module form of :func:`patch_nce_loss` (Park et al. 2020)."""

    def __init__(self, temperature: float = 0.07, negatives: str = "image") -> None:
        super().__init__()
        check_positive("temperature", temperature)
        check_choice("negatives", negatives, PATCH_NEGATIVE_MODES)
        self.temperature = temperature
        self.negatives = negatives

    def forward(self, feat_q: Tensor, feat_k: Tensor) -> Tensor:
        return patch_nce_loss(feat_q, feat_k, self.temperature, self.negatives)
