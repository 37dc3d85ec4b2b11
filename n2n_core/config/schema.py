"""Presets: YAML files validated by pydantic models.

A preset is data, not code. Unknown keys and bad values are errors that name the
key (``noise.sigma: unknown key``). ``--set a.b=c`` overrides any key by dotted
path before validation, so an override is checked exactly like the file.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Literal, get_args

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from n2n_core.errors import UserError

# Allowed values, each written once: the CLI's choices and the TUI's selects derive
# from these types (typing.get_args), never retype them.
Device = Literal["auto", "cpu", "cuda", "npu", "mps"]
# auto: bf16 where the device computes it natively (device.resolve_precision), else fp32
Precision = Literal["auto", "fp32", "bf16", "fp16"]
# the seed's --op-select-implmode: high_precision keeps full fp32 math (no TF32/HF32)
MathMode = Literal["high_precision", "high_performance"]
DataKind = Literal["builtin", "pairs", "noisy", "clean", "path"]


def _numeric(annotation: Any) -> bool:
    """Whether a field holds a number (``int``, ``float``, optionally None), not a bool."""
    args = get_args(annotation) if isinstance(annotation, UnionType) else (annotation,)
    kinds = set(args) - {type(None)}
    return bool(kinds) and kinds <= {int, float}


def _not_bool(v: Any) -> Any:
    # pydantic reads true as 1 for an int field; `train.steps: true` is a mistake.
    if isinstance(v, bool):
        raise ValueError(f"expected a number, got {str(v).lower()}")
    return v


class _Noise(BaseModel):
    """A noise kind: its ``type`` is the union's discriminator, which takes no validator,
    so each kind names its number fields for :func:`_numbers_only`."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


def _numbers_only(*names: str):
    """A before-validator refusing true/false for the number fields ``names``."""
    return field_validator(*names, mode="before")(lambda cls, v: _not_bool(v))


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_numbers(cls, v: Any, info: ValidationInfo) -> Any:
        if isinstance(v, bool) and info.field_name:
            if _numeric(cls.model_fields[info.field_name].annotation):
                return _not_bool(v)
        return v


Range = tuple[float, float]


def _check_range(v: Range, lo: float, hi: float) -> Range:
    a, b = v
    if not (lo <= a <= b <= hi):
        raise ValueError(f"must be [min, max] with {lo} <= min <= max <= {hi}")
    return v


class GaussianNoise(_Noise):
    """Additive white Gaussian noise; sigmas on the 0..255 scale."""

    type: Literal["gaussian"] = "gaussian"
    train_sigma: Range = (0.0, 50.0)
    val_sigma: float = Field(25.0, ge=0, le=255)
    _n = _numbers_only("val_sigma")

    @field_validator("train_sigma")
    @classmethod
    def _r(cls, v: Range) -> Range:
        return _check_range(v, 0.0, 255.0)


class PoissonNoise(_Noise):
    """Shot noise ``poisson(lam * (x + 0.5)) / lam - 0.5`` (the reference's form)."""

    type: Literal["poisson"] = "poisson"
    train_lam: Range = (0.001, 50.0)
    val_lam: float = Field(30.0, gt=0, le=1e6)
    _n = _numbers_only("val_lam")

    @field_validator("train_lam")
    @classmethod
    def _r(cls, v: Range) -> Range:
        if v[0] <= 0:
            raise ValueError("lam must be > 0")
        return _check_range(v, 0.0, 1e6)


class TextNoise(_Noise):
    """Random strings drawn over the image until a fraction of pixels is covered."""

    type: Literal["text"] = "text"
    train_coverage: Range = (0.0, 0.5)
    val_coverage: float = Field(0.25, ge=0, le=0.95)
    _n = _numbers_only("val_coverage")

    @field_validator("train_coverage")
    @classmethod
    def _r(cls, v: Range) -> Range:
        return _check_range(v, 0.0, 0.95)


