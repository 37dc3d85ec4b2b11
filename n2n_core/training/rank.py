"""Entry point of one training rank: ``python -m n2n_core.training.rank RUN_DIR [--resume]``.

``n2n-core run --nproc N`` starts N of these through torchrun; each reads the
resolved preset from the run folder, so every rank trains the same thing. A
rank never outlives its launcher (:mod:`n2n_core.process.lifeline`).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from n2n_core.errors import EXIT_USER, UserError, error_line


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    resume = "--resume" in args
    paths = [a for a in args if not a.startswith("--")]
    if len(paths) != 1:
        print("usage: python -m n2n_core.training.rank RUN_DIR [--resume]", file=sys.stderr)
        return EXIT_USER
    from n2n_core.process.signals import StopFlag

    # First, before torch is imported (seconds): a stop sent while this rank starts
    # is then a clean stop at the first agreed step, not a death that fails the run.
    stop = StopFlag()
    stop.install()
    from n2n_core.process.lifeline import die_with_launcher

    die_with_launcher()
    from n2n_core.training.loop import train_worker

    debug = os.environ.get("N2N_DEBUG") == "1"
    try:
        status = train_worker(Path(paths[0]), resume=resume, stop=stop)
    except UserError as e:
        if debug:
            raise
        report(str(e))
        return EXIT_USER
    except Exception as e:  # e.g. a peer lost with its node: one line, no traceback
        if debug:
            raise
        first = str(e).splitlines()[0] if str(e) else ""
        report(f"rank {os.environ.get('RANK', '0')}: {e.__class__.__name__}: {first}")
        return 1
    return {"finished": 0, "stopped": 0}.get(status, 1)


def report(message: str) -> None:
    """Say why this rank failed, once for the whole run.

    Under torchrun the message goes to the file torchrun names for it
    (``TORCHELASTIC_ERROR_FILE``), and :mod:`n2n_core.training.agent` prints each distinct
    message once -- eight ranks that met the same bad file give one line, not
    eight. Started some other way, rank 0 prints it.
    """
    path = os.environ.get("TORCHELASTIC_ERROR_FILE")
    if path:
        try:
            with open(path, "w", encoding="utf-8") as f:
                json.dump({"message": message, "timestamp": int(time.time())}, f)
            return
        except OSError:
            pass  # then say it here, as without torchrun
    if int(os.environ.get("RANK", "0")) == 0:
        print(error_line(message), file=sys.stderr)


def exit_now(code: int) -> None:
    """End a rank of a multi-process run without the interpreter's teardown.

    Everything the rank writes is closed by now (atomic files, run.json updated),
    and the process group destroyed. What teardown would add is a race: C++
    threads of the communication backend that still reach for the GIL while the
    interpreter is finalising are stopped by ``pthread_exit`` inside ``noexcept``
    frames, and the rank dies with SIGABRT ("terminate called without an active
    exception") after a clean stop, so torchrun calls it a failure and SIGTERMs
    rank 0 while it may still be writing the stop's snapshot. Seen in CI on a
    Ctrl-C of an ``--nproc 2`` run; rare and timing-bound, so it cannot be
    reproduced on demand -- skipping the teardown takes the race away.
    """
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a reader that went away, a closed stream
            pass
    os._exit(code)


if __name__ == "__main__":
    code = main()
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        exit_now(code)
    sys.exit(code)
