"""Tests for the dmc-restyle generator: determinism, caching, paired test geometry, argument errors."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

os.environ.setdefault("MUJOCO_GL", "egl")  # before dm_control is imported (by the generator, lazily)

from cut_translation import restyle  # noqa: E402
from cut_translation.data import PairedTestDataset  # noqa: E402
from ssl_shared.errors import UserError  # noqa: E402

pytestmark = pytest.mark.render

TINY = {"size": 64, "train": 2, "test": 2, "seed": 3, "tasks": ("cartpole-swingup",)}


def _pngs(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*.png"))}


@pytest.fixture(scope="module")
def tiny_benchmark(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("restyle") / "bench"
    restyle.generate(restyle.RestyleConfig(out=str(out), **TINY))
    return out


def test_layout_manifest_and_paired_names(tiny_benchmark: Path) -> None:
    manifest = json.loads((tiny_benchmark / "manifest.json").read_text())
    assert manifest["splits"] == {"trainA": 2, "trainB": 2, "testA": 2, "testB": 2}
    assert manifest["parameters"]["size"] == 64 and manifest["parameters"]["seed"] == 3
    names_a = sorted(p.name for p in (tiny_benchmark / "testA").glob("*.png"))
    assert names_a == sorted(p.name for p in (tiny_benchmark / "testB").glob("*.png"))
    image = Image.open(tiny_benchmark / "trainB" / names_a[0])
    assert image.size == (64, 64) and image.mode == "RGB"
    assert len(PairedTestDataset(tiny_benchmark)) == 2
    # training states are not the test states: no training image equals a test image of its look
    train_a = {p.read_bytes() for p in (tiny_benchmark / "trainA").glob("*.png")}
    assert not train_a & {p.read_bytes() for p in (tiny_benchmark / "testA").glob("*.png")}


def test_same_seed_gives_byte_identical_pngs(tiny_benchmark: Path, tmp_path: Path) -> None:
    again = tmp_path / "again"
    restyle.generate(restyle.RestyleConfig(out=str(again), **TINY))
    assert _pngs(again) == _pngs(tiny_benchmark)
    other = tmp_path / "other"
    restyle.generate(restyle.RestyleConfig(out=str(other), **{**TINY, "seed": 4, "train": 1, "test": 1}))
    assert (
        _pngs(other)["trainA/cartpole-swingup_00000.png"] != _pngs(tiny_benchmark)["trainA/cartpole-swingup_00000.png"]
    )


def test_cache_skips_and_refuses_other_parameters(tiny_benchmark: Path) -> None:
    manifest_file = tiny_benchmark / "manifest.json"
    before = manifest_file.stat().st_mtime_ns
    restyle.generate(restyle.RestyleConfig(out=str(tiny_benchmark), **TINY))
    assert manifest_file.stat().st_mtime_ns == before
    with pytest.raises(ValueError, match="other parameters"):
        restyle.generate(restyle.RestyleConfig(out=str(tiny_benchmark), **{**TINY, "test": 3}))


def test_restyle_changes_colours_but_not_geometry() -> None:
    renderer = restyle.TaskRenderer("cheetah-run", restyle.Style(), seed=0)
    renderer.reseed(7)
    states = restyle.collect_states(renderer.env, 2, np.random.default_rng(0), restyle.RolloutConfig())
    for state in states:
        image_a = renderer.render(state, "A", 64, 0).astype(np.float64)
        image_b = renderer.render(state, "B", 64, 0).astype(np.float64)
        assert np.abs(image_a - image_b).mean() > 20.0  # of 255: a strong change of look
        seg_a = restyle.render_segmentation(renderer.physics_a, state, 64, 0)
        seg_b = restyle.render_segmentation(renderer.physics_b, state, 64, 0)
        assert np.array_equal(seg_a, seg_b)
        assert len(np.unique(seg_a)) > 3  # the segmentation actually sees the floor and several bodies
    # the style changed only appearance fields of the model
    model_a, model_b = renderer.physics_a.model, renderer.physics_b.model
    for name in ("geom_size", "geom_pos", "geom_quat", "body_pos", "cam_pos", "light_pos", "light_dir"):
        assert np.array_equal(getattr(model_a, name), getattr(model_b, name)), name
    assert not np.array_equal(model_a.mat_rgba, model_b.mat_rgba)


def test_floor_texture_and_sky_recolour_by_formula() -> None:
    style = restyle.Style(floor_cells=2, floor_jitter=0.0)
    tex = restyle.floor_texture(4, 4, 3, style)
    rgb1, rgb2 = np.asarray(style.floor_rgb1), np.asarray(style.floor_rgb2)
    texel = tex.astype(np.float64) / 255.0
    # 2x2 cells of 2x2 texels: (0, 0) and (3, 3) in rgb1 cells, (0, 3) and (3, 0) in rgb2 cells
    for (row, col), colour in (((0, 0), rgb1), ((3, 3), rgb1), ((1, 1), rgb1), ((0, 3), rgb2), ((3, 0), rgb2)):
        assert np.allclose(texel[row, col], colour, atol=1 / 255), (row, col)
    sky = np.array([[[0, 0, 0], [51, 77, 102], [102, 153, 204], [255, 255, 255]]], np.uint8)
    out = restyle.recolour_sky(sky, style).astype(np.float64) / 255.0
    top, bottom = np.asarray(style.sky_top), np.asarray(style.sky_bottom)
    assert np.allclose(out[0, 0], bottom, atol=1 / 255)
    assert np.allclose(out[0, 1], 0.5 * top + 0.5 * bottom, atol=1 / 255)
    assert np.allclose(out[0, 2], top, atol=1 / 255)
    assert np.allclose(out[0, 3], style.sky_marks, atol=1 / 255)


def test_bad_arguments() -> None:
    for size in (32, 300):
        with pytest.raises(ValueError, match="--size: got .*; allowed: an integer from 64 to 256"):
            restyle.RestyleConfig(size=size)
    with pytest.raises(ValueError, match="domain-task"):
        restyle.RestyleConfig(tasks=("cheetah",))
    with pytest.raises(ValueError, match="--train: got 0"):
        restyle.RestyleConfig(train=0)
    assert restyle.split_counts(10, 3) == [4, 3, 3]


def test_missing_gl_backend_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("MUJOCO_GL", raising=False)
    with pytest.raises(UserError, match="MUJOCO_GL=egl"):
        restyle.generate(restyle.RestyleConfig(out=str(tmp_path / "x"), **TINY))


def test_cli_reports_bad_size_without_traceback(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as info:
        restyle.main(["--out", str(tmp_path / "x"), "--size", "300"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err == "scv-dmc-restyle: error: --size: got 300; allowed: an integer from 64 to 256 px\n"
    assert not (tmp_path / "x").exists()


def _stale_partial(out: Path) -> Path:
    partial = out.parent / f"{out.name}.partial"
    (partial / "trainA").mkdir(parents=True)
    (partial / "trainA" / "half.png").write_bytes(b"\x89PNG")  # what a killed run leaves
    return partial


def test_next_start_removes_the_partial_folder_of_a_killed_run(tiny_benchmark: Path) -> None:
    partial = _stale_partial(tiny_benchmark)
    restyle.generate(restyle.RestyleConfig(out=str(tiny_benchmark), **TINY))  # cached: skipped, but cleaned
    assert not partial.exists()
    partial = _stale_partial(tiny_benchmark)
    with pytest.raises(UserError, match="other parameters"):
        restyle.generate(restyle.RestyleConfig(out=str(tiny_benchmark), **{**TINY, "test": 3}))
    assert not partial.exists()


def test_failed_run_removes_its_partial_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(config, folder):
        (folder / "trainA" / "x.png").write_bytes(b"")
        raise RuntimeError("renderer crashed")

    monkeypatch.setattr(restyle, "_render_all", fail)
    out = tmp_path / "bench"
    with pytest.raises(RuntimeError, match="renderer crashed"):
        restyle.generate(restyle.RestyleConfig(out=str(out), **TINY))
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_complete_partial_whose_move_was_interrupted_is_moved_into_place(tmp_path: Path) -> None:
    out = tmp_path / "bench"
    partial = tmp_path / "bench.partial"
    (partial / "trainA").mkdir(parents=True)
    params = restyle.manifest_parameters(restyle.RestyleConfig(out=str(out), **TINY))
    (partial / "manifest.json").write_text(json.dumps({"parameters": params, "splits": {}}))
    manifest = restyle.generate(restyle.RestyleConfig(out=str(out), **TINY))
    assert manifest["parameters"] == params and (out / "manifest.json").is_file() and not partial.exists()
    assert list((out / "trainA").iterdir()) == []  # moved, not rendered again
