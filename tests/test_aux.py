"""Tests of the auxiliary objectives (curl_agents.objectives) on tiny encoders and batches."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from registry_helpers import defined_subclasses

import curl_agents.objectives as objectives_package
from curl_agents.objectives import AUX_OBJECTIVES, NO_OBJECTIVE_SUMMARY, AuxBatch, AuxObjective, make_aux_objective
from curl_agents.objectives.forward_dynamics import ForwardDynamicsObjective
from curl_agents.objectives.moco import MocoObjective
from curl_agents.objectives.reconstruction import ReconstructionObjective
from curl_agents.objectives.rotation import RotationObjective
from curl_agents.objectives.table import render
from ssl_shared.encoders import PixelEncoder
from ssl_shared.momentum import copy_weights

OBS_SHAPE = (9, 32, 32)
ACTION_DIM = 2
BATCH = 16
NAMES = sorted(name for name, cls in AUX_OBJECTIVES.items() if cls is not None)

# Small heads so that every test runs in well under a second.
TINY_OPTIONS: dict[str, dict] = {
    "curl": {},
    "simclr": {"hidden_dim": 32, "projection_dim": 16},
    "byol": {"hidden_dim": 32, "projection_dim": 16},
    "spr": {"hidden_dim": 32, "projection_dim": 16},
    "moco": {"hidden_dim": 32, "projection_dim": 16, "queue_size": 32},
    "atc": {"anchor_hidden_dim": 32},
    "reconstruction": {},
    "inverse_dynamics": {"hidden_dim": 64},
    "forward_dynamics": {"hidden_dim": 64},
    "rotation": {},
    "ssl_method": {"method": "denoising_ae"},
}


@pytest.fixture(autouse=True, scope="module")
def _single_thread():
    """These ops are tiny: one intra-op thread avoids OpenMP spin-waits on a shared, loaded CPU."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def make_encoders(obs_shape: tuple[int, int, int] = OBS_SHAPE, seed: int = 0) -> tuple[PixelEncoder, PixelEncoder]:
    torch.manual_seed(seed)
    encoder = PixelEncoder(obs_shape, feature_dim=16, num_layers=2, num_filters=8)
    target = PixelEncoder(obs_shape, feature_dim=16, num_layers=2, num_filters=8)
    copy_weights(encoder, target)
    return encoder, target


def make_batch(seed: int = 0, batch: int = BATCH, obs_shape: tuple[int, int, int] = OBS_SHAPE) -> AuxBatch:
    """Per-sample noise on top of a vertical ramp (so rotations are recognisable); the second view
    and the next observation are shifted copies."""
    g = torch.Generator().manual_seed(seed)
    c, h, w = obs_shape
    ramp = torch.linspace(0, 127, h).view(1, 1, h, 1)
    obs = torch.rand(batch, c, h, w, generator=g) * 128 + ramp
    obs_pos = torch.roll(obs, shifts=1, dims=3) + torch.rand(batch, c, h, w, generator=g)
    next_obs = torch.roll(obs, shifts=2, dims=3) + torch.rand(batch, c, h, w, generator=g)
    action = torch.rand(batch, ACTION_DIM, generator=g) * 2 - 1
    reward = torch.randn(batch, 1, generator=g)
    return AuxBatch(obs, obs_pos.clamp(0, 255), next_obs.clamp(0, 255), action, reward, torch.zeros(batch, 1))


def build(name: str, **extra):
    encoder, target = make_encoders()
    return make_aux_objective(name, encoder, target, ACTION_DIM, **{**TINY_OPTIONS.get(name, {}), **extra})


# ---------------------------------------------------------------- registry


def test_registry_lists_every_objective_class_with_its_table_attributes():
    assert {cls for cls in AUX_OBJECTIVES.values() if cls is not None} == defined_subclasses(
        AuxObjective, objectives_package
    )
    encoder, target = make_encoders()
    assert make_aux_objective("none", encoder, target, ACTION_DIM) is None
    for name in NAMES:
        cls = AUX_OBJECTIVES[name]
        assert cls.name == name
        own = vars(cls)  # set on the class itself, not inherited (spr from byol)
        for attribute in ("summary", "second_input", "citation"):
            assert own.get(attribute), f"{name}: {attribute} must be a class attribute of {cls.__name__}"
        for arxiv_id in re.findall(r"arXiv (\S+)", cls.citation):
            assert re.fullmatch(r"\d{4}\.\d{4,5}", arxiv_id.rstrip(";,")), f"{name}: bad arXiv id {arxiv_id}"