class ImpulseNoise(_Noise):
    """Random-valued impulse noise: a fraction p of pixels gets a uniform random colour.

    Validation at p = 0.70, the paper's reported experiment. In training each image
    draws its own p: input and target of a pair get independent draws, as in the
    reference, whose data pipeline calls the noise function once per copy
    (``(add_noise(cropped), add_noise(cropped), cropped)``) and each call draws its
    own strength. The clean value stays the mode of the target's pixel for every
    p < 1 either way, which is all the L0 loss needs.
    """

    type: Literal["impulse"] = "impulse"
    train_p: Range = (0.0, 0.95)
    val_p: float = Field(0.7, ge=0, le=1)
    _n = _numbers_only("val_p")

    @field_validator("train_p")
    @classmethod
    def _r(cls, v: Range) -> Range:
        return _check_range(v, 0.0, 1.0)


class BernoulliNoise(_Noise):
    """Multiplicative Bernoulli noise (the paper's Sec. 3.1): each pixel is kept with
    probability ``keep`` and otherwise multiplied by 0 (black, all channels); the
    training loss counts only the pixels the target kept."""

    type: Literal["bernoulli"] = "bernoulli"
    train_keep: Range = (0.05, 1.0)
    val_keep: float = Field(0.5, gt=0, le=1)
    _n = _numbers_only("val_keep")

    @field_validator("train_keep")
    @classmethod
    def _r(cls, v: Range) -> Range:
        if v[0] <= 0:
            raise ValueError("keep must be > 0 (a target with no pixel kept teaches nothing)")
        return _check_range(v, 0.0, 1.0)


class BernoulliSpectralNoise(_Noise):
    """MRI: k-space undersampling with a keep-probability falling off from the centre."""

    type: Literal["bernoulli_spectral"] = "bernoulli_spectral"
    p_at_edge: float = Field(0.025, gt=0, le=1)
    _n = _numbers_only("p_at_edge")


class NoNoise(_Noise):
    """No synthetic corruption: the data is already noisy (own-data modes)."""

    type: Literal["none"] = "none"


NoiseConfig = Annotated[
    GaussianNoise
    | PoissonNoise
    | TextNoise
    | ImpulseNoise
    | BernoulliNoise
    | BernoulliSpectralNoise
    | NoNoise,
    Field(discriminator="type"),
]
# noise.type values, in the order above (``none``: the user's own noisy data)
NOISE_TYPES: tuple[str, ...] = tuple(
    get_args(cls.model_fields["type"].annotation)[0] for cls in get_args(get_args(NoiseConfig)[0])
)


@dataclass(frozen=True)
class DataSpec:
    """A ``data.train`` / ``data.val`` value, parsed once.

    ``builtin:NAME``, ``pairs:DIR`` (noisy/noisy pairs), ``noisy:DIR`` (single
    noisy images), ``clean:DIR`` (validation references) or a plain path
    (``kind == "path"``: clean images, a packed set, MRI data).
    """

    kind: DataKind
    value: str  # the name or folder after the prefix; the whole text for a path
    text: str

    @classmethod
    def parse(cls, text: str) -> DataSpec:
        head, colon, rest = text.partition(":")
        if colon and head in get_args(DataKind) and head != "path":
            return cls(head, rest.strip(), text)  # type: ignore[arg-type]
        return cls("path", text, text)

    @property
    def own_mode(self) -> Literal["pairs", "noisy"] | None:
        """``pairs`` or ``noisy`` when it names the user's own noisy training data."""
        return self.kind if self.kind in ("pairs", "noisy") else None  # type: ignore[return-value]

    @property
    def path(self) -> Path | None:
        """The folder or file it names; None for a built-in set."""
        return None if self.kind == "builtin" else Path(self.value).expanduser()

    def __str__(self) -> str:
        return self.text


# The one validation key that sets each noise's strength: what `evaluate --levels` sweeps
# (and so the noises `evaluate --noise` takes).
LEVEL_PARAM = {
    "gaussian": "val_sigma",
    "poisson": "val_lam",
    "text": "val_coverage",
    "impulse": "val_p",
    "bernoulli": "val_keep",
}

