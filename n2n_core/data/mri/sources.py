"""The MRI slices a data spec names: a built-in set, a dataset folder, its .npy, or NIfTI volumes."""

from __future__ import annotations

from pathlib import Path

from n2n_core.config.schema import DataSpec
from n2n_core.data.mri.builtin import builtin_mri_dataset
from n2n_core.data.mri.dataset import MriSlices, is_nifti, read_slices_npy, slices_from_volumes
from n2n_core.errors import UserError


def open_mri_slices(spec: str, split: str) -> MriSlices:
    """The slices a data spec names; ``split`` (train | val) picks the file in a dataset folder."""
    ds = DataSpec.parse(spec)
    if ds.kind == "builtin":
        folder, split = builtin_mri_dataset(ds.value)
        return read_slices_npy(folder / f"{split}.npy")
    p = Path(spec).expanduser()
    if not p.exists():
        raise UserError(f"{spec}: MRI data not found")
    if p.is_file():
        if p.suffix.lower() == ".npy":
            return read_slices_npy(p)
        if is_nifti(p):
            raise UserError(f"{spec}: give the folder of NIfTI volumes, not one volume")
        raise UserError(f"{spec}: expected a `n2n-core dataset mri` folder or its .npy file")
    if (p / f"{split}.npy").is_file():
        return read_slices_npy(p / f"{split}.npy")
    if any(is_nifti(f) for f in p.iterdir()):
        return slices_from_volumes(p)
    raise UserError(
        f"{spec}: no {split}.npy (from `n2n-core dataset mri`) and no NIfTI volumes in folder"
    )