def test_objectives_table_rows_read_the_class_attributes_and_signatures():
    rows = {line.split(" | ")[0].strip("| `"): line for line in render().splitlines() if line.startswith("| `")}
    assert list(rows) == list(AUX_OBJECTIVES)
    assert rows["moco"].startswith("| `moco` | cosine InfoNCE against a FIFO queue of momentum keys |")
    # MoCo's own knobs, in signature order, without the common lr and weight (MoCo v2: tau 0.2, 4096 keys)
    assert (
        "| `temperature`=0.2, `queue_size`=4,096, `hidden_dim`=256, `projection_dim`=128, `head_tau`=0.05, "
        in (rows["moco"])
    )
    assert "`lr`" not in rows["moco"] and "Every objective also takes `lr`=0.001, `weight`=1 " in render()
    assert rows["none"] == f"| `none` | {NO_OBJECTIVE_SUMMARY} | – | – | – |"


def test_docs_objectives_md_is_the_generated_table():
    committed = (Path(__file__).resolve().parents[1] / "docs" / "objectives.md").read_text()
    assert committed == render(), (
        "docs/objectives.md is stale: python -m curl_agents.objectives.table --out docs/objectives.md"
    )


def test_unknown_name_raises_listing_names():
    encoder, target = make_encoders()
    with pytest.raises(ValueError) as info:
        make_aux_objective("cpc", encoder, target, ACTION_DIM)
    for name in AUX_OBJECTIVES:
        assert repr(name) in str(info.value)


def test_unknown_option_raises_listing_options():
    encoder, target = make_encoders()
    with pytest.raises(ValueError, match="temperature"):
        make_aux_objective("moco", encoder, target, ACTION_DIM, temprature=0.1)


def test_batch_shapes_are_validated():
    b = make_batch()
    with pytest.raises(ValueError, match="reward"):
        AuxBatch(b.obs, b.obs_pos, b.next_obs, b.action, b.reward.view(-1), b.done)
    with pytest.raises(ValueError, match="obs_pos"):
        AuxBatch(b.obs, b.obs_pos[:, :3], b.next_obs, b.action, b.reward, b.done)


# ---------------------------------------------------------------- every objective


@pytest.mark.parametrize("name", NAMES)
def test_loss_is_finite_and_decreases_on_a_fixed_batch(name):
    objective = build(name, generator=torch.Generator().manual_seed(1)) if name == "rotation" else build(name)
    batch = make_batch()
    initial_queue = objective.queue.keys.clone() if name == "moco" else None
    losses = []
    for _ in range(40):
        logs = objective.update(batch)
        losses.append(logs["aux/loss"])
        if initial_queue is not None:
            # Keep MoCo's negatives fixed: re-enqueued copies of this batch's own keys would be
            # near-duplicates of the positives and hide the learning we test here.
            objective.queue.keys.copy_(initial_queue)
    assert all(torch.isfinite(torch.tensor(losses)))
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    assert last < 0.9 * first, f"{name}: loss went from {first:.4f} to {last:.4f}"


@pytest.mark.parametrize("name", NAMES)
def test_key_path_gets_no_gradient(name):
    objective = build(name)
    before = [p.detach().clone() for p in objective.target_encoder.parameters()]
    frozen = {n: p.detach().clone() for n, p in objective.named_parameters() if not p.requires_grad}
    encoder_before = [p.detach().clone() for p in objective.encoder.parameters()]
    objective.update(make_batch())
    for p, old in zip(objective.target_encoder.parameters(), before):
        assert p.grad is None
        assert torch.equal(p, old)
    for n, p in objective.named_parameters():
        if n in frozen:
            assert p.grad is None and torch.equal(p, frozen[n]), n
    changed = [not torch.equal(p, old) for p, old in zip(objective.encoder.parameters(), encoder_before)]
    assert any(changed), "the online encoder must be trained by the objective"


