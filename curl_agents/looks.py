"""Named looks of the DeepMind Control suite scenes: other colours, textures and lights, same everything else.

A look edits only appearance fields of a compiled MuJoCo model (``tex_data``, ``mat_rgba``, ``geom_rgba``,
``mat_reflectance``, ``light_diffuse``/``light_ambient``/``light_specular`` and the headlight) and
re-uploads the textures to the render context, so geometry, masses, dynamics and cameras are identical by
construction; the tests check that segmentation renders agree pixel for pixel. It is the test-time
appearance shift of the DMControl Generalization Benchmark (Hansen & Wang 2021, arXiv 2011.13389:
``color_easy``, ``color_hard``), with colours of our own.

The registry :data:`LOOKS` (one source of truth; ``curl_agents.envs.make_env(look=NAME)`` and every
pipeline that names a look read it):

``default``
    the suite's own colours (nothing is changed).
``restyled``
    the ``dmc-restyle`` benchmark's domain B (:class:`Style`): a terracotta/sand checker floor, a sunset
    sky, teal bodies, warmer and dimmer light, a matte floor.
``color_shift_0.2``, ``color_shift_0.5``, ``color_shift_1.0``
    :class:`ColorShift` at strength s: every texture, untextured material, material-less geom and light
    moves from its default colour a fraction s of the way towards a colour drawn for its name from
    seed 0 (see :class:`ColorShift` for the formulas). s = 1 replaces the colours; 0.2 is a mild tint.

A look is applied once, after the env is built (``apply_look(physics, name)``); dm_control's resets
change only the state, so the look holds for every episode.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from ssl_shared.errors import UserError


class LookSpec(Protocol):
    """What a registered look is: something that restyles a dm_control ``Physics`` in place."""

    def apply(self, physics: Any) -> None: ...


# ----------------------------------------------------------------------------------------------------
# Model access


def object_id(model: Any, name: str, kind: str) -> int:
    """MuJoCo id of the named texture/material, -1 if the model has none of that name."""
    import mujoco

    obj = {"texture": mujoco.mjtObj.mjOBJ_TEXTURE, "material": mujoco.mjtObj.mjOBJ_MATERIAL}[kind]
    return int(mujoco.mj_name2id(model.ptr, obj, name))


def _texture_view(model: Any, name: str) -> np.ndarray:
    """The texels of texture ``name`` as a writable (height, width, channels) view of ``model.tex_data``."""
    return _texture_view_by_id(model, model.name2id(name, "texture"))


def _texture_view_by_id(model: Any, tex_id: int) -> np.ndarray:
    h, w, c = int(model.tex_height[tex_id]), int(model.tex_width[tex_id]), int(model.tex_nchannel[tex_id])
    start = int(model.tex_adr[tex_id])
    return model.tex_data[start : start + h * w * c].reshape(h, w, c)


def upload_textures(physics: Any, texture_ids: Sequence[int]) -> None:
    """Send the edited texels of ``texture_ids`` to the render context (opened here if needed)."""
    import mujoco

    contexts = physics.contexts  # created on first access
    with contexts.gl.make_current() as ctx:
        for tex_id in texture_ids:
            ctx.call(mujoco.mjr_uploadTexture, physics.model.ptr, contexts.mujoco.ptr, int(tex_id))


def _name(model: Any, kind: str, index: int) -> str:
    """The object's name, or ``kind:index`` for an unnamed one."""
    name = model.id2name(index, kind)
    return name if name else f"{kind}:{index}"


# ----------------------------------------------------------------------------------------------------
# The dmc-restyle look


