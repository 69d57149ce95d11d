"""Wide-variation image physics: HU by contrast phase, label-wise random HU, streaks, noise.

Contrast timing changes the attenuation of blood and parenchyma (Fletcher et al.,
Radiology 229:81-90, 2003: arterial, pancreatic and hepatic phases): in the late arterial
phase (about 35 s) the aorta is brightest and the
portal vein and liver barely enhanced; in the pancreatic phase (about 45 s) the gland peaks;
in the portal-venous phase (about 70 s) the portal vein outshines the aorta and the liver
enhances most. The ranges below are typical values, not fitted to any scan.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

import numpy as np
from scipy import ndimage

from phantom._anatomy import Material
from phantom._geometry import Float32Array, Grid, UInt8Array
from phantom._variation import Variation

Range = tuple[float, float]

# Tissues whose HU contrast does not change with timing.
_COMMON: Mapping[Material, Range] = MappingProxyType({
    Material.AIR: (-1000.0, -1000.0),
    Material.FAT_SUBCUTANEOUS: (-118.0, -90.0),
    Material.FAT_VISCERAL: (-110.0, -80.0),
    Material.MUSCLE: (40.0, 65.0),
    Material.FLUID: (0.0, 20.0),
    Material.GAS: (-1000.0, -900.0),
    Material.BONE_CORTICAL: (600.0, 1100.0),
    Material.BONE_CANCELLOUS: (150.0, 320.0),
    Material.DISC: (70.0, 100.0),
    Material.CSF: (5.0, 20.0),
    Material.DUCT: (5.0, 20.0),
    Material.BILE: (0.0, 20.0),
    Material.NECROSIS: (5.0, 30.0),
    Material.CYST: (0.0, 20.0),
    Material.CALCIFICATION: (250.0, 900.0),
})  # fmt: skip

# Per phase: aorta, portal vein, IVC, pancreas, liver, spleen, kidney, bowel wall.
_PHASES: Mapping[str, Mapping[Material, Range]] = MappingProxyType({
    "late-arterial": MappingProxyType({
        Material.ARTERY: (250.0, 380.0), Material.PORTAL: (100.0, 160.0),
        Material.IVC: (70.0, 110.0), Material.PANCREAS: (100.0, 140.0),
        Material.LIVER: (60.0, 85.0), Material.SPLEEN: (100.0, 150.0),
        Material.KIDNEY: (160.0, 240.0), Material.BOWEL_WALL: (70.0, 110.0),
    }),
    "pancreatic": MappingProxyType({
        Material.ARTERY: (200.0, 300.0), Material.PORTAL: (150.0, 200.0),
        Material.IVC: (90.0, 130.0), Material.PANCREAS: (110.0, 150.0),
        Material.LIVER: (80.0, 100.0), Material.SPLEEN: (115.0, 145.0),
        Material.KIDNEY: (170.0, 220.0), Material.BOWEL_WALL: (70.0, 100.0),
    }),
    "portal-venous": MappingProxyType({
        Material.ARTERY: (140.0, 190.0), Material.PORTAL: (160.0, 230.0),
        Material.IVC: (110.0, 150.0), Material.PANCREAS: (85.0, 115.0),
        Material.LIVER: (100.0, 130.0), Material.SPLEEN: (110.0, 135.0),
        Material.KIDNEY: (150.0, 200.0), Material.BOWEL_WALL: (60.0, 90.0),
    }),
})  # fmt: skip

# Label-wise random intensities (SynthSeg) replace these; air, gas, bone, calcium and metal
# stay CT-like so that the body outline and the HU window keep their meaning.
_SOFT = (
    Material.MUSCLE, Material.LIVER, Material.SPLEEN, Material.KIDNEY, Material.BOWEL_WALL,
    Material.FLUID, Material.DISC, Material.CSF, Material.PANCREAS, Material.TUMOR,
    Material.DUCT, Material.BILE, Material.ARTERY, Material.PORTAL, Material.SMV,
    Material.IVC, Material.NECROSIS, Material.CYST, Material.PNET,
)  # fmt: skip
_FAT = (Material.FAT_SUBCUTANEOUS, Material.FAT_VISCERAL)


def _draw(table: Float32Array, ranges: Mapping[Material, Range], rng: np.random.Generator) -> None:
    for material, (lo, hi) in ranges.items():
        table[material] = lo if lo == hi else rng.uniform(lo, hi)


def hu_table_for(variation: Variation, rng: np.random.Generator) -> Float32Array:
    """Per-patient HU of every :class:`Material` for the patient's phase and mode.

    The SMV carries the portal vein's blood (a little less enhanced); the tumor is the
    pancreas plus the drawn attenuation, a neuroendocrine tumor the pancreas plus its drawn
    enhancement; a stent is plastic (200-500 HU) or metal (1500-3000 HU). In the ``"synth"``
    mode every soft tissue then gets an independent random HU (-30 to 350) and fat -200 to
    -40.
    """
    table = np.zeros(len(Material), dtype=np.float32)
    _draw(table, _COMMON, rng)
    _draw(table, _PHASES[variation.contrast_phase], rng)
    if variation.contrast_phase == "portal-venous":
        table[Material.PORTAL] = max(table[Material.PORTAL], table[Material.ARTERY] + 10.0)
    table[Material.SMV] = table[Material.PORTAL] - rng.uniform(0.0, 12.0)
    metal = rng.random() < 0.5
    table[Material.STENT] = rng.uniform(1500.0, 3000.0) if metal else rng.uniform(200.0, 500.0)
    look = variation.tumor
    attenuation = look.attenuation if look is not None else -40.0
    table[Material.TUMOR] = table[Material.PANCREAS] + attenuation
    pnet = [lesion.contrast_hu for lesion in variation.lesions if lesion.kind == "pnet"]
    table[Material.PNET] = table[Material.PANCREAS] + (pnet[0] if pnet else 50.0)
    if variation.mode == "synth":
        table[list(_SOFT)] = rng.uniform(-30.0, 350.0, len(_SOFT))
        table[list(_FAT)] = rng.uniform(-200.0, -40.0, len(_FAT))
    return table


def streaks(grid: Grid, hu: Float32Array, materials: UInt8Array, rng: np.random.Generator) -> None:
    """Add streaks (bright and dark lines through a dense object) to a band of slices.

    The source is the stent, else a calcification, else a point in the spine; 6-14 lines
    through it at random angles, alternately brighter and darker (60-220 HU at the source,
    fading with distance from it and along the band).
    """
    nz = grid.shape[0]
    dense = np.argwhere(materials == Material.STENT)
    if not len(dense):
        dense = np.argwhere(materials == Material.CALCIFICATION)
    if not len(dense):
        dense = np.argwhere(materials == Material.BONE_CORTICAL)
    if not len(dense):
        return
    k0, r0, c0 = dense[int(rng.integers(len(dense)))]
    band = max(1, round(float(rng.uniform(10.0, 40.0)) / grid.spacing[2]))
    first, last = max(0, int(k0) - band // 2), min(nz, int(k0) + band // 2 + 1)
    y = (np.arange(grid.shape[1], dtype=np.float32) - r0) * grid.spacing[1]
    x = (np.arange(grid.shape[2], dtype=np.float32) - c0) * grid.spacing[0]
    pattern = np.zeros(grid.shape[1:], dtype=np.float32)
    # Streaks are strongest next to their source and fade over a few centimetres.
    fading = 30.0 / (30.0 + np.hypot(x[None, :], y[:, None]))
    for i in range(int(rng.integers(6, 15))):
        theta = float(rng.uniform(0.0, np.pi))
        distance = np.abs(x[None, :] * np.sin(theta) - y[:, None] * np.cos(theta))
        width = float(rng.uniform(0.8, 2.5))
        amplitude = float(rng.uniform(60.0, 220.0)) * (1.0 if i % 2 else -1.0)
        pattern += np.float32(amplitude) * np.exp(-0.5 * (distance / width) ** 2) * fading
    for k in range(first, last):
        fade = 1.0 - abs(k - int(k0)) / (band / 2.0 + 1.0)
        hu[k] += np.float32(fade) * pattern


def correlated_noise(
    grid: Grid, hu: Float32Array, sd: float, grain_mm: float, rng: np.random.Generator
) -> None:
    """Add in-plane correlated Gaussian noise of standard deviation ``sd`` HU.

    White noise is smoothed in-plane by a Gaussian of ``grain_mm`` (the noise texture of a
    smooth or sharp kernel) and rescaled to ``sd``; slices stay independent, as in CT.
    """
    sigma = (0.0, grain_mm / grid.spacing[1], grain_mm / grid.spacing[0])
    for k in range(0, grid.shape[0], 16):
        chunk = hu[k : k + 16]
        noise = rng.standard_normal(chunk.shape, dtype=np.float32)
        noise = np.asarray(ndimage.gaussian_filter(noise, sigma, mode="wrap"))
        noise *= np.float32(sd / max(float(noise.std()), 1e-6))
        chunk += noise
