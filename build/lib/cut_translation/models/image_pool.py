"""History buffer of generated images for the discriminator (Shrivastava et al. 2017; CycleGAN ``--pool_size 50``).

:meth:`ImagePool.query` takes a batch of fakes and returns a batch of the same size. While the pool
holds fewer than ``size`` images, every incoming image is stored and returned. Once full, each
incoming image is, with probability 1/2, swapped with a uniformly chosen stored image (the stored one
is returned, the new one takes its place); otherwise the incoming image is returned and the pool is
unchanged. ``size = 0`` disables the pool (the input is returned as is).
"""

from __future__ import annotations

import torch


class ImagePool:
    """Fixed-size buffer of detached images; randomness from ``torch`` (pass a generator to control it)."""

    def __init__(self, size: int = 50) -> None:
        if size < 0:
            raise ValueError(f"pool size must be >= 0, got {size}")
        self.size = size
        self.images: list[torch.Tensor] = []

    def query(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        if self.size == 0:
            return images
        out = []
        for image in images.detach():
            image = image.unsqueeze(0)
            if len(self.images) < self.size:
                self.images.append(image.clone())
                out.append(image)
            elif torch.rand((), generator=generator).item() < 0.5:
                slot = int(torch.randint(len(self.images), (), generator=generator).item())
                out.append(self.images[slot].to(image.device, copy=True))  # stored ones may be on the CPU
                self.images[slot] = image.clone()
            else:
                out.append(image)
        return torch.cat(out, 0)

    def state_dict(self) -> dict:
        return {"size": self.size, "images": [im.cpu() for im in self.images]}

    def load_state_dict(self, state: dict) -> None:
        """Images of a checkpoint (on the CPU); ``query`` moves each to the device of the batch it joins."""
        if state["size"] != self.size:
            raise ValueError(f"pool size mismatch: checkpoint {state['size']}, model {self.size}")
        self.images = [im.clone() for im in state["images"]]
