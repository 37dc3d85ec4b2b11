"""The records of ``metrics.jsonl``: one frozen dataclass per kind, one parser.

The on-disk format (docs/ARCHITECTURE.md, "The run-folder contract"): one JSON object per line with a ``kind``
field. Each kind is a dataclass registered with :func:`record_kind`; a new kind
(``sys``, ``eval``, ...) is one more class here, written by one more
``MetricsWriter`` method and read by :class:`~n2n_core.runs.state.RunState`.

Reading is tolerant because run folders outlive the code that wrote them: a
line of an unknown kind, or one that is not a JSON object, parses to ``None``;
a field of the wrong type reads as ``None`` (its raw value is kept in
``extra``), and fields this version does not know are kept in ``extra`` too, so
a record rewritten by :func:`~n2n_core.runs.writer.drop_metrics_after` loses nothing.
"""

from __future__ import annotations

import json
import math
import types
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from n2n_core.files.checks import is_regular_file

try:  # a C decoder several times faster than json's; json reads what it refuses
    from orjson import loads as _fast_loads
except ImportError:  # pragma: no cover - orjson is a dependency; json is the fallback
    _fast_loads = json.loads

_JSON_TYPES = {
    int: (int,),
    float: (float, int),
    str: (str,),
    bool: (bool,),
    list: (list,),
    dict: (dict,),
}


@dataclass(frozen=True, kw_only=True, slots=True)
class Record:
    """Fields every record has. ``extra`` holds what this version does not read."""

    kind: ClassVar[str] = ""
    # (name, accepted JSON types) per field, filled in by :func:`record_kind`.
    _spec: ClassVar[tuple[tuple[str, tuple[type, ...]], ...]] = ()
    _accept: ClassVar[dict[str, tuple[type, ...]]] = {}

    step: int | None = None
    time: float | None = None
    extra: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def to_json(self) -> dict[str, Any]:
        """The line's object, keys in the documented order; unknown and unreadable fields kept."""
        return merged_json(self, {"kind": self.kind}, keep_none=False)

    def to_line(self) -> str:
        """One line of ``metrics.jsonl`` (non-finite floats written as JSON's NaN/Infinity)."""
        return json.dumps(self.to_json(), separators=(",", ":"), allow_nan=True) + "\n"


RECORD_KINDS: dict[str, type[Record]] = {}
R = TypeVar("R", bound=type[Record])


def field_spec(cls: type) -> tuple[tuple[str, tuple[type, ...]], ...]:
    """(name, accepted JSON types) of a dataclass's fields, from its annotations.

    ``float`` accepts JSON integers too; ``bool`` is never an ``int``.
    """
    hints = typing.get_type_hints(cls)
    spec = []
    for f in fields(cls):
        if f.name == "extra":
            continue
        hint = hints[f.name]
        args = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
        ok: tuple[type, ...] = ()
        for a in args:
            ok += _JSON_TYPES.get(typing.get_origin(a) or a, ())
        spec.append((f.name, ok))
    return tuple(spec)


# The accepted types of a key read elsewhere (a record's ``kind``): never a field, never extra.
SKIP: tuple[type, ...] = (type("_Skip", (), {}),)


def split_fields(accept: dict[str, tuple[type, ...]], item: dict[str, Any]) -> dict[str, Any]:
    """Keyword arguments for a dataclass from a JSON object, tolerantly (one pass).

    A value of the wrong type is left out (the field keeps its default) and goes,
    with every key not in ``accept``, into ``extra`` so that writing back loses nothing.
    """
    kwargs: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    for k, v in item.items():
        ok = accept.get(k)
        if ok is None:
            extra[k] = v
        elif type(v) in ok:
            kwargs[k] = v
        elif v is not None and ok is not SKIP:
            extra[k] = v
    if extra:
        kwargs["extra"] = extra
    return kwargs


def merged_json(obj: Any, first: dict[str, Any], keep_none: bool) -> dict[str, Any]:
    """``first``, then the fields in order (a None field writes its unreadable raw value
    if it had one, else null when ``keep_none``), then the unknown fields."""
    out = first
    extra = obj.extra
    for name, _ in obj._spec:
        v = getattr(obj, name)
        if v is not None:
            out[name] = v
        elif name in extra:
            out[name] = extra[name]
        elif keep_none:
            out[name] = None
    for k, v in extra.items():
        if k not in out:
            out[k] = v
    return out


