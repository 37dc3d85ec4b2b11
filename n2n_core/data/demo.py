"""Demo folders of "own noisy data", made from clean photos plus independent noise.

For trying the own-data modes (and for tests and benchmarks) without a camera:
each noisy file is the photo plus fresh Gaussian noise, rounded and clipped to
uint8 and saved as PNG (lossless: JPEG would smear the noise), just as a real
capture would be stored. The clean photos can be written beside them as the
``clean:DIR`` references that score a run.

    python -m n2n_core.data.demo noisy --photos DIR --out datasets/own-noisy \\
        --refs datasets/own-noisy-val
    python -m n2n_core.data.demo pairs --photos DIR --out datasets/own-pairs
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import numpy as np

from n2n_core.data.images import list_images, load_image, save_image
from n2n_core.errors import UserError


def noisy_copy(img: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """uint8 ``img`` plus N(0, sigma^2) noise (sigma on the 0..255 scale), rounded and clipped."""
    noisy = img.astype(np.float32) + rng.standard_normal(img.shape, dtype=np.float32) * sigma
    return np.clip(np.rint(noisy), 0, 255).astype(np.uint8)


def _photos(photos: list[Path] | str | Path) -> list[Path]:
    files = list_images(photos) if isinstance(photos, (str, Path)) else list(photos)
    if not files:
        raise UserError(f"{photos}: no photos found")
    return files


def _write_refs(refs: Path, name: str, clean: np.ndarray, noisy_file: Path) -> None:
    (refs / "clean").mkdir(parents=True, exist_ok=True)
    (refs / "noisy").mkdir(parents=True, exist_ok=True)
    save_image(refs / "clean" / name, clean)
    shutil.copyfile(noisy_file, refs / "noisy" / name)


def make_demo_pairs(
    photos: list[Path] | str | Path,
    out: str | Path,
    sigma: float = 25.0,
    seed: int = 0,
    layout: str = "ab",
    channels: int = 3,
    refs: str | Path | None = None,
) -> list[Path]:
    """Two independent noisy copies of each photo as ``pairs:out``.

    ``layout`` "ab" writes ``out/a/NAME.png`` + ``out/b/NAME.png``; "suffix" writes
    ``out/NAME_1.png`` + ``out/NAME_2.png``. With ``refs``, ``refs/clean`` and
    ``refs/noisy`` (the first copy) make a ``clean:refs`` set. Returns the first copies.
    """
    if layout not in ("ab", "suffix"):
        raise ValueError(f"layout must be 'ab' or 'suffix', got {layout!r}")
    rng = np.random.default_rng(seed)
    out = Path(out)
    firsts = []
    for photo in _photos(photos):
        clean = load_image(photo, channels)
        name = f"{photo.stem}.png"
        if layout == "ab":
            dst = (out / "a" / name, out / "b" / name)
        else:
            dst = (out / f"{photo.stem}_1.png", out / f"{photo.stem}_2.png")
        for path in dst:
            path.parent.mkdir(parents=True, exist_ok=True)
            save_image(path, noisy_copy(clean, sigma, rng))
        if refs is not None:
            _write_refs(Path(refs), name, clean, dst[0])
        firsts.append(dst[0])
    return firsts


def make_demo_noisy(
    photos: list[Path] | str | Path,
    out: str | Path,
    sigma: float = 25.0,
    seed: int = 0,
    channels: int = 3,
    refs: str | Path | None = None,
) -> list[Path]:
    """One noisy copy of each photo as ``noisy:out``; with ``refs``, the ``clean:refs`` set
    pairing each photo with that same noisy file."""
    rng = np.random.default_rng(seed)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for photo in _photos(photos):
        clean = load_image(photo, channels)
        dst = out / f"{photo.stem}.png"
        save_image(dst, noisy_copy(clean, sigma, rng))
        if refs is not None:
            _write_refs(Path(refs), dst.name, clean, dst)
        written.append(dst)
    return written


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m n2n_core.data.demo",
        description="Make a demo folder of noisy images (own-data modes) from clean photos.",
    )
    p.add_argument("mode", choices=["pairs", "noisy"])
    p.add_argument("--photos", required=True, help="folder of clean photos")
    p.add_argument("--out", required=True)
    p.add_argument("--refs", help="also write clean/ + noisy/ references here (clean:DIR)")
    p.add_argument("--sigma", type=float, default=25.0, help="noise std on the 0..255 scale")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--channels", type=int, choices=[1, 3], default=3)
    a = p.parse_args(argv)
    make = make_demo_pairs if a.mode == "pairs" else make_demo_noisy
    try:
        files = make(a.photos, a.out, a.sigma, a.seed, channels=a.channels, refs=a.refs)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    what = "pair(s)" if a.mode == "pairs" else "noisy image(s)"
    print(
        f"{len(files)} {what} written to {a.out}" + (f", references in {a.refs}" if a.refs else "")
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
