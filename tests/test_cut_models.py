"""Networks and models of cut_translation, checked against hand computations and the CUT code's formulas."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from cut_translation.models import build_model, make_config
from cut_translation.models.cyclegan import CycleGANModel
from cut_translation.models.gan_loss import discriminator_loss, generator_loss
from cut_translation.models.image_pool import ImagePool
from cut_translation.models.patch_sampler import PatchMLPHeads, gather_patches, mirror_locations, sample_locations
from cut_translation.networks import (
    BlurPool,
    BlurUpsample,
    DiscriminatorConfig,
    GeneratorConfig,
    InstanceNorm,
    PatchDiscriminator,
    ResnetGenerator,
    init_weights,
)
from cut_translation.trainer import linear_lr_factor

TINY_G = {"ngf": 8, "n_blocks": 2}
TINY_D = {"ndf": 8}
TINY_LAYERS = (0, 4, 8, 12, 13)


def tiny(name: str, **over):
    base = {"generator": TINY_G, "discriminator": TINY_D}
    if name != "cyclegan":
        base.update(nce_layers=TINY_LAYERS, num_patches=16)
    base.update(over)
    return build_model(name, make_config(name, **base))


def images(n: int, size: int = 32, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, size, size, generator=gen) * 2 - 1


# ---------------------------------------------------------------- networks


def test_generator_output_shape_and_range():
    g = ResnetGenerator(GeneratorConfig(**TINY_G))
    y = g(images(2, 32))
    assert y.shape == (2, 3, 32, 32)
    assert y.abs().max() < 1
    assert ResnetGenerator(GeneratorConfig(ngf=4, n_blocks=1))(images(1, 20)).shape == (1, 3, 20, 20)


def test_generator_default_is_cut_resnet_9blocks():
    g = ResnetGenerator()
    n_params = sum(p.numel() for p in g.parameters())
    assert abs(n_params / 1e6 - 11.378) < 0.001  # CUT code prints G 11.378 M
    d = PatchDiscriminator()
    assert abs(sum(p.numel() for p in d.parameters()) / 1e6 - 2.765) < 0.001  # D 2.765 M


def test_discriminator_is_70px_patchgan_with_30x30_map_at_256():
    d = PatchDiscriminator(DiscriminatorConfig(**TINY_D))
    assert d(torch.zeros(1, 3, 256, 256)).shape == (1, 1, 30, 30)  # CUT code: 1x1x30x30
    # 32 px: conv(k4,p1) 31 -> blur 16 -> 15 -> 8 -> 7 -> 4 -> conv 3 -> conv 2
    assert d(images(2, 32)).shape == (2, 1, 2, 2)


def test_instance_norm_matches_torch_instance_norm():
    x = images(2, 9, seed=11) * 3 + 0.5
    assert torch.allclose(InstanceNorm(3)(x), torch.nn.InstanceNorm2d(3)(x), atol=1e-5)
    out = InstanceNorm(3)(x)
    assert torch.allclose(out.mean(dim=(2, 3)), torch.zeros(2, 3), atol=1e-5)
    assert torch.allclose(out.var(dim=(2, 3), unbiased=False), torch.ones(2, 3), atol=1e-3)


def test_blurpool_is_normalised_low_pass_matching_the_depthwise_filter():
    x = torch.full((1, 2, 10, 10), 0.37)
    assert torch.allclose(BlurPool()(x), torch.full((1, 2, 5, 5), 0.37))
    # Reference: reflect pad 1 + depthwise conv with [1,2,1]x[1,2,1]/16 at stride 2 (CUT's Downsample).
    x = images(2, 15, seed=3)
    a = torch.tensor([1.0, 2.0, 1.0])
    filt = (a[:, None] * a[None, :] / 16).expand(3, 1, 3, 3)
    ref = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="reflect"), filt, stride=2, groups=3)
    out = BlurPool()(x)
    assert out.shape == (2, 3, 8, 8)
    assert torch.allclose(out, ref, atol=1e-6)
    # the highest frequency (a checkerboard) is removed away from the border
    checker = (torch.arange(12)[:, None] + torch.arange(12)[None, :]) % 2 * 2.0 - 1
    assert BlurPool()(checker[None, None])[..., 1:-1, 1:-1].abs().max() < 1e-6


def test_blur_upsample_equals_cut_transposed_filter():
    x = images(2, 7, seed=4)
    # CUT Upsample(filt_size=4): replicate pad 1, conv_transpose with [1,3,3,1]^2/64*4, stride 2,
    # padding 2, crop [1:, 1:] then (even filter) [:-1, :-1].
    a = torch.tensor([1.0, 3.0, 3.0, 1.0])
    filt = (a[:, None] * a[None, :] / 64 * 4).expand(3, 1, 4, 4)
    ref = F.conv_transpose2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), filt, stride=2, padding=2, groups=3)
    ref = ref[:, :, 1:, 1:][:, :, :-1, :-1]
    out = BlurUpsample()(x)
    assert out.shape == ref.shape == (2, 3, 14, 14)
    assert torch.allclose(out, ref, atol=1e-6)


def test_nce_layers_have_documented_shapes_and_channels():
    g = ResnetGenerator(GeneratorConfig(**TINY_G))
    feats = g.encode(images(2, 32), TINY_LAYERS)
    ngf = TINY_G["ngf"]
    expected = [(3, 38, 38), (2 * ngf, 32, 32), (4 * ngf, 16, 16), (4 * ngf, 8, 8), (4 * ngf, 8, 8)]
    assert [tuple(f.shape[1:]) for f in feats] == expected
    assert g.feature_channels(TINY_LAYERS) == [e[0] for e in expected]
    # layer 0 is the reflect-padded input itself
    x = images(1, 32)
    assert torch.equal(g.encode(x, (0,))[0], F.pad(x, (3, 3, 3, 3), mode="reflect"))
    with pytest.raises(ValueError, match="out of range"):
        g.check_nce_layers((0, 4, 16))
    with pytest.raises(ValueError, match="increasing"):
        g.check_nce_layers((4, 0))


def test_forward_with_features_reuses_the_same_pass():
    g = ResnetGenerator(GeneratorConfig(**TINY_G))
    x = images(2, 32)
    out, feats = g.forward_with_features(x, TINY_LAYERS)
    assert torch.allclose(out, g(x), atol=1e-6)
    for a, b in zip(feats, g.encode(x, TINY_LAYERS)):
        assert torch.allclose(a, b, atol=1e-6)


def test_init_normal_and_xavier_scale():
    conv = torch.nn.Conv2d(64, 64, 3)
    init_weights(conv, "normal", 0.02)
    assert abs(conv.weight.std().item() - 0.02) < 0.002 and conv.bias.abs().max() == 0
    init_weights(conv, "xavier", 0.02)
    fan = 64 * 9
    assert abs(conv.weight.std().item() - 0.02 * math.sqrt(2 / (fan + fan))) < 2e-5
    with pytest.raises(ValueError, match="--init-type"):
        init_weights(conv, "uniform")


# ---------------------------------------------------------------- PatchNCE sampling


def test_gather_patches_matches_explicit_loop():
    feat = torch.randn(2, 5, 4, 6)
    ids = torch.tensor([0, 7, 23, 13])
    out = gather_patches(feat, ids)
    assert out.shape == (2, 4, 5)
    for b in range(2):
        for n, i in enumerate(ids.tolist()):
            assert torch.equal(out[b, n], feat[b, :, i // 6, i % 6])
    assert torch.equal(gather_patches(feat.contiguous(memory_format=torch.channels_last), ids), out)
    per_image = torch.tensor([[0, 7, 23, 13], [5, 6, 1, 18]])  # one set of locations per image
    out = gather_patches(feat, per_image)
    for b in range(2):
        for n, i in enumerate(per_image[b].tolist()):
            assert torch.equal(out[b, n], feat[b, :, i // 6, i % 6])
    with pytest.raises(ValueError, match="ids must be"):
        gather_patches(feat, per_image[:1])


def test_mirrored_locations_read_the_flipped_map():
    feat = torch.randn(2, 3, 5, 7)
    ids = sample_locations(5, 7, 20, feat.device, torch.Generator().manual_seed(0))
    assert torch.equal(gather_patches(feat.flip(3), ids), gather_patches(feat, mirror_locations(ids, 7)))
    assert mirror_locations(torch.tensor([0, 6, 7, 10]), 7).tolist() == [6, 0, 13, 10]  # (y, x) -> (y, 6 - x)


def test_query_and_key_patches_share_locations():
    """Each group (x -> G(x), y -> G(y)) reads queries and keys at the same locations, its own per group."""
    torch.manual_seed(0)
    model = tiny("cut")
    x, y = images(2, 32, seed=1), images(2, 32, seed=2)
    kfeats, qfeats = model.netG.encode(x, TINY_LAYERS), model.netG.encode(y, TINY_LAYERS)
    seen = []

    def spy(patches):
        seen.append([p.detach().clone() for p in patches])
        return [p.mean(-1, keepdim=True).expand(*p.shape[:2], 4) for p in patches]

    model.netF.forward = spy
    model.generator.manual_seed(0)
    model.nce_losses(qfeats, kfeats, flipped=False, groups=2)
    keys, queries = seen
    model.generator.manual_seed(0)  # the same draws: group 1's layers, then group 2's
    m = model.config.num_patches
    drawn = [[sample_locations(f.shape[2], f.shape[3], m, f.device, model.generator) for f in kfeats] for _ in range(2)]
    for layer, (f_k, f_q) in enumerate(zip(kfeats, qfeats)):
        w = f_k.shape[3]
        for b in range(2):
            i = drawn[b][layer]
            assert len(set(i.tolist())) == len(i) == min(m, f_k.shape[2] * w)  # distinct; all when small
            for n in (0, len(i) - 1):
                yy, xx = divmod(int(i[n]), w)
                assert torch.equal(keys[layer][b, n], f_k[b, :, yy, xx])
                assert torch.equal(queries[layer][b, n], f_q[b, :, yy, xx])


def test_mlp_heads_shapes_and_unit_norm():
    heads = PatchMLPHeads([3, 16], out_dim=12)
    out = heads([torch.randn(2, 5, 3), torch.randn(2, 5, 16)])
    assert [o.shape for o in out] == [(2, 5, 12), (2, 5, 12)]
    for o in out:
        assert torch.allclose(o.norm(dim=-1), torch.ones(2, 5), atol=1e-5)
    assert len(heads.mlps[0]) == 3 and heads.mlps[0][0].in_features == 3  # Linear -> ReLU -> Linear


def test_cut_nce_loss_low_for_matching_and_log_n_for_uninformative_keys():
    torch.manual_seed(0)
    model = tiny("cut")
    feats = model.netG.encode(images(1, 32, seed=0), TINY_LAYERS)
    model.generator.manual_seed(0)
    same = model.nce_loss(feats, [f.detach() for f in feats], flipped=False).item()
    # keys equal at every location: all 16 logits of a query tie, so each layer's loss is exactly log(16)
    flat = [torch.ones_like(f) * f.mean(dim=(2, 3), keepdim=True) for f in feats]
    tied = model.nce_loss(feats, [f.detach() for f in flat], flipped=False).item()
    assert tied == pytest.approx(math.log(16), rel=1e-5)
    assert same < 0.5 * math.log(16)  # a query equal to its key is far below chance


# ---------------------------------------------------------------- losses


def test_gan_losses_hand_formulas():
    real = torch.tensor([[0.9, 0.4]])
    fake = torch.tensor([[0.2, -0.5]])
    ls = 0.5 * (((0.9 - 1) ** 2 + (0.4 - 1) ** 2) / 2 + (0.2**2 + 0.5**2) / 2)
    assert discriminator_loss(real, fake, "lsgan").item() == pytest.approx(ls, rel=1e-6)
    assert generator_loss(fake, "lsgan").item() == pytest.approx(((0.2 - 1) ** 2 + (-0.5 - 1) ** 2) / 2, rel=1e-6)

    def softplus(v):
        return math.log1p(math.exp(v))

    van = 0.5 * ((softplus(-0.9) + softplus(-0.4)) / 2 + (softplus(0.2) + softplus(-0.5)) / 2)
    assert discriminator_loss(real, fake, "vanilla").item() == pytest.approx(van, rel=1e-6)
    assert generator_loss(fake, "vanilla").item() == pytest.approx((softplus(-0.2) + softplus(0.5)) / 2, rel=1e-6)
    hinge = 0.5 * ((0.1 + 0.6) / 2 + (1.2 + 0.5) / 2)
    assert discriminator_loss(real, fake, "hinge").item() == pytest.approx(hinge, rel=1e-6)
    assert generator_loss(fake, "hinge").item() == pytest.approx(0.15, rel=1e-6)
    with pytest.raises(ValueError, match="gan_mode"):
        generator_loss(fake, "wgan")


def test_cyclegan_loss_terms_by_hand():
    torch.manual_seed(0)
    model: CycleGANModel = tiny("cyclegan")
    a, b = images(1, 32, seed=5), images(1, 32, seed=6)
    losses, fake_b, fake_a = model.generator_losses(a, b)
    with torch.no_grad():
        gb_ga = model.netG_B(model.netG_A(a))
        ga_gb = model.netG_A(model.netG_B(b))
        assert losses["cycle_A"].item() == pytest.approx(10 * (gb_ga - a).abs().mean().item(), rel=1e-4)
        assert losses["cycle_B"].item() == pytest.approx(10 * (ga_gb - b).abs().mean().item(), rel=1e-4)
        assert losses["idt_A"].item() == pytest.approx(5 * (model.netG_A(b) - b).abs().mean().item(), rel=1e-4)
        assert losses["idt_B"].item() == pytest.approx(5 * (model.netG_B(a) - a).abs().mean().item(), rel=1e-4)
        d_out = model.netD_A(model.netG_A(a))
        assert losses["G_A"].item() == pytest.approx((d_out - 1).pow(2).mean().item(), rel=1e-4)
    assert torch.allclose(fake_b, model.netG_A(a), atol=1e-5)


def test_image_pool_semantics():
    pool = ImagePool(3)
    first = torch.arange(3.0).view(3, 1, 1, 1)
    assert torch.equal(pool.query(first), first)  # filling: returned as is, all stored
    assert len(pool.images) == 3
    gen = torch.Generator().manual_seed(0)
    seen = {0.0, 1.0, 2.0}
    for step in range(20):
        new = torch.full((2, 1, 1, 1), 10.0 + step)
        before = {float(im) for im in pool.images}
        out = pool.query(new, gen)
        assert out.shape == new.shape and len(pool.images) == 3
        for value in out.flatten().tolist():
            assert value == 10.0 + step or value in before  # the new image or a stored one
        seen |= {float(im) for im in pool.images}
    assert max(seen) > 12  # newer images entered the pool
    assert torch.equal(ImagePool(0).query(new), new)
    with pytest.raises(ValueError, match="pool size"):
        ImagePool(-1)


def test_image_pool_restored_from_a_checkpoint_serves_batches_on_another_device():
    """A pool loaded from a checkpoint holds CPU tensors; a training batch on another device (here ``meta``,
    standing in for a GPU) gets them on its own device."""
    pool = ImagePool(2)
    pool.load_state_dict({"size": 2, "images": [torch.zeros(1, 3, 4, 4), torch.ones(1, 3, 4, 4)]})
    out = pool.query(torch.zeros(8, 3, 4, 4, device="meta"), torch.Generator().manual_seed(0))
    assert out.shape == (8, 3, 4, 4) and out.device.type == "meta"


# ---------------------------------------------------------------- presets, schedule, steps


def test_presets_follow_cut_code_options():
    cut, fast = make_config("cut"), make_config("fastcut")
    assert (cut.lambda_nce, cut.nce_idt, cut.flip_equivariance, cut.n_epochs, cut.n_epochs_decay) == (
        1.0,
        True,
        False,
        200,
        200,
    )
    assert (fast.lambda_nce, fast.nce_idt, fast.flip_equivariance, fast.n_epochs, fast.n_epochs_decay) == (
        10.0,
        False,
        True,
        150,
        50,
    )
    assert cut.nce_layers == (0, 4, 8, 12, 16) and cut.num_patches == 256 and cut.nce_temperature == 0.07
    assert cut.init_type == "xavier" and make_config("cyclegan").init_type == "normal"
    cyc = make_config("cyclegan")
    assert (cyc.lambda_cycle, cyc.lambda_identity, cyc.pool_size) == (10.0, 0.5, 50)
    with pytest.raises(ValueError, match="--nce-negatives"):
        make_config("cut", nce_negatives="queue")
    with pytest.raises(ValueError, match="--model: unknown value .munit."):
        make_config("munit")


def test_linear_lr_schedule_hand_values():
    # 1 - max(0, e + 1 - n) / (d + 1) with n = 3, d = 2
    assert [linear_lr_factor(e, 3, 2) for e in range(5)] == pytest.approx([1, 1, 1, 2 / 3, 1 / 3])
    assert linear_lr_factor(199, 200, 200) == 1.0
    assert linear_lr_factor(200, 200, 200) == pytest.approx(200 / 201)
    assert linear_lr_factor(399, 200, 200) == pytest.approx(1 / 201)


@pytest.mark.parametrize("name", ["cut", "fastcut", "cyclegan"])
def test_train_step_updates_and_is_finite(name):
    torch.manual_seed(0)
    model = tiny(name)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.generator.manual_seed(1)
    losses = model.train_step(images(1, 32, 1), images(1, 32, 2))
    assert all(math.isfinite(v) for v in losses.values())
    changed = [k for k, v in model.state_dict().items() if not torch.equal(v, before[k])]
    assert any(k.startswith(("netG", "netG_A")) for k in changed) and any(k.startswith("netD") for k in changed)
    if name == "cut":
        assert {"D", "G_GAN", "NCE", "NCE_Y", "G"} <= set(losses)
        assert any(k.startswith("netF") for k in changed)
    if name == "fastcut":
        assert "NCE_Y" not in losses


def _patch_nce_by_hand(model, query_feats, key_feats, generator: torch.Generator) -> float:
    """lambda_NCE * mean over layers of PatchNCE, written out (Park et al. 2020, eq. 2, arXiv 2007.15651):
    per layer, num_patches locations drawn as the CUT code does (a random permutation of H*W), the same for
    query and key; each patch through the layer's MLP and L2-normalised; for query n of image b,
    -log softmax_m(q_bn . k_bm / tau)[n] over the image's own patches m; mean over patches and images."""
    c = model.config
    per_layer = []
    for layer, (q_map, k_map) in enumerate(zip(query_feats, key_feats)):
        height, width = k_map.shape[2:]
        ids = torch.randperm(height * width, generator=generator)[: c.num_patches]
        rows, cols = ids // width, ids % width
        q = q_map[:, :, rows, cols].transpose(1, 2)  # (B, N, C): indexing, not the model's gather
        k = k_map[:, :, rows, cols].transpose(1, 2).detach()
        mlp = model.netF.mlps[layer]
        q, k = torch.nn.functional.normalize(mlp(q), dim=-1), torch.nn.functional.normalize(mlp(k), dim=-1)
        logits = torch.einsum("bnc,bmc->bnm", q, k) / c.nce_temperature
        log_softmax = logits - torch.logsumexp(logits, dim=2, keepdim=True)
        per_layer.append(-torch.diagonal(log_softmax, dim1=1, dim2=2).mean())
    return float(c.lambda_nce * torch.stack(per_layer).mean())