def record_kind(cls: R) -> R:
    """Register a record class under its ``kind`` (the class decorator of every kind)."""
    cls._spec = field_spec(cls)
    cls._accept = {**dict(cls._spec), "kind": SKIP}
    RECORD_KINDS[cls.kind] = cls
    return cls


@record_kind
@dataclass(frozen=True, kw_only=True, slots=True)
class TrainRecord(Record):
    """Mean training loss over the steps since the last one, the lr, and the speed."""

    kind: ClassVar[str] = "train"
    loss: float | None = None
    lr: float | None = None
    ms_per_step: float | None = None


@record_kind
@dataclass(frozen=True, kw_only=True, slots=True)
class ValRecord(Record):
    """A validation: PSNR of the output and of the corrupted input, on which data set.

    The colour shift (``evaluate.ColourShift``, levels of 255): mean |mean(denoised) −
    mean(clean)| over images and channels, and the worst signed one with its image
    and channel; absent where it is not measured (MRI) and in older runs.
    """

    kind: ClassVar[str] = "val"
    psnr: float | None = None
    input_psnr: float | None = None
    dataset: str | None = None
    images: int | None = None
    colour_shift: float | None = None
    colour_shift_worst: float | None = None
    colour_shift_worst_image: str | None = None
    colour_shift_worst_channel: str | None = None


@record_kind
@dataclass(frozen=True, kw_only=True, slots=True)
class EventRecord(Record):
    """Something that happened (start, resume, stop, an error), for people to read."""

    kind: ClassVar[str] = "event"
    msg: str | None = None
    level: str | None = None


@dataclass(frozen=True)
class DeviceStats:
    """One accelerator, as read by the rank that trains on it (absent sensors are None)."""

    index: int
    type: str
    util_pct: float | None = None
    mem_used_mb: float | None = None
    mem_total_mb: float | None = None
    temp_c: float | None = None
    power_w: float | None = None


@dataclass(frozen=True)
class RankStats:
    """One rank: its machine and process, its data wait, its own ms/step, its device."""

    rank: int
    cpu_pct: float | None = None
    rss_mb: float | None = None
    ram_used_mb: float | None = None
    ram_total_mb: float | None = None
    data_wait: float | None = None  # fraction of step time spent making the batch
    ms_per_step: float | None = None
    devices: tuple[DeviceStats, ...] = ()


@record_kind
@dataclass(frozen=True, kw_only=True, slots=True)
class SysRecord(Record):
    """System and accelerator numbers of every rank at one log step (n2n_core.engine.sysmon).

    On disk ``ranks`` is a list of objects; absent sensors are left out of them.
    """

    kind: ClassVar[str] = "sys"
    ranks: tuple[RankStats, ...] | list | None = None

    def __post_init__(self) -> None:
        if isinstance(self.ranks, list):  # from JSON: typed once, here
            ranks = tuple(
                _rank_from_json(r)
                for r in self.ranks
                if type(r) is dict and type(r.get("rank")) is int
            )
            object.__setattr__(self, "ranks", ranks)

    def to_json(self) -> dict[str, Any]:
        out = merged_json(self, {"kind": self.kind}, keep_none=False)
        if self.ranks is not None:
            out["ranks"] = [_rank_json(r) for r in self.ranks]
        return out

    def flat(self) -> dict[str, Any]:
        """``rank1.data_wait``, ``rank1.device1.util_pct``... : one column per number (CSV)."""
        out: dict[str, Any] = {"kind": self.kind, "step": self.step, "time": self.time}
        for r in self.ranks or ():
            js = _rank_json(r)
            for k, v in js.items():
                if k not in ("rank", "devices"):
                    out[f"rank{r.rank}.{k}"] = v
            for dv in js["devices"]:
                for k, v in dv.items():
                    if k not in ("index", "type"):
                        out[f"rank{r.rank}.device{dv['index']}.{k}"] = v
        return out


def _finite(v: Any) -> bool:
    return (type(v) is float or type(v) is int) and math.isfinite(v)


def _rank_json(r: RankStats) -> dict[str, Any]:
    out: dict[str, Any] = {"rank": r.rank}
    for f in fields(RankStats):
        v = getattr(r, f.name)
        if f.name not in ("rank", "devices") and v is not None:
            out[f.name] = round(v, 4)
    out["devices"] = [
        {
            k: (round(v, 2) if isinstance(v, float) else v)
            for k, v in ((f.name, getattr(dv, f.name)) for f in fields(DeviceStats))
            if v is not None
        }
        for dv in r.devices
    ]
    return out