@dataclass(frozen=True)
class Style:
    """The look of domain B. Colours are RGB in [0, 1]."""

    floor_rgb1: tuple[float, float, float] = (0.78, 0.52, 0.30)  # terracotta
    floor_rgb2: tuple[float, float, float] = (0.93, 0.84, 0.62)  # sand
    floor_cells: int = 6  # checker cells per texture side (default look: 2 cells with edge lines)
    floor_jitter: float = 0.08  # per-cell brightness jitter, fraction
    floor_reflectance: float = 0.0  # default look: 0.2
    sky_top: tuple[float, float, float] = (0.95, 0.55, 0.30)  # sunset orange (default: light blue)
    sky_bottom: tuple[float, float, float] = (0.20, 0.08, 0.25)  # dusk purple (default: black)
    sky_marks: tuple[float, float, float] = (1.0, 0.9, 0.6)
    body_rgba: tuple[float, float, float, float] = (0.15, 0.55, 0.50, 1.0)  # teal (default: tan)
    effector_rgba: tuple[float, float, float, float] = (0.10, 0.35, 0.60, 1.0)
    decoration_rgba: tuple[float, float, float, float] = (0.85, 0.80, 0.20, 1.0)
    target_rgba: tuple[float, float, float, float] = (0.20, 0.70, 0.20, 1.0)
    light_tint: tuple[float, float, float] = (1.0, 0.80, 0.60)  # multiplies light and headlight colour
    light_scale: float = 0.85
    pattern_seed: int = 1234  # fixed: the style is one look, not a random draw per benchmark

    def apply(self, physics: Any) -> None:
        apply_style(physics, self)


def floor_texture(height: int, width: int, channels: int, style: Style) -> np.ndarray:
    """A checker of ``style.floor_cells`` cells per side with per-cell brightness jitter, uint8."""
    rng = np.random.default_rng(style.pattern_seed)
    cells = style.floor_cells
    jitter = 1.0 + style.floor_jitter * rng.uniform(-1.0, 1.0, size=(cells, cells))
    rows = np.arange(height) * cells // height
    cols = np.arange(width) * cells // width
    parity = (rows[:, None] + cols[None, :]) % 2
    colours = np.where(parity[..., None] == 0, style.floor_rgb1, style.floor_rgb2)
    shade = jitter[rows[:, None], cols[None, :]][..., None]
    rgb = np.clip(colours * shade * 255.0 + 0.5, 0, 255).astype(np.uint8)
    if channels == 4:
        rgb = np.concatenate([rgb, np.full((height, width, 1), 255, np.uint8)], axis=-1)
    return rgb[..., :channels]