def test_cut_generator_loss_matches_reference_recipe():
    """G loss = lsgan(D(G(x))) + 0.5 * (NCE_X + NCE_Y) with PatchNCE written out in the test, keys from
    separate encoder passes of x and y (the CUT code), locations drawn for x's layers, then y's."""
    torch.manual_seed(0)
    model = tiny("cut")
    x, y = images(1, 32, 7), images(1, 32, 8)
    with torch.no_grad():  # the reference: the generator before the step, and the same draws
        fake = model.netG(torch.cat([x, y]))
        draws = torch.Generator().manual_seed(3)
        nce_x = _patch_nce_by_hand(
            model, model.netG.encode(fake[:1], TINY_LAYERS), model.netG.encode(x, TINY_LAYERS), draws
        )
        nce_y = _patch_nce_by_hand(
            model, model.netG.encode(fake[1:], TINY_LAYERS), model.netG.encode(y, TINY_LAYERS), draws
        )
    d_before = {k: v.clone() for k, v in model.netD.state_dict().items()}
    model.generator.manual_seed(3)
    losses = model.train_step(x, y)
    assert losses["NCE"] == pytest.approx(nce_x, rel=1e-4)
    assert losses["NCE_Y"] == pytest.approx(nce_y, rel=1e-4)
    # D was updated before the G step: recompute G_GAN with the updated D
    assert any(not torch.equal(v, d_before[k]) for k, v in model.netD.state_dict().items())
    assert losses["G"] == pytest.approx(losses["G_GAN"] + 0.5 * (losses["NCE"] + losses["NCE_Y"]), rel=1e-5)


def test_flipped_queries_read_at_mirrored_locations_equal_flipping_back():
    """FastCUT: reading G(flip(x))'s maps at mirrored locations == flipping them back, then reading (the CUT code)."""
    torch.manual_seed(0)
    model = tiny("fastcut")
    x = images(1, 32, seed=4)
    keys = model.netG.encode(x, TINY_LAYERS)
    queries = model.netG.encode(model.netG(x.flip(3)), TINY_LAYERS)
    model.generator.manual_seed(5)
    mirrored = model.nce_loss(queries, keys, flipped=True)
    model.generator.manual_seed(5)
    flipped_back = model.nce_loss([q.flip(3) for q in queries], keys, flipped=False)
    assert mirrored.item() == pytest.approx(flipped_back.item(), rel=1e-6)
