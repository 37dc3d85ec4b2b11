"""Finding a user's own noisy data on disk: the naming rules, and nothing else.

Three layouts, each a folder:

- ``pairs:DIR`` — aligned noisy/noisy pairs of the same scene, named either
  ``DIR/a/NAME`` + ``DIR/b/NAME`` (same file name in two sub-folders), or
  ``DIR/NAME_1.ext`` + ``DIR/NAME_2.ext`` (one folder, suffixes ``_1``/``_2``).
- ``noisy:DIR`` — single noisy images, one per scene, any names.
- ``clean:DIR`` (validation) — ``DIR/clean/NAME`` + ``DIR/noisy/NAME``: a clean
  reference and a noisy capture of it, matched by file name.

A file without its partner, or a pair whose halves differ in size, is a
``UserError`` naming the file(s): silently dropping part of a user's data set
would hide a mistake that changes what is learned.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from n2n_core.config.schema import DataSpec
from n2n_core.data.images import is_gray_file, is_image_file, list_images, load_image
from n2n_core.errors import UserError

# PIL modes that hold one channel; a folder of only these trains a 1-channel network.


def _root(spec: str) -> Path:
    """The folder of ``pairs:DIR``, ``noisy:DIR`` or ``clean:DIR``."""
    ds = DataSpec.parse(spec)
    if ds.kind not in ("pairs", "noisy", "clean") or not ds.value:
        raise UserError(f"{spec}: expected pairs:DIR, noisy:DIR or clean:DIR")
    return ds.path


@dataclass(frozen=True)
class PairFiles:
    name: str
    a: Path  # for clean:DIR, the noisy capture
    b: Path  # for clean:DIR, the clean reference


def _folder(root: Path, spec: str) -> Path:
    if not root.exists():
        raise UserError(f"{spec}: folder not found")
    if not root.is_dir():
        raise UserError(f"{spec}: not a folder")
    return root


def _match_by_name(dir_a: Path, dir_b: Path, spec: str) -> list[PairFiles]:
    files_a = {p.name: p for p in list_images(dir_a)}
    files_b = {p.name: p for p in list_images(dir_b)}
    for mine, theirs, here, there in (
        (files_a, files_b, dir_a, dir_b),
        (files_b, files_a, dir_b, dir_a),
    ):
        lonely = sorted(set(mine) - set(theirs))
        if lonely:
            more = f" (and {len(lonely) - 1} more)" if len(lonely) > 1 else ""
            raise UserError(f"{spec}: {here / lonely[0]} has no partner {there / lonely[0]}{more}")
    return [PairFiles(n, files_a[n], files_b[n]) for n in sorted(files_a)]


def _match_by_suffix(root: Path, spec: str) -> list[PairFiles]:
    files = list_images(root)
    by_key: dict[tuple[str, str], dict[str, Path]] = {}
    for p in files:
        base, sep, tag = p.stem.rpartition("_")
        if not sep or not base or tag not in ("1", "2"):
            raise UserError(
                f"{spec}: {p} does not follow the naming rule NAME_1{p.suffix} + NAME_2{p.suffix} "
                "(or use the sub-folders a/ and b/)"
            )
        by_key.setdefault((base, p.suffix), {})[tag] = p
    pairs = []
    for (base, ext), halves in sorted(by_key.items()):
        if len(halves) != 2:
            have = next(iter(halves.values()))
            want = "2" if "1" in halves else "1"
            raise UserError(f"{spec}: {have} has no partner {root / f'{base}_{want}{ext}'}")
        pairs.append(PairFiles(f"{base}{ext}", halves["1"], halves["2"]))
    return pairs


def find_pairs(spec: str) -> list[PairFiles]:
    """The pairs of ``pairs:DIR`` by its naming rule (a/ + b/ folders, or NAME_1 + NAME_2)."""
    root = _folder(_root(spec), spec)
    has_a, has_b = (root / "a").is_dir(), (root / "b").is_dir()
    if has_a or has_b:
        if not (has_a and has_b):
            missing = root / ("b" if has_a else "a")
            raise UserError(f"{spec}: {missing} not found (pairs need both a/ and b/)")
        loose = [p for p in root.iterdir() if is_image_file(p)]
        if loose:
            raise UserError(
                f"{spec}: {loose[0]} lies beside a/ and b/; use one naming rule per folder"
            )
        pairs = _match_by_name(root / "a", root / "b", spec)
    else:
        pairs = _match_by_suffix(root, spec)
    if not pairs:
        raise UserError(
            f"{spec}: no image pairs found (expected a/NAME + b/NAME or NAME_1.png + NAME_2.png)"
        )
    return pairs


def find_noisy(spec: str) -> list[Path]:
    """The images of ``noisy:DIR``."""
    files = list_images(_folder(_root(spec), spec))
    if not files:
        raise UserError(f"{spec}: no images found in folder (png, jpg, bmp, tif, webp, ppm, gif)")
    return files


def find_clean_refs(spec: str) -> list[PairFiles]:
    """(noisy, clean) files of ``clean:DIR``: ``DIR/noisy/NAME`` + ``DIR/clean/NAME``."""
    root = _folder(_root(spec), spec)
    for sub in ("clean", "noisy"):
        if not (root / sub).is_dir():
            raise UserError(f"{spec}: {root / sub} not found (expected clean/ and noisy/ folders)")
    pairs = _match_by_name(root / "noisy", root / "clean", spec)
    if not pairs:
        raise UserError(f"{spec}: no images found in {root / 'clean'}")
    return pairs


def _is_gray(path: Path) -> bool:
    try:
        return is_gray_file(path)
    except UserError:  # unreadable files are reported by load_image with their name
        return False


def detect_channels(files: list[Path]) -> int:
    """1 when every file is grayscale (microscopy, scans), else 3."""
    return 1 if files and all(_is_gray(p) for p in files) else 3


def load_pair(pair: PairFiles, channels: int) -> tuple[np.ndarray, np.ndarray]:
    """Both halves as uint8 (H, W, C); halves of different sizes are an error naming both."""
    a, b = load_image(pair.a, channels), load_image(pair.b, channels)
    if a.shape != b.shape:
        raise UserError(
            f"{pair.a} is {a.shape[1]}x{a.shape[0]} but its partner {pair.b} is "
            f"{b.shape[1]}x{b.shape[0]}; the two halves of a pair must be aligned, same size"
        )
    return a, b