NOISE_MODELS: dict[str, type[_Noise]] = {
    get_args(cls.model_fields["type"].annotation)[0]: cls
    for cls in get_args(get_args(NoiseConfig)[0])
}


def validation_level(preset: dict[str, Any]) -> tuple[str, float] | None:
    """(noise type, strength) a run of this preset data is validated at (``val_sigma`` of
    gaussian...), its model's default where the key is left out; None for a noise without
    a strength (own data, MRI) or data that is not a preset."""
    noise = preset.get("noise") if isinstance(preset, dict) else None
    kind = noise.get("type", "gaussian") if isinstance(noise, dict) else "gaussian"
    param = LEVEL_PARAM.get(kind) if isinstance(kind, str) else None
    if param is None:
        return None
    value = noise.get(param) if isinstance(noise, dict) else None
    if value is None:
        value = NOISE_MODELS[kind].model_fields[param].default
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return kind, float(value)


# What `n2n-core evaluate --baselines` can score beside the network.
BaselineName = Literal["noisy", "nlm", "bm3d"]


class AugmentConfig(_Strict):
    """Transforms of each clean training crop (see ``data/augment.py``)."""

    flips: bool = False  # one of the 8 flips/rotations per crop
    channels: bool = False  # a random permutation of the colour channels per crop
    # Each crop cut at a random scale in [min_scale, 1]: a region up to 1/min_scale
    # times the crop, area-averaged down to it (1.0: off).
    min_scale: float = Field(1.0, ge=0.25, le=1.0)

    @property
    def active(self) -> bool:
        return self.flips or self.channels or self.min_scale < 1.0


# How the U-Net's convolutions see past the edge of a map (``network.py``).
PADDINGS = ("zeros", "replicate")


class NetworkConfig(_Strict):
    """The U-Net (``network.py``): the paper's, or with the input added to its output
    and the edges of its maps replicated instead of zero-padded."""

    residual: bool = False
    padding: Literal[PADDINGS] = "zeros"

    def describe(self) -> str:
        """The start line's words for what is not the paper's network ("" when it is)."""
        words = (["residual"] if self.residual else []) + (
            [f"{self.padding}-padded"] if self.padding != "zeros" else []
        )
        return f", {' '.join(words)} U-Net" if words else ""


class DataConfig(_Strict):
    train: str = "builtin:photos"
    val: str | None = "builtin:photos-val"
    val_max_images: int | None = Field(None, ge=1)
    samples: int = Field(3, ge=0, le=64)
    augment: AugmentConfig = Field(default_factory=AugmentConfig)

    @field_validator("train")
    @classmethod
    def _names_some_data(cls, v: str) -> str:
        # (an empty data.val is no validation set; a prefix with nothing after it,
        # "pairs:", is named by the data checks further on)
        if not v.strip():
            raise ValueError(f"{v!r} names no data (a folder, a file or builtin:NAME)")
        return v

    @property
    def train_spec(self) -> DataSpec:
        return DataSpec.parse(self.train)

    @property
    def val_spec(self) -> DataSpec | None:
        return DataSpec.parse(self.val) if self.val else None


# train.seed seeds numpy (whose seeds are 32-bit) and torch; train.steps is counted in
# int64 tensors and snapshot names. Bounded here, so that a value too big is a preset
# error before any run folder is created.
SEED_MAX = 2**32 - 1
STEPS_MAX = 10**9


