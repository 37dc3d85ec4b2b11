"""``n2n-core dataset fetch NAME --out DIR``: the public data sets, one command away.

Each set is a list of remote files with a pinned SHA-256, the folder inside
the download that holds its images, and the step that makes it usable — the
same ``dataset build`` (packed training file) or ``dataset mri`` (slices) a
user would run by hand, or nothing for a validation folder.

Downloads resume: bytes go to ``DIR/.downloads/NAME/FILE.part`` and a later
attempt (or a dropped connection, retried at once) asks for the rest with an
HTTP ``Range`` header. A file is used only once its SHA-256 matches; a mismatch
removes the partial file (it is ours: we created it) and says so. Archives are
extracted member by member, refusing absolute paths, ``..`` and links, so an
archive cannot write outside its folder.

Pinned hashes come from published checksum lists (TensorFlow Datasets'
``url_checksums``); where no trustworthy hash is published the entry has none,
and fetching it needs ``--sha256 HEX`` from the user: nothing unverified is
ever extracted.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import socket
import tarfile
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from .errors import UserError

CHUNK = 1 << 20
ATTEMPTS = 5
TIMEOUT_S = 30.0
USER_AGENT = "n2n-dataset-fetch"

Progress = Callable[[str, int, int | None], None]  # (file name, bytes so far, total or None)


@dataclass(frozen=True)
class Remote:
    url: str
    sha256: str | None  # None: no published hash we could verify; the user must give one
    name: str = ""  # file name on disk (default: the URL's last part)

    @property
    def file_name(self) -> str:
        return self.name or self.url.rstrip("/").rsplit("/", 1)[-1]


@dataclass(frozen=True)
class Source:
    """A public data set: its files, where its images are after extraction, what to build."""

    name: str
    about: str
    files: tuple[Remote, ...]
    images: str  # folder, relative to the extracted files, that holds the images / volumes
    build: Literal["folder", "pack", "mri"]
    dest: str  # what is made under --out: the name the presets use (datasets/kodak, ...)
    user_archive: bool = False  # the user provides the archive (licence): --archive PATH
    use: str = "data.val or --dataset-dir"  # what a built folder is for (said when made)


KODAK_BASE = "http://r0k.us/graphics/kodak/kodak/"
# One archive, two sets: its test folder for validation, its train folder for training.
BSDS300 = Remote(
    "https://www2.eecs.berkeley.edu/Research/Projects/CS/vision/bsds/BSDS300-images.tgz", None
)

CATALOGUE: dict[str, Source] = {
    s.name: s
    for s in (
        Source(
            "kodak24",
            "Kodak Lossless True Colour Image Suite, 24 photos (validation)",
            tuple(Remote(f"{KODAK_BASE}kodim{i:02d}.png", None) for i in range(1, 25)),
            ".",
            "folder",
            "kodak",
        ),
        Source(
            "bsd300",
            "Berkeley Segmentation Dataset 300; its 100 test images (validation)",
            (BSDS300,),
            "BSDS300/images/test",
            "folder",
            "bsd300",
        ),
        Source(
            "bsd300-train",
            "Berkeley Segmentation Dataset 300; its 200 training photos (none of them in "
            "BSD300 test, CBSD68 or Kodak24), for the photo-bsd300 preset",
            (BSDS300,),
            "BSDS300/images/train",
            "folder",
            "bsd300-train",
            use="data.train",
        ),
        Source(
            "bsds500",
            "BSDS500; its 200 test images (validation)",
            (
                Remote(
                    "http://www.eecs.berkeley.edu/Research/Projects/CS/vision/grouping/BSR/"
                    "BSR_bsds500.tgz",
                    None,
                ),
            ),
            "BSR/BSDS500/data/images/test",
            "folder",
            "bsds500",
        ),
        Source(
            "div2k",
            "DIV2K, 800 2K training photos, packed for training",
            (
                Remote(
                    "https://data.vision.ee.ethz.ch/cvl/DIV2K/DIV2K_train_HR.zip",
                    "9d0b9c463f6e35b6c62cc6a930ee2224f670b34c1df841a57670f9acf0f6c335",
                ),
            ),
            "DIV2K_train_HR",
            "pack",
            "div2k.n2nd",
        ),
        Source(
            "div2k-val",
            "DIV2K, 100 2K validation photos (validation)",
            (
                Remote(
                    "https://data.vision.ee.ethz.ch/cvl/DIV2K/DIV2K_valid_HR.zip",
                    "20dd31fd84d777bc1cf5d6b7654a3f569c0aec74458ae094122ad1d0489900fc",
                ),
            ),
            "DIV2K_valid_HR",
            "folder",
            "div2k-val",
        ),
        Source(
            "ixi-t1",
            "IXI T1 brain volumes, sliced for the MRI task",
            (
                Remote(
                    "http://biomedic.doc.ic.ac.uk/brain-development/downloads/IXI/IXI-T1.tar", None
                ),
            ),
            ".",
            "mri",
            "ixi-mri",
        ),
        Source(
            "imagenet-val",
            "ImageNet 2012 validation, 50,000 photos (the reference's training set), packed; "
            "from the archive you downloaded (--archive ILSVRC2012_img_val.tar)",
            (
                Remote(
                    "ILSVRC2012_img_val.tar",
                    "c7e06a6c0baccf06d8dbeb6577d71efff84673a5dbdd50633ab44f8ea0456ae0",
                ),
            ),
            ".",
            "pack",
            "imagenet-val.n2nd",
            user_archive=True,
        ),
    )
}


def fetch_hint(path: Path) -> str | None:
    """The ``dataset fetch`` command that makes ``path`` (known by its name), if any."""
    for src in CATALOGUE.values():
        if Path(path).name == src.dest:
            cmd = f"n2n-core dataset fetch {src.name} --out {Path(path).parent}"
            if src.user_archive:
                cmd += f" --archive {src.files[0].file_name}"
            elif not all(f.sha256 for f in src.files):
                cmd += " --sha256 HEX"
            return cmd
    return None


# ---------------------------------------------------------------------------
# download


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _total_of(resp, have: int) -> int | None:
    """The whole file's size from a 206's Content-Range or a 200's Content-Length."""
    rng = resp.headers.get("Content-Range")
    if rng and "/" in rng and rng.rsplit("/", 1)[1].strip().isdigit():
        return int(rng.rsplit("/", 1)[1])
    length = resp.headers.get("Content-Length")
    return have + int(length) if length and length.isdigit() else None


