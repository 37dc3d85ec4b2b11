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
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from n2n_core.errors import UserError
from n2n_core.files.checks import check_regular, is_regular_file
from n2n_core.files.safe import open_own, own_folder

CHUNK = 1 << 20
ATTEMPTS = 5
TIMEOUT_S = 30.0
# Bounds on what a server or an archive can make us write. The largest file of the
# catalogue is IXI-T1.tar (4.5 GB); --max-bytes raises the cap for a bigger one.
MAX_DOWNLOAD_BYTES = 8 << 30
# A download that brings less than STALL_BYTES in STALL_S is stalled (a server
# trickling a byte every few seconds never trips the socket's own timeout).
STALL_S = 60.0
STALL_BYTES = 64 << 10
# Extraction: images hardly compress, so an archive that grows more than this
# (beyond a small floor) is a bomb, not a data set; and so many members, this deep.
MAX_EXPANSION = 20
MIN_EXTRACT_BYTES = 256 << 20
MAX_MEMBERS = 200_000
MAX_DEPTH = 32
MAX_NAME = 255
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


# Kodak24 as the denoising literature uses it (the DnCNN/FFDNet test set: 500x500
# crops of the 24 photos) -- the very files behind every Kodak24 figure in
# benchmarks/RESULTS.md -- from a fixed commit, so the hashes below (computed from
# that commit's blobs) pin exactly what is served.
FFDNET_KODAK = (
    "https://raw.githubusercontent.com/cszn/FFDNet/"
    "e787f46df2f374ff3591186706229cb9a0591fea/testsets/Kodak24/"
)
# The 768x512 originals (the reference validates on them): no published hashes.
KODAK_BASE = "http://r0k.us/graphics/kodak/kodak/"
# Set14 (Zeyde et al. 2010) from SelfExSR's data folder at a fixed commit; its
# img_001..img_014 are the set's pictures in alphabetical order, saved under
# their usual names.
SELFEXSR_SET14 = (
    "https://raw.githubusercontent.com/jbhuang0604/SelfExSR/"
    "8f6dd8c1d20cb7e8792a7177b4f6fd677633f598/data/Set14/image_SRF_2/"
)

