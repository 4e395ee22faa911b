"""Probes, k-NN and offline datasets against hand computations and independent references."""

import numpy as np
import pytest
import torch
from sklearn.linear_model import Ridge

from ssl_shared.data import DigitsDataset, ImageFolderDataset, build_dataset
from ssl_shared.evaluation import knn_classify, linear_probe_classification, linear_probe_regression, r2_score


def test_r2_matches_formula():
    y = torch.tensor([[1.0, 2.0], [2.0, 4.0], [3.0, 9.0]])
    pred = torch.tensor([[1.5, 2.0], [2.0, 5.0], [2.5, 8.0]])
    by_hand = []
    for j in range(2):
        ss_res = ((y[:, j] - pred[:, j]) ** 2).sum()
        ss_tot = ((y[:, j] - y[:, j].mean()) ** 2).sum()
        by_hand.append(1 - ss_res / ss_tot)
    assert r2_score(y, pred) == pytest.approx(float(torch.stack(by_hand).mean()))
    assert r2_score(y, y) == pytest.approx(1.0)


def test_regression_probe_recovers_linear_targets_and_matches_sklearn_ridge():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(200, 5, generator=g)
    y = x @ torch.randn(5, 3, generator=g) + 0.5
    assert linear_probe_regression(x[:150], y[:150], x[150:], y[150:], ridge=0.0) == pytest.approx(1.0, abs=1e-9)
    # with a ridge, compare with scikit-learn on the same standardised features (alpha = ridge * N)
    noisy = y + 0.3 * torch.randn(y.shape, generator=g)
    ours = linear_probe_regression(x[:150], noisy[:150], x[150:], noisy[150:], ridge=0.1)
    mean, std = x[:150].mean(0), x[:150].std(0)
    model = Ridge(alpha=0.1 * 150).fit(((x[:150] - mean) / std).numpy(), noisy[:150].numpy())
    pred = torch.from_numpy(model.predict(((x[150:] - mean) / std).numpy()))
    assert ours == pytest.approx(r2_score(noisy[150:], pred), abs=1e-6)


def test_classification_probe_separates_separable_classes():
    g = torch.Generator().manual_seed(1)
    centers = torch.tensor([[4.0, 0.0], [-4.0, 0.0], [0.0, 4.0]])
    labels = torch.arange(3).repeat(40)
    x = centers[labels] + 0.5 * torch.randn(120, 2, generator=g)
    assert linear_probe_classification(x[:90], labels[:90], x[90:], labels[90:]) == 1.0
    # random labels: chance level, not perfect
    shuffled = labels[torch.randperm(120, generator=g)]
    assert linear_probe_classification(x[:90], shuffled[:90], x[90:], shuffled[90:]) < 0.8


def test_knn_votes_by_hand():
    train_x = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]])
    train_y = torch.tensor([0, 0, 1])
    test_x = torch.tensor([[1.0, 0.05], [0.05, 1.0]])
    assert knn_classify(train_x, train_y, test_x, torch.tensor([0, 1]), k=1) == 1.0
    # k = 3: sample 2 sits near class 1 but two class-0 votes outweigh one only if their weights sum higher
    acc = knn_classify(train_x, train_y, test_x[1:], torch.tensor([1]), k=3, temperature=0.07)
    sims = torch.nn.functional.normalize(test_x[1:], dim=1) @ torch.nn.functional.normalize(train_x, dim=1).T
    w = (sims[0] / 0.07).exp()
    expected = float(w[2] > w[0] + w[1])
    assert acc == expected
    with pytest.raises(ValueError):
        knn_classify(train_x, train_y, test_x, torch.tensor([0, 1]), k=0)


def test_digits_dataset_split_and_range():
    train, test = DigitsDataset("train", image_size=16), DigitsDataset("test", image_size=16)
    assert len(train) + len(test) == 1797
    item = train[0]
    assert item["image"].shape == (3, 16, 16)
    assert 0.0 <= float(item["image"].min()) and float(item["image"].max()) <= 1.0
    assert set(test.labels.tolist()) == set(range(10))
    with pytest.raises(ValueError, match="split"):
        DigitsDataset("val")


def test_image_folder_and_bad_specs(tmp_path):
    from PIL import Image

    for cls in ("cats", "dogs"):
        (tmp_path / cls).mkdir()
        Image.fromarray(np.full((10, 12, 3), 128, np.uint8)).save(tmp_path / cls / "a.png")
    ds = ImageFolderDataset(tmp_path, image_size=8)
    assert len(ds) == 2 and ds[0]["image"].shape == (3, 8, 8)
    assert {ds[0]["label"], ds[1]["label"]} == {0, 1}
    with pytest.raises(ValueError, match="unknown dataset spec"):
        build_dataset("imagenet")
    with pytest.raises(FileNotFoundError):
        build_dataset(f"folder:{tmp_path / 'missing'}")


def test_dmc_frames_are_cached_split_by_episode_and_sequences_stay_in_episode(tmp_path):
    from ssl_shared.data import DMCFramesDataset, generate_dmc_frames

    path = generate_dmc_frames(
        tmp_path / "f.npz", task="cartpole-swingup", episodes=5, steps_per_episode=4, image_size=16
    )
    mtime = path.stat().st_mtime_ns
    assert generate_dmc_frames(path, task="cartpole-swingup", episodes=5, steps_per_episode=4, image_size=16) == path
    assert path.stat().st_mtime_ns == mtime  # cached, not regenerated
    train = DMCFramesDataset(path, "train", sequence_length=3)
    test = DMCFramesDataset(path, "test")
    assert len(train) == 16 and len(test) == 4
    assert set(train.episode.tolist()).isdisjoint(test.episode.tolist())
    item = train[3]  # last step of episode 0: the 3-frame window is shifted back inside the episode
    torch.testing.assert_close(item["frames"][-1], item["image"])
    torch.testing.assert_close(item["frames"][0], train[1]["image"])
    assert item["label"].shape == (train.state_dim,)
    # cartpole's state: slider and hinge positions and velocities
    assert train.state_dim == 4
    with pytest.raises(ValueError, match="unknown dm_control task"):
        generate_dmc_frames(tmp_path / "g.npz", task="cartpole-flip")


def test_finetune_learns_a_separable_task_and_updates_the_encoder():
    from ssl_shared.evaluation import finetune_classifier

    class Blobs(torch.utils.data.Dataset):
        """Class c = a bright square in quadrant c of an 8x8 image."""

        def __init__(self, n: int, seed: int):
            g = torch.Generator().manual_seed(seed)
            self.labels = torch.randint(0, 4, (n,), generator=g)
            self.images = 0.1 * torch.rand(n, 1, 8, 8, generator=g)
            for i, c in enumerate(self.labels.tolist()):
                r, q = divmod(c, 2)
                self.images[i, 0, 4 * r : 4 * r + 4, 4 * q : 4 * q + 4] += 0.9

        def __len__(self):
            return len(self.labels)

        def __getitem__(self, i):
            return {"image": self.images[i], "label": self.labels[i]}

    torch.manual_seed(0)
    encoder = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 8))
    before = encoder[1].weight.detach().clone()
    acc = finetune_classifier(encoder, 8, Blobs(256, 0), Blobs(64, 1), num_classes=4, epochs=5, lr=1e-2)
    assert acc > 0.9
    assert not torch.equal(before, encoder[1].weight)