def _unreachable(e: BaseException) -> bool:
    """A failure to connect at all (no DNS, refused, timed out), not one mid-transfer."""
    return isinstance(e, urllib.error.URLError) and isinstance(e.reason, OSError | socket.timeout)


def download(
    remote: Remote, dest: Path, progress: Progress | None = None, timeout: float = TIMEOUT_S
) -> Path:
    """``remote`` into ``dest``, resuming a partial ``dest.part``; verified against its SHA-256."""
    part = dest.with_name(dest.name + ".part")
    if dest.exists() and remote.sha256 and sha256_file(dest) == remote.sha256:
        return dest
    host = urllib.parse.urlsplit(remote.url).netloc or remote.url
    received_any = part.exists() and part.stat().st_size > 0
    total: int | None = None
    for attempt in range(ATTEMPTS):
        have = part.stat().st_size if part.exists() else 0
        if total is not None and have >= total:
            break
        headers = {"User-Agent": USER_AGENT}
        if have:
            headers["Range"] = f"bytes={have}-"
        try:
            with urllib.request.urlopen(
                urllib.request.Request(remote.url, headers=headers), timeout=timeout
            ) as resp:
                if have and resp.status != 206:  # the server ignored Range: start over
                    have = 0
                total = _total_of(resp, have)
                with open(part, "ab" if have else "wb") as f:
                    while chunk := resp.read(CHUNK):
                        f.write(chunk)
                        have += len(chunk)
                        received_any = True
                        if progress:
                            progress(dest.name, have, total)
            if total is None or have >= total:
                break
        except urllib.error.HTTPError as e:
            if e.code == 416 and have:  # nothing left to send: the partial file is whole
                break
            raise UserError(f"{remote.url}: HTTP {e.code} {e.reason}") from None
        except (urllib.error.URLError, http.client.HTTPException, OSError) as e:
            if not received_any and _unreachable(e):
                why = getattr(e, "reason", e)
                raise UserError(
                    f"{remote.url}: cannot reach {host} ({why}); are you offline? "
                    f"Fetching needs the network (or put the file at {dest})"
                ) from None
            if attempt == ATTEMPTS - 1:
                raise UserError(
                    f"{remote.url}: connection kept breaking ({e.__class__.__name__}); "
                    f"run the same command again to resume from {part}"
                ) from None
            time.sleep(min(2.0**attempt * 0.1, 5.0))  # then resume from what arrived
    else:
        raise UserError(
            f"{remote.url}: download incomplete after {ATTEMPTS} tries; "
            f"run the same command again to resume from {part}"
        )
    return _verified(remote, part, dest)


def _verified(remote: Remote, part: Path, dest: Path) -> Path:
    got = sha256_file(part)
    if remote.sha256 and got != remote.sha256:
        part.unlink()
        raise UserError(
            f"{remote.url}: SHA-256 mismatch (got {got}, pinned {remote.sha256}); "
            "the download was removed; run again, or check the source"
        )
    os.replace(part, dest)
    return dest


# ---------------------------------------------------------------------------
# extraction