class TrainConfig(_Strict):
    steps: int = Field(..., ge=1, le=STEPS_MAX)
    batch: int = Field(4, ge=1, le=4096)
    crop: int = Field(256, ge=32, le=4096)
    lr: float = Field(3e-4, gt=0, le=1.0)
    rampdown: float = Field(0.3, ge=0, le=1)
    rampup: float = Field(0.0, ge=0, le=1)
    seed: int = Field(0, ge=0, le=SEED_MAX)
    val_every: int = Field(1000, ge=0)
    snapshot_every: int = Field(0, ge=0)
    log_every: int = Field(10, ge=1)
    loss: Literal["auto", "l2", "l1", "l0"] = "auto"
    # Neighbor2Neighbor (data.train: noisy:DIR): weight of the regulariser, reached at the
    # end of training (it rises linearly from 0). The paper's 2 suits Gaussian-like noise.
    nb2nb_gamma: float = Field(2.0, ge=0, le=100)

    @field_validator("crop")
    @classmethod
    def _crop32(cls, v: int) -> int:
        if v % 32:
            raise ValueError("must be a multiple of 32 (the U-Net pools five times)")
        return v

    @field_validator("lr")
    @classmethod
    def _finite(cls, v: float) -> float:
        if not math.isfinite(v):
            raise ValueError("must be finite")
        return v

    @model_validator(mode="after")
    def _ramps(self) -> TrainConfig:
        if self.rampup + self.rampdown > 1:
            raise ValueError("rampup + rampdown must not exceed 1")
        return self


SYS_EVERY_MAX = 86400.0


class RuntimeConfig(_Strict):
    device: Device = "auto"
    precision: Precision = "fp32"
    math: MathMode = "high_performance"
    nproc: int = Field(1, ge=1, le=1024)
    nnodes: int = Field(1, ge=1)
    node_rank: int = Field(0, ge=0)
    rdzv_endpoint: str | None = None
    # How long a rank waits in a collective for a peer (one on a node whose launcher
    # died) before failing; longer than the longest validation pause of rank 0.
    collective_timeout_s: int = Field(600, ge=10, le=86400)
    threads: int | None = Field(None, ge=1, le=1024)
    channels_last: bool = True
    compile: bool = False
    # Also write TensorBoard events to RUN_DIR/tensorboard/ (needs the tensorboard extra).
    tensorboard: bool = False
    # Seconds between `sys` records (CPU, memory, device util/memory/temp/power); 0 = none.
    # At most a day: a timer that long (or inf) cannot be armed (sysmon clamps too).
    sys_every: float = Field(5.0, ge=0, le=SYS_EVERY_MAX, allow_inf_nan=False)


class MriConfig(_Strict):
    """The MRI task's reference schedule and options (NVlabs ``config_mri.py``/``train_mri.py``).

    ``train.steps`` is split into ``epochs`` equal schedule epochs: the learning
    rate (max ``train.lr``) warms up over ``rampup_epochs`` and ramps down over the
    last ``rampdown_epochs``, where Adam's beta1 also goes from ``beta1_initial``
    to ``beta1_final``. ``translate``: random roll augmentation of up to this many
    pixels per axis. ``post_op: fspec`` writes the measured frequencies back into
    the network output (data consistency).
    """

    epochs: int = Field(300, ge=1)
    rampup_epochs: int = Field(10, ge=0)
    rampdown_epochs: int = Field(30, ge=0)
    beta1_initial: float = Field(0.9, ge=0, lt=1)
    beta1_final: float = Field(0.5, ge=0, lt=1)
    translate: int = Field(64, ge=0, le=4096)
    post_op: Literal["fspec", "none"] = "fspec"

    @model_validator(mode="after")
    def _ramps(self) -> MriConfig:
        if self.rampup_epochs + self.rampdown_epochs > self.epochs:
            raise ValueError("rampup_epochs + rampdown_epochs must not exceed epochs")
        return self


Executor = Literal["local", "slurm"]
SlurmCluster = Literal["slurm", "local", "debug"]


# An sbatch long option's name, without its dashes (submitit writes `_` as `-`).
SBATCH_OPTION = re.compile(r"[a-z][a-z0-9_-]{0,63}")