@pytest.mark.parametrize("name", NAMES)
def test_one_optimizer_covers_heads_and_encoder_exactly_once(name):
    objective = build(name)
    optimised = [p for group in objective.optimizer.param_groups for p in group["params"]]
    ids = [id(p) for p in optimised]
    assert len(ids) == len(set(ids)), "a parameter appears twice"
    heads = {id(p) for p in objective.parameters() if p.requires_grad}
    encoder = {id(p) for p in objective.encoder.parameters()}
    assert set(ids) == heads | encoder
    assert not set(ids) & {id(p) for p in objective.target_encoder.parameters()}
    # The objective owns its heads only: the borrowed encoders are not in its state_dict.
    owned = {p.data_ptr() for p in objective.state_dict().values()}
    assert not owned & {p.data_ptr() for p in objective.encoder.parameters()}


@pytest.mark.parametrize(("name", "options"), [("byol", {}), ("spr", {}), ("moco", {}), ("curl", {"latent_dim": 8})])
def test_after_target_update_moves_target_heads_by_tau(name, options):
    objective = build(name, **options)
    objective.update(make_batch())
    online = [p.detach().clone() for p in objective.projector.parameters()]
    target = [p.detach().clone() for p in objective.target_projector.parameters()]
    assert online and not all(torch.equal(o, t) for o, t in zip(online, target))
    objective.after_target_update()
    tau = objective.head_tau
    for new, t, o in zip(objective.target_projector.parameters(), target, online):
        torch.testing.assert_close(new, (1 - tau) * t + tau * o)


def test_non_finite_loss_stops_before_any_step():
    objective = build("curl")
    batch = make_batch()
    batch.obs[0, 0, 0, 0] = float("nan")
    before = [p.detach().clone() for p in objective.encoder.parameters()]
    with pytest.raises(FloatingPointError, match="curl"):
        objective.update(batch)
    assert all(torch.equal(p, old) for p, old in zip(objective.encoder.parameters(), before))


# ---------------------------------------------------------------- CURL


@pytest.mark.parametrize("latent_dim", [None, 8])
def test_curl_logits_are_the_bilinear_form_with_diagonal_labels(latent_dim):
    objective = build("curl", latent_dim=latent_dim)
    batch = make_batch()
    W = objective.critic.W
    assert W.shape == (latent_dim or 16, latent_dim or 16)
    assert float(W.detach().min()) >= 0.0 and float(W.detach().max()) < 1.0  # official uniform[0, 1) start
    with torch.no_grad():
        z_a = objective.encoder(batch.obs)
        z_k = objective.target_encoder(batch.obs_pos)
        if latent_dim is not None:
            z_a, z_k = objective.projector(z_a), objective.target_projector(z_k)
        expected = torch.einsum("id,de,je->ij", z_a, W, z_k)
        expected = expected - expected.max(dim=1, keepdim=True).values
        logits = objective.logits(batch)
        loss, logs = objective.compute_loss(batch)
    torch.testing.assert_close(logits, expected)
    hand = -torch.stack([expected[i, i] - torch.logsumexp(expected[i], 0) for i in range(BATCH)]).mean()
    torch.testing.assert_close(loss, hand)
    hand_accuracy = sum(int(expected[i].argmax() == i) for i in range(BATCH)) / BATCH
    assert logs["accuracy"] == pytest.approx(hand_accuracy)


def test_curl_official_double_step_takes_two_adam_steps_on_the_encoder_only():
    """Fresh Adam moves each parameter by lr * g_hat / (|g_hat| + eps); two optimizers on the same
    gradients (the official update_cpc) therefore move the encoder exactly twice as far as one, and
    the bilinear W (only in the first optimizer) as far."""
    batch = make_batch()
    moved = {}
    for double in (False, True):
        objective = build("curl", official_double_step=double)
        before = {name: p.detach().clone() for name, p in objective.encoder.named_parameters()}
        w_before = objective.critic.W.detach().clone()
        objective.update(batch)
        moved[double] = (
            {name: p.detach() - before[name] for name, p in objective.encoder.named_parameters()},
            objective.critic.W.detach() - w_before,
        )
        assert objective.optimizer_names() == (["optimizer", "encoder_optimizer"] if double else ["optimizer"])
    (single_enc, single_w), (double_enc, double_w) = moved[False], moved[True]
    assert max(float(d.abs().max()) for d in single_enc.values()) > 1e-4
    for name, delta in single_enc.items():
        torch.testing.assert_close(double_enc[name], 2 * delta, rtol=1e-4, atol=1e-7)
    torch.testing.assert_close(double_w, single_w)