KODAK24_SHA256 = """
4a3ad3164284407659c8c61154303ca45c37995ce8e2fe140640c2a32b6b899b  kodim01.png
3b62bcf7f4260d53d396114a945eebe455603a89c130f7036e3ee220d8d1fb81  kodim02.png
7d5601f79ba851dc1d415fbd918caf32accd24cd7e862f2810074dcd6324ca8c  kodim03.png
042ed626e69fc09398716b1e20e63b26baf2b73db58bc0938b0fbfb2a9715409  kodim04.png
2f128530bf758fd58b0ecfa90ea220155c328a3f87aa3b24b86f838631fa4ae9  kodim05.png
32b9f94b92ad11eb224dcd919313f49cae6d1b5798ce5bb52c317b506354b91e  kodim06.png
d40ec78671a3c98404e779bf8e657774380a27afe3ecb4a7110df2d8744cbdd0  kodim07.png
9b9e698a981a76afd86a5c457ddb215b3e2fce2028708541a634d57b6b105fb3  kodim08.png
939c71160c267dc4d289cdd35828c746714b782eeb2fc47d3e7b03f69799e00d  kodim09.png
2d4ebf3090813f9495719e250ebd3d7ceb73f49317b2f397ef805d80640e05ca  kodim10.png
d09010f8a454e5677e3a26525c27f5d20f4b58e70af8b3b95624997985f012d9  kodim11.png
eed4a8201bd276b433510eccdb3436d67ee78f1776f765dcd8113ded445e903d  kodim12.png
92928cebe24964b4f72e4c8cd7edbefbaa2db67e1c9b405a627a81cf191b6214  kodim13.png
0bc7a76fd3667cfce1496defd662f4a68643684f4b919d432fc654f1b63b5756  kodim14.png
18c3e450f5e6c1c0bf00bca5de391dd225456df3164e61f10914b7806ba85a5e  kodim15.png
da1879efd30bdf25e311fa8c2d628c140619946bb86e3807f9a2ba4562b2064b  kodim16.png
a114a6e48f8246dde5eb50b2402fe3bd0888140382a469f21d7527eb2c271997  kodim17.png
a400f54584a1212d26002970f15e2abfdf334c56a0e02bfe569f4a16515ed731  kodim18.png
cf256bed5534f84904dfef2e30d70c74429399de18d7a223740c67cb9ae83dbd  kodim19.png
a078fa791a56f78e3c8fb79726a5a4056f0ce3f357a40e13e4f0cfe1452e2ecb  kodim20.png
3bb598b987256ef353e167f78d771588167f029b49900f8197b649fa2d265497  kodim21.png
46f108a13fd37e864bf080c4b78e0b127034fc6f07ba8e45d7e581cc7f6a8290  kodim22.png
8d7d1e2df33a9ac3b1f8ce1bd65dde74a2c5f244612a123f8e73b80bdc3a54f1  kodim23.png
27708263419c77eed6b3b1e64f5224acd8536d1fa0406b8d1ba4fe6a6794ffb9  kodim24.png
"""
SET14_SHA256 = """
d60c263b88e82f70dccb0112c8e1e5f66ca8be6581d88ceabb353fe4c88feada  baboon.png
282a29a2d82defbda925c01875b765c4c5c33f85f2f5655400a771eb7241d247  barbara.png
ecf4c67660202decfbabf5898ef56a2cd1a88393d48dfc9208d4467ac9a76713  bridge.png
04ae5ef38fc38ec1db20df2842c07226d7684da312fd3bd4cd0bd0401d9f62b0  coastguard.png
ca96cdc294c81b1810dab4ba73c3675049cfd127d090a4719ff21f6a9d96b4bd  comic.png
bd3710be9a2d9efdfa254ac2282dd7eaec0079d7bcd43fcb256517afebbfee58  face.png
d72e12d6eb8144ad2420fe91af19bcb51256ac17b8221fa1c8f89f2a3d6b50c0  flowers.png
c49e96409094b390704ec1eeab85a0f1c7660249ca8826ffe468c046758e3ab9  foreman.png
469af940770cb99f92abc82a597388fe07b5eaf7a557c9e20c0094efc2870e01  lenna.png
e62db478accc42370e463ac95f93e691debe751196f5927494cce1bae22df754  man.png
44509e5c39eb0a0af5b0cf887ee53194a1f6830d125cff763275e13544ed4614  monarch.png
f727b04ddea2c2ae07784ee9e9dd9db5c6035121d93de933eac3a9a8ad33a0a7  pepper.png
2743edf18619b152bcff0da9383110b4257531a096369a8dcf7e879e43c1e03e  ppt3.png
6795235d3a79bbb80f951b199752d2e64882f649c86efe3d94695020f425c11d  zebra.png
"""


def _is_digest(text: str) -> bool:
    t = text.strip().lower()
    return len(t) == 64 and all(c in "0123456789abcdef" for c in t)


def checksums(text: str, where: str = "checksums") -> dict[str, str]:
    """``sha256sum`` output (``HEX  NAME`` per line; ``*NAME`` for binary mode) as a dict."""
    out: dict[str, str] = {}
    for n, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(None, 1)
        if len(parts) != 2 or not _is_digest(parts[0]):
            raise UserError(f"{where}: line {n}: not `SHA256  FILE`")
        out[parts[1].lstrip("*").strip()] = parts[0].lower()
    return out


_KODAK24 = checksums(KODAK24_SHA256)
_SET14 = checksums(SET14_SHA256)
# One archive, two sets: its test folder for validation, its train folder for training.
BSDS300 = Remote(
    "https://www2.eecs.berkeley.edu/Research/Projects/CS/vision/bsds/BSDS300-images.tgz", None
)