class SlurmConfig(_Strict):
    """Where ``n2n-core sweep --executor slurm`` submits each point, through submitit.

    ``cluster: local`` runs the very same submission path as local processes
    (submitit's local executor) to try a sweep's Slurm set-up on one machine;
    ``debug`` runs each job in the submitting process. A point with
    ``runtime.nproc`` N asks for N GPUs per node unless ``gpus_per_node`` says
    otherwise; ``nodes`` > 1 runs torchrun on every node of the job.
    """

    cluster: SlurmCluster = "slurm"
    partition: str | None = None
    time_min: int = Field(24 * 60, ge=1)
    nodes: int = Field(1, ge=1, le=1024)
    gpus_per_node: int | None = Field(None, ge=0, le=64)
    cpus_per_task: int | None = Field(None, ge=1, le=1024)
    mem_gb: int | None = Field(None, ge=1)
    account: str | None = None
    # Any other sbatch option, without the dashes: {"qos": "high", "constraint": "a100"}.
    extra: dict[str, str | int] = Field(default_factory=dict)

    # Each becomes a `#SBATCH --key=value` line of the job script: a line break in a value
    # (or anything but an option name as a key) would add lines of shell to it.
    @field_validator("partition", "account")
    @classmethod
    def _one_line(cls, v: str | None) -> str | None:
        if v is not None and (not v or not v.isprintable()):
            raise ValueError("must be non-empty printable text on one line")
        return v

    @field_validator("extra")
    @classmethod
    def _sbatch_options(cls, v: dict[str, str | int]) -> dict[str, str | int]:
        for key, value in v.items():
            if not SBATCH_OPTION.fullmatch(key):
                raise ValueError(f"{key!r}: not an sbatch option name (e.g. qos, constraint)")
            if isinstance(value, str) and not value.isprintable():
                raise ValueError(f"{key}: must be printable text on one line")
        return v


# A run folder is named after the preset: no path separators, no leading dot or dash.
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"


def check_name(name: str, source: str) -> str:
    """A run/preset name given outside a preset (``--name``); errors blame ``source``."""
    if not re.match(NAME_PATTERN, name):
        raise UserError(
            f"{source} {_short(name)}: must be 1-64 characters of letters, digits, '.', '_', '-' "
            "starting with a letter or digit"
        )
    return name


class Preset(_Strict):
    name: str = Field(..., pattern=NAME_PATTERN)
    description: str = ""
    task: Literal["image", "mri"] = "image"
    noise: NoiseConfig = Field(default_factory=GaussianNoise)
    targets: Literal["noisy", "clean"] = "noisy"
    data: DataConfig = Field(default_factory=DataConfig)
    network: NetworkConfig = Field(default_factory=NetworkConfig)
    train: TrainConfig
    runtime: RuntimeConfig = Field(default_factory=RuntimeConfig)
    mri: MriConfig | None = None  # task: mri only; left out means the reference values
    slurm: SlurmConfig | None = None  # sweeps with --executor slurm only

    @model_validator(mode="before")
    @classmethod
    def _own_data_defaults(cls, data: Any) -> Any:
        """With data.train pairs:/noisy: the data is already noisy: a left-out ``noise`` is
        none and a left-out ``data.val`` is no validation set (samples from the training
        images), instead of the synthetic-noise defaults."""
        section = data.get("data") if isinstance(data, dict) else None
        train = section.get("train") if isinstance(section, dict) else None
        if not isinstance(train, str) or not DataSpec.parse(train).own_mode:
            return data
        data = dict(data)
        data.setdefault("noise", {"type": "none"})
        data["data"] = {"val": None, **section}
        return data

    @model_validator(mode="after")
    def _consistent(self) -> Preset:
        if self.noise.type == "bernoulli_spectral" and self.task != "mri":
            raise ValueError("noise.type bernoulli_spectral needs task: mri")
        if self.task == "mri" and self.noise.type != "bernoulli_spectral":
            raise ValueError("task: mri needs noise.type bernoulli_spectral")
        if self.data.augment.active and (self.task != "image" or self.data.train_spec.own_mode):
            raise ValueError(
                "data.augment: applies to clean training images with synthetic noise "
                "(task: image); MRI has mri.translate"
            )
        if self.runtime.node_rank >= self.runtime.nnodes:
            raise ValueError("runtime.node_rank must be < runtime.nnodes")
        _check_own_data(self)
        return self

    def resolved_loss(self) -> str:
        """The paper's loss for the noise when ``train.loss: auto``."""
        if self.train.loss != "auto":
            return self.train.loss
        return {"text": "l1", "impulse": "l0"}.get(self.noise.type, "l2")

    def to_dict(self) -> dict[str, Any]:
        data = self.model_dump(mode="json")
        for section in ("mri", "slurm"):  # optional sections left out stay out of the file
            if data.get(section) is None:
                data.pop(section, None)
        return data