def _rank_from_json(r: dict[str, Any]) -> RankStats:
    nums = {
        f.name: float(r[f.name])
        for f in fields(RankStats)
        if f.name not in ("rank", "devices") and _finite(r.get(f.name))
    }
    devices = []
    for dv in r.get("devices") or ():
        if type(dv) is dict and type(dv.get("index")) is int:
            dn = {
                f.name: float(dv[f.name])
                for f in fields(DeviceStats)
                if f.name not in ("index", "type") and _finite(dv.get(f.name))
            }
            devices.append(DeviceStats(index=dv["index"], type=str(dv.get("type", "?")), **dn))
    return RankStats(rank=r["rank"], devices=tuple(devices), **nums)


@record_kind
@dataclass(frozen=True, kw_only=True, slots=True)
class EvalRecord(Record):
    """One cell of an evaluation matrix (``n2n-core evaluate``): a snapshot on a data set
    at a noise level, beside the classical baselines scored on the same noisy images.

    ``step`` is the snapshot's step; ``snapshot`` its file name in the run's
    ``snapshots/`` (the folder may move); ``baselines`` maps a denoiser's name to its
    PSNR; ``seconds`` how long each column took; ``best`` marks the snapshot with the
    highest mean PSNR of its evaluation.
    """

    kind: ClassVar[str] = "eval"
    snapshot: str | None = None
    dataset: str | None = None
    noise: str | None = None
    level: float | None = None
    psnr: float | None = None
    input_psnr: float | None = None
    images: int | None = None
    baselines: dict | None = None
    seconds: dict | None = None
    best: bool | None = None
    # the network's colour shift on the cell, as in ValRecord
    colour_shift: float | None = None
    colour_shift_worst: float | None = None
    colour_shift_worst_image: str | None = None
    colour_shift_worst_channel: str | None = None

    @classmethod
    def of_validation(
        cls, result: dict[str, Any], *, step: int | None, time: float, snapshot: str, dataset: str
    ) -> EvalRecord:
        """The record of one ``validate --json`` result (a one-cell evaluation), the same
        shape ``evaluate`` stores: noise, level, PSNRs, images and colour shift. The result
        is another process's output: a field of the wrong type is left out."""
        known = {k: v for k, v in result.items() if k in VALIDATION_FIELDS}
        kwargs = split_fields(cls._accept, known)
        kwargs.pop("extra", None)
        level = kwargs.get("level")
        if level is not None:
            kwargs["level"] = float(level)
        return cls(step=step, time=time, snapshot=snapshot, dataset=dataset, **kwargs)

    @property
    def key(self) -> tuple:
        """What a newer evaluation of the same cell replaces."""
        return (self.snapshot, self.dataset, self.noise, self.level)

    @property
    def baseline_names(self) -> list[str]:
        return [str(k) for k in (self.baselines or {})]

    def baseline(self, name: str) -> float | None:
        """A baseline's PSNR; None when absent or not a number (a hand-edited file)."""
        v = (self.baselines or {}).get(name)
        return float(v) if type(v) in (int, float) else None


# What a ``validate --json`` result gives an eval record (the rest is the caller's).
VALIDATION_FIELDS = (
    "noise",
    "level",
    "psnr",
    "input_psnr",
    "images",
    "colour_shift",
    "colour_shift_worst",
    "colour_shift_worst_image",
    "colour_shift_worst_channel",
)


def parse_record(item: str | bytes | dict[str, Any]) -> Record | None:
    """The typed record of one line (or its already-decoded object); None if it is not one.

    Never raises on bad input: blank, torn or garbage lines, non-objects and
    unknown kinds give None; wrongly typed fields read as None.
    """
    if type(item) is not dict:
        if not isinstance(item, str | bytes | bytearray):
            return None
        item = _loads_one(item)
        if type(item) is not dict:
            return None
    kind = item.get("kind")
    cls = RECORD_KINDS.get(kind) if type(kind) is str else None
    if cls is None:
        return None
    kwargs = split_fields(cls._accept, item)
    return cls(**kwargs)