# ---------------------------------------------------------------- rotation


def test_rotation_labels_match_the_applied_rotation():
    objective = build("rotation", generator=torch.Generator().manual_seed(3))
    obs = make_batch().obs
    rotated, labels = objective.rotated(obs)
    assert set(labels.tolist()) <= {0, 1, 2, 3} and len(set(labels.tolist())) > 1
    for i in range(obs.shape[0]):
        assert torch.equal(rotated[i], torch.rot90(obs[i], int(labels[i]), dims=(1, 2)))


def test_rotation_rejects_non_square_observations():
    encoder, target = make_encoders(obs_shape=(9, 32, 28))
    with pytest.raises(ValueError, match="square"):
        RotationObjective(encoder, target, ACTION_DIM)


# ---------------------------------------------------------------- MoCo


def test_moco_queue_holds_the_last_keys_fifo():
    size = 40
    objective = build("moco", queue_size=size)
    assert isinstance(objective, MocoObjective)
    batches = [make_batch(seed) for seed in range(3)]
    # Keys depend on the target encoder and target projector only, which update() never steps.
    keys = [objective.query_and_key(b)[1] for b in batches]
    objective.compute_loss(batches[0])  # computing a loss alone must not enqueue
    initial = objective.queue.keys.clone()
    objective.update(batches[0])
    objective.compute_loss(batches[1])
    sequence = torch.cat(keys)
    expected = initial.clone()
    for n in range(BATCH):
        expected[n % size] = sequence[n]
    torch.testing.assert_close(objective.queue.keys, expected)
    for b in batches[1:]:
        objective.update(b)
    for n in range(sequence.shape[0]):
        expected[n % size] = sequence[n]
    torch.testing.assert_close(objective.queue.keys, expected)


# ---------------------------------------------------------------- reconstruction


def test_reconstruction_decodes_to_the_observation_shape():
    objective = build("reconstruction")
    assert isinstance(objective, ReconstructionObjective)
    for shape in [(9, 32, 32), (3, 33, 33), (6, 30, 27)]:
        encoder, target = make_encoders(obs_shape=shape)
        decoder = ReconstructionObjective(encoder, target, ACTION_DIM).decoder
        assert tuple(decoder(torch.zeros(2, 16)).shape) == (2, *shape)


def test_reconstruction_weight_decay_applies_to_the_decoder_only():
    objective = build("reconstruction")
    decay = {id(p): g["weight_decay"] for g in objective.optimizer.param_groups for p in g["params"]}
    for p in objective.decoder.parameters():
        assert decay[id(p)] == 1e-7
    for p in objective.encoder.parameters():
        assert decay[id(p)] == 0.0
    # Behaviour: with all gradients zero, only the L2 term acts, so only the decoder moves.
    encoder_before = [p.detach().clone() for p in objective.encoder.parameters()]
    decoder_before = [p.detach().clone() for p in objective.decoder.parameters()]
    for group in objective.optimizer.param_groups:
        for p in group["params"]:
            p.grad = torch.zeros_like(p)
    objective.optimizer.step()
    assert all(torch.equal(p, old) for p, old in zip(objective.encoder.parameters(), encoder_before))
    moved = [not torch.equal(p, old) for p, old in zip(objective.decoder.parameters(), decoder_before)]
    nonzero = [bool(old.abs().sum() > 0) for old in decoder_before]  # SAC-AE init: zero biases stay zero
    assert moved == nonzero and any(moved)


def test_reconstruction_loss_formula_with_a_plain_target():
    objective = build("reconstruction", target_bits=None)
    batch = make_batch()
    with torch.no_grad():
        z = objective.encoder(batch.obs)
        reconstruction = objective.decoder(z)
        target = batch.obs / 255.0 - 0.5
        expected = ((reconstruction - target) ** 2).mean() + 1e-6 * 0.5 * (z**2).sum(1).mean()
        loss, _ = objective.compute_loss(batch)
    torch.testing.assert_close(loss, expected)