CATALOGUE: dict[str, Source] = {
    s.name: s
    for s in (
        Source(
            "kodak24",
            "Kodak24 as denoising papers use it: 500x500 crops of the 24 Kodak photos "
            "(the DnCNN/FFDNet test set, behind every Kodak24 figure here) (validation)",
            tuple(Remote(FFDNET_KODAK + name, digest) for name, digest in _KODAK24.items()),
            ".",
            "folder",
            "kodak",
        ),
        Source(
            "kodak24-full",
            "Kodak Lossless True Colour Image Suite, the 24 photos at 768x512 as published "
            "(the reference's validation set; pass --sha256 a SHA256SUMS file you trust)",
            tuple(Remote(f"{KODAK_BASE}kodim{i:02d}.png", None) for i in range(1, 25)),
            ".",
            "folder",
            "kodak-full",
        ),
        Source(
            "set14",
            "Set14, 14 pictures (Zeyde et al.; one greyscale) (validation)",
            tuple(
                Remote(f"{SELFEXSR_SET14}img_{i:03d}_SRF_2_HR.png", digest, name)
                for i, (name, digest) in enumerate(_SET14.items(), 1)
            ),
            ".",
            "folder",
            "set14",
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
                cmd += " --sha256 HEX" if len(src.files) == 1 else " --sha256 SHA256SUMS"
            return cmd
    return None


# ---------------------------------------------------------------------------
# download


def sha256_file(path: Path, what: str = "file") -> str:
    """The SHA-256 of ``path``; a FIFO, device or folder there is a UserError (never read:
    a FIFO would block the open, a device never ends)."""
    check_regular(path, what, "a regular file")
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
    remote: Remote,
    dest: Path,
    progress: Progress | None = None,
    timeout: float = TIMEOUT_S,
    max_bytes: int = MAX_DOWNLOAD_BYTES,
    stall: tuple[float, int] = (STALL_S, STALL_BYTES),
) -> Path:
    """``remote`` into ``dest``, resuming a partial ``dest.part``; verified against its SHA-256.

    At most ``max_bytes`` are written (a larger announced size is refused before the
    first byte); a transfer that brings fewer than ``stall[1]`` bytes in ``stall[0]``
    seconds is stopped, keeping what arrived for a later resume."""
    part = dest.with_name(dest.name + ".part")
    for p in (dest, part):
        # Only regular files of ours live here: anything else is named, never read or
        # opened for writing (a FIFO would hang the fetch, a folder fails mid-way).
        if os.path.exists(p) and not is_regular_file(p):
            check_regular(p, "download", "a downloaded file; remove it and run again")
    if dest.exists() and remote.sha256 and sha256_file(dest, "download") == remote.sha256:
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
                if total is not None and total > max_bytes:
                    raise UserError(
                        f"{remote.url}: {total} bytes announced, over the cap of {max_bytes} "
                        "(--max-bytes raises it); nothing written"
                    )
                flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if have else os.O_TRUNC)
                with os.fdopen(open_own(part, flags, "the partial download"), "wb") as f:
                    window_t, window_n = time.monotonic(), 0
                    while chunk := resp.read1(CHUNK):
                        have += len(chunk)
                        if have > max_bytes:
                            f.close()
                            part.unlink(missing_ok=True)
                            raise UserError(
                                f"{remote.url}: more than {max_bytes} bytes (the cap; "
                                "--max-bytes raises it); the partial file was removed"
                            )
                        f.write(chunk)
                        received_any = True
                        window_n += len(chunk)
                        now = time.monotonic()
                        if now - window_t >= stall[0]:
                            if window_n < stall[1]:
                                raise UserError(
                                    f"{remote.url}: stalled ({window_n} bytes in the last "
                                    f"{stall[0]:.0f} s); run the same command again to "
                                    f"resume from {part}"
                                )
                            window_t, window_n = now, 0
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
    got = sha256_file(part, "download")
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


def _safe_target(root: Path, name: str, archive: Path) -> Path:
    parts = Path(name).parts
    if len(parts) > MAX_DEPTH or any(len(p.encode("utf-8", "replace")) > MAX_NAME for p in parts):
        raise UserError(f"{archive}: member {name[:80]!r}... is nested or named too long; refusing")
    target = (root / name).resolve()
    if os.path.isabs(name) or ".." in parts or not target.is_relative_to(root):
        raise UserError(f"archive member {name!r} would land outside {root}; refusing the archive")
    return target


class _Budget:
    """What an archive may still write: members and bytes (declared and actual)."""

    def __init__(self, archive: Path, max_bytes: int | None):
        size = archive.stat().st_size
        self.archive = archive
        self.left = (
            max_bytes if max_bytes is not None else max(MAX_EXPANSION * size, MIN_EXTRACT_BYTES)
        )
        self.cap = self.left
        self.members = 0

    def member(self, name: str, declared: int) -> None:
        self.members += 1
        if self.members > MAX_MEMBERS:
            raise UserError(f"{self.archive}: more than {MAX_MEMBERS} members; refusing")
        if declared > self.left:
            self._over(name)

    def spend(self, n: int, name: str) -> None:
        self.left -= n
        if self.left < 0:
            self._over(name)

    def _over(self, name: str) -> None:
        raise UserError(
            f"{self.archive}: extracts to more than {self.cap} bytes (at {name[:80]!r}); "
            "not a data set of this size; refusing"
        )


def _copy_member(src, target: Path, budget: _Budget, name: str, archive: Path) -> None:
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with os.fdopen(
            open_own(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, f"member {name}"), "wb"
        ) as dst:
            while chunk := src.read(CHUNK):
                budget.spend(len(chunk), name)
                dst.write(chunk)
    except OSError as e:  # a file where a folder should be, a name used twice, a full disk
        raise UserError(
            f"{archive}: member {name[:80]!r} cannot be extracted ({e.strerror or e})"
        ) from None


def _make_dir(target: Path, name: str, archive: Path) -> None:
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(
            f"{archive}: member {name[:80]!r} cannot be extracted ({e.strerror or e})"
        ) from None


def extract(archive: Path, into: Path, max_bytes: int | None = None) -> None:
    """Unpack a .zip / .tar / .tgz into the fresh folder ``into``, member by member,
    refusing escapes, links, bombs (``max_bytes``, by default a multiple of the
    archive's size) and more members, depth or name length than any data set has."""
    into.mkdir(parents=True, exist_ok=True)
    root = into.resolve()
    budget = _Budget(archive, max_bytes)
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as z:
            for info in z.infolist():
                target = _safe_target(root, info.filename, archive)
                budget.member(info.filename, info.file_size)
                if info.is_dir():
                    _make_dir(target, info.filename, archive)
                    continue
                with z.open(info) as src:
                    _copy_member(src, target, budget, info.filename, archive)
        return
    try:
        tar = tarfile.open(archive)
    except tarfile.TarError:
        raise UserError(f"{archive}: not a zip or tar archive") from None
    with tar:
        try:
            for m in tar:
                target = _safe_target(root, m.name, archive)
                budget.member(m.name, m.size)
                if m.isdir():
                    _make_dir(target, m.name, archive)
                elif m.isfile():
                    with tar.extractfile(m) as src:
                        _copy_member(src, target, budget, m.name, archive)
                else:
                    raise UserError(f"{archive}: member {m.name!r} is a link or device; refusing")
        except (tarfile.TarError, EOFError, zlib.error) as e:
            raise UserError(f"{archive}: damaged archive ({e.__class__.__name__})") from None


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
    max_bytes: int = MAX_DOWNLOAD_BYTES,
) -> Path:
    """Download (or take ``archive``), verify, extract and build ``src`` under ``out``.

    Archives are extracted into a fresh staging folder, removed afterwards: only what
    this archive held is built (never files an earlier, refused one left behind).

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
    for folder in (out / ".downloads", downloads):
        own_folder(folder, "downloads", create=True)
    got: list[Path] = []
    for remote in files:
        if archive is not None:
            got.append(_checked_archive(Path(archive), remote))
        else:
            got.append(
                download(remote, downloads / remote.file_name, progress, max_bytes=max_bytes)
            )
    staging = Path(tempfile.mkdtemp(prefix=f".{src.name}-files-", dir=out))
    try:
        for path in got:
            if is_archive(path):
                say(f"extracting {path.name}")
                extract(path, staging)
            else:
                shutil.copyfile(path, staging / path.name)
        images = (staging / src.images).resolve()
        if not images.is_relative_to(staging.resolve()) or not images.is_dir():
            raise UserError(f"dataset {src.name}: {src.images} not found in the downloaded files")
        return _build(src, images, out, say)
    finally:
        shutil.rmtree(staging, ignore_errors=True)  # ours: made above, for this fetch only


def _pinned(src: Source, sha256: str | None) -> tuple[Remote, ...]:
    if sha256 is not None and not _is_digest(sha256):
        return _pinned_by_list(src, Path(sha256).expanduser())  # a SHA256SUMS file
    if sha256 is not None:
        if len(src.files) != 1:
            raise UserError(
                f"--sha256: dataset {src.name} has {len(src.files)} files; one hash cannot pin them"
            )
        pinned = src.files[0].sha256
        digest = sha256.strip().lower()
        if pinned and pinned != digest:
            raise UserError(f"--sha256: dataset {src.name} is pinned to {pinned}")
        return (Remote(src.files[0].url, digest, src.files[0].name),)
    missing = [r for r in src.files if not r.sha256]
    if missing:
        how = (
            "pass its hash with --sha256 HEX"
            if len(src.files) == 1
            else "pass a file of their hashes (`sha256sum` format) with --sha256 FILE"
        )
        raise UserError(
            f"dataset {src.name}: no published SHA-256 we could verify for {missing[0].url}; "
            f"download it only from a source you trust and {how}"
        )
    return src.files


def _pinned_by_list(src: Source, path: Path) -> tuple[Remote, ...]:
    """Each file of ``src`` pinned by its line in a ``sha256sum`` list the user trusts."""
    from n2n_core.files.checks import read_bounded

    if not os.path.lexists(path):
        raise UserError(
            f"--sha256: {path} is neither a SHA-256 (64 hex digits) nor a SHA256SUMS file"
        )
    raw = read_bounded(path, "--sha256 list", "a SHA256SUMS file", 1 << 20)
    sums = checksums(raw.decode("utf-8", "replace"), f"--sha256: {path}")
    out = []
    for r in src.files:
        given = sums.get(r.file_name)
        if given is None:
            raise UserError(f"--sha256: {path} has no line for {r.file_name}")
        if r.sha256 and r.sha256 != given:
            raise UserError(
                f"--sha256: {r.file_name} of dataset {src.name} is pinned to {r.sha256}"
            )
        out.append(Remote(r.url, given, r.name))
    return tuple(out)


def _checked_archive(path: Path, remote: Remote) -> Path:
    if not path.exists():
        raise UserError(f"{path}: archive not found")
    got = sha256_file(path, "archive")
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
        from n2n_core.data.images import list_images

        say(f"{dest}: {len(list_images(dest))} images (use as {src.use})")
        return dest
    if src.build == "pack":
        from n2n_core.data.packed import build_packed

        info = build_packed(images, dest)
        say(f"{dest}: {info['images']} images packed (use as data.train)")
        return dest
    from n2n_core.data.mri.dataset import build_mri_dataset

    build_mri_dataset(images, dest)
    say(f"{dest}: MRI slices (use as data.train and data.val of an MRI preset)")
    return dest
