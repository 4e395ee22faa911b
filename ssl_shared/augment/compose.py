"""Chaining ops: ``Compose`` runs ops in sequence, ``RandomApply`` applies one op to a random subset.

An op is any callable ``op(x, **kwargs)``. Random ops accept ``generator=`` and ``return_params=``;
deterministic ones (``center_crop``, ``solarize``, ``sobel``) do not, and are called without them.
Which keywords an op accepts is read once from its signature, so ``functools.partial`` works for
setting arguments: ``Compose([partial(random_crop, size=84), partial(color_jitter, hue=0.1)])``.

Params of a pipeline are one flat dict: ``Compose`` prefixes each op's keys with its position
(``"0.top"``, ``"1.applied"``, ``"1.brightness"``), ``RandomApply`` adds ``"applied"``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence

import torch

from ssl_shared.augment._common import bernoulli, check_images, check_probability, per_sample

Params = dict[str, torch.Tensor]
Op = Callable[..., torch.Tensor | tuple[torch.Tensor, Params]]


def _accepts(op: Op, keyword: str) -> bool:
    """Whether ``op`` takes ``keyword`` (or ``**kwargs``)."""
    try:
        parameters = inspect.signature(op).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.name == keyword or p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters)


class _Step:
    """One op together with the keywords it understands."""

    def __init__(self, op: Op) -> None:
        if not callable(op):
            raise ValueError(f"augmentation ops must be callable, got {op!r}")
        self.op = op
        self.takes_generator = _accepts(op, "generator")
        self.takes_params = _accepts(op, "return_params")

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None) -> tuple[torch.Tensor, Params]:
        kwargs: dict[str, object] = {}
        if self.takes_generator:
            kwargs["generator"] = generator
        if self.takes_params:
            out, params = self.op(x, return_params=True, **kwargs)
            return out, params
        out = self.op(x, **kwargs)
        assert isinstance(out, torch.Tensor)  # an op called without return_params returns the images alone
        return out, {}


class Compose:
    """Apply ``ops`` left to right."""

    def __init__(self, ops: Sequence[Op]) -> None:
        self.steps = [_Step(op) for op in ops]

    def __call__(
        self, x: torch.Tensor, *, generator: torch.Generator | None = None, return_params: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, Params]:
        params: Params = {}
        for index, step in enumerate(self.steps):
            x, step_params = step(x, generator)
            params.update({f"{index}.{key}": value for key, value in step_params.items()})
        return (x, params) if return_params else x

    def __repr__(self) -> str:
        return f"Compose({[step.op for step in self.steps]!r})"


class RandomApply:
    """Apply ``op`` to each sample with probability ``p`` (SimCLR: jitter with p = 0.8).

    The op runs on the whole batch and the result is kept where the per-sample coin says so (no data-
    dependent shapes, so it behaves the same on every device); the op must keep the shape and dtype.
    Params: ``{"applied": (B,) bool}`` plus the op's own params (drawn for every sample).
    """

    def __init__(self, op: Op, p: float = 0.5) -> None:
        self.step = _Step(op)
        self.p = check_probability(p)

    def __call__(
        self, x: torch.Tensor, *, generator: torch.Generator | None = None, return_params: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, Params]:
        b, _, _, _ = check_images(x)
        applied = bernoulli(self.p, b, x, generator)
        changed, op_params = self.step(x, generator)
        if changed.shape != x.shape or changed.dtype != x.dtype:
            raise ValueError(
                f"RandomApply needs an op that keeps shape and dtype; {self.step.op!r} turned "
                f"{tuple(x.shape)} {x.dtype} into {tuple(changed.shape)} {changed.dtype}"
            )
        out = torch.where(per_sample(applied, 4), changed, x)
        return (out, {"applied": applied, **op_params}) if return_params else out

    def __repr__(self) -> str:
        return f"RandomApply({self.step.op!r}, p={self.p})"
