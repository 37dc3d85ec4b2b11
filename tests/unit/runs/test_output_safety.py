"""Data from files is never markup, never a formula, never a terminal escape sequence.

File names, run folder names, run.json values and metrics records reach the terminal,
Markdown and CSV only as text: control characters escaped, Markdown/HTML neutralised,
spreadsheet formulas prefixed with ``'``.
"""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import Result

from n2n_core.cli.main import main
from n2n_core.errors import error_line, printable
from n2n_core.evaluation.protocol import ColourShift
from n2n_core.runs.info import update_run_info

from .test_runexport import PRESET, _run

EVIL_FILE = "\x1b[31mred\x1b]0;TITLE\x07"
# a folder name cannot hold "/", so no "</script>": an <img> tag instead
EVIL_RUN = "00300-a|b<script>alert(1)<img src=x onerror=alert(1)>[x](javascript:alert(1))"
FORMULA = '=HYPERLINK("http://evil","x")'


def _cli(capsys, *argv) -> Result:
    capsys.readouterr()
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return Result(code, out.out, out.err)


def _no_controls(text: str) -> None:
    bad = [c for c in text if c != "\n" and not c.isprintable()]
    assert not bad, (bad, text)


# --- terminal: the colour shift's worst image name ------------------------------------


def test_printable_escapes_controls_and_error_line_uses_it():
    assert printable(EVIL_FILE) == "\\x1b[31mred\\x1b]0;TITLE\\x07"
    assert printable("a\u202eb\nc é") == "a\\u202eb\\nc é"
    assert error_line(EVIL_FILE) == "error: " + printable(EVIL_FILE)


def test_colour_shift_describe_escapes_the_worst_image_name():
    c = ColourShift.of([EVIL_FILE + ".png"], [np.array([0.5, -3.0, 0.0])])
    text = c.describe()
    _no_controls(text)
    assert "in \\x1b[31mred\\x1b]0;TITLE\\x07.png" in text
    assert c.to_json()["colour_shift_worst_image"] == EVIL_FILE + ".png"  # the real name


@pytest.fixture(scope="module")
def evil_val(tmp_path_factory) -> tuple[Path, Path]:
    import torch

    from n2n_core.data.images import save_image
    from n2n_core.engine.network import UNet
    from n2n_core.engine.snapshots import save_snapshot

    torch.manual_seed(0)
    d = tmp_path_factory.mktemp("evilval")
    snap = save_snapshot(
        d / (EVIL_FILE + ".safetensors"),  # the snapshot's own name heads the result line
        UNet(3),
        {"step": 1, "task": "image", "noise": "gaussian", "targets": "noisy"},
    )
    images = d / "images"
    images.mkdir()
    rng = np.random.default_rng(0)
    save_image(images / (EVIL_FILE + ".png"), rng.integers(0, 256, (32, 32, 3), dtype=np.uint8))
    return snap, images


def test_validate_prints_the_worst_image_name_escaped(evil_val, capsys):
    snap, images = evil_val
    r = _cli(capsys, "validate", "--snapshot", snap, "--dataset-dir", images, "--device", "cpu")
    assert r.code == 0, r.err
    assert "colour shift" in r.out
    _no_controls(r.out + r.err)
    assert "\\x1b[31mred\\x1b]0;TITLE\\x07" in r.out
    # JSON carries the real name (JSON escapes it itself)
    r = _cli(
        capsys, "validate", "--snapshot", snap, "--dataset-dir", images, "--device", "cpu", "--json"
    )
    assert r.code == 0, r.err
    assert "\x1b" not in r.out
    assert json.loads(r.out)["colour_shift_worst_image"].startswith(EVIL_FILE)


# --- Markdown: run folder names and run.json values ----------------------------------


