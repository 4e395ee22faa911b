"""Momentum updates, queues, memory banks, encoders, heads and device selection against hand formulas."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ssl_shared.device import get_device
from ssl_shared.encoders import PixelEncoder, SmallResNet, TorchvisionResNet, tie_conv_weights
from ssl_shared.heads import BilinearCritic, PredictionHead, ProjectionHead
from ssl_shared.momentum import MomentumEncoder, copy_weights, cosine_momentum, polyak_update
from ssl_shared.queues import KeyQueue, MemoryBank


def _net() -> nn.Module:
    return nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3))


def test_polyak_update_matches_formula_for_params_and_buffers():
    torch.manual_seed(0)
    online, target = _net(), _net()
    online[1].running_mean.fill_(2.0)
    online[1].num_batches_tracked.fill_(7)
    before = {k: v.clone() for k, v in target.state_dict().items()}
    polyak_update(online, target, tau=0.05)
    for k, v in target.state_dict().items():
        o = online.state_dict()[k]
        if torch.is_floating_point(o):
            torch.testing.assert_close(v, 0.95 * before[k] + 0.05 * o)
        else:
            assert torch.equal(v, o)


def test_polyak_update_rejects_bad_tau_and_structure():
    with pytest.raises(ValueError, match="tau"):
        polyak_update(_net(), _net(), tau=1.5)
    with pytest.raises(ValueError, match="structure"):
        polyak_update(_net(), nn.Linear(4, 3), tau=0.1)


def test_copy_weights_is_exact():
    a, b = _net(), _net()
    copy_weights(a, b)
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert ka == kb and torch.equal(va, vb)


def test_cosine_momentum_endpoints_and_midpoint():
    assert cosine_momentum(0, 100, 0.996) == pytest.approx(0.996)
    assert cosine_momentum(100, 100, 0.996) == pytest.approx(1.0)
    # halfway: cos(pi/2) = 0 -> 1 - 0.004 / 2
    assert cosine_momentum(50, 100, 0.996) == pytest.approx(1 - 0.004 * (math.cos(math.pi / 2) + 1) / 2)
    with pytest.raises(ValueError):
        cosine_momentum(0, 0, 0.9)


def test_momentum_encoder_is_frozen_and_tracks_online():
    online = nn.Linear(3, 2)
    key = MomentumEncoder(online)
    assert all(not p.requires_grad for p in key.parameters())
    x = torch.randn(5, 3, requires_grad=True)
    assert not key(x).requires_grad
    with torch.no_grad():
        online.weight.add_(1.0)
    old = key.module.weight.clone()
    key.update(online, tau=0.25)
    torch.testing.assert_close(key.module.weight, 0.75 * old + 0.25 * online.weight)


def test_key_queue_is_fifo():
    q = KeyQueue(dim=2, size=5)
    first = torch.arange(6.0).reshape(3, 2)
    second = torch.arange(6.0, 14.0).reshape(4, 2)
    q.enqueue(first)
    q.enqueue(second)
    # 7 keys through a queue of 5: slots 0,1 were overwritten by the 4th and 5th... written in order
    expected_order = torch.cat([first, second])  # keys 0..6
    # slot s holds the newest key whose position % 5 == s
    expected = torch.stack(
        [expected_order[5], expected_order[6], expected_order[2], expected_order[3], expected_order[4]]
    )
    assert torch.equal(q.keys, expected)
    assert int(q.ptr) == 7 % 5
    with pytest.raises(ValueError, match="shape"):
        q.enqueue(torch.zeros(2, 3))


def test_memory_bank_ema_and_normalisation():
    bank = MemoryBank(num_samples=6, dim=3, momentum=0.5)
    idx = torch.tensor([1, 4])
    old = bank.get(idx).clone()
    feats = F.normalize(torch.randn(2, 3), dim=1)
    bank.update(idx, feats)
    expected = F.normalize(0.5 * old + 0.5 * feats, dim=1)
    torch.testing.assert_close(bank.get(idx), expected)
    assert bank.sample(10).shape == (10, 3)
    with pytest.raises(ValueError, match="indices"):
        bank.get(torch.tensor([6]))


def test_pixel_encoder_shapes_scaling_and_detach():
    enc = PixelEncoder((9, 84, 84), feature_dim=50)
    # 84 -> 41 -> 39 -> 37 -> 35 (CURL's encoder)
    assert enc.conv_output_shape == (32, 35, 35)
    assert enc.fc.in_features == 39200
    obs = torch.randint(0, 256, (2, 9, 84, 84), dtype=torch.uint8)
    z_uint8 = enc(obs)
    z_float = enc(obs.float())
    torch.testing.assert_close(z_uint8, z_float)
    assert z_uint8.shape == (2, 50)
    # LayerNorm output without tanh: zero mean / unit variance per row (gain 1, bias 0 at init)
    torch.testing.assert_close(z_uint8.mean(1), torch.zeros(2), atol=1e-5, rtol=0)
    enc(obs, detach=True).sum().backward()
    assert enc.convs[0].weight.grad is None and enc.fc.weight.grad is not None
    with pytest.raises(ValueError, match="shape"):
        enc(torch.zeros(2, 3, 84, 84))


def _reference_pixel_encoder(enc: PixelEncoder, obs: torch.Tensor) -> torch.Tensor:
    """The encoder written out with functional NCHW ops (out-of-place ReLU)."""
    x = obs.float() / 255.0
    for i, conv in enumerate(enc.convs):
        x = F.relu(F.conv2d(x, conv.weight, conv.bias, stride=2 if i == 0 else 1))
    return F.layer_norm(
        F.linear(x.reshape(x.shape[0], -1), enc.fc.weight, enc.fc.bias), (enc.feature_dim,), enc.ln.weight, enc.ln.bias
    )


@pytest.mark.parametrize("channels_last", [True, False])
def test_pixel_encoder_layout_is_not_semantics(channels_last):
    """channels_last (NHWC convs, in-place ReLU) computes the NCHW function, and the same gradients."""
    torch.manual_seed(0)
    enc = PixelEncoder((6, 24, 24), feature_dim=10, num_filters=8, channels_last=channels_last)
    obs = torch.randint(0, 256, (3, 6, 24, 24), dtype=torch.uint8)
    out = enc(obs)
    ref = _reference_pixel_encoder(enc, obs)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    weights = [enc.convs[0].weight, enc.convs[-1].weight, enc.fc.weight]
    grads = torch.autograd.grad(out.square().sum(), weights)
    ref_grads = torch.autograd.grad(ref.square().sum(), weights)
    for g, r in zip(grads, ref_grads):
        torch.testing.assert_close(g, r, atol=1e-4, rtol=1e-4)


def test_tie_conv_weights_shares_parameters_not_heads():
    critic, actor = PixelEncoder((3, 20, 20), 8), PixelEncoder((3, 20, 20), 8)
    tie_conv_weights(critic, actor)
    for c, a in zip(critic.convs, actor.convs):
        assert c.weight is a.weight and c.bias is a.bias
    assert actor.fc.weight is not critic.fc.weight


def test_resnets_output_feature_dim():
    assert SmallResNet(3, 16, widths=(8, 16))(torch.randn(2, 3, 32, 32)).shape == (2, 16)
    net = TorchvisionResNet("resnet18", in_channels=1, feature_dim=10)
    assert net(torch.randn(2, 1, 32, 32)).shape == (2, 10)
    with pytest.raises(ValueError, match="resnet"):
        TorchvisionResNet("vgg11")


def test_heads_shapes_and_bilinear_formula():
    x = torch.randn(4, 6)
    assert ProjectionHead(6, 8, 3)(x).shape == (4, 3)
    assert ProjectionHead(6, 8, 3, num_layers=3)(x).shape == (4, 3)
    assert PredictionHead(6, 8, 6)(x).shape == (4, 6)
    critic = BilinearCritic(6)
    a, p = torch.randn(4, 6), torch.randn(4, 6)
    logits = critic(a, p)
    W = critic.W.detach()
    expected = torch.tensor([[float(a[i] @ W @ p[j]) for j in range(4)] for i in range(4)])
    torch.testing.assert_close(logits, expected, rtol=1e-5, atol=1e-5)


def test_get_device():
    assert get_device("cpu") == torch.device("cpu")
    assert get_device("auto").type in ("cpu", "cuda")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA"):
            get_device("cuda")
    with pytest.raises(ValueError):
        get_device("")
