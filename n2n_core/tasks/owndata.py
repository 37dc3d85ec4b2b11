"""Training on a user's own noisy data, where no synthetic noise is added.

Two modes, chosen by ``data.train`` (naming rules in ``data/pairs.py``):

- ``pairs:DIR`` — Noise2Noise on captured noisy/noisy pairs: one half is the
  input, the other the target (which is which is drawn per crop), both cut by
  the same random crop and flip.
- ``noisy:DIR`` — one noisy capture per scene: Neighbor2Neighbor
  (``neighbor.py``) makes the pair from the image itself.

Validation has no noise to add either: it denoises noisy files as they are. With
``data.val: clean:DIR`` each denoised file is scored against its clean reference
(and the noisy file itself gives the input PSNR), by the same uint8 mapping and
PSNR as ``evaluation/protocol.py``. Without clean references there is nothing to score:
only sample strips (noisy | denoised) are written and no val record is returned,
so a run's metrics hold no made-up PSNR.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from n2n_core.config.schema import DataSpec, Preset
from n2n_core.data.aligned import AlignedCropSampler
from n2n_core.data.images import load_image, save_image
from n2n_core.data.pairs import detect_channels, find_clean_refs, find_noisy, find_pairs, load_pair
from n2n_core.engine.noise import make_noise
from n2n_core.evaluation.protocol import (
    ColourShift,
    Runner,
    ValResult,
    clip_to_uint8,
    colour_shift,
    infer_uint8,
    psnr,
    sample_strip,
    score_record,
    to_float,
)
from n2n_core.tasks.base import Task, step_seed, to_unit_float
from n2n_core.tasks.neighbor import (
    NeighbourBatch,
    neighbour_choice,
    neighbour_forward,
    neighbour_loss,
    regulariser_weight,
)

# Samples drawn from the training images (no validation folder) are centre crops of at
# most this size, so validation stays cheap on multi-megapixel captures.
SAMPLE_CROP = 512


@dataclass
class NoisyValImage:
    name: str
    noisy: np.ndarray  # uint8 (H, W, C)
    clean: np.ndarray | None = None  # uint8 (H, W, C), same shape, when a reference exists


def centre_crop(img: np.ndarray, size: int) -> np.ndarray:
    h, w = img.shape[:2]
    y, x = max(0, (h - size) // 2), max(0, (w - size) // 2)
    return img[y : y + size, x : x + size]


def validate_noisy_files(
    run: Runner,
    images: list[NoisyValImage],
    samples_dir: Path | None = None,
    samples: int = 0,
    tag: str = "",
) -> ValResult | None:
    """Mean PSNR of denoised and of noisy files against their clean references.

    Images without a reference only give sample strips; with no reference at all
    the result is None (there is no PSNR to report, not a PSNR of zero).
    """
    out_db, in_db, per, shifts = [], [], [], []
    for k, item in enumerate(images):
        want_sample = samples_dir is not None and k < samples
        if item.clean is None and not want_sample:
            continue
        noisy = to_float(item.noisy)
        noisy_u8 = clip_to_uint8(noisy)  # == item.noisy, transposed to (C, H, W)
        pred_u8 = infer_uint8(run, noisy)
        strip = [noisy_u8, pred_u8]
        if item.clean is not None:
            clean_u8 = clip_to_uint8(to_float(item.clean))
            p_out, p_in = psnr(pred_u8, clean_u8), psnr(noisy_u8, clean_u8)
            out_db.append(p_out)
            in_db.append(p_in)
            shifts.append(colour_shift(pred_u8, clean_u8))
            per.append(score_record(item.name, p_out, p_in, shifts[-1]))
            strip.append(clean_u8)
        if want_sample:
            save_image(Path(samples_dir) / f"{tag}{Path(item.name).stem}.png", sample_strip(*strip))
    if not out_db:
        return None
    return ValResult(
        psnr=float(np.mean(out_db)),
        input_psnr=float(np.mean(in_db)),
        images=len(out_db),
        noise="none",
        seed=0,
        per_image=per,
        colour=ColourShift.of([r["name"] for r in per], shifts),
    )


def open_noisy_val(
    spec: str | None, channels: int, samples: int, max_images: int | None, train_images
) -> list[NoisyValImage]:
    """Validation images for ``data.val``: ``clean:DIR``, ``noisy:DIR`` or none (samples only)."""
    kind = DataSpec.parse(spec).kind if spec else None
    if kind == "clean":
        refs = find_clean_refs(spec)[: max_images or None]
        return [NoisyValImage(r.name, *load_pair(r, channels)) for r in refs]
    if kind == "noisy":
        files = find_noisy(spec)[:samples]
        return [NoisyValImage(f.name, load_image(f, channels)) for f in files]
    return [
        NoisyValImage(Path(name).name, np.ascontiguousarray(centre_crop(group[0], SAMPLE_CROP)))
        for group, name in list(train_images)[:samples]
    ]


class OwnDataTask(Task):
    """Denoising learned from the user's noisy images alone (pairs or single captures)."""

    def __init__(self, preset: Preset, device: torch.device, rank: int = 0, load_val: bool = True):
        super().__init__(preset, device, rank)
        self.mode = preset.data.train_spec.own_mode
        self.noise = make_noise(preset.noise)  # Identity: the data is already noisy
        t = preset.train
        spec = preset.data.train
        if self.mode == "pairs":
            pairs = find_pairs(spec)
            self.channels = detect_channels([p.a for p in pairs] + [p.b for p in pairs])
            groups = [load_pair(p, self.channels) for p in pairs]
            names = [str(p.a) for p in pairs]
            self.loss_name = preset.resolved_loss()
        else:
            files = find_noisy(spec)
            self.channels = detect_channels(files)
            groups = [(load_image(f, self.channels),) for f in files]
            names = [str(f) for f in files]
            self.loss_name = "neighbor2neighbor"
        self.sampler = AlignedCropSampler(groups, names, t.crop)
        self.val_images: list[NoisyValImage] = []
        if load_val:
            d = preset.data
            self.val_images = open_noisy_val(
                d.val, self.channels, d.samples, d.val_max_images, zip(groups, names, strict=True)
            )

    # -- training -------------------------------------------------------------

    def _crops(self, step: int) -> tuple[np.ndarray, np.random.Generator]:
        rng = np.random.default_rng(step_seed(self.preset.train.seed, self.rank, step))
        return self.sampler.sample(self.preset.train.batch, rng), rng

    def _to_device(self, u8: np.ndarray) -> torch.Tensor:
        """uint8 (N, H, W, C) -> float (N, C, H, W) in [-0.5, 0.5], channels-last in memory."""
        t = torch.from_numpy(np.ascontiguousarray(u8))
        if self.device.type == "cuda":
            t = t.pin_memory()
        return to_unit_float(t.to(self.device, non_blocking=True))

    def make_batch(self, step: int):
        crops, rng = self._crops(step)
        if self.mode == "pairs":
            # Either half may be the input: doubles the pairs and keeps the model symmetric.
            swap = rng.random(crops.shape[1]) < 0.5
            inp = np.where(swap[:, None, None, None], crops[1], crops[0])
            target = np.where(swap[:, None, None, None], crops[0], crops[1])
            return self._to_device(inp), self._to_device(target)
        noisy = self._to_device(crops[0])
        seed = step_seed(self.preset.train.seed, self.rank, step, stream=1)
        gen = torch.Generator(device=self.device).manual_seed(seed)
        n, _, h, w = noisy.shape
        i1, i2 = neighbour_choice(n, h, w, gen, self.device)
        return NeighbourBatch(noisy, i1, i2), None

    def forward(self, net: torch.nn.Module, inp):
        if self.mode == "pairs":
            return net(inp)
        return neighbour_forward(net, inp)

    def loss(self, pred, target, step: int) -> torch.Tensor:
        if self.mode == "pairs":
            return super().loss(pred, target, step)
        gamma = self.preset.train.nb2nb_gamma
        return neighbour_loss(pred, regulariser_weight(gamma, self.progress(step)))

    # -- validation -----------------------------------------------------------

    def validate(
        self, run, samples_dir: Path | None = None, tag: str = "", seed: int = 0
    ) -> ValResult | None:
        return validate_noisy_files(
            run, self.val_images, samples_dir, self.preset.data.samples, tag
        )
