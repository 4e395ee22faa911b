"""Pretext labels and targets of the SSL methods, checked against slices, hand computations, explicit
loops and published values."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ssl_shared.methods import build_method
from ssl_shared.methods.arrow_of_time import ArrowOfTimeConfig, sample_clips
from ssl_shared.methods.colorization import Colorization
from ssl_shared.methods.context_encoder import central_mask, random_block_mask, random_region_mask
from ssl_shared.methods.contractive_ae import hutchinson_frobenius_sq, jacobian_frobenius_sq
from ssl_shared.methods.counting import counting_loss, downsample2, quadrant_tiles
from ssl_shared.methods.cpc import RowContext, prediction_pairs
from ssl_shared.methods.denoising_ae import DenoisingAutoencoderConfig, corrupt
from ssl_shared.methods.exemplar import surrogate_batch
from ssl_shared.methods.jigsaw import make_puzzle, shuffle_tiles, unshuffle_tiles
from ssl_shared.methods.lab import ABQuantizer, lab_to_rgb, rebalancing_weights, rgb_to_lab
from ssl_shared.methods.mae import masked_patch_loss, patchify, random_patch_mask
from ssl_shared.methods.nce_normaliser import FixedNormaliser
from ssl_shared.methods.patches import grid_tiles, overlapping_grid
from ssl_shared.methods.permutations import maximal_hamming_permutations, min_hamming_distance
from ssl_shared.methods.pixelcnn import ConditionalPixelCNN
from ssl_shared.methods.relative_position import (
    NEIGHBOR_OFFSETS,
    RelativePositionConfig,
    patch_geometry,
    sample_patch_pairs,
)
from ssl_shared.methods.rotation import all_rotations
from ssl_shared.methods.shuffle_and_learn import sample_order_tuples
from ssl_shared.methods.supcon import labels_with_unique_unlabelled
from ssl_shared.methods.tcn import sample_triplet_times
from ssl_shared.methods.vae import gaussian_kl
from ssl_shared.momentum import cosine_momentum


@pytest.fixture(autouse=True)
def single_thread():
    """Tiny tensors: a second intra-op thread only spins on a busy machine."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


class TwoLayerConv(nn.Module):
    """A batch-norm-free backbone, so every sample's code depends on that sample only."""

    def __init__(self, in_channels: int = 3, feature_dim: int = 6) -> None:
        super().__init__()
        self.in_channels, self.feature_dim = in_channels, feature_dim
        self.conv1 = nn.Conv2d(in_channels, 4, 3, 2, 1)
        self.conv2 = nn.Conv2d(4, 8, 3, 2, 1)
        self.fc = nn.Linear(8, feature_dim)

    def forward(self, x):
        h = torch.tanh(self.conv2(torch.tanh(self.conv1(x))))
        return torch.sigmoid(self.fc(h.mean(dim=(2, 3))))


# --- rotation -------------------------------------------------------------------------------------
def test_rotation_labels_match_the_applied_rotation():
    x = torch.rand(3, 2, 5, 5, generator=gen())
    rotated, labels = all_rotations(x)
    assert labels.tolist() == [0] * 3 + [1] * 3 + [2] * 3 + [3] * 3
    for i in range(12):
        expected = torch.rot90(x[i % 3], int(labels[i]), dims=(1, 2))
        torch.testing.assert_close(rotated[i], expected)


# --- jigsaw ---------------------------------------------------------------------------------------
def test_greedy_permutations_maximise_the_minimum_distance_at_every_step():
    perms = maximal_hamming_permutations(12, num_tiles=5, seed=3)
    assert len({tuple(p) for p in perms}) == 12
    assert all(sorted(p) == list(range(5)) for p in perms.tolist())
    everything = list(itertools.permutations(range(5)))

    def dist(a, b):
        return sum(x != y for x, y in zip(a, b))

    for i in range(1, 12):
        achieved = min(dist(perms[i], perms[j]) for j in range(i))
        best = max(min(dist(c, perms[j]) for j in range(i)) for c in everything)
        assert achieved == best


def test_min_hamming_distance_matches_an_explicit_loop():
    perms = maximal_hamming_permutations(10, num_tiles=9, seed=0)
    explicit = min(sum(a != b for a, b in zip(perms[i], perms[j])) for i in range(10) for j in range(i + 1, 10))
    assert min_hamming_distance(perms) == explicit
    assert explicit >= 8  # 10 of 9! permutations can differ in at least 8 of 9 positions


