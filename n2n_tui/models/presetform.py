"""The preset editor's model: form fields generated from the pydantic schema.

Pure code (no widgets): which fields a preset has, how a typed text becomes a
value, validation messages per field, and the minimal YAML of an edited preset
(only the keys that changed are written into a copy of the original file's data).
"""

from __future__ import annotations

import copy
import difflib
import types
import typing
from dataclasses import dataclass
from typing import Any, Literal, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError

from n2n_core.config.schema import DataSpec, Preset

NOISE_KEY = "noise"


@dataclass(frozen=True)
class FieldSpec:
    path: tuple[str, ...]
    kind: str  # "select" | "bool" | "text" | "range"
    options: tuple[str, ...] = ()
    optional: bool = False
    number: str = ""  # "int" | "float" | ""
    doc: str = ""

    @property
    def key(self) -> str:
        return ".".join(self.path)

    @property
    def widget_id(self) -> str:
        return "f-" + "-".join(self.path).replace("_", "--")


def _unwrap_optional(ann: Any) -> tuple[Any, bool]:
    origin = get_origin(ann)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in get_args(ann) if a is not type(None)]
        if len(args) == 1 and len(get_args(ann)) == 2:
            return args[0], True
    return ann, False


def _spec(path: tuple[str, ...], ann: Any) -> FieldSpec:
    ann, optional = _unwrap_optional(ann)
    if get_origin(ann) is Literal:
        return FieldSpec(path, "select", tuple(str(a) for a in get_args(ann)), optional)
    if ann is bool:
        return FieldSpec(path, "bool", optional=optional)
    if get_origin(ann) is tuple:
        return FieldSpec(path, "range", optional=optional, number="float")
    number = {int: "int", float: "float"}.get(ann, "")
    return FieldSpec(path, "text", optional=optional, number=number)


def _is_model(ann: Any) -> bool:
    return isinstance(ann, type) and issubclass(ann, BaseModel)


def noise_models() -> dict[str, type[BaseModel]]:
    ann = Preset.model_fields[NOISE_KEY].annotation
    out = {}
    for member in get_args(ann):
        if _is_model(member):
            tag = get_args(member.model_fields["type"].annotation)[0]
            out[str(tag)] = member
    return out


def _optional_model(ann: Any) -> type[BaseModel] | None:
    """The model of an optional section (``mri: MriConfig | None``), else None."""
    inner, optional = _unwrap_optional(ann)
    return inner if optional and _is_model(inner) else None


def _model_specs(name: str | tuple[str, ...], model: type[BaseModel]) -> list[FieldSpec]:
    """A section's fields; a nested section (data.augment) contributes its own fields."""
    prefix = (name,) if isinstance(name, str) else name
    out: list[FieldSpec] = []
    for k, f in model.model_fields.items():
        ann = _unwrap_optional(f.annotation)[0]
        if get_origin(ann) is dict:
            # A mapping-valued key (slurm.extra) has no form field; the file keeps it as written.
            continue
        if _is_model(ann):
            out += _model_specs((*prefix, k), ann)
        else:
            out.append(_spec((*prefix, k), f.annotation))
    return out


def uses_section(preset: Preset, name: str) -> bool:
    """Whether an optional section applies to ``preset`` (MRI presets may leave ``mri`` out)."""
    return getattr(preset, name) is not None or (name == "mri" and preset.task == "mri")


def sections(preset: Preset | None = None) -> list[tuple[str, list[FieldSpec]]]:
    """(section, fields) in schema order; noise is its own section (see :func:`noise_fields`).

    An optional section (``mri``, ``slurm``) is a section of its own fields when
    ``preset`` uses it, and absent otherwise.
    """
    general: list[FieldSpec] = []
    out: list[tuple[str, list[FieldSpec]]] = [("general", general)]
    for name, info in Preset.model_fields.items():
        optional_model = _optional_model(info.annotation)
        if name == NOISE_KEY:
            out.append((NOISE_KEY, []))
        elif _is_model(info.annotation):
            out.append((name, _model_specs(name, info.annotation)))
        elif optional_model is not None:
            if preset is not None and uses_section(preset, name):
                out.append((name, _model_specs(name, optional_model)))
        else:
            general.append(_spec((name,), info.annotation))
    return out


def effective_value(preset: Preset, data: dict[str, Any], path: tuple[str, ...]) -> Any:
    """A field's value; a left-out optional section reads as its defaults (what applies)."""
    value = get_path(data, path)
    if value is None and len(path) == 2 and data.get(path[0]) is None:
        model = _optional_model(Preset.model_fields[path[0]].annotation)
        if model is not None and uses_section(preset, path[0]):
            return model().model_dump(mode="json").get(path[1])
    return value


def noise_fields(noise_type: str) -> list[FieldSpec]:
    model = noise_models().get(noise_type)
    if model is None:
        return []
    doc = (model.__doc__ or "").strip()
    fields = [FieldSpec((NOISE_KEY, "type"), "select", tuple(noise_models()), doc=doc)]
    for k, f in model.model_fields.items():
        if k != "type":
            fields.append(_spec((NOISE_KEY, k), f.annotation))
    return fields


# ---------------------------------------------------------------------------
# data modes (the prefix of data.train)

DATA_MODES = {
    "builtin": "built-in photos",
    "folder": "clean images + synthetic noise",
    "pairs": "pairs:  noisy/noisy pairs (N2N)",
    "noisy": "noisy:  single noisy images (Nb2Nb)",
}


