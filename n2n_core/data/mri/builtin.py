"""``builtin:mri-phantoms`` / ``builtin:mri-phantoms-val``: MRI data without a download.

On first use, 24 phantom subjects (``phantoms.py``) are written as NIfTI files and
sliced by the same ``build_mri_dataset`` that ``n2n-core dataset mri`` runs, into
a cache folder: ``$N2N_CACHE_DIR``, else ``$XDG_CACHE_HOME/n2n``, else
``~/.cache/n2n``, under ``mri-phantoms-v1/`` (``volumes/`` and ``dataset/``).
20 subjects train, 4 validate (split by subject). Slices are 64 x 64 so a CPU
trains on them in minutes. Building takes a few seconds and is atomic, so runs
started together never see a half-built set.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from n2n_core.errors import UserError

RECIPE = "mri-phantoms-v1"
SUBJECTS = 24
SHAPE = (60, 56, 150)
RESOLUTION = 64
SEED = 0
NAMES = {"mri-phantoms": "train", "mri-phantoms-val": "val"}


def cache_root() -> Path:
    if os.environ.get("N2N_CACHE_DIR"):
        return Path(os.environ["N2N_CACHE_DIR"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "n2n"


def build_phantom_dataset(folder: Path) -> None:
    from n2n_core.data.mri.dataset import build_mri_dataset
    from n2n_core.data.mri.phantoms import write_phantoms

    write_phantoms(folder / "volumes", SUBJECTS, SHAPE, seed=SEED)
    build_mri_dataset(folder / "volumes", folder / "dataset", resolution=RESOLUTION)


def builtin_mri_dataset(name: str) -> tuple[Path, str]:
    """(dataset folder, split) of a built-in MRI data set, building it on first use."""
    if name not in NAMES:
        raise UserError(f"builtin:{name}: unknown built-in MRI data set (have: {', '.join(NAMES)})")
    root = cache_root()
    final = root / RECIPE
    if not (final / "dataset" / "meta.json").is_file():
        try:
            root.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=f".{RECIPE}-", dir=root))
        except OSError as e:
            raise UserError(f"{root}: cannot create the data cache ({e.strerror or e})") from None
        try:
            build_phantom_dataset(tmp)
            if final.exists() and not (final / "dataset" / "meta.json").is_file():
                shutil.rmtree(final, ignore_errors=True)  # an earlier build that died midway
            try:
                tmp.rename(final)
            except OSError:
                if not (final / "dataset" / "meta.json").is_file():  # not a lost race
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return final / "dataset", NAMES[name]
