"""Tests for ssl_shared.losses: every loss against an explicit loop written here, closed-form gradients,
invariants, and ValueErrors for bad input."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

import ssl_shared.losses as L


def randn(*shape: int, requires_grad: bool = False) -> torch.Tensor:
    return torch.randn(*shape, dtype=torch.float64, requires_grad=requires_grad)


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


# --------------------------------------------------------------------------- reference helpers


def sq_dist(u: torch.Tensor, v: torch.Tensor) -> float:
    return float(sum((a - b) ** 2 for a, b in zip(u.tolist(), v.tolist())))


def dist(u: torch.Tensor, v: torch.Tensor) -> float:
    return math.sqrt(sq_dist(u, v))


def dot(u: torch.Tensor, v: torch.Tensor) -> float:
    return float(sum(a * b for a, b in zip(u.tolist(), v.tolist())))


def cos(u: torch.Tensor, v: torch.Tensor) -> float:
    return dot(u, v) / math.sqrt(dot(u, u) * dot(v, v))


def neg_log_softmax_at(scores: list[float], index: int) -> float:
    """-log(exp(s_index) / sum_j exp(s_j)) with plain math."""
    top = max(scores)
    return -(scores[index] - top - math.log(sum(math.exp(s - top) for s in scores)))


def grouped_labels() -> torch.Tensor:
    return torch.tensor([0, 1, 0, 2, 1, 2, 0, 1])


# --------------------------------------------------------------------------- contrastive pair


def test_contrastive_pair_matches_loop() -> None:
    a, b = randn(6, 3), randn(6, 3)
    same = torch.tensor([1, 0, 1, 0, 0, 1], dtype=torch.bool)
    margin = 2.5
    expected = 0.0
    for i in range(6):
        d = dist(a[i], b[i])
        expected += d**2 if same[i] else max(0.0, margin - d) ** 2
    expected /= 6
    assert L.contrastive_pair_loss(a, b, same, margin) == pytest.approx(expected, rel=1e-10)
    assert L.ContrastivePairLoss(margin)(a, b, same) == pytest.approx(expected, rel=1e-10)


def test_contrastive_pair_far_negatives_cost_nothing() -> None:
    a = torch.zeros(2, 2)
    b = torch.tensor([[5.0, 0.0], [0.0, 0.5]])
    same = torch.tensor([False, False])
    # only the second pair is inside the margin of 1: (1 - 0.5)^2 / 2
    assert L.contrastive_pair_loss(a, b, same, margin=1.0) == pytest.approx(0.125)


# --------------------------------------------------------------------------- triplet


def test_triplet_explicit_matches_loop() -> None:
    a, p, n = randn(5, 4), randn(5, 4), randn(5, 4)
    for squared in (True, False):
        d = sq_dist if squared else dist
        expected = sum(max(0.0, d(a[i], p[i]) - d(a[i], n[i]) + 0.3) for i in range(5)) / 5
        assert L.triplet_loss(a, p, n, margin=0.3, squared=squared) == pytest.approx(expected, rel=1e-10)


def _valid_triplets(labels: torch.Tensor) -> list[tuple[int, int, int]]:
    n = len(labels)
    return [
        (a, p, q)
        for a, p, q in itertools.product(range(n), repeat=3)
        if a != p and labels[a] == labels[p] and labels[q] != labels[a]
    ]


def test_batch_all_matches_loop() -> None:
    x, y = randn(8, 3), grouped_labels()
    triplets = _valid_triplets(y)
    expected = sum(max(0.0, sq_dist(x[a], x[p]) - sq_dist(x[a], x[n]) + 1.0) for a, p, n in triplets)
    expected /= len(triplets)
    got = L.batch_triplet_loss(x, y, margin=1.0, mining="batch_all")
    assert got == pytest.approx(expected, rel=1e-9)


def test_batch_hard_matches_loop_and_picks_hardest() -> None:
    x, y = randn(8, 3), grouped_labels()
    margin = 0.5
    expected, mined = 0.0, []
    for a in range(8):
        positives = [j for j in range(8) if j != a and y[j] == y[a]]
        negatives = [j for j in range(8) if y[j] != y[a]]
        p = max(positives, key=lambda j: dist(x[a], x[j]))
        n = min(negatives, key=lambda j: dist(x[a], x[j]))
        mined.append((a, p, n))
        expected += max(0.0, dist(x[a], x[p]) - dist(x[a], x[n]) + margin)
    expected /= 8
    got = L.batch_triplet_loss(x, y, margin=margin, mining="batch_hard", squared=False)
    assert got == pytest.approx(expected, rel=1e-9)
    distances = torch.cdist(x, x)
    assert L.mine_triplets(distances, y, "batch_hard", margin).tolist() == [list(t) for t in mined]


def test_semi_hard_picks_negatives_inside_the_band() -> None:
    x, y = randn(8, 2), grouped_labels()
    margin = 1.0
    distances = torch.cdist(x, x) ** 2
    mined = L.mine_triplets(distances, y, "semi_hard", margin).tolist()
    expected_mined, expected_loss = [], 0.0
    for a, p in itertools.product(range(8), repeat=2):
        if a == p or y[a] != y[p]:
            continue
        d_ap = sq_dist(x[a], x[p])
        band = [n for n in range(8) if y[n] != y[a] and d_ap < sq_dist(x[a], x[n]) < d_ap + margin]
        if band:
            n = min(band, key=lambda j: sq_dist(x[a], x[j]))
            expected_mined.append([a, p, n])
            expected_loss += d_ap - sq_dist(x[a], x[n]) + margin
    assert expected_mined, "fixture should contain semi-hard triplets"
    assert mined == expected_mined
    for a, p, n in mined:
        assert distances[a, p] < distances[a, n] < distances[a, p] + margin
    got = L.batch_triplet_loss(x, y, margin=margin, mining="semi_hard")
    assert got == pytest.approx(expected_loss / len(expected_mined), rel=1e-9)


def test_batch_triplet_with_nothing_to_mine_is_zero_and_differentiable() -> None:
    x = randn(4, 3, requires_grad=True)
    loss = L.TripletLoss(mining="batch_hard")(x, torch.arange(4))  # no positives
    loss.backward()
    assert loss.item() == 0.0 and torch.all(x.grad == 0)


# --------------------------------------------------------------------------- lifted structured


def test_lifted_structured_matches_loop() -> None:
    x, y = randn(8, 3), grouped_labels()
    margin = 1.0
    positive_pairs = [(i, j) for i in range(8) for j in range(i + 1, 8) if y[i] == y[j]]
    total = 0.0
    for i, j in positive_pairs:
        s = sum(math.exp(margin - dist(x[i], x[k])) for k in range(8) if y[k] != y[i])
        s += sum(math.exp(margin - dist(x[j], x[l])) for l in range(8) if y[l] != y[j])
        total += max(0.0, dist(x[i], x[j]) + math.log(s)) ** 2
    expected = total / (2 * len(positive_pairs))
    assert L.lifted_structured_loss(x, y, margin) == pytest.approx(expected, rel=1e-9)
    assert L.LiftedStructuredLoss(margin)(x, y) == pytest.approx(expected, rel=1e-9)


def test_lifted_structured_gradient_is_finite_for_coincident_points() -> None:
    x = torch.zeros(4, 3, dtype=torch.float64, requires_grad=True)
    L.lifted_structured_loss(x, torch.tensor([0, 0, 1, 1])).backward()
    assert torch.isfinite(x.grad).all()


# --------------------------------------------------------------------------- N-pair


def test_npair_matches_both_forms_of_the_formula() -> None:
    f, fp = randn(5, 4), randn(5, 4)
    log_form, softmax_form = 0.0, 0.0
    for i in range(5):
        log_form += math.log(1 + sum(math.exp(dot(f[i], fp[j]) - dot(f[i], fp[i])) for j in range(5) if j != i))
        softmax_form += neg_log_softmax_at([dot(f[i], fp[j]) for j in range(5)], i)
    assert L.npair_loss(f, fp) == pytest.approx(log_form / 5, rel=1e-10)
    assert L.npair_loss(f, fp) == pytest.approx(softmax_form / 5, rel=1e-10)
    reg = sum(dot(f[i], f[i]) + dot(fp[i], fp[i]) for i in range(5)) / 5
    assert L.NPairLoss(0.01)(f, fp) == pytest.approx(log_form / 5 + 0.01 * reg, rel=1e-10)


# --------------------------------------------------------------------------- NCE


def test_nce_matches_notes_formula_for_equal_counts() -> None:
    lm_x, ln_x, lm_y, ln_y = (randn(6) for _ in range(4))
    sig = lambda t: 1 / (1 + math.exp(-t))  # noqa: E731
    expected = -sum(math.log(sig(lm_x[i] - ln_x[i])) + math.log(1 - sig(lm_y[i] - ln_y[i])) for i in range(6)) / 6
    assert L.nce_loss(lm_x, ln_x, lm_y, ln_y) == pytest.approx(expected, rel=1e-10)
    assert L.NCELoss()(lm_x, ln_x, lm_y, ln_y) == pytest.approx(expected, rel=1e-10)


def test_nce_uses_nu_noise_samples_per_data_sample() -> None:
    lm_x, ln_x = randn(3), randn(3)
    lm_y, ln_y = randn(3, 4), randn(3, 4)  # nu = 12 / 3 = 4
    nu = 4.0
    h = lambda lm, ln: 1 / (1 + nu * math.exp(ln) / math.exp(lm))  # noqa: E731  p_m / (p_m + nu p_n)
    expected = sum(math.log(h(lm_x[i], ln_x[i])) for i in range(3))
    expected += sum(math.log(1 - h(lm_y.flatten()[t], ln_y.flatten()[t])) for t in range(12))
    assert L.nce_loss(lm_x, ln_x, lm_y, ln_y) == pytest.approx(-expected / 3, rel=1e-10)


def test_nce_is_two_log_two_when_model_equals_noise() -> None:
    x = randn(5)
    assert L.nce_loss(x, x, x, x) == pytest.approx(2 * math.log(2))


# --------------------------------------------------------------------------- InfoNCE


def _info_nce_reference(q, k, critic, tau, w=None, queue=None):
    def s(u, v):
        if critic == "cosine":
            return cos(u, v)
        if critic == "dot":
            return dot(u, v)
        return dot(u @ w, v)

    total = 0.0
    for i in range(q.shape[0]):
        if queue is None:
            scores = [s(q[i], k[j]) / tau for j in range(k.shape[0])]
            total += neg_log_softmax_at(scores, i)
        else:
            scores = [s(q[i], k[i]) / tau] + [s(q[i], n) / tau for n in queue]
            total += neg_log_softmax_at(scores, 0)
    return total / q.shape[0]


@pytest.mark.parametrize("critic", ["cosine", "dot", "bilinear"])
def test_info_nce_in_batch_matches_loop(critic: str) -> None:
    q, k = randn(5, 3), randn(5, 3)
    w = randn(3, 3) if critic == "bilinear" else None
    expected = _info_nce_reference(q, k, critic, 0.2, w)
    got = L.info_nce_loss(q, k, critic=critic, temperature=0.2, weight=w)
    assert got == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("critic", ["cosine", "dot", "bilinear"])
def test_info_nce_queue_matches_loop(critic: str) -> None:
    q, k, queue = randn(4, 3), randn(4, 3), randn(7, 3)
    w = randn(3, 3) if critic == "bilinear" else None
    expected = _info_nce_reference(q, k, critic, 0.5, w, queue=queue)
    got = L.info_nce_loss(q, k, critic=critic, temperature=0.5, negatives="queue", queue=queue, weight=w)
    assert got == pytest.approx(expected, rel=1e-9)


def test_info_nce_same_image_uses_only_that_images_locations() -> None:
    q, k = randn(2, 4, 3), randn(2, 4, 3)
    expected = sum(_info_nce_reference(q[b], k[b], "cosine", 0.1) for b in range(2)) / 2
    got = L.info_nce_loss(q, k, critic="cosine", temperature=0.1, negatives="same_image")
    assert got == pytest.approx(expected, rel=1e-9)


def test_info_nce_dot_gradient_closed_form() -> None:
    # dL/dq_i = (sum_j softmax_ij k_j - k_i) / (tau * B) for L = mean_i CE(q_i K^T / tau, i).
    tau, b = 0.3, 5
    q = randn(b, 4, requires_grad=True)
    k = randn(b, 4)
    L.info_nce_loss(q, k, critic="dot", temperature=tau).backward()
    probs = torch.softmax(q.detach() @ k.T / tau, dim=1)
    expected = (probs @ k - k) / (tau * b)
    torch.testing.assert_close(q.grad, expected)


def test_info_nce_module_owns_bilinear_weight() -> None:
    module = L.InfoNCELoss(critic="bilinear", temperature=1.0, query_dim=3, key_dim=2)
    assert module.weight is not None and module.weight.shape == (3, 2)
    assert 0.0 <= float(module.weight.detach().min()) and float(module.weight.detach().max()) < 1.0
    q, k = randn(4, 3), randn(4, 2)
    loss = module(q.float(), k.float())
    loss.backward()
    assert module.weight.grad is not None
    expected = _info_nce_reference(q, k, "bilinear", 1.0, module.weight.detach().double())
    assert loss.item() == pytest.approx(expected, rel=1e-5)


# --------------------------------------------------------------------------- NT-Xent


def _nt_xent_reference(z_a, z_b, tau):
    z = torch.cat([z_a, z_b])
    n2 = z.shape[0]
    n = n2 // 2
    total = 0.0
    for i in range(n2):
        positive = (i + n) % n2
        others = [k for k in range(n2) if k != i]
        scores = [cos(z[i], z[k]) / tau for k in others]
        total += neg_log_softmax_at(scores, others.index(positive))
    return total / n2


def test_nt_xent_matches_loop() -> None:
    z_a, z_b = randn(4, 5), randn(4, 5)
    expected = _nt_xent_reference(z_a, z_b, 0.5)
    assert L.nt_xent_loss(z_a, z_b, temperature=0.5) == pytest.approx(expected, rel=1e-10)
    assert L.NTXentLoss(temperature=0.5)(z_a, z_b) == pytest.approx(expected, rel=1e-10)


def test_nt_xent_matches_notes_interleaved_indexing() -> None:
    # eq. 10 pairs (2k-1, 2k): interleave the views and evaluate eq. 9 literally.
    z_a, z_b = randn(3, 4), randn(3, 4)
    z = torch.stack([z_a, z_b], dim=1).reshape(6, 4)
    tau = 0.7

    def term(i, j):
        denominator = sum(math.exp(cos(z[i], z[k]) / tau) for k in range(6) if k != i)
        return -math.log(math.exp(cos(z[i], z[j]) / tau) / denominator)

    expected = sum(term(2 * k, 2 * k + 1) + term(2 * k + 1, 2 * k) for k in range(3)) / 6
    assert L.nt_xent_loss(z_a, z_b, temperature=tau) == pytest.approx(expected, rel=1e-10)


def test_nt_xent_gradcheck() -> None:
    z_a = randn(3, 4, requires_grad=True)
    z_b = randn(3, 4, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: L.nt_xent_loss(a, b, 0.3), (z_a, z_b))


def test_nt_xent_aligned_orthogonal_embeddings_reach_analytic_value() -> None:
    n, tau = 4, 0.1
    z = torch.eye(n, dtype=torch.float64)  # aligned positives (cos 1), orthogonal negatives (cos 0)
    expected = math.log(1 + (2 * n - 2) * math.exp(-1 / tau))
    assert L.nt_xent_loss(z, z, tau) == pytest.approx(expected, rel=1e-10)
    # Every term is bounded below by cos_pos <= 1, cos_neg >= -1: log(1 + (2N-2) exp(-2/tau)).
    lower = math.log(1 + (2 * n - 2) * math.exp(-2 / tau))
    random_loss = L.nt_xent_loss(randn(n, 3), randn(n, 3), tau).item()
    assert lower < expected < random_loss


# --------------------------------------------------------------------------- soft nearest neighbour


def test_soft_nearest_neighbor_matches_loop() -> None:
    x = randn(7, 3)
    y = torch.tensor([0, 1, 0, 2, 1, 0, 3])  # samples 3 and 6 have no partner
    t = 2.0
    terms = []
    for i in range(7):
        num = sum(math.exp(-sq_dist(x[i], x[j]) / t) for j in range(7) if j != i and y[j] == y[i])
        den = sum(math.exp(-sq_dist(x[i], x[k]) / t) for k in range(7) if k != i)
        if num > 0:
            terms.append(-math.log(num / den))
    expected = sum(terms) / len(terms)
    assert L.soft_nearest_neighbor_loss(x, y, t) == pytest.approx(expected, rel=1e-9)
    xg = x.clone().requires_grad_(True)
    L.SoftNearestNeighborLoss(t)(xg, y).backward()
    assert torch.isfinite(xg.grad).all()


# --------------------------------------------------------------------------- SupCon


def _supcon_reference(z, y, tau):
    per_anchor = []
    for i in range(z.shape[0]):
        others = [a for a in range(z.shape[0]) if a != i]
        positives = [p for p in others if y[p] == y[i]]
        if not positives:
            continue
        scores = [cos(z[i], z[a]) / tau for a in others]
        per_anchor.append(sum(neg_log_softmax_at(scores, others.index(p)) for p in positives) / len(positives))
    return sum(per_anchor) / len(per_anchor)


def test_supcon_matches_loop_with_an_anchor_without_positive() -> None:
    z = randn(7, 4)
    y = torch.tensor([0, 1, 0, 1, 0, 2, 1])  # anchor 5 has no positive
    expected = _supcon_reference(z, y, 0.2)
    assert L.supcon_loss(z, y, 0.2) == pytest.approx(expected, rel=1e-9)
    zg = z.clone().requires_grad_(True)
    L.SupConLoss(0.2)(zg, y).backward()
    assert torch.isfinite(zg.grad).all()


def test_supcon_with_instance_labels_equals_nt_xent() -> None:
    z_a, z_b = randn(4, 3), randn(4, 3)
    labels = torch.arange(4).repeat(2)
    torch.testing.assert_close(L.supcon_loss(torch.cat([z_a, z_b]), labels, 0.5), L.nt_xent_loss(z_a, z_b, 0.5))


def test_supcon_without_any_positive_is_zero() -> None:
    z = randn(3, 2, requires_grad=True)
    loss = L.supcon_loss(z, torch.arange(3))
    loss.backward()
    assert loss.item() == 0.0 and torch.all(z.grad == 0)


# --------------------------------------------------------------------------- BYOL / SimSiam


def test_byol_value_and_closed_form_gradient() -> None:
    p = randn(4, 5, requires_grad=True)
    z = randn(4, 5, requires_grad=True)
    loss = L.byol_loss(p, z)
    expected = sum(2 - 2 * cos(p[i].detach(), z[i].detach()) for i in range(4)) / 4
    assert loss.item() == pytest.approx(expected, rel=1e-10)
    loss.backward()
    assert z.grad is None  # target is stop-gradient
    pd, zd = p.detach(), z.detach()
    p_hat = pd / pd.norm(dim=1, keepdim=True)
    z_hat = zd / zd.norm(dim=1, keepdim=True)
    c = (p_hat * z_hat).sum(dim=1, keepdim=True)
    # d(2 - 2 cos)/dp = -2 (z_hat - cos p_hat) / ||p||, averaged over the batch of 4.
    expected_grad = -2 * (z_hat - c * p_hat) / pd.norm(dim=1, keepdim=True) / 4
    torch.testing.assert_close(p.grad, expected_grad)


def test_byol_equals_squared_distance_of_normalised_vectors() -> None:
    p, z = randn(3, 4), randn(3, 4)
    expected = sum(sq_dist(p[i] / p[i].norm(), z[i] / z[i].norm()) for i in range(3)) / 3
    assert L.byol_loss(p, z) == pytest.approx(expected, rel=1e-10)
    assert L.BYOLLoss()(p, p, z, z) == pytest.approx(2 * expected, rel=1e-10)


def test_simsiam_symmetric_with_stop_gradient() -> None:
    p1, p2, z1, z2 = (randn(3, 4, requires_grad=True) for _ in range(4))
    loss = L.SimSiamLoss()(p1, p2, z1, z2)
    expected = sum(-cos(p1[i], z2[i]) / 2 - cos(p2[i], z1[i]) / 2 for i in range(3)) / 3
    assert loss.item() == pytest.approx(expected, rel=1e-10)
    loss.backward()
    assert z1.grad is None and z2.grad is None
    assert p1.grad is not None and p2.grad is not None
    assert L.simsiam_loss(p1, p1, p1, p1).item() == pytest.approx(-1.0)


# --------------------------------------------------------------------------- PatchNCE


def _patch_nce_reference(q, k, tau, negatives):
    b, n, _ = q.shape
    total = 0.0
    for i in range(b):
        for loc in range(n):
            if negatives == "image":
                scores = [dot(q[i, loc], k[i, m]) / tau for m in range(n)]
                total += neg_log_softmax_at(scores, loc)
            else:
                scores = [dot(q[i, loc], k[j, m]) / tau for j in range(b) for m in range(n)]
                total += neg_log_softmax_at(scores, i * n + loc)
    return total / (b * n)


@pytest.mark.parametrize("negatives", ["image", "batch"])
def test_patch_nce_matches_loop(negatives: str) -> None:
    q, k = randn(2, 5, 3), randn(2, 5, 3)
    expected = _patch_nce_reference(q, k, 0.07, negatives)
    assert L.patch_nce_loss(q, k, negatives=negatives) == pytest.approx(expected, rel=1e-9)
    assert L.PatchNCELoss(negatives=negatives)(q, k) == pytest.approx(expected, rel=1e-9)


def test_patch_nce_counts_negatives() -> None:
    # All-equal logits make the loss log(number of candidates) = log(1 + negatives).
    b, n = 3, 4
    q, k = torch.zeros(b, n, 2, dtype=torch.float64), torch.zeros(b, n, 2, dtype=torch.float64)
    assert L.patch_nce_loss(q, k, negatives="image") == pytest.approx(math.log(n))
    assert L.patch_nce_loss(q, k, negatives="batch") == pytest.approx(math.log(b * n))


def test_patch_nce_positives_are_at_the_same_location() -> None:
    q = torch.nn.functional.normalize(randn(2, 6, 8), dim=-1)
    k = torch.nn.functional.normalize(q + 0.1 * randn(2, 6, 8), dim=-1)
    base = L.patch_nce_loss(q, k)
    perm = torch.randperm(6)
    same_perm = L.patch_nce_loss(q[:, perm], k[:, perm])
    mismatched = L.patch_nce_loss(q, k[:, perm])
    assert same_perm.item() == pytest.approx(base.item(), rel=1e-10)
    assert mismatched.item() > base.item() + 1.0


def test_patch_nce_detaches_keys() -> None:
    q = randn(2, 4, 3, requires_grad=True)
    k = randn(2, 4, 3, requires_grad=True)
    L.patch_nce_loss(q, k).backward()
    assert k.grad is None and q.grad is not None


# --------------------------------------------------------------------------- distributed (single process)


def test_gather_is_identity_without_process_group() -> None:
    x = randn(3, 2)
    assert not L.is_distributed()
    assert L.gather(x) is x
    z_a, z_b = randn(4, 3), randn(4, 3)
    assert L.nt_xent_loss(z_a, z_b, gather_distributed=True) == L.nt_xent_loss(z_a, z_b)


# --------------------------------------------------------------------------- ValueErrors

x2, y2 = randn(4, 3), randn(4, 3)
lab = torch.tensor([0, 0, 1, 1])

BAD_CALLS = {
    "pair rank": (lambda: L.contrastive_pair_loss(x2[0], y2[0], lab[:1] == 0), "rank 2"),
    "pair shape": (lambda: L.contrastive_pair_loss(x2, y2[:3], lab == 0), "same shape"),
    "pair margin": (lambda: L.contrastive_pair_loss(x2, y2, lab == 0, margin=-1.0), "margin must be >= 0"),
    "triplet mining": (lambda: L.batch_triplet_loss(x2, lab, mining="hardest"), "mining must be one of"),
    "triplet labels": (lambda: L.batch_triplet_loss(x2, lab[:3]), "one entry per embedding"),
    "triplet float labels": (lambda: L.batch_triplet_loss(x2, lab.double()), "integer"),
    "triplet margin": (lambda: L.TripletLoss(margin=-0.1), "margin must be >= 0"),
    "lifted rank": (lambda: L.lifted_structured_loss(x2[None], lab), "rank 2"),
    "npair shape": (lambda: L.npair_loss(x2, y2[:2]), "same shape"),
    "npair l2": (lambda: L.npair_loss(x2, y2, l2_weight=-1), "l2_weight must be >= 0"),
    "nce shape": (lambda: L.nce_loss(x2[0], x2[1][:2], x2[2], x2[3]), "same shape"),
    "nce empty": (lambda: L.nce_loss(x2[0, :0], x2[0, :0], x2[1], x2[1]), "at least one data"),
    "info tau": (lambda: L.info_nce_loss(x2, y2, temperature=0.0), "temperature must be > 0"),
    "info critic": (lambda: L.info_nce_loss(x2, y2, critic="l2"), "critic must be one of"),
    "info mode": (lambda: L.info_nce_loss(x2, y2, negatives="memory"), "negatives must be one of"),
    "info batch": (lambda: L.info_nce_loss(x2, y2[:3]), "agree in all but the last"),
    "info no queue": (lambda: L.info_nce_loss(x2, y2, negatives="queue"), "queue=None"),
    "info stray queue": (lambda: L.info_nce_loss(x2, y2, queue=y2), "only used with negatives='queue'"),
    "info no weight": (lambda: L.info_nce_loss(x2, y2, critic="bilinear"), "weight=None"),
    "info weight shape": (
        lambda: L.info_nce_loss(x2, y2, critic="bilinear", weight=torch.eye(2, dtype=torch.float64)),
        "weight must have shape",
    ),
    "info stray weight": (
        lambda: L.info_nce_loss(x2, y2, weight=torch.eye(3, dtype=torch.float64)),
        "only used by critic",
    ),
    "info same_image rank": (lambda: L.info_nce_loss(x2, y2, negatives="same_image"), "rank 3"),
    "info gather": (
        lambda: L.info_nce_loss(x2, y2, negatives="queue", queue=y2, gather_distributed=True),
        "gather_distributed=True needs",
    ),
    "info module dim": (lambda: L.InfoNCELoss(critic="bilinear"), "query_dim"),
    "nt_xent tau": (lambda: L.nt_xent_loss(x2, y2, temperature=-0.5), "temperature must be > 0"),
    "nt_xent batch": (lambda: L.nt_xent_loss(x2, y2[:3]), "same shape"),
    "nt_xent rank": (lambda: L.nt_xent_loss(x2[None], y2[None]), "rank 2"),
    "snn tau": (lambda: L.soft_nearest_neighbor_loss(x2, lab, temperature=0), "temperature must be > 0"),
    "supcon labels": (lambda: L.supcon_loss(x2, lab[None]), "labels must have rank 1"),
    "supcon tau": (lambda: L.SupConLoss(temperature=0), "temperature must be > 0"),
    "byol shape": (lambda: L.byol_loss(x2, y2[:, :2]), "same shape"),
    "simsiam rank": (lambda: L.simsiam_loss(x2[0], x2[0], x2[0], x2[0]), "rank 2"),
    "patch rank": (lambda: L.patch_nce_loss(x2, y2), "rank 3"),
    "patch mode": (lambda: L.patch_nce_loss(x2[None], y2[None], negatives="all"), "negatives must be one of"),
    "patch tau": (lambda: L.PatchNCELoss(temperature=0.0), "temperature must be > 0"),
}


@pytest.mark.parametrize("name", list(BAD_CALLS))
def test_bad_input_raises_value_error_naming_the_value(name: str) -> None:
    call, message = BAD_CALLS[name]
    with pytest.raises(ValueError, match=message):
        call()


def test_unknown_mode_message_lists_allowed_values() -> None:
    with pytest.raises(ValueError) as info:
        L.batch_triplet_loss(x2, lab, mining="hardest")
    assert all(mode in str(info.value) for mode in L.MINING_MODES) and "'hardest'" in str(info.value)


def test_every_export_exists() -> None:
    for name in L.__all__:
        assert hasattr(L, name), name


# --------------------------------------------------------------------------- device agnostic


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_losses_run_on_cuda_and_match_cpu() -> None:
    x, y, labels = randn(8, 4), randn(8, 4), grouped_labels()
    q3, k3 = randn(2, 5, 4), randn(2, 5, 4)
    calls = {
        "pair": lambda d: L.contrastive_pair_loss(x.to(d), y.to(d), (labels == 0).to(d)),
        "triplet": lambda d: L.batch_triplet_loss(x.to(d), labels.to(d), mining="semi_hard"),
        "lifted": lambda d: L.lifted_structured_loss(x.to(d), labels.to(d)),
        "npair": lambda d: L.npair_loss(x.to(d), y.to(d), l2_weight=0.1),
        "nce": lambda d: L.nce_loss(x[0].to(d), y[0].to(d), x[1].to(d), y[1].to(d)),
        "info_queue": lambda d: L.info_nce_loss(x.to(d), y.to(d), negatives="queue", queue=y.to(d)),
        "nt_xent": lambda d: L.nt_xent_loss(x.to(d), y.to(d)),
        "snn": lambda d: L.soft_nearest_neighbor_loss(x.to(d), labels.to(d)),
        "supcon": lambda d: L.supcon_loss(x.to(d), labels.to(d)),
        "simsiam": lambda d: L.simsiam_loss(x.to(d), y.to(d), y.to(d), x.to(d)),
        "patch": lambda d: L.patch_nce_loss(q3.to(d), k3.to(d), negatives="batch"),
    }
    for name, call in calls.items():
        torch.testing.assert_close(call("cuda").cpu(), call("cpu"), msg=name)
