"""``n2n-core``: parse, pick the command from the table, run it, turn errors into one line.

Every user error surfaces here as one ``error: ...`` line on stderr and exit
status 2 (``main``); a traceback only with ``N2N_DEBUG=1``. ``--json`` prints
exactly one JSON object on stdout. Each command is one function in
:mod:`n2n_core.cli.commands` that calls one function of its concept.
"""

from __future__ import annotations

import argparse
import os
import sys

from n2n_core.cli import commands as c
from n2n_core.cli.parser import build_parser
from n2n_core.errors import EXIT_STOPPED, EXIT_USER, UserError, error_line
from n2n_core.process import memory, ompenv

# Commands whose convolutions run on OpenMP threads: how those threads wait is
# decided before torch loads (process/ompenv.py), and freed memory is kept for the
# next step (process/memory.py); torchrun ranks and sweep slots inherit both.
COMPUTE_COMMANDS = frozenset(
    {"run", "rerun", "resume", "sweep", "validate", "infer", "bench", "evaluate"}
)


def dispatch(a: argparse.Namespace, argv: list[str]) -> int:
    table = {
        "run": lambda: c.cmd_run(a, argv),
        "resume": lambda: c.cmd_resume(a),
        "rerun": lambda: c.cmd_rerun(a, argv),
        "validate": lambda: c.cmd_validate(a),
        "infer": lambda: c.cmd_infer(a),
        "freeze": lambda: c.cmd_freeze(a),
        "validate-frozen": lambda: c.cmd_validate_frozen(a),
        "infer-frozen": lambda: c.cmd_infer_frozen(a),
        "dataset": lambda: c.cmd_dataset(a),
        "runs": lambda: c.cmd_runs(a),
        "replay": lambda: c.cmd_replay(a),
        "bench": lambda: c.cmd_bench(a),
        "export-tb": lambda: c.cmd_export_tb(a),
        "evaluate": lambda: c.cmd_evaluate(a),
        "diff": lambda: c.cmd_diff(a),
        "export": lambda: c.cmd_export(a),
        "sweep": lambda: c.cmd_sweep(a, argv),
        "tag": lambda: c.cmd_tag(a),
        "note": lambda: c.cmd_note(a),
        "devices": lambda: c.cmd_devices(a),
        "presets": lambda: c.cmd_presets(a),
        "models": lambda: c.cmd_models(a),
    }
    return table[a.cmd]()


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = os.environ.get("N2N_DEBUG") == "1"
    try:
        a = build_parser().parse_args(argv)
        if a.cmd in COMPUTE_COMMANDS and not (
            a.cmd == "sweep" and a.target in ("status", "cancel")
        ):
            ompenv.apply()
            memory.keep_freed_memory()
        code = dispatch(a, argv)
    except UserError as e:
        if debug:
            raise
        for problem in e.problems:
            print(error_line(problem), file=sys.stderr)
        code = EXIT_USER
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        code = EXIT_STOPPED
    except BrokenPipeError:
        code = 0
    except MemoryError:
        if debug:
            raise
        print("error: out of memory", file=sys.stderr)
        code = 1
    except Exception as e:  # a bug, not the user's fault: still no traceback unless asked
        if debug:
            raise
        print(
            f"error: internal error: {e.__class__.__name__}: {str(e).splitlines()[0] if str(e) else ''} "
            "(set N2N_DEBUG=1 for a traceback)",
            file=sys.stderr,
        )
        code = 1
    return code


if __name__ == "__main__":
    sys.exit(main())
