"""Which runs a filter keeps: words, tags and ``key=value`` on any preset key.

One query language for ``n2n-core runs --tag T --where KEY=VALUE`` and the TUI's
run filter (``/``): ``poisson +best noise.type=poisson train.lr=3e-4``.

- ``+TAG`` (or ``tag:TAG``): the run carries that tag;
- ``KEY=VALUE``: the resolved preset (``preset.yaml``) has that value at the
  dotted key, compared as typed (``3e-4`` matches ``0.0003``); ``sweep=NAME`` and
  ``note=WORD`` look at run.json instead;
- any other word: found (case-insensitively) in the text the caller passes
  (name, status, device, tags, note).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from n2n_core.config.loader import read_preset_data
from n2n_core.config.overrides import parse_value
from n2n_core.config.schema import is_preset_key, validation_level
from n2n_core.errors import UserError
from n2n_core.runs.info import RunInfo, run_tags
from n2n_core.runs.layout import RunPaths

RUN_KEYS = ("sweep", "note")


@dataclass
class RunQuery:
    words: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    keys: list[tuple[str, str]] = field(default_factory=list)  # (dotted key, value as typed)

    @classmethod
    def parse(cls, text: str) -> RunQuery:
        q = cls()
        for w in text.split():
            if w.startswith("+") and len(w) > 1:
                q.tags.append(w[1:])
            elif w.lower().startswith("tag:") and len(w) > 4:
                q.tags.append(w[4:])
            elif "=" in w.strip("="):
                key, _, value = w.partition("=")
                q.keys.append((key, value))
            else:
                q.words.append(w.lower())
        return q

    @classmethod
    def from_flags(cls, tags: list[str], where: list[str]) -> RunQuery:
        q = cls(tags=list(tags))
        for w in where:
            key, eq, value = w.partition("=")
            if not eq or not key.strip():
                raise UserError(f"--where {w!r}: expected KEY=VALUE, e.g. noise.type=poisson")
            q.keys.append((key.strip(), value.strip()))
        return q

    def unknown_keys(self) -> list[str]:
        """The keys that name neither a preset key nor a run.json one (a typo matches no run)."""
        return [k for k, _ in self.keys if k not in RUN_KEYS and not is_preset_key(k)]

    def check_keys(self, flag: str = "--where") -> None:
        """A ``UserError`` naming the first key that is not a preset key."""
        for key, value in self.keys:
            if key in self.unknown_keys():
                raise UserError(
                    f"{flag} {key}={value}: {key}: unknown key (not a preset key, nor "
                    f"{' or '.join(RUN_KEYS)})"
                )

    @property
    def needs_preset(self) -> bool:
        return any(k not in RUN_KEYS for k, _ in self.keys)

    def matches(
        self,
        run_dir: Path,
        info: RunInfo | None,
        text: str = "",
        preset: dict[str, Any] | None = None,
    ) -> bool:
        """``preset``: the run's resolved preset if the caller has it (read here otherwise)."""
        note = (info.note if info else None) or ""
        if self.words:
            hay = f"{text} {' '.join(run_tags(info))} {note}".lower()
            if not all(w in hay for w in self.words):
                return False
        tags = run_tags(info)
        if not all(t in tags for t in self.tags):
            return False
        if self.needs_preset and preset is None:
            preset = read_run_preset(run_dir)
        for key, want in self.keys:
            if key == "sweep":
                ref = ((info.sweep if info else None) or "").rsplit("/", 1)[-1]
                if not ref or want not in (ref, ref.split("-", 1)[-1]):
                    return False
            elif key == "note":
                if want.lower() not in note.lower():
                    return False
            elif not _equal(dotted(preset or {}, key), parse_value(want)):
                return False
        return True


def dotted(data: dict[str, Any], key: str) -> Any:
    node: Any = data
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def _equal(have: Any, want: Any) -> bool:
    if have is None:
        return False
    if isinstance(have, bool) or isinstance(want, bool):
        return have == want
    if isinstance(have, int | float) and isinstance(want, int | float):
        return float(have) == float(want)
    return str(have) == str(want)


def read_run_preset(run_dir: Path) -> dict[str, Any]:
    """The run's resolved preset as data ({} when missing, unreadable or refused).

    Read with the presets' own bounded loader: a run folder is data, and a FIFO,
    ``/dev/zero`` or an alias bomb planted as its preset.yaml must not hang a listing.
    """
    try:
        return read_preset_data(RunPaths(run_dir).preset)
    except UserError:
        return {}


def run_val_level(run_dir: str | Path) -> tuple[str, float] | None:
    """(noise, strength) the run validates at, from its resolved preset.yaml."""
    preset = read_run_preset(Path(run_dir))
    return validation_level(preset) if preset else None