OWN_DATA_HELP = "pairs:DIR (noisy/noisy pairs) or noisy:DIR (single noisy images)"


def _check_own_data(p: Preset) -> None:
    """The rules of the own-data modes (see docs/own-data.md); messages start with the key."""
    train, val = p.data.train, p.data.val
    train_spec, val_spec = p.data.train_spec, p.data.val_spec
    mode = train_spec.own_mode
    if train_spec.kind == "clean":
        raise ValueError(
            f"data.train: {train}: clean:DIR holds validation references; train on {OWN_DATA_HELP}"
        )
    if mode and not train_spec.value:
        raise ValueError(f"data.train: {train} needs a folder, e.g. {mode}:datasets/own-{mode}")
    if not mode:
        if p.noise.type == "none":
            raise ValueError(
                f"noise.type: none (no synthetic noise) needs data.train {OWN_DATA_HELP}; "
                "with clean training images choose a noise to add"
            )
        if val_spec and val_spec.kind in ("clean", "noisy", "pairs"):
            raise ValueError(f"data.val: {val} needs data.train {OWN_DATA_HELP}")
        return
    if p.noise.type != "none":
        raise ValueError(
            f"noise.type: must be none with data.train {train} (the data is already noisy; "
            f"got {p.noise.type})"
        )
    if p.task != "image":
        raise ValueError(f"task: data.train {train} needs task: image")
    if p.targets != "noisy":
        raise ValueError(
            f"targets: clean needs clean training images; data.train {train} needs targets: noisy"
        )
    if val_spec and val_spec.kind not in ("clean", "noisy"):
        raise ValueError(
            f"data.val: {val}: with data.train {train} use clean:DIR (DIR/clean/NAME + "
            "DIR/noisy/NAME, scored) or noisy:DIR (samples only), or leave it out"
        )
    if val_spec and not val_spec.value:
        raise ValueError(f"data.val: {val} needs a folder, e.g. clean:datasets/own-val")
    if mode == "noisy":
        if p.train.crop % 64:
            raise ValueError(
                f"train.crop: {p.train.crop}: must be a multiple of 64 with data.train noisy: "
                "(Neighbor2Neighbor trains on half-size sub-images)"
            )
        if p.train.loss not in ("auto", "l2"):
            raise ValueError(
                f"train.loss: {p.train.loss}: data.train noisy: trains with the "
                "Neighbor2Neighbor L2 loss; use auto or l2"
            )


# ---------------------------------------------------------------------------
# loading, overrides, error messages


