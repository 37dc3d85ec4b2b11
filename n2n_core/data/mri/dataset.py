"""NIfTI volumes -> 2D training and validation slices (``n2n-core dataset mri``).

As the reference (NVlabs ``dataset_tool_mri.py``): each volume is divided by its
own maximum; axial slices ``z`` in [25, 125) are taken from the third axis, zero-
padded (centred) to 256 x 256, clipped to [0, 1] and stored as uint8; nearly
empty slices (max <= 1/255) are dropped. Subjects, never slices, are split into
training and validation: when the source holds all sixty IXI subjects the
reference used, its exact 50/10 split is reproduced (other subjects unused);
otherwise the last sixth of the subjects in sorted order is held out.

Output folder (the format ``data.train`` / ``data.val`` / ``--dataset-dir`` read)::

    train.npy   uint8 (N, R, R) training slices
    val.npy     uint8 (M, R, R) validation slices
    meta.json   {"format": "n2n-mri/1", "resolution", "slice_range", "split",
                 "train": {"subjects": [...], "slices": [[subject, z], ...]}, "val": {...}}

A data spec for the MRI task is such a folder (the split's ``.npy`` is used), one
of its ``.npy`` files, a folder of NIfTI volumes (sliced in memory, every
subject), or ``builtin:mri-phantoms`` / ``builtin:mri-phantoms-val`` (see
``builtin.py``).
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from n2n_core.data.mri.phantoms import write_phantoms  # noqa: F401  (part of this module's API)
from n2n_core.errors import UserError

FORMAT = "n2n-mri/1"
OUT_RESOLUTION = 256
SLICE_RANGE = (25, 125)
NIFTI_SUFFIXES = (".nii", ".nii.gz")

# The IXI-T1 subjects of the reference's split (IXI numbers).
REFERENCE_TRAIN = (2, *range(12, 18), *range(19, 32), *range(33, 47), *range(48, 64))
REFERENCE_VAL = tuple(range(64, 74))

_MODALITY = re.compile(r"[-_](T1|T2|PD|MRA|DTI)$", re.IGNORECASE)
_IXI = re.compile(r"^IXI(\d+)", re.IGNORECASE)


def is_nifti(path: Path) -> bool:
    return path.is_file() and path.name.lower().endswith(NIFTI_SUFFIXES)


def list_volumes(src: str | Path) -> list[Path]:
    p = Path(src).expanduser()
    if not p.exists():
        raise UserError(f"{src}: folder not found")
    if not p.is_dir():
        raise UserError(f"{src}: not a folder of NIfTI volumes (.nii, .nii.gz)")
    files = sorted(f for f in p.iterdir() if is_nifti(f))
    if not files:
        raise UserError(f"{src}: no NIfTI volumes found (.nii, .nii.gz)")
    return files


def subject_of(path: Path) -> str:
    """``IXI002-Guys-0828-T1.nii.gz`` -> ``IXI002-Guys-0828`` (name without modality)."""
    name = path.name
    for suffix in (".nii.gz", ".nii"):
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
            break
    return _MODALITY.sub("", name)


def read_volume(path: Path) -> np.ndarray:
    """A NIfTI file as a float32 3D array; anything else is a ``UserError`` naming the file."""
    import nibabel as nib

    try:
        img = nib.load(str(path))
        data = np.asarray(img.dataobj, dtype=np.float32)
    except Exception as e:  # nibabel, gzip and zlib raise many kinds for a damaged file
        msg = str(e).splitlines()[0][:120] if str(e) else e.__class__.__name__
        raise UserError(f"{path}: cannot read NIfTI volume ({msg})") from None
    while data.ndim > 3 and data.shape[-1] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise UserError(f"{path}: expected a 3D volume, got shape {tuple(data.shape)}")
    peak = float(np.nanmax(data)) if data.size else 0.0
    if not np.isfinite(peak) or peak <= 0:
        raise UserError(f"{path}: volume has no positive finite values")
    return data


def place_centred(img: np.ndarray, size: int) -> np.ndarray:
    """Zero-pad (or centre-crop) a 2D slice to size x size, centred as the reference."""
    out = np.zeros((size, size), np.float32)
    src, dst = [], []
    for n in img.shape:
        if n <= size:
            off = (size - n) // 2
            src.append(slice(0, n))
            dst.append(slice(off, off + n))
        else:
            off = (n - size) // 2
            src.append(slice(off, off + size))
            dst.append(slice(0, size))
    out[tuple(dst)] = img[tuple(src)]
    return out


def slice_volume(
    vol: np.ndarray,
    resolution: int = OUT_RESOLUTION,
    slice_range: tuple[int, int] = SLICE_RANGE,
) -> tuple[np.ndarray, list[int]]:
    """(uint8 (k, R, R) slices, their z indices) of a 3D volume, by the reference's rules."""
    vol = vol / np.max(vol)
    lo, hi = slice_range
    out, zs = [], []
    for z in range(lo, min(hi, vol.shape[2])):
        s = np.clip(place_centred(vol[:, :, z], resolution), 0.0, 1.0) * 255.0
        if s.max() > 1.0:  # the reference drops nearly empty slices
            out.append(np.clip(s + 0.5, 0, 255).astype(np.uint8))
            zs.append(z)
    empty = np.zeros((0, resolution, resolution), np.uint8)
    return (np.stack(out) if out else empty), zs


