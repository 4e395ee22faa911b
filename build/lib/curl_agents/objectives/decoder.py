"""The SAC-AE pixel decoder: a transposed-convolution mirror of ``ssl_shared``'s ``PixelEncoder``
(Yarats et al. 2019, "Improving Sample Efficiency in Model-Free RL from Images", Sec. 6)."""

from __future__ import annotations

import torch
from torch import nn

from curl_agents.policies import init_weights


class PixelDecoder(nn.Module):
    """Maps a feature vector back to an image of the encoder's input shape:

        z -> Linear -> (F, h', w') -> ReLU -> [deconv3x3(F, stride 1) -> ReLU] x (L - 1)
          -> deconv3x3(C, stride 2, output_padding)

    where ``(F, h', w')`` is the encoder's conv output and ``L`` its number of conv layers; the
    last layer's ``output_padding`` (0 or 1) restores the exact input height and width lost by the
    stride-2 convolution's floor. The output is linear (no squashing), as in SAC-AE. Initialised as
    SAC-AE initialises its decoder (``sac_ae.py``: ``decoder.apply(weight_init)``): orthogonal linear
    layer, delta-orthogonal transposed convolutions, zero biases.
    """

    def __init__(
        self,
        obs_shape: tuple[int, int, int],
        conv_output_shape: tuple[int, int, int],
        num_layers: int,
        feature_dim: int,
    ) -> None:
        super().__init__()
        channels, height, width = obs_shape
        filters, h, w = conv_output_shape
        if num_layers < 1:
            raise ValueError(f"num_layers must be >= 1, got {num_layers}")
        self.obs_shape = tuple(obs_shape)
        self.conv_output_shape = tuple(conv_output_shape)
        self.fc = nn.Linear(feature_dim, filters * h * w)
        self.deconvs = nn.ModuleList(nn.ConvTranspose2d(filters, filters, 3, stride=1) for _ in range(num_layers - 1))
        h, w = h + 2 * (num_layers - 1), w + 2 * (num_layers - 1)
        pad_h, pad_w = height - (2 * (h - 1) + 3), width - (2 * (w - 1) + 3)
        if pad_h not in (0, 1) or pad_w not in (0, 1):
            raise ValueError(
                f"conv_output_shape {conv_output_shape} with {num_layers} layers does not mirror obs_shape {obs_shape} "
                "(expected a 3x3 stride-2 conv followed by 3x3 stride-1 convs, no padding)"
            )
        self.last = nn.ConvTranspose2d(filters, channels, 3, stride=2, output_padding=(pad_h, pad_w))
        self.apply(init_weights)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.fc(z)).view(z.shape[0], *self.conv_output_shape)
        for deconv in self.deconvs:
            x = torch.relu(deconv(x))
        return self.last(x)