def test_reconstruction_target_is_sac_ae_5_bit_preprocessing():
    """SAC-AE utils.preprocess_obs(bits=5): floor(o / 8) / 32 + U[0, 1) / 32 - 0.5."""
    objective = build("reconstruction")
    obs = torch.tensor([0.0, 7.0, 8.0, 100.0, 255.0]).view(1, 1, 1, 5).expand(4000, 1, 1, 5)
    target = objective.reconstruction_target(obs)
    low = torch.tensor([0, 0, 1, 12, 31]) / 32 - 0.5  # floor(o / 8) / 32 - 0.5, by hand
    assert bool((target >= low).all()) and bool((target < low + 1 / 32).all())
    noise = (target - low) * 32  # the dequantisation noise, uniform on [0, 1)
    assert abs(noise.mean().item() - 0.5) < 0.01 and abs(noise.var().item() - 1 / 12) < 0.005
    batch = make_batch()
    torch.manual_seed(3)
    loss, _ = objective.compute_loss(batch)
    torch.manual_seed(3)
    with torch.no_grad():
        z = objective.encoder(batch.obs)
        x = torch.floor(batch.obs / 8) / 32 + torch.rand(batch.obs.shape) / 32 - 0.5
        expected = ((objective.decoder(z) - x) ** 2).mean() + 1e-6 * 0.5 * (z**2).sum(1).mean()
    torch.testing.assert_close(loss.detach(), expected)


# ---------------------------------------------------------------- forward dynamics


def test_forward_dynamics_learns_a_linear_reward():
    torch.manual_seed(0)
    objective = build("forward_dynamics", lr=3e-3)
    assert isinstance(objective, ForwardDynamicsObjective)
    w = torch.tensor([[1.5], [-0.7]])
    g = torch.Generator().manual_seed(5)
    base = make_batch(batch=32)

    def batch_with_fresh_actions() -> AuxBatch:
        action = torch.rand(32, ACTION_DIM, generator=g) * 2 - 1
        return AuxBatch(base.obs, base.obs_pos, base.next_obs, action, action @ w + 0.3, base.done)

    for _ in range(120):
        objective.update(batch_with_fresh_actions())
    held_out = batch_with_fresh_actions()
    with torch.no_grad():
        _, r_hat = objective.predict(objective.encoder(held_out.obs), held_out.action)
    error = F.mse_loss(r_hat, held_out.reward).item()
    assert error < 0.02 * held_out.reward.var().item(), error


def test_forward_dynamics_loss_formula():
    objective = build("forward_dynamics", latent_weight=0.25, reward_weight=2.0)
    batch = make_batch()
    with torch.no_grad():
        z_hat, r_hat = objective.predict(objective.encoder(batch.obs), batch.action)
        z_next = objective.target_encoder(batch.next_obs)
        expected = 0.25 * ((z_hat - z_next) ** 2).mean() + 2.0 * ((r_hat - batch.reward) ** 2).mean()
        loss, _ = objective.compute_loss(batch)
    torch.testing.assert_close(loss, expected)


# ---------------------------------------------------------------- ssl_shared methods as objectives


@pytest.mark.parametrize("method", ["denoising_ae", "simclr", "byol", "rotation"])
def test_ssl_method_objective_trains_the_online_encoder_with_the_method_loss(method):
    from ssl_shared.methods import build_method

    objective = build("ssl_method", method=method, options={} if method != "simclr" else {"projection_dim": 8})
    batch = make_batch()
    # the wrapped method computes the same loss as the method called directly on obs / 255
    torch.manual_seed(3)
    ours, _ = objective.compute_loss(batch)
    torch.manual_seed(3)
    direct, _ = objective.method.training_step(
        {"image": batch.obs / 255.0}, step=0, total_steps=objective.schedule_steps
    )
    torch.testing.assert_close(ours, direct)
    assert objective.method.backbone is objective.encoder
    assert isinstance(build_method(method, make_encoders()[0], 16), torch.nn.Module)


def test_ssl_method_objective_rejects_inapplicable_methods():
    with pytest.raises(ValueError, match="index"):
        build("ssl_method", method="npid")
    with pytest.raises(ValueError, match="frames"):
        build("ssl_method", method="tcn")
    with pytest.raises(ValueError, match="unknown SSL method"):
        build("ssl_method", method="nope")