def split_subjects(subjects: list[str]) -> tuple[list[str], list[str], str]:
    """(train, val, rule): the reference IXI split when all its subjects are present."""
    by_id: dict[int, str] = {}
    for s in subjects:
        m = _IXI.match(s)
        if m:
            by_id.setdefault(int(m.group(1)), s)
    if all(i in by_id for i in REFERENCE_TRAIN + REFERENCE_VAL):
        return (
            [by_id[i] for i in REFERENCE_TRAIN],
            [by_id[i] for i in REFERENCE_VAL],
            "reference",
        )
    ordered = sorted(subjects)
    if len(ordered) < 2:
        raise UserError(
            f"need volumes of at least 2 subjects to split training and validation by subject, "
            f"got {len(ordered)}"
        )
    n_val = max(1, round(len(ordered) / 6))
    return ordered[:-n_val], ordered[-n_val:], "by-subject"


def build_mri_dataset(
    src: str | Path,
    out: str | Path,
    resolution: int = OUT_RESOLUTION,
    slice_range: tuple[int, int] = SLICE_RANGE,
    progress=None,
) -> dict:
    """Slice the NIfTI volumes of ``src`` into ``out``/{train,val}.npy + meta.json; a summary.

    The files appear together (written in a temporary folder, then moved), so an
    error leaves ``out`` as it was.
    """
    files = list_volumes(src)
    groups: dict[str, list[Path]] = {}
    for f in files:
        groups.setdefault(subject_of(f), []).append(f)
    train_subj, val_subj, rule = split_subjects(list(groups))
    out = Path(out).expanduser()
    if out.exists() and not out.is_dir():
        raise UserError(f"{out}: exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)

    parts: dict[str, tuple[np.ndarray, list[list]]] = {}
    done, total = 0, sum(len(groups[s]) for s in train_subj + val_subj)
    for split, subjects in (("train", train_subj), ("val", val_subj)):
        arrays, index = [], []
        for subj in subjects:
            for f in groups[subj]:
                vol = read_volume(f)
                slices, zs = slice_volume(vol, resolution, slice_range)
                if not zs:
                    raise UserError(
                        f"{f}: no non-empty slice in the range {slice_range[0]}.."
                        f"{slice_range[1] - 1} of the third axis (volume shape {vol.shape})"
                    )
                arrays.append(slices)
                index += [[subj, z] for z in zs]
                done += 1
                if progress:
                    progress(done, total)
        parts[split] = (np.concatenate(arrays), index)

    meta = {
        "format": FORMAT,
        "source": str(src),
        "resolution": resolution,
        "slice_range": list(slice_range),
        "split": rule,
        **{k: {"subjects": sorted({s for s, _ in v[1]}), "slices": v[1]} for k, v in parts.items()},
    }
    tmp = Path(tempfile.mkdtemp(prefix=".mri-", dir=out))
    try:
        for split, (arr, _) in parts.items():
            np.save(tmp / f"{split}.npy", arr)
        (tmp / "meta.json").write_text(json.dumps(meta), encoding="utf-8")
        for name in ("train.npy", "val.npy", "meta.json"):
            (tmp / name).replace(out / name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {
        "out": str(out),
        "train_slices": len(parts["train"][1]),
        "val_slices": len(parts["val"][1]),
        "train_subjects": len(train_subj),
        "val_subjects": len(val_subj),
        "split": rule,
        "resolution": resolution,
    }


# ---------------------------------------------------------------------------
# reading slices back


@dataclass
class MriSlices:
    """uint8 (N, R, R) slices (possibly memory-mapped) with a name per slice."""

    pixels: np.ndarray
    names: list[str]
    source: str

    def __len__(self) -> int:
        return int(self.pixels.shape[0])

    def subset(self, max_images: int | None) -> MriSlices:
        """At most ``max_images`` slices, evenly spaced (so every subject is represented)."""
        if max_images is None or max_images >= len(self):
            return self
        idx = np.unique(np.linspace(0, len(self) - 1, max_images).round().astype(int))
        return MriSlices(np.asarray(self.pixels[idx]), [self.names[i] for i in idx], self.source)


def _names_from_meta(npy: Path, n: int) -> list[str]:
    try:
        meta = json.loads((npy.parent / "meta.json").read_text(encoding="utf-8"))
        rows = meta[npy.stem]["slices"]
        if len(rows) == n:
            return [f"{s}_z{z:03d}" for s, z in rows]
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return [f"{npy.stem}{i:05d}" for i in range(n)]


def read_slices_npy(path: Path) -> MriSlices:
    try:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as e:
        raise UserError(f"{path}: not a readable .npy slice file ({e})") from None
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[0] == 0 or arr.shape[1] != arr.shape[2]:
        raise UserError(
            f"{path}: expected uint8 slices of shape (N, R, R), got {arr.dtype} {arr.shape}"
        )
    if arr.shape[1] < 8:
        raise UserError(f"{path}: slices of {arr.shape[1]}x{arr.shape[2]} are too small")
    return MriSlices(arr, _names_from_meta(path, arr.shape[0]), str(path))


def slices_from_volumes(folder: Path) -> MriSlices:
    """Every volume of a NIfTI folder, sliced in memory (no split; for validation)."""
    arrays, names = [], []
    for f in list_volumes(folder):
        slices, zs = slice_volume(read_volume(f))
        arrays.append(slices)
        names += [f"{subject_of(f)}_z{z:03d}" for z in zs]
    if not names:
        raise UserError(f"{folder}: no non-empty slices in range in any volume")
    return MriSlices(np.concatenate(arrays), names, str(folder))