def loads_json(data: bytes | str) -> Any:
    """A JSON document, decoded as fast as this machine can (ValueError when it is not)."""
    try:
        if not _has_long_int(data):
            return _fast_loads(data)
    except (ValueError, RecursionError):
        pass
    return json.loads(data)


# orjson reads an integer past 64 bits as a float, where json keeps it exact: text with an
# integer of 19 digits or more goes to json. Digits after a point or before one or an
# exponent are a float's (0.000123... has many), which orjson reads exactly as json does.
# Found with C calls only (translate, find): a regex over every byte costs more than the parse.
_ZEROS = bytes.maketrans(b"123456789", b"000000000")
_RUN = b"0" * 19


def _has_long_int(data: bytes | str) -> bool:
    """Whether the JSON text holds an integer that does not fit 64 bits."""
    if type(data) is str:
        data = data.encode("utf-8", "replace")
    z = data.translate(_ZEROS)
    i = z.find(_RUN)
    while i != -1:
        start = i
        while start and z[start - 1] == 48:  # "0"
            start -= 1
        end = i + len(_RUN)
        while end < len(z) and z[end] == 48:
            end += 1
        if z[start - 1 : start] != b"." and z[end : end + 1] not in (b".", b"e", b"E"):
            # 19 digits may still fit 64 bits (a time in nanoseconds does).
            if end - start > 19 or int(data[start:end]) > 0x7FFF_FFFF_FFFF_FFFF:
                return True
        i = z.find(_RUN, end)
    return False


def _loads_one(line: bytes | str) -> Any:
    """One line's JSON value, or the line itself when it is not JSON (parse_record drops it)."""
    try:
        if _has_long_int(line):
            raise ValueError("long integer")
        return _fast_loads(line)
    except (ValueError, RecursionError):  # NaN/Infinity (a diverged run) only json reads
        pass
    try:
        return json.loads(line)
    except (ValueError, UnicodeDecodeError, RecursionError):  # nested too deep: garbage
        return line


def decode_lines(lines: list[bytes]) -> list[Any]:
    """The JSON values of complete lines, in order (blank lines dropped; a line that is
    not JSON is passed through as bytes, which :func:`parse_record` turns into None).

    The lines are decoded as one JSON array, one C call; only when some line is
    torn, garbage, or holds what the fast decoder refuses (NaN from a diverged
    run, an integer past 64 bits) are they decoded one by one.
    """
    body = b",".join(ln for ln in lines if ln.strip())
    if not body:
        return []
    try:
        if _has_long_int(body):
            raise ValueError("long integer")
        return _fast_loads(b"[" + body + b"]")
    except (ValueError, RecursionError):
        return [_loads_one(ln) for ln in lines if ln.strip()]


def parse_lines(lines: list[bytes]) -> list[Record]:
    """The records among complete lines; garbage skipped."""
    out = []
    for it in decode_lines(lines):
        rec = parse_record(it)
        if rec is not None:
            out.append(rec)
    return out


# The train record exactly as the writer writes it: what a reader of a long log meets a
# million times. :func:`plain_train` recognises it from its keys and value types alone, so
# that a reader can take its numbers without building a record (RunState.feed).
_TRAIN_KEYS = ("kind", "step", "time", "loss", "lr", "ms_per_step")
_NUM = (float, int)
_TRAIN_TYPES = frozenset(
    (str, int, a, b, c, d) for a in _NUM for b in _NUM for c in _NUM for d in _NUM
)


def plain_train(item: dict[str, Any]) -> tuple[int, float, float, float, float] | None:
    """(step, time, loss, lr, ms_per_step) of a decoded train object of the writer's exact
    shape, else None (then :func:`parse_record` reads it, whatever its shape)."""
    if tuple(item) != _TRAIN_KEYS:
        return None
    vals = tuple(item.values())
    if vals[0] != "train" or tuple(map(type, vals)) not in _TRAIN_TYPES:
        return None
    return vals[1:]  # type: ignore[return-value]


def read_metrics(path: str | Path, typed: bool = True) -> list[Any]:
    """Every whole record of a metrics file (a torn last line is skipped); with
    ``typed=False`` the decoded objects, for :class:`~n2n_core.runs.state.RunState`."""
    if not is_regular_file(path):
        return []
    try:
        data = Path(path).read_bytes()
    except OSError:
        return []
    lines = data.split(b"\n")
    return parse_lines(lines) if typed else decode_lines(lines)