def test_jigsaw_tiles_reassemble_to_the_image_with_the_inverse_permutation():
    x = torch.rand(2, 3, 12, 12, generator=gen())
    tiles, tops, lefts = grid_tiles(x, grid=3, tile=4, random_offsets=False)
    for b in range(2):
        for k in range(9):
            top, left = int(tops[b, k]), int(lefts[b, k])
            assert (top, left) == (4 * (k // 3), 4 * (k % 3))
            torch.testing.assert_close(tiles[b, k], x[b, :, top : top + 4, left : left + 4])
    perms = torch.tensor(maximal_hamming_permutations(2, 9, seed=1))
    shuffled = shuffle_tiles(tiles, perms)
    for b in range(2):
        for k in range(9):  # position k shows tile perms[b, k]
            torch.testing.assert_close(shuffled[b, k], tiles[b, perms[b, k]])
    restored = unshuffle_tiles(shuffled, perms)
    image = restored.view(2, 3, 3, 3, 4, 4).permute(0, 3, 1, 4, 2, 5).reshape(2, 3, 12, 12)
    torch.testing.assert_close(image, x)


def test_jigsaw_puzzle_labels_index_the_permutation_used():
    x = torch.rand(4, 3, 15, 15, generator=gen())
    perms = torch.tensor(maximal_hamming_permutations(6, 9, seed=0))
    puzzle, labels = make_puzzle(x, perms, grid=3, tile=4, generator=gen(5))
    tiles, _, _ = grid_tiles(x, 3, 4, generator=gen(5))  # same draws: same tile offsets
    for b in range(4):
        torch.testing.assert_close(puzzle[b], tiles[b, perms[labels[b]]])


def test_jigsaw_tiles_stay_inside_their_cells():
    x = torch.rand(3, 1, 20, 20, generator=gen())
    _, tops, lefts = grid_tiles(x, grid=3, tile=5, generator=gen(2))
    cell, origin = 6, 1  # 20 // 3 = 6, central 18 px square starts at 1
    k = torch.arange(9)
    assert bool(((tops - origin) // cell == k // 3).all()) and bool(((tops - origin) % cell <= 1).all())
    assert bool(((lefts - origin) // cell == k % 3).all()) and bool(((lefts - origin) % cell <= 1).all())


# --- relative position ----------------------------------------------------------------------------
def test_relative_position_patches_do_not_overlap_and_labels_give_the_direction():
    config = RelativePositionConfig(gap_fraction=0.5, jitter_fraction=0.2)
    patch, gap, jitter = patch_geometry((40, 40), config)
    assert (patch, gap, jitter) == (9, 4, 1)  # 3*9 + 2*4 + 2*1 = 37 <= 40; p = 10 needs 30 + 10 + 4 = 44
    x = torch.rand(64, 3, 40, 40, generator=gen())
    centre, neighbour, labels, boxes = sample_patch_pairs(x, patch, gap, jitter, generator=gen(1))
    assert set(labels.tolist()) == set(range(8))
    for b in range(64):
        (ct, cl), (nt, nl) = boxes[b].tolist()
        torch.testing.assert_close(centre[b], x[b, :, ct : ct + patch, cl : cl + patch])
        torch.testing.assert_close(neighbour[b], x[b, :, nt : nt + patch, nl : nl + patch])
        overlap_rows = min(ct, nt) + patch > max(ct, nt)
        overlap_cols = min(cl, nl) + patch > max(cl, nl)
        assert not (overlap_rows and overlap_cols)
        drow, dcol = NEIGHBOR_OFFSETS[int(labels[b])]
        step = patch + gap
        assert abs((nt - ct) - drow * step) <= 2 * jitter and abs((nl - cl) - dcol * step) <= 2 * jitter


def test_relative_position_rejects_jitter_that_could_overlap():
    with pytest.raises(ValueError, match="cannot overlap"):
        RelativePositionConfig(gap_fraction=0.1, jitter_fraction=0.1)


# --- counting -------------------------------------------------------------------------------------
def test_counting_tiles_downsampling_and_loss_by_hand():
    x = torch.arange(16.0).view(1, 1, 4, 4)
    tiles = quadrant_tiles(x)
    assert tiles[0, :, 0].tolist() == [[[0, 1], [4, 5]], [[2, 3], [6, 7]], [[8, 9], [12, 13]], [[10, 11], [14, 15]]]
    torch.testing.assert_close(downsample2(torch.full((1, 2, 6, 6), 0.3)), torch.full((1, 2, 3, 3), 0.3))
    # t = (1, 2) + (0, 1) + (2, 0) + (1, 1) = (4, 4); c_D = (3, 5): ||c_D - t||^2 = 1 + 1 = 2
    # c_D(y) = (4, 6): ||c_D(y) - t||^2 = 4, max(0, 10 - 4) = 6; second sample: t = 0, c_D = 0, c_D(y) = (3, 0)
    counts_tiles = torch.tensor([[[1.0, 2], [0, 1], [2, 0], [1, 1]], [[0.0, 0], [0, 0], [0, 0], [0, 0]]])
    counts_down = torch.tensor([[3.0, 5], [0, 0]])
    counts_other = torch.tensor([[4.0, 6], [3, 0]])
    loss = counting_loss(counts_down, counts_tiles, counts_other, margin=10.0)
    assert loss.item() == pytest.approx(((2 + 6) + (0 + 1)) / 2)


# --- colorization ---------------------------------------------------------------------------------
def test_lab_round_trip_and_reference_values():
    rgb = torch.rand(2, 3, 5, 5, generator=gen())
    torch.testing.assert_close(lab_to_rgb(rgb_to_lab(rgb)), rgb, atol=1e-4, rtol=0)
    colours = torch.tensor([[1.0, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 1], [0, 0, 0]]).T.reshape(1, 3, 5, 1)
    lab = rgb_to_lab(colours)[0, :, :, 0].T
    # CIE Lab (D65) of the sRGB primaries, white and black (standard published values).
    expected = torch.tensor(
        [[53.24, 80.09, 67.20], [87.73, -86.18, 83.18], [32.30, 79.19, -107.86], [100.0, 0, 0], [0, 0, 0]]
    )
    torch.testing.assert_close(lab, expected, atol=0.02, rtol=0)


def test_ab_bins_of_hand_picked_colours():
    q = ABQuantizer(grid=10.0)
    assert 200 < q.num_bins < 330  # Zhang et al.: 313 in-gamut bins
    assert bool((q.centers % 10 == 0).all())
    ab = torch.tensor([[80.09, 67.20], [0.0, 0.0], [-86.18, 83.18], [4.0, -6.0], [79.19, -107.86]]).T.reshape(
        1, 2, 5, 1
    )
    hard = q.encode_hard(ab)[0, :, 0]
    assert q.centers[hard].tolist() == [[80, 70], [0, 0], [-90, 80], [0, -10], [80, -110]]
    soft = q.encode_soft(ab, neighbors=5, sigma=5.0)
    torch.testing.assert_close(soft.sum(1), torch.ones(1, 5, 1))
    assert ((soft > 0).sum(1) == 5).all()
    # the weight of the nearest bin: exp(-d^2 / 2 sigma^2) normalised over the 5 nearest centres
    d2 = ((q.centers - ab[0, :, 3, 0]) ** 2).sum(1)
    nearest = d2.topk(5, largest=False).values
    w = torch.exp(-nearest / 50.0)
    assert soft[0, hard[3], 3, 0].item() == pytest.approx((w[0] / w.sum()).item(), rel=1e-5)


def test_rebalancing_weights_follow_zhang_eq_4():
    prior = torch.tensor([0.7, 0.2, 0.1])
    w = rebalancing_weights(prior, mix=0.5)
    raw = 1.0 / (0.5 * prior + 0.5 / 3)
    torch.testing.assert_close(w, raw / (prior * raw).sum())
    assert (prior * w).sum().item() == pytest.approx(1.0)
    torch.testing.assert_close(rebalancing_weights(prior, mix=1.0), torch.ones(3))


def test_colorization_prior_is_a_running_average_of_bin_histograms():
    method = Colorization(TwoLayerConv(), 6)
    method.config.prior_momentum = 0.5
    q = method.quantizer.num_bins
    first = torch.tensor([0, 0, 1, 1])
    method.update_prior(first)
    expected = torch.zeros(q)
    expected[0] = expected[1] = 0.5
    torch.testing.assert_close(method.prior, expected)
    method.update_prior(torch.tensor([2, 2, 2, 2]))
    expected = 0.5 * expected
    expected[2] += 0.5
    torch.testing.assert_close(method.prior, expected)


def test_split_brain_targets_are_the_bins_of_l_and_ab():
    method = build_method("split_brain", TwoLayerConv(), 6, output_stride=1)
    x = torch.rand(2, 3, 4, 4, generator=gen())
    ab_bins, light_bins = method.targets(x)
    lab = rgb_to_lab(x)
    assert torch.equal(light_bins, lab[:, 0].floor().long().clamp(0, 99))
    assert torch.equal(ab_bins, method.quantizer.encode_hard(lab[:, 1:]))
    assert method.encoder()(x).shape == (2, 12)


# --- context encoder ------------------------------------------------------------------------------
def test_context_encoder_masks_cover_the_stated_regions():
    hole = central_mask(2, 16, 12)
    expected = torch.zeros(16, 12)
    expected[4:12, 3:9] = 1
    assert torch.equal(hole[0, 0], expected) and torch.equal(hole[1, 0], expected)
    blocks = random_block_mask(200, 16, 16, num_blocks=4, generator=gen())
    cover = blocks.mean(dim=(1, 2, 3))
    assert bool((cover <= 0.25).all()) and bool((cover >= 1 / 16).all())
    assert cover.max().item() == 0.25  # four disjoint 4x4 blocks happen
    region = random_region_mask(5, 16, 16, smoothing=5, generator=gen())
    assert region.sum(dim=(1, 2, 3)).tolist() == [64.0] * 5


def test_context_encoder_reconstruction_counts_only_the_hole():
    method = build_method("context_encoder", TwoLayerConv(), 6)
    x = torch.rand(2, 3, 8, 8, generator=gen())
    torch.manual_seed(0)
    _, logs = method.training_step({"image": x})
    hole = central_mask(2, 8, 8)
    context = x * (1 - hole) + x.mean(dim=(0, 2, 3), keepdim=True) * hole
    recon = method.decoder(method.encode(context), (8, 8))
    expected = ((recon - x) ** 2 * hole).sum() / (3 * hole.sum())
    assert logs["reconstruction"] == pytest.approx(expected.item(), rel=1e-5)


# --- MAE ------------------------------------------------------------------------------------------
def test_mae_masks_exactly_75_percent_and_loss_ignores_visible_patches():
    mask = random_patch_mask(6, 16, 0.75, generator=gen())
    assert mask.sum(1).tolist() == [12.0] * 6
    x = torch.rand(1, 2, 4, 4, generator=gen())
    patches = patchify(x, 2)
    assert torch.equal(patches[0, 1], x[0, :, 0:2, 2:4].reshape(-1))
    assert torch.equal(patches[0, 2], x[0, :, 2:4, 0:2].reshape(-1))
    target = torch.rand(2, 16, 8, generator=gen(1))
    pred = torch.rand(2, 16, 8, generator=gen(2), requires_grad=True)
    mask = random_patch_mask(2, 16, 0.75, generator=gen(3))
    loss = masked_patch_loss(pred, target, mask, normalize_target=False)
    loss.backward()
    assert bool((pred.grad[mask == 0] == 0).all()) and bool((pred.grad[mask == 1] != 0).any())
    explicit = sum(((pred[b, n] - target[b, n]) ** 2).mean() for b in range(2) for n in range(16) if mask[b, n])
    assert loss.item() == pytest.approx((explicit / mask.sum()).item(), rel=1e-5)


# --- PixelCNN -------------------------------------------------------------------------------------
def test_pixelcnn_output_depends_only_on_earlier_pixels_and_colours():
    torch.manual_seed(0)
    net = ConditionalPixelCNN(channels=3, levels=4, hidden=12, num_layers=2, code_dim=None)
    h, w = 5, 5
    for i, j, c in [(2, 2, 0), (2, 2, 1), (2, 2, 2), (0, 0, 0), (4, 4, 2)]:
        x = torch.rand(1, 3, h, w, generator=gen(i * 10 + j), requires_grad=True)
        net(x)[0, c, :, i, j].sum().backward()
        grad = x.grad[0].abs().sum(0)  # over input channels
        for r in range(h):
            for q in range(w):
                if (r, q) > (i, j):  # later in raster order
                    assert grad[r, q] == 0
        same_pixel = x.grad[0, :, i, j].abs()
        assert bool((same_pixel[c:] == 0).all())  # own and later colours: type-A mask
        if c > 0:
            assert bool((same_pixel[:c] != 0).any())
        if (i, j) != (0, 0):
            assert grad.sum() > 0


# --- CPC ------------------------------------------------------------------------------------------
def test_cpc_targets_are_k_rows_ahead_in_the_same_column():
    for k in (1, 2, 5):
        src, dst = prediction_pairs(7, k)
        assert len(src) == 7 * (7 - k)
        assert torch.equal(dst // 7 - src // 7, torch.full_like(src, k))
        assert torch.equal(dst % 7, src % 7)


def test_cpc_context_of_row_i_ignores_later_rows():
    torch.manual_seed(0)
    context = RowContext(4, layers=3)
    z = torch.randn(1, 4, 6, 6, requires_grad=True)
    context(z)[0, :, 2, 3].sum().backward()
    assert bool((z.grad[0, :, 3:] == 0).all())
    assert bool((z.grad[0, :, :3] != 0).any())


def test_overlapping_patch_grid_is_seven_by_seven():
    x = torch.rand(1, 1, 32, 32, generator=gen())
    patches = overlapping_grid(x, patch=8, stride=4)
    assert patches.shape == (1, 7, 7, 1, 8, 8)
    torch.testing.assert_close(patches[0, 2, 5], x[0, :, 8:16, 20:28])


# --- temporal -------------------------------------------------------------------------------------
def test_shuffle_and_learn_negatives_are_out_of_order():
    positive, negative = sample_order_tuples(200, 9, generator=gen())
    assert bool((positive[:, 0] < positive[:, 1]).all()) and bool((positive[:, 1] < positive[:, 2]).all())
    first, middle, last = negative.unbind(1)
    assert bool((first < last).all())
    assert bool(((middle < first) | (middle > last)).all())  # the middle frame lies outside
    assert bool((negative[:, 0] == positive[:, 0]).all()) and bool((negative[:, 2] == positive[:, 2]).all())


def test_arrow_of_time_clips_are_consecutive_forwards_or_reversed():
    config = ArrowOfTimeConfig(clip_length=4, frame_stride=2)
    idx, forward = sample_clips(100, 10, config, generator=gen())
    assert set(forward.tolist()) == {0, 1}
    steps = idx[:, 1:] - idx[:, :-1]
    assert bool((steps[forward == 1] == 2).all()) and bool((steps[forward == 0] == -2).all())
    assert idx.min() >= 0 and idx.max() <= 9


def test_tcn_triplet_times_respect_the_windows():
    times = sample_triplet_times(300, 10, positive_window=2, negative_margin=4, generator=gen())
    anchor, positive, negative = times.unbind(1)
    gap_pos, gap_neg = (positive - anchor).abs(), (negative - anchor).abs()
    assert bool(((gap_pos >= 1) & (gap_pos <= 2)).all()) and bool((gap_neg >= 4).all())
    assert times.min() >= 0 and times.max() <= 9


def test_tcn_multi_view_uses_the_other_camera_at_the_same_time():
    method = build_method("tcn", TwoLayerConv(), 6)
    frames = torch.rand(2, 6, 3, 8, 8, generator=gen())
    view2 = torch.rand(2, 6, 3, 8, 8, generator=gen(1))
    torch.manual_seed(0)
    loss, _ = method.training_step({"frames": frames, "frames_view2": view2})
    torch.manual_seed(0)
    times = sample_triplet_times(2, 6, 1, 3)
    e = method.embedding
    a = e(frames[torch.arange(2), times[:, 0]])
    p = e(view2[torch.arange(2), times[:, 0]])
    n = e(frames[torch.arange(2), times[:, 2]])
    expected = (((a - p) ** 2).sum(1) - ((a - n) ** 2).sum(1) + 0.2).clamp_min(0).mean()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)


# --- memory bank, queue, momentum -----------------------------------------------------------------
def test_npid_bank_update_is_the_stated_ema():
    method = build_method("npid", TwoLayerConv(), 6, num_samples=20, num_negatives=8)
    before = method.bank.bank.clone()
    index = torch.tensor([3, 7, 11])
    torch.manual_seed(0)
    method.training_step({"image": torch.rand(3, 3, 8, 8, generator=gen()), "index": index})
    f = method._pending[1]
    method.after_optimizer_step(0, 1)
    expected = before.clone()
    expected[index] = F.normalize(0.5 * before[index] + 0.5 * f, dim=1)
    torch.testing.assert_close(method.bank.bank, expected)


def test_nce_normaliser_is_fixed_from_the_first_noise_batch():
    normaliser = FixedNormaliser(num_samples=100)
    noise_logits = torch.log(torch.tensor([[1.0, 2.0], [3.0, 6.0]]))  # exp: mean 3
    normaliser.fix(noise_logits)
    assert normaliser.log_z.item() == pytest.approx(math.log(100 * 3.0))
    normaliser.fix(torch.zeros(2, 2))  # later batches do not move it
    assert normaliser.log_z.item() == pytest.approx(math.log(300.0))
    torch.testing.assert_close(normaliser(torch.tensor([1.0])), torch.tensor([1.0 - math.log(300.0)]))


def test_pirl_loss_is_the_nce_of_the_puzzle_and_the_image_against_the_bank(monkeypatch):
    """PIRL's loss from the formula, written out here: tiles cut by slicing, shuffled by a fixed
    permutation and normalised; h(m, u) = e / (e + N / |D|) with e = exp(s(m, u) / tau) / Z and Z fixed from
    the puzzle's noise scores; L = lambda L_NCE(g) + (1 - lambda) L_NCE(f); then the EMA bank update."""
    import ssl_shared.methods.pirl as pirl_module

    perm = [2, 0, 1, 5, 3, 4, 8, 6, 7]
    monkeypatch.setattr(pirl_module, "augment_view", lambda x, config, generator=None: x)
    monkeypatch.setattr(
        pirl_module, "random_permutations", lambda b, n, device=None, generator=None: torch.tensor(perm).expand(b, n)
    )
    num_samples, num_negatives, weight, tau = 20, 8, 0.25, 0.07
    method = build_method(
        "pirl", TwoLayerConv(), 6, num_samples=num_samples, num_negatives=num_negatives, loss_weight=weight,
        tile_fraction=1.0,
    )  # fmt: skip
    negative_rows = torch.tensor([1, 3, 3, 7, 11, 12, 15, 19])
    before = method.bank.bank.clone()
    monkeypatch.setattr(method.bank, "sample", lambda n, generator=None: before[negative_rows])
    x = torch.rand(2, 3, 9, 9, generator=gen())
    index = torch.tensor([0, 5])
    loss, _ = method.training_step({"image": x, "index": index})

    with torch.no_grad():
        f = F.normalize(method.image_head(method.backbone(x)), dim=1)
        tiles = [x[:, :, 3 * r : 3 * r + 3, 3 * c : 3 * c + 3] for r in range(3) for c in range(3)]
        shuffled = [tiles[k] for k in perm]
        normalised = [
            (t - t.mean(dim=(1, 2, 3), keepdim=True)) / (t.std(dim=(1, 2, 3), unbiased=False, keepdim=True) + 1e-5)
            for t in shuffled
        ]
        codes = torch.cat([method.tile_head(method.backbone(t)) for t in normalised], dim=1)
        g = F.normalize(method.puzzle_head(codes), dim=1)
        memory, negatives = before[index], before[negative_rows]
        noise_scores = (g @ negatives.T / tau).flatten()
        log_z = math.log(num_samples) + (torch.logsumexp(noise_scores, 0) - math.log(noise_scores.numel()))

        def h(a: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
            e = torch.exp(u @ a.T / tau - log_z)
            return e / (e + num_negatives / num_samples)

        def l_nce(u: torch.Tensor) -> torch.Tensor:
            positive = torch.diagonal(h(memory, u))
            return (-torch.log(positive) - torch.log(1 - h(negatives, u)).sum(dim=1)).mean()

        expected = weight * l_nce(g) + (1 - weight) * l_nce(f)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    method.after_optimizer_step(0, 1)
    torch.testing.assert_close(method.bank.bank[index], F.normalize(0.5 * before[index] + 0.5 * f, dim=1))


def test_moco_queue_and_momentum_updates():
    method = build_method("moco_v2", TwoLayerConv(), 6, queue_size=5, hidden_dim=8, momentum=0.9)
    with torch.no_grad():  # make the key encoder differ from the query encoder
        for p in method.key_net.parameters():
            p.add_(1.0)
    key_before = [p.clone() for p in method.key_net.parameters()]
    queue_before = method.queue.keys.clone()
    torch.manual_seed(0)
    method.training_step({"image": torch.rand(3, 3, 8, 8, generator=gen())})
    keys = method._pending_keys
    method.after_optimizer_step(0, 1)
    for old, new, q in zip(key_before, method.key_net.parameters(), method.query_net.parameters()):
        torch.testing.assert_close(new, 0.9 * old + 0.1 * q)
    torch.testing.assert_close(method.queue.keys[:3], keys)
    torch.testing.assert_close(method.queue.keys[3:], queue_before[3:])


def test_byol_target_follows_the_cosine_momentum_schedule():
    method = build_method("byol", TwoLayerConv(), 6, hidden_dim=8)
    with torch.no_grad():
        for p in method.target.parameters():
            p.mul_(0.0)
    method.after_optimizer_step(3, 10)
    m = cosine_momentum(3, 10, 0.996)
    assert m == pytest.approx(1 - 0.004 * (math.cos(math.pi * 0.3) + 1) / 2)
    for target, online in zip(method.target.parameters(), method.online.parameters()):
        torch.testing.assert_close(target, (1 - m) * online)


# --- autoencoders ---------------------------------------------------------------------------------
def test_contractive_penalty_equals_the_explicit_jacobian_norm():
    torch.manual_seed(0)
    net = TwoLayerConv(3, 5)
    x = torch.rand(2, 3, 4, 4, generator=gen(), requires_grad=True)
    penalty = jacobian_frobenius_sq(net(x), x)
    explicit = sum(torch.autograd.functional.jacobian(net, x[b : b + 1].detach()).pow(2).sum() for b in range(2))
    assert penalty.item() == pytest.approx(explicit.item(), rel=1e-5)
    assert penalty.requires_grad  # differentiable: the penalty trains the encoder
    estimates = [hutchinson_frobenius_sq(net(x), x, 200, generator=gen(s)).item() for s in range(3)]
    assert np.mean(estimates) == pytest.approx(explicit.item(), rel=0.15)


def test_contractive_method_logs_the_same_penalty():
    method = build_method("contractive_ae", TwoLayerConv(3, 5), 5, penalty_weight=2.0, penalty="exact")
    x = torch.rand(2, 3, 4, 4, generator=gen())
    loss, logs = method.training_step({"image": x})
    explicit = sum(torch.autograd.functional.jacobian(method.backbone, x[b : b + 1]).pow(2).sum() for b in range(2)) / 2
    assert logs["jacobian_fro_sq"] == pytest.approx(explicit.item(), rel=1e-5)
    assert loss.item() == pytest.approx(logs["reconstruction"] + 2.0 * logs["jacobian_fro_sq"], rel=1e-5)


def test_denoising_corruptions():
    x = torch.rand(4, 3, 32, 32, generator=gen()) + 0.1
    masked = corrupt(x, DenoisingAutoencoderConfig(corruption="masking", mask_probability=0.25), gen(1))
    dropped = masked == 0
    assert bool((dropped.all(1) | (~dropped).all(1)).all())  # whole pixels (all channels) are dropped
    assert dropped[:, 0].float().mean().item() == pytest.approx(0.25, abs=0.03)
    torch.testing.assert_close(masked[~dropped], x[~dropped])
    noisy = corrupt(x, DenoisingAutoencoderConfig(corruption="gaussian", noise_std=0.1), gen(2))
    assert (noisy - x).std().item() == pytest.approx(0.1, rel=0.05)


def test_vae_kl_matches_torch_distributions():
    mu, logvar = torch.randn(3, 4, generator=gen()), torch.randn(3, 4, generator=gen(1))
    q = torch.distributions.Normal(mu, (0.5 * logvar).exp())
    p = torch.distributions.Normal(torch.zeros(3, 4), torch.ones(3, 4))
    torch.testing.assert_close(gaussian_kl(mu, logvar), torch.distributions.kl_divergence(q, p).sum(1))


# --- labels of the supervised / surrogate-class methods ------------------------------------------
def test_exemplar_surrogate_labels_are_the_seed_indices():
    x = torch.rand(3, 3, 8, 8, generator=gen())
    from ssl_shared.methods.views import ViewConfig

    images, labels = surrogate_batch(x, torch.tensor([5, 0, 9]), 2, ViewConfig())
    assert images.shape == (6, 3, 8, 8) and labels.tolist() == [5, 0, 9, 5, 0, 9]


def test_supcon_unlabelled_samples_get_their_own_label():
    labels = labels_with_unique_unlabelled(torch.tensor([2, -1, 2, -1]))
    assert labels.tolist() == [2, -2, 2, -4]
    # the second process of a global batch of 8: positions 4..7, so no placeholder repeats the first's
    assert labels_with_unique_unlabelled(torch.tensor([2, -1, 2, -1]), offset=4).tolist() == [2, -6, 2, -8]


def test_s4l_adds_cross_entropy_on_labelled_samples_only():
    method = build_method("s4l", TwoLayerConv(), 6, num_classes=3, pretext_weight=0.5)
    method.eval()  # deterministic backbone for the comparison
    x = torch.rand(4, 3, 8, 8, generator=gen())
    labels = torch.tensor([1, -1, 2, -1])
    loss, logs = method.training_step({"image": x, "label": labels})
    sup = F.cross_entropy(method.classifier(method.backbone(x[[0, 2]])), labels[[0, 2]])
    assert logs["supervised"] == pytest.approx(sup.item(), rel=1e-5)
    assert loss.item() == pytest.approx(sup.item() + 0.5 * logs["pretext/loss"], rel=1e-5)
    _, logs = method.training_step({"image": x, "label": torch.full((4,), -1)})
    assert logs["supervised"] == 0.0


# --- the views the contrastive methods draw ----------------------------------------------------------
def _drawn_view_params(name: str, monkeypatch, **options) -> list[dict[str, torch.Tensor]]:
    """One training step of ``name`` on 400 images; the augmentation parameters of every view it drew."""
    from ssl_shared.methods import views

    drawn: list[dict[str, torch.Tensor]] = []
    real_pipeline = views.view_pipeline

    def recording_pipeline(config, height, width, channels):
        pipeline = real_pipeline(config, height, width, channels)

        def run(x, generator=None):
            out, params = pipeline(x, generator=generator, return_params=True)
            drawn.append(params)
            return out

        return run

    monkeypatch.setattr(views, "view_pipeline", recording_pipeline)
    method = build_method(name, TwoLayerConv(), 6, **options)
    torch.manual_seed(0)
    method.training_step({"image": torch.rand(400, 3, 40, 40, generator=gen())})
    assert len(drawn) == 2  # two views
    return drawn


def _param(params: dict[str, torch.Tensor], name: str) -> tuple[str, torch.Tensor]:
    """The op position and value of the parameter ``name`` (keys are ``"<position>.<name>"``)."""
    keys = [k for k in params if k.split(".", 1)[1] == name]
    assert len(keys) == 1, f"{name}: {sorted(params)}"
    return keys[0].split(".", 1)[0], params[keys[0]]


def _assert_fills(values: torch.Tensor, low: float, high: float) -> None:
    """``values`` lie in [low, high] and reach both ends (800 uniform draws)."""
    margin = 0.05 * (high - low)
    assert low - 1e-6 <= values.min().item() <= low + margin, (values.min().item(), low)
    assert high - margin <= values.max().item() <= high + 1e-6, (values.max().item(), high)


def _assert_jitter(views: list[dict[str, torch.Tensor]], strengths: tuple[float, float, float, float], p: float):
    for name, s in zip(("brightness", "contrast", "saturation"), strengths):
        _assert_fills(torch.cat([_param(v, name)[1] for v in views]), 1 - s, 1 + s)
    _assert_fills(torch.cat([_param(v, "hue")[1] for v in views]), -strengths[3], strengths[3])
    position = _param(views[0], "brightness")[0]
    applied = torch.cat([v[f"{position}.applied"] for v in views]).float().mean().item()
    assert applied == pytest.approx(p, abs=0.05)


def test_moco_v2_views_are_those_of_the_reference_code(monkeypatch):
    """facebookresearch/moco main_moco.py (aug_plus): RandomResizedCrop scale (0.2, 1), ColorJitter
    (0.4, 0.4, 0.4, 0.1) with p 0.8, grayscale p 0.2, blur p 0.5."""
    views = _drawn_view_params("moco_v2", monkeypatch, queue_size=5, hidden_dim=8)
    area = torch.cat([_param(v, "height")[1] * _param(v, "width")[1] for v in views]).float() / (40 * 40)
    assert 0.18 <= area.min().item() <= 0.23  # rounding the box to pixels moves the area by a few percent
    assert area.max().item() <= 1.0
    _assert_jitter(views, (0.4, 0.4, 0.4, 0.1), p=0.8)
    assert torch.cat([_param(v, "gray")[1] for v in views]).float().mean().item() == pytest.approx(0.2, abs=0.05)
    jitter_position = _param(views[0], "brightness")[0]
    blur = [k for k in views[0] if k.endswith(".applied") and k.split(".", 1)[0] != jitter_position]
    assert len(blur) == 1
    assert torch.cat([v[blur[0]] for v in views]).float().mean().item() == pytest.approx(0.5, abs=0.06)


def test_byol_views_jitter_as_in_the_paper(monkeypatch):
    """Grill et al. 2020, App. B: brightness 0.4, contrast 0.4, saturation 0.2, hue 0.1, applied with
    p 0.8; crop scale (0.08, 1)."""
    views = _drawn_view_params("byol", monkeypatch, hidden_dim=8)
    _assert_jitter(views, (0.4, 0.4, 0.2, 0.1), p=0.8)
    area = torch.cat([_param(v, "height")[1] * _param(v, "width")[1] for v in views]).float() / (40 * 40)
    assert 0.06 <= area.min().item() <= 0.1