def _format_loc(loc: tuple[Any, ...], data: Any) -> str:
    parts: list[str] = []
    node = data
    for item in loc:
        # pydantic inserts the discriminator value of a tagged union ("gaussian")
        # into the location; it is not a key the user wrote.
        if isinstance(node, dict) and item not in node and isinstance(item, str):
            if item in NOISE_TYPES:
                continue
        parts.append(str(item))
        node = node.get(item) if isinstance(node, dict) else None
    return ".".join(parts) or "(top level)"


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def format_validation_error(err: ValidationError, data: Any, source: str) -> str:
    """One line naming the key; its size does not grow with the input (no expanded reprs)."""
    first = err.errors(include_url=False, include_context=False, include_input=True)[0]
    more = err.error_count() - 1
    loc = _cut(_format_loc(tuple(first["loc"]), data), 120)
    kind = first["type"]
    text = first["msg"].removeprefix("Value error, ")
    if not first["loc"] and kind == "value_error" and re.match(r"^[a-z_]+(\.[a-z0-9_]+)*: ", text):
        # A cross-key check whose message already starts with the key it blames.
        return f"{source}: {_cut(text, 400)}"
    if kind == "extra_forbidden":
        msg = "unknown key"
    elif kind == "missing":
        msg = "required key is missing"
    elif kind == "union_tag_invalid":
        msg = (
            "unsupported value "
            f"{_short(_tag_of(first.get('input')))}; expected one of: "
            f"{', '.join(NOISE_TYPES)}"
        )
        loc = loc + ".type" if not loc.endswith(".type") else loc
    elif kind == "union_tag_not_found":
        msg = "needs a 'type' key"
    else:
        msg = first["msg"]
        if msg.startswith("Value error, "):
            msg = msg[len("Value error, ") :]
        if "input" in first and kind.startswith("literal"):
            msg = f"unsupported value {_short(first['input'])}; {msg[0].lower() + msg[1:]}"
    tail = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
    return f"{source}: {loc}: {_cut(msg, 400)}{tail}"


def validate_preset(data: Any, source: str = "preset") -> Preset:
    if not isinstance(data, dict):
        kind = "empty" if data is None else f"a {type(data).__name__}"
        raise UserError(f"{source}: expected a mapping of preset keys at top level, got {kind}")
    try:
        return Preset.model_validate(data)
    except ValidationError as e:
        raise UserError(format_validation_error(e, data, source)) from None


def check_data_paths(preset: Preset, how_to_get=None) -> None:
    """Fail before creating a run folder when a data path does not exist.

    ``how_to_get``: path -> the command that makes it, or None (``fetch.fetch_hint``;
    passed in by the commands, since this layer knows nothing of downloads).
    """
    for key, spec in (("train", preset.data.train_spec), ("val", preset.data.val_spec)):
        if spec is None or spec.path is None:
            continue
        if not spec.path.exists():
            cmd = how_to_get(spec.path) if how_to_get else None
            hint = f"; make it with `{cmd}`" if cmd else ""
            raise UserError(f"data.{key}: {spec}: path not found{hint}")


def dump_preset(preset: Preset) -> str:
    return yaml.safe_dump(preset.to_dict(), sort_keys=False, default_flow_style=None)


# ---------------------------------------------------------------------------
# comparing presets


def _short(value: Any, limit: int = 60) -> str:
    """``repr`` of a value from the user's file, cut so that no message can grow with the input."""
    text = repr(value) if not isinstance(value, str) else repr(value[: limit + 1])
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _tag_of(value: Any) -> Any:
    return value.get("type") if isinstance(value, dict) else value


def _model_keys(model: type[BaseModel], prefix: str, out: set[str], open_: set[str]) -> None:
    for name, f in model.model_fields.items():
        key = f"{prefix}{name}"
        out.add(key)
        for arg in _flat_args(f.annotation):
            if isinstance(arg, type) and issubclass(arg, BaseModel):
                _model_keys(arg, key + ".", out, open_)
            elif arg is dict or getattr(arg, "__origin__", None) is dict:
                open_.add(key)


def _flat_args(annotation: Any) -> list[Any]:
    args = get_args(annotation)
    if not args or getattr(annotation, "__origin__", None) in (dict, list, tuple, Literal):
        return [annotation]
    out = []
    for a in args:
        out += _flat_args(a)
    return out


_KEYS: tuple[frozenset[str], frozenset[str]] | None = None


def is_preset_key(key: str) -> bool:
    """Whether a dotted key names a field of the preset schema (any noise model's, any
    section's; below a free-form mapping, such as slurm's sbatch options, any key)."""
    global _KEYS
    if _KEYS is None:
        keys: set[str] = set()
        open_: set[str] = set()
        _model_keys(Preset, "", keys, open_)
        _KEYS = frozenset(keys), frozenset(open_)
    keys, open_ = _KEYS
    parts = key.split(".")
    return key in keys or any(".".join(parts[:i]) in open_ for i in range(1, len(parts)))
