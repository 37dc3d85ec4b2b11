"""Synthetic brain-like T1 volumes, so the MRI task runs without IXI.

Each subject is a head of nested, randomly sized and rotated layers with T1-like
contrast: bright scalp fat, dark skull, dark CSF, grey matter, brighter white
matter with a folded (gyri-like) boundary, dark ventricles, deep grey nuclei and a
few lesions; a smooth bias field and Rician noise on top. They are written as
real NIfTI files (int16, like IXI) and go through the same ``dataset mri`` path.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

# IXI-T1 volumes are 256 x 256 x 150; the slicing axis keeps IXI's depth so the
# reference slice range (25..124) applies unchanged.
DEFAULT_SHAPE = (60, 56, 150)


def _ellipsoid(x, y, z, centre, axes) -> np.ndarray:
    (cx, cy, cz), (ax, ay, az) = centre, axes
    return ((x - cx) / ax) ** 2 + ((y - cy) / ay) ** 2 + ((z - cz) / az) ** 2 <= 1.0


def phantom_volume(shape: tuple[int, int, int], rng: np.random.Generator) -> np.ndarray:
    """One subject: float32 (X, Y, Z) intensities, roughly 0..1 before noise."""
    nx, ny, nz = shape
    x0 = np.linspace(-1.0, 1.0, nx, dtype=np.float32)[:, None, None]
    y0 = np.linspace(-1.0, 1.0, ny, dtype=np.float32)[None, :, None]
    z = np.linspace(-1.0, 1.0, nz, dtype=np.float32)[None, None, :]
    angle = rng.uniform(-0.2, 0.2)
    tx, ty = rng.uniform(-0.04, 0.04, 2)
    x = x0 * np.cos(angle) - y0 * np.sin(angle) + tx
    y = x0 * np.sin(angle) + y0 * np.cos(angle) + ty

    a, b, c = 0.80 * rng.uniform(0.9, 1.05), 0.93 * rng.uniform(0.92, 1.03), 1.06
    rho = np.sqrt((x / a) ** 2 + (y / b) ** 2 + (z / c) ** 2)
    theta = np.arctan2(y, x)
    k1, k2 = rng.integers(7, 12), rng.integers(4, 9)
    p1, p2 = rng.uniform(0, 2 * np.pi, 2)
    folds = 0.5 * np.sin(k1 * theta + p1 + 4.0 * z) + 0.5 * np.sin(k2 * theta - 3.0 * z + p2)

    vol = np.zeros(np.broadcast_shapes(rho.shape), np.float32)
    vol[rho <= 1.0] = rng.uniform(0.8, 0.95)  # scalp fat
    vol[rho <= 0.92] = 0.08  # skull
    vol[rho <= 0.85] = 0.12  # CSF
    grey = rng.uniform(0.38, 0.46)
    vol[rho <= 0.82 + 0.025 * folds] = grey
    wm_edge = rng.uniform(0.56, 0.64)
    vol[rho <= wm_edge + 0.08 * folds] = rng.uniform(0.68, 0.76)

    s = rng.uniform(0.85, 1.15)
    for side in (-1.0, 1.0):
        nuc = _ellipsoid(x, y, z, (side * 0.27 * a, -0.05, -0.08), (0.09 * s, 0.14 * s, 0.13))
        vol[np.broadcast_to(nuc, vol.shape)] = grey + 0.06
        vent = _ellipsoid(x, y, z, (side * 0.12 * a, 0.06, 0.08), (0.07 * s, 0.3 * s, 0.24))
        vol[np.broadcast_to(vent, vol.shape)] = 0.12
    for _ in range(int(rng.integers(0, 4))):
        r = rng.uniform(0.04, 0.08)
        centre = (rng.uniform(-0.35, 0.35), rng.uniform(-0.45, 0.45), rng.uniform(-0.5, 0.5))
        blob = _ellipsoid(x, y, z, centre, (r, r, r * 1.5))
        vol[np.broadcast_to(blob, vol.shape)] = rng.choice([0.25, 0.95])

    g = rng.uniform(-0.08, 0.08, 3)
    vol *= 1.0 + g[0] * x + g[1] * y + g[2] * z
    sigma = 0.012
    re = vol + rng.normal(0.0, sigma, vol.shape).astype(np.float32)
    im = rng.normal(0.0, sigma, vol.shape).astype(np.float32)
    return np.sqrt(re * re + im * im)  # Rician magnitude noise, as in real MR images


def write_phantoms(
    out_dir: str | Path,
    n_subjects: int,
    shape: tuple[int, int, int] = DEFAULT_SHAPE,
    seed: int = 0,
) -> list[Path]:
    """Write ``n_subjects`` phantom volumes as ``phantomNNN-T1.nii.gz``; returns the paths."""
    import nibabel as nib

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    affine = np.diag([1.2, 1.2, 1.2, 1.0])
    paths = []
    for i in range(n_subjects):
        vol = phantom_volume(shape, np.random.default_rng([seed, i]))
        data = np.clip(vol * 1000.0, 0, 32767).astype(np.int16)
        path = out / f"phantom{i:03d}-T1.nii.gz"
        nib.save(nib.Nifti1Image(data, affine), str(path))
        paths.append(path)
    return paths