def _safe_target(root: Path, name: str) -> Path:
    target = (root / name).resolve()
    if os.path.isabs(name) or ".." in Path(name).parts or not target.is_relative_to(root):
        raise UserError(f"archive member {name!r} would land outside {root}; refusing the archive")
    return target


def extract(archive: Path, into: Path) -> None:
    """Unpack a .zip / .tar / .tgz into ``into``, member by member, refusing escapes and links."""
    into.mkdir(parents=True, exist_ok=True)
    root = into.resolve()
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as z:
            for info in z.infolist():
                target = _safe_target(root, info.filename)
                if info.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                with z.open(info) as src, open(target, "wb") as dst:
                    shutil.copyfileobj(src, dst, CHUNK)
        return
    try:
        tar = tarfile.open(archive)
    except tarfile.TarError:
        raise UserError(f"{archive}: not a zip or tar archive") from None
    with tar:
        for m in tar:
            target = _safe_target(root, m.name)
            if m.isdir():
                target.mkdir(parents=True, exist_ok=True)
            elif m.isfile():
                target.parent.mkdir(parents=True, exist_ok=True)
                src = tar.extractfile(m)
                with src, open(target, "wb") as dst:
                    shutil.copyfileobj(src, dst, CHUNK)
            else:
                raise UserError(f"{archive}: member {m.name!r} is a link or device; refusing")


def is_archive(path: Path) -> bool:
    return zipfile.is_zipfile(path) or tarfile.is_tarfile(path)


# ---------------------------------------------------------------------------
# the whole step


def fetch_dataset(
    src: Source,
    out: str | Path,
    sha256: str | None = None,
    archive: str | Path | None = None,
    progress: Progress | None = None,
    say: Callable[[str], None] = print,
) -> Path:
    """Download (or take ``archive``), verify, extract and build ``src`` under ``out``.

    Returns what to point a preset or ``validate`` at: the image folder, the
    packed file or the MRI slice folder.
    """
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"{out}: cannot create folder ({e.strerror})") from None
    files = _pinned(src, sha256)
    if src.user_archive and archive is None:
        raise UserError(
            f"dataset {src.name}: its licence needs you to download it yourself; "
            f"pass --archive PATH to {src.files[0].file_name}"
        )
    downloads = out / ".downloads" / src.name
    downloads.mkdir(parents=True, exist_ok=True)
    got: list[Path] = []
    for remote in files:
        if archive is not None:
            got.append(_checked_archive(Path(archive), remote))
        else:
            got.append(download(remote, downloads / remote.file_name, progress))
    extracted = out / f".{src.name}-files"
    for path in got:
        if is_archive(path):
            say(f"extracting {path.name}")
            extract(path, extracted)
        else:
            extracted.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, extracted / path.name)
    images = (extracted / src.images).resolve()
    if not images.is_relative_to(extracted.resolve()) or not images.is_dir():
        raise UserError(f"dataset {src.name}: {src.images} not found in the downloaded files")
    return _build(src, images, out, say)


def _pinned(src: Source, sha256: str | None) -> tuple[Remote, ...]:
    if sha256 is not None:
        if len(src.files) != 1:
            raise UserError(
                f"--sha256: dataset {src.name} has {len(src.files)} files; one hash cannot pin them"
            )
        pinned = src.files[0].sha256
        if pinned and pinned != sha256.lower():
            raise UserError(f"--sha256: dataset {src.name} is pinned to {pinned}")
        return (Remote(src.files[0].url, sha256.lower(), src.files[0].name),)
    missing = [r for r in src.files if not r.sha256]
    if missing:
        raise UserError(
            f"dataset {src.name}: no published SHA-256 we could verify for {missing[0].url}; "
            "download it only from a source you trust and pass its hash with --sha256 HEX"
        )
    return src.files


def _checked_archive(path: Path, remote: Remote) -> Path:
    if not path.is_file():
        raise UserError(f"{path}: archive not found")
    got = sha256_file(path)
    if remote.sha256 and got != remote.sha256:
        raise UserError(
            f"{path}: SHA-256 mismatch (got {got}, expected {remote.sha256} for {remote.file_name})"
        )
    return path


def _build(src: Source, images: Path, out: Path, say: Callable[[str], None]) -> Path:
    dest = out / src.dest
    if src.build == "folder":
        if dest.exists():
            raise UserError(f"{dest}: already exists; remove it or choose another --out")
        shutil.copytree(images, dest)
        from .data.images import list_images

        say(f"{dest}: {len(list_images(dest))} images (use as {src.use})")
        return dest
    if src.build == "pack":
        from .data.packed import build_packed

        info = build_packed(images, dest)
        say(f"{dest}: {info['images']} images packed (use as data.train)")
        return dest
    from .mri.dataset import build_mri_dataset

    build_mri_dataset(images, dest)
    say(f"{dest}: MRI slices (use as data.train and data.val of an MRI preset)")
    return dest