def data_mode(spec: str) -> str:
    kind = DataSpec.parse(spec).kind
    return kind if kind in ("builtin", "pairs", "noisy") else "folder"


def with_data_mode(spec: str, mode: str) -> str:
    """``spec`` moved to ``mode``, keeping its path where there is one."""
    ds = DataSpec.parse(spec)
    path = "" if ds.kind == "builtin" else ds.value if ds.own_mode else spec
    if mode == "builtin":
        return "builtin:photos"
    if mode == "folder":
        return path or "datasets/my-clean-images"
    return f"{mode}:{path or 'datasets/own-' + mode}"


# ---------------------------------------------------------------------------
# values


def get_path(data: Any, path: tuple[str, ...]) -> Any:
    for p in path:
        if not isinstance(data, dict) or p not in data:
            return None
        data = data[p]
    return data


def set_path(data: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    node = data
    for p in path[:-1]:
        child = node.get(p)
        if not isinstance(child, dict):
            child = node[p] = {}
        node = child
    node[path[-1]] = value


def to_text(value: Any) -> str:
    """How a model value is shown in a text field."""
    if value is None:
        return ""
    if isinstance(value, list | tuple):
        return ", ".join(to_text(v) for v in value)
    if isinstance(value, str):
        # A one-line field would show a newline (a folded YAML block ends in one) as a stray glyph.
        return " ".join(value.splitlines()).strip()
    return str(value)


def from_text(spec: FieldSpec, text: str) -> Any:
    """A typed text as the raw value pydantic validates (it converts '12' to 12 itself)."""
    text = text.strip()
    if spec.optional and text == "":
        return None
    if spec.kind == "range":
        parts = [p.strip() for p in text.replace("[", "").replace("]", "").split(",")]
        return parts
    return text


def field_values(model: Preset) -> dict[str, Any]:
    """Every field's current value, keyed by dotted path (what the form shows)."""
    data = model.to_dict()
    out = {}
    for _, specs in sections(model):
        for s in specs:
            out[s.key] = effective_value(model, data, s.path)
    for s in noise_fields(model.noise.type):
        out[s.key] = get_path(data, s.path)
    return out


def build_data(original: dict[str, Any], values: dict[str, Any], noise_type: str) -> dict[str, Any]:
    """The full data to validate: the original file's data with every form value set."""
    data = copy.deepcopy(original)
    data[NOISE_KEY] = {"type": noise_type}
    for key, value in values.items():
        path = tuple(key.split("."))
        if path[0] == NOISE_KEY and path[1] != "type":
            if key not in {s.key for s in noise_fields(noise_type)}:
                continue
        set_path(data, path, value)
    data[NOISE_KEY]["type"] = noise_type
    return data


def _strip_tags(loc: tuple[Any, ...]) -> tuple[str, ...]:
    tags = set(noise_models())
    out = []
    for i, part in enumerate(loc):
        if i == 1 and loc[0] == NOISE_KEY and part in tags:
            continue
        out.append(str(part))
    return tuple(out)


def _message(err: dict[str, Any]) -> str:
    kind = err["type"]
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "missing":
        return "required"
    msg = str(err["msg"])
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
    return msg


def validate(data: dict[str, Any]) -> tuple[Preset | None, dict[str, str]]:
    """The validated preset, or None and messages keyed by dotted path ('' for the whole preset)."""
    try:
        return Preset.model_validate(data), {}
    except ValidationError as e:
        msgs: dict[str, str] = {}
        for err in e.errors():
            loc = _strip_tags(tuple(err["loc"]))
            # A bad item of a range is reported on the range itself.
            while loc and loc[-1].isdigit():
                loc = loc[:-1]
            msgs.setdefault(".".join(loc), _message(err))
        return None, msgs


def edited_data(original: dict[str, Any], base: Preset, new: Preset) -> dict[str, Any]:
    """The original file's data with only the changed keys replaced by their new values."""
    out = copy.deepcopy(original)
    old_d, new_d = base.to_dict(), new.to_dict()
    for section, specs in sections(new):
        if section == NOISE_KEY:
            continue
        for s in specs:
            a, b = effective_value(base, old_d, s.path), effective_value(new, new_d, s.path)
            if a != b:
                set_path(out, s.path, b)
    if new.noise.type != base.noise.type:
        defaults = type(new.noise)().model_dump(mode="json")
        noise = {"type": new.noise.type}
        for k, v in new_d[NOISE_KEY].items():
            if k != "type" and defaults.get(k) != v:
                noise[k] = v
        out[NOISE_KEY] = noise
    else:
        for s in noise_fields(new.noise.type):
            a, b = get_path(old_d, s.path), get_path(new_d, s.path)
            if a != b:
                set_path(out, s.path, b)
    return out


class _Dumper(yaml.SafeDumper):
    """Block style for mappings (one key per line: readable diffs), flow style for lists."""


def _flow_list(dumper: yaml.SafeDumper, data: list) -> yaml.Node:
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=True)


_Dumper.add_representer(list, _flow_list)
_Dumper.add_representer(tuple, _flow_list)


def dump(data: dict[str, Any]) -> str:
    return yaml.dump(
        data, Dumper=_Dumper, sort_keys=False, default_flow_style=False, allow_unicode=True
    )


def diff(old_text: str, new_text: str, old_name: str, new_name: str) -> list[str]:
    return list(
        difflib.unified_diff(
            old_text.splitlines(), new_text.splitlines(), old_name, new_name, lineterm="", n=2
        )
    )