def recolour_sky(texels: np.ndarray, style: Style) -> np.ndarray:
    """Map the default gradient sky (blend of rgb1 and black, white random marks) to the style's colours.

    The blend weight of the top colour is read from the brightest channel relative to its maximum over
    the non-mark texels; the marks (pure white) get ``style.sky_marks``.
    """
    rgb = texels[..., :3].astype(np.float64)
    marks = np.all(texels[..., :3] == 255, axis=-1)
    brightness = rgb.max(axis=-1)
    top = brightness[~marks].max() if np.any(~marks) else 255.0
    weight = np.clip(brightness / max(top, 1.0), 0.0, 1.0)[..., None]
    out = weight * np.asarray(style.sky_top) + (1.0 - weight) * np.asarray(style.sky_bottom)
    out[marks] = style.sky_marks
    result = texels.copy()
    result[..., :3] = np.clip(out * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return result


def _set_material(model: Any, names: Sequence[str], rgba: Sequence[float]) -> None:
    for name in names:
        mat_id = object_id(model, name, "material")
        if mat_id >= 0:
            model.mat_rgba[mat_id] = rgba


SUITE_TEXTURES = ("grid", "skybox")  # the floor and sky textures of the suite's common assets


def apply_style(physics: Any, style: Style) -> None:
    """Restyle ``physics``'s model in place (colours, textures, lights) and upload the new textures.

    Geometry, masses, cameras and light positions are untouched. Requires the suite's common assets
    (textures 'grid' and 'skybox'); ``UserError`` naming the missing one otherwise.
    """
    model = physics.model
    for name in SUITE_TEXTURES:
        if object_id(model, name, "texture") < 0:
            raise UserError(f"look 'restyled': needs the suite texture {name!r}, which this task's model lacks")
    floor = _texture_view(model, "grid")
    floor[...] = floor_texture(*floor.shape, style)
    sky = _texture_view(model, "skybox")
    sky[...] = recolour_sky(sky, style)
    floor_material = object_id(model, "grid", "material")
    if floor_material >= 0:
        model.mat_reflectance[floor_material] = style.floor_reflectance

    _set_material(model, ("self", "self_default", "self_highlight"), style.body_rgba)
    _set_material(model, ("effector", "effector_default", "effector_highlight"), style.effector_rgba)
    _set_material(model, ("decoration",), style.decoration_rgba)
    _set_material(model, ("target", "target_default", "target_highlight"), style.target_rgba)
    no_material = model.geom_matid < 0
    model.geom_rgba[no_material, :3] = style.body_rgba[:3]

    tint = np.asarray(style.light_tint) * style.light_scale
    model.light_diffuse[:] = model.light_diffuse * tint
    model.light_specular[:] = model.light_specular * tint
    model.vis.headlight.diffuse[:] = np.asarray(model.vis.headlight.diffuse) * tint
    model.vis.headlight.ambient[:] = np.asarray(model.vis.headlight.ambient) * tint

    upload_textures(physics, [model.name2id(name, "texture") for name in SUITE_TEXTURES])


# ----------------------------------------------------------------------------------------------------
# The colour-shift family

_HIGHLIGHT_SUFFIXES = ("_default", "_highlight")  # dm_control's reward-highlight variants of a material


def random_colour(seed: int, key: str) -> np.ndarray:
    """The RGB colour in [0, 1)^3 that ``seed`` gives the object ``key`` (e.g. ``"material:self"``).

    ``numpy.random.default_rng([seed, crc32(key)]).uniform(size=3)``: a fixed colour per name, so one
    seed gives the floor, the sky and each body the same colour in every task that has them.
    """
    return np.random.default_rng([int(seed), zlib.crc32(key.encode())]).uniform(0.0, 1.0, size=3)


def random_light_factor(seed: int, key: str, spread: float) -> np.ndarray:
    """Per-channel light factor in ``[1 - spread, 1 + spread)^3`` for light ``key`` (drawn as :func:`random_colour`)."""
    return 1.0 - spread + 2.0 * spread * random_colour(seed, key)


def gradient_map(texels: np.ndarray, dark: np.ndarray, bright: np.ndarray) -> np.ndarray:
    """Target colours of a texture: ``dark + w (bright - dark)``, ``w`` = the texel's brightness rescaled to [0, 1].

    Brightness is the mean of R, G, B; ``w = (b - min b) / (max b - min b)`` over the texture (0.5 for a
    flat one). The pattern (checker, gradient, marks) keeps its shape; its colours become the pair's.
    Returns float RGB in [0, 1], shape ``texels.shape[:-1] + (3,)``.
    """
    brightness = texels[..., :3].astype(np.float64).mean(axis=-1)
    low, high = float(brightness.min()), float(brightness.max())
    weight = (brightness - low) / (high - low) if high > low else np.full_like(brightness, 0.5)
    return dark + weight[..., None] * (bright - dark)


@dataclass(frozen=True)
class ColorShift:
    """Every colour moves from its default a fraction ``strength`` of the way towards a seeded random one.

    With ``lerp(x, y) = (1 - s) x + s y`` and ``c(key)`` = :func:`random_colour` ``(seed, key)``:

    * texture ``t`` (floor, sky, any other): RGB ``lerp(texel / 255, gradient_map(texels, c("texture:t:dark"),
      c("texture:t:bright")))``, rounded to uint8 (alpha kept);
    * material ``m`` without a texture: RGB ``lerp(rgba, c("material:" + base(m)))`` where ``base`` drops
      dm_control's ``_default`` / ``_highlight`` suffix (a body and its highlight variants share a colour);
      materials with a texture keep their (multiplying) rgba, so the floor is shifted once, by its texture;
    * geom ``g`` without a material: RGB ``lerp(rgba, c("geom:" + g))``;
    * light ``l``: diffuse, ambient and specular times ``lerp(1, f)``, ``f`` = :func:`random_light_factor`
      ``(seed, "light:" + l, light_spread)``; the headlight likewise with key ``"headlight"``.

    Alpha channels, reflectance and everything geometric are unchanged; ``strength`` 0 is the default look.
    """

    strength: float
    seed: int = 0
    light_spread: float = 0.5  # light factors lie in [1 - spread, 1 + spread) per channel

    def __post_init__(self) -> None:
        if not 0.0 <= self.strength <= 1.0:
            raise ValueError(f"ColorShift strength must be in [0, 1], got {self.strength!r}")
        if not 0.0 <= self.light_spread < 1.0:
            raise ValueError(f"ColorShift light_spread must be in [0, 1), got {self.light_spread!r}")

    def apply(self, physics: Any) -> None:
        apply_color_shift(physics, self)


def _material_base(name: str) -> str:
    for suffix in _HIGHLIGHT_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def _lerp(x: np.ndarray, y: np.ndarray, s: float) -> np.ndarray:
    return (1.0 - s) * x + s * y


def apply_color_shift(physics: Any, shift: ColorShift) -> None:
    """Apply :class:`ColorShift` ``shift`` to ``physics``'s model in place and upload the textures."""
    model, s, seed = physics.model, float(shift.strength), shift.seed
    for tex_id in range(model.ntex):
        name = _name(model, "texture", tex_id)
        texels = _texture_view_by_id(model, tex_id)
        if texels.shape[-1] < 3:
            continue  # a grey-level texture: no colour to shift
        target = gradient_map(
            texels, random_colour(seed, f"texture:{name}:dark"), random_colour(seed, f"texture:{name}:bright")
        )
        shifted = _lerp(texels[..., :3].astype(np.float64) / 255.0, target, s)
        texels[..., :3] = np.clip(shifted * 255.0 + 0.5, 0, 255).astype(np.uint8)
    textured = (np.asarray(model.mat_texid).reshape(model.nmat, -1) >= 0).any(axis=1)
    for mat_id in range(model.nmat):
        if not textured[mat_id]:
            key = "material:" + _material_base(_name(model, "material", mat_id))
            model.mat_rgba[mat_id, :3] = _lerp(model.mat_rgba[mat_id, :3], random_colour(seed, key), s)
    for geom_id in np.flatnonzero(model.geom_matid < 0):
        key = "geom:" + _name(model, "geom", int(geom_id))
        model.geom_rgba[geom_id, :3] = _lerp(model.geom_rgba[geom_id, :3], random_colour(seed, key), s)
    for light_id in range(model.nlight):
        factor = _lerp(
            1.0, random_light_factor(seed, "light:" + _name(model, "light", light_id), shift.light_spread), s
        )
        for field in (model.light_diffuse, model.light_ambient, model.light_specular):
            field[light_id] = field[light_id] * factor
    factor = _lerp(1.0, random_light_factor(seed, "headlight", shift.light_spread), s)
    headlight = model.vis.headlight
    for attribute in ("diffuse", "ambient", "specular"):
        getattr(headlight, attribute)[:] = np.asarray(getattr(headlight, attribute)) * factor
    upload_textures(physics, range(model.ntex))


# ----------------------------------------------------------------------------------------------------
# The registry


@dataclass(frozen=True)
class DefaultLook:
    """The suite's own look: nothing is changed."""

    def apply(self, physics: Any) -> None:
        del physics


DEFAULT_LOOK = "default"

#: Every named look. A new look is an object with ``apply(physics)`` that changes appearance fields only,
#: added here (and to the segmentation test's list).
LOOKS: dict[str, LookSpec] = {
    DEFAULT_LOOK: DefaultLook(),
    "restyled": Style(),
    "color_shift_0.2": ColorShift(0.2),
    "color_shift_0.5": ColorShift(0.5),
    "color_shift_1.0": ColorShift(1.0),
}
LOOK_NAMES: tuple[str, ...] = tuple(LOOKS)


def check_look(name: str, flag: str = "look") -> str:
    """``name`` if it is a registered look, else ``UserError`` naming ``flag`` and the registered names."""
    if name not in LOOKS:
        raise UserError(f"{flag}: unknown look {name!r}; allowed: {', '.join(LOOK_NAMES)}")
    return name


def apply_look(physics: Any, name: str) -> None:
    """Give ``physics`` (a dm_control ``Physics`` with a render context or able to open one) the look ``name``."""
    LOOKS[check_look(name)].apply(physics)