def test_export_markdown_forms_no_link_html_or_emphasis_from_names(tmp_path, capsys):
    d = _run(tmp_path, EVIL_RUN, PRESET)
    update_run_info(d, device="*cu_da*`x`\\&amp;")
    r = _cli(capsys, "export", d, "--markdown")
    assert r.code == 0, r.err
    row = r.out.splitlines()[2]
    name = (
        "00300-a\\|b&lt;script&gt;alert\\(1\\)&lt;img src=x onerror=alert\\(1\\)&gt;"
        "\\[x\\]\\(javascript:alert\\(1\\)\\)"
    )
    assert row.startswith(f"| {name} | finished | ")
    assert "\\*cu\\_da\\*\\`x\\`\\\\&amp;amp;×1 bf16" in row
    assert row.count(" | ") == r.out.splitlines()[0].count(" | ")
    assert f"**{name}** — evaluation" in r.out
    # no raw tag, and every [ ] ( ) * _ ` \ | of the data is escaped
    assert "<" not in r.out and ">" not in r.out
    for cell in (name, row.split(" | ")[2]):
        assert not set("[]()`*_\\|") & set(re.sub(r"\\[\\|\[\]()`*_~]", "", cell)), cell


def test_export_markdown_turns_no_bare_url_or_address_into_a_link(tmp_path, capsys):
    # GitHub-flavoured Markdown links bare https://, www. and e-mail addresses in text
    d = _run(tmp_path, "00301-mail@www.evil.example", PRESET)
    update_run_info(d, device="https://evil.example/x WWW.evil.example")
    r = _cli(capsys, "export", d, "--markdown")
    assert r.code == 0, r.err
    row = r.out.splitlines()[2]
    assert row.startswith("| 00301-mail\\@www\\.evil.example | ")
    assert "https\\://evil.example/x WWW\\.evil.example×1" in row
    assert not re.search(r"https?://|www\.|\w@\w", row, re.IGNORECASE)


# --- CSV: metrics records -------------------------------------------------------------


def test_export_csv_neutralises_formulas_and_control_characters(tmp_path, capsys):
    d = _run(tmp_path, "00000-a", PRESET)
    evil = {
        "kind": "event",
        "step": 40,
        "time": 1400.0,
        "msg": FORMULA,
        "level": "\x1b[31mred\x07",
        "note": "-2+3",
        "who": "@SUM(A1)",
        "tab": "\tx",
        "cr": "\r=1",
        "plus": "+1",
        "fine": "plain text",
        "neg": -1.5,
        "big": -3,
        FORMULA: "header",
    }
    with (d / "metrics.jsonl").open("a") as f:
        f.write(json.dumps(evil) + "\n")
    out = tmp_path / "m.csv"
    assert _cli(capsys, "export", d, "--csv", out).code == 0
    text = out.read_text()
    _no_controls(text)
    rows = list(csv.DictReader(io.StringIO(text)))
    row = next(r for r in rows if r["step"] == "40")
    assert row["msg"] == "'" + FORMULA
    assert row["level"] == "\\x1b[31mred\\x07"
    assert (row["note"], row["who"], row["plus"]) == ("'-2+3", "'@SUM(A1)", "'+1")
    assert (row["tab"], row["cr"]) == ("'\\tx", "'\\r=1")
    assert row["fine"] == "plain text"
    assert (row["neg"], row["big"]) == ("-1.5", "-3")  # numbers stay numbers
    assert row["'" + FORMULA] == "header"  # a key from the file is a header cell too
    val = next(r for r in rows if r["kind"] == "val")
    assert val["colour_shift_worst"] == "-1.5"
    assert val["run"] == "00000-a"


def test_export_csv_neutralises_the_run_folder_name(tmp_path, capsys):
    d = _run(tmp_path, "-1+1\x1b[2J", PRESET)
    out = tmp_path / "m.csv"
    assert _cli(capsys, "export", d, "--csv", out).code == 0
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert {r["run"] for r in rows} == {"'-1+1\\x1b[2J"}
