"""The pixel encoder of SAC-AE and CURL (Yarats et al. 2019; Srinivas et al. 2020).

    obs (C, 84, 84) / 255 -> conv3x3(32, stride 2) -> [conv3x3(32, stride 1)] x 3  (ReLU, no padding)
        -> flatten -> Linear(-> feature_dim = 50) -> LayerNorm [-> tanh]

For 84x84 inputs the spatial sizes are 84 -> 41 -> 39 -> 37 -> 35, so the linear layer reads
32 * 35 * 35 = 39,200 features (the bulk of the parameters).
"""

from __future__ import annotations

import torch
from torch import nn


def _conv_out(size: int, stride: int) -> int:
    return (size - 3) // stride + 1


class PixelEncoder(nn.Module):
    """Convolutional encoder for (frame-stacked) images.

    Args:
        obs_shape: ``(C, H, W)`` of the (cropped) observation, e.g. ``(9, 84, 84)``.
        feature_dim: width of the output (CURL/SAC-AE: 50).
        num_layers: number of 3x3 convolutions (the first has stride 2, the others stride 1).
        num_filters: channels of every convolution.
        output_tanh: apply ``tanh`` after the LayerNorm (SAC-AE does; CURL's critic does not).
        channels_last: run the convolutions on NHWC tensors. A memory layout, not a change of the
            function: same outputs up to float rounding order. On CPU (oneDNN) it makes these 3x3
            convolutions' backward ~1.6x faster (``benchmarks/results/curl_throughput_*``); on CUDA it
            is the layout tensor cores prefer. ``False`` keeps PyTorch's default NCHW.

    ``forward`` accepts uint8 or float observations in ``[0, 255]`` and divides by 255 inside.
    ``forward(obs, detach=True)`` stops gradients after the convolutions, so a loss trains the
    linear and LayerNorm layers only (the SAC-AE/CURL actor convention).
    """

    def __init__(
        self,
        obs_shape: tuple[int, int, int],
        feature_dim: int = 50,
        num_layers: int = 4,
        num_filters: int = 32,
        output_tanh: bool = False,
        channels_last: bool = True,
    ) -> None:
        super().__init__()
        if len(obs_shape) != 3:
            raise ValueError(f"obs_shape must be (C, H, W), got {obs_shape}")
        if num_layers < 1 or num_filters < 1 or feature_dim < 1:
            raise ValueError(
                f"num_layers, num_filters and feature_dim must be >= 1, got {num_layers}, {num_filters}, {feature_dim}"
            )
        c, h, w = (int(s) for s in obs_shape)
        strides = [2] + [1] * (num_layers - 1)
        for s in strides:
            h, w = _conv_out(h, s), _conv_out(w, s)
        if h < 1 or w < 1:
            raise ValueError(f"obs_shape {obs_shape} is too small for {num_layers} conv layers")
        self.obs_shape = tuple(int(s) for s in obs_shape)
        self.feature_dim = feature_dim
        self.conv_output_shape = (num_filters, h, w)
        channels = [c] + [num_filters] * num_layers
        self.convs = nn.ModuleList(
            nn.Conv2d(channels[i], channels[i + 1], 3, stride=strides[i]) for i in range(num_layers)
        )
        self.fc = nn.Linear(num_filters * h * w, feature_dim)
        self.ln = nn.LayerNorm(feature_dim)
        self.output_tanh = output_tanh
        self.channels_last = channels_last

    def conv_features(self, obs: torch.Tensor) -> torch.Tensor:
        """The convolutional feature map ``(B, num_filters, h', w')``."""
        if obs.ndim != 4 or tuple(obs.shape[1:]) != self.obs_shape:
            raise ValueError(f"expected observations of shape (B, {self.obs_shape}), got {tuple(obs.shape)}")
        x = obs.float() / 255.0
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        for conv in self.convs:
            x = torch.relu_(conv(x))  # in place: the conv's backward needs its input, not its output
        return x

    def head(self, conv: torch.Tensor) -> torch.Tensor:
        """Linear + LayerNorm (+ tanh) on a conv feature map."""
        z = self.ln(self.fc(conv.flatten(1)))
        return torch.tanh(z) if self.output_tanh else z

    def forward(self, obs: torch.Tensor, detach: bool = False) -> torch.Tensor:
        conv = self.conv_features(obs)
        if detach:
            conv = conv.detach()
        return self.head(conv)


def tie_conv_weights(src: PixelEncoder, dst: PixelEncoder) -> None:
    """Make ``dst``'s convolutions share ``src``'s parameters (the same ``nn.Parameter`` objects).

    Used for the actor, whose convolutions are the critic's (CURL/SAC-AE); its linear layer and
    LayerNorm stay its own.
    """
    if len(src.convs) != len(dst.convs):
        raise ValueError(f"cannot tie {len(src.convs)} conv layers to {len(dst.convs)}")
    for s, d in zip(src.convs, dst.convs):
        assert isinstance(s, nn.Conv2d) and isinstance(d, nn.Conv2d)
        if s.weight.shape != d.weight.shape:
            raise ValueError(f"conv shapes differ: {tuple(s.weight.shape)} vs {tuple(d.weight.shape)}")
        d.weight = s.weight
        d.bias = s.bias
