"""Two augmented views of one batch, the input of every contrastive / siamese objective.

``TwoViews(pipeline)`` applies the same pipeline twice with independent randomness (CURL, SimCLR,
MoCo); ``TwoViews(first, second)`` uses a different pipeline per view (BYOL's asymmetric views, where
only the second view is solarized). Both views are drawn from the same ``generator``, first view first.
"""

from __future__ import annotations

import torch

from ssl_shared.augment.compose import Compose, Op

Params = dict[str, torch.Tensor]


class TwoViews:
    """``views = TwoViews(pipeline)(x, generator=g)`` -> ``(view_1, view_2)``."""

    def __init__(self, first: Op, second: Op | None = None) -> None:
        self.first = Compose([first])
        self.second = Compose([second if second is not None else first])

    def __call__(
        self, x: torch.Tensor, *, generator: torch.Generator | None = None, return_params: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor] | tuple[tuple[torch.Tensor, torch.Tensor], tuple[Params, Params]]:
        """With ``return_params=True`` returns ``((view_1, view_2), (params_1, params_2))``."""
        view_1, params_1 = self.first(x, generator=generator, return_params=True)
        view_2, params_2 = self.second(x, generator=generator, return_params=True)
        if return_params:
            return (view_1, view_2), (_strip(params_1), _strip(params_2))
        return view_1, view_2


def _strip(params: Params) -> Params:
    """Drop the ``"0."`` prefix the one-op Compose wrapper adds."""
    return {key.split(".", 1)[1]: value for key, value in params.items()}
