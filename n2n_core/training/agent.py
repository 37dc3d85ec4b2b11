"""torchrun's agent as ``n2n-core run --nproc N`` starts it: ``python -m n2n_core.training.agent ARGS``.

The same agent as ``python -m torch.distributed.run ARGS`` (same arguments, same
elastic launch), but it speaks like the rest of n2n. Each rank that fails writes
why to the error file torchrun names for it (``worker.report``); the agent then
prints each distinct message once as an ``error:`` line -- a rank killed by a
signal first, since it is the cause and its peers' lost connections the
consequence -- instead of torchrun's log lines, Python traceback and failure
table. It exits 2 when every cause was bad input (a file or key the user can
fix), else 1. ``N2N_DEBUG=1`` gives torchrun's full output back.
"""

from __future__ import annotations

import logging
import os
import signal
import sys

from n2n_core.errors import EXIT_USER, error_line


def _signal_name(code: int) -> str:
    try:
        return signal.Signals(-code).name
    except ValueError:
        return f"signal {-code}"


def _first_cause(failures: dict) -> list[tuple[int, object]]:
    """(rank, failure) for the failures that are causes, most likely cause first.

    Once a rank fails, torchrun SIGTERMs the others: their deaths by SIGTERM are
    its doing, not causes (unless nothing else failed)."""
    # A rank killed by a signal is a cause, never a consequence; the peers it leaves
    # fail their next collective ("connection closed by peer") a moment later.
    ordered = sorted(failures.items(), key=lambda kv: (kv[1].exitcode >= 0, kv[1].timestamp, kv[0]))
    causes = [(r, f) for r, f in ordered if f.exitcode != -signal.SIGTERM]
    return causes or ordered


def failure_lines(failures: dict) -> list[str]:
    """What the failed ranks said, each distinct message once.

    ``failures``: global rank -> torchrun's ``ProcessFailure`` (``exitcode``, ``pid``,
    ``timestamp``, ``error_file_data``). A rank that failed in our code wrote its
    message to its error file (:func:`n2n_core.training.rank.report`); one killed by a
    signal wrote nothing, and only the agent can say so.
    """
    causes = _first_cause(failures)
    killed: dict[int, list[tuple[int, int]]] = {}  # exit code -> (rank, pid): one line each
    for rank, f in causes:
        if f.exitcode < 0 and _said(f) is None:
            killed.setdefault(f.exitcode, []).append((rank, f.pid))
    said: dict[str, None] = {}
    for rank, f in causes:
        message = _said(f)
        if message is None and f.exitcode < 0:
            who = killed[f.exitcode]
            ranks = ", ".join(str(r) for r, _ in who)
            pids = ", ".join(str(p) for _, p in who)
            many = "s" if len(who) > 1 else ""
            message = f"rank{many} {ranks} (pid{many} {pids}) died of {_signal_name(f.exitcode)}"
        elif message is None:
            message = f"rank {rank} exited with status {f.exitcode} without saying why"
        said[" ".join(message.split())] = None
    return [error_line(m) for m in said]


def _said(failure) -> str | None:
    """The message a rank wrote to its error file, if it wrote one."""
    if not (failure.error_file and os.path.isfile(failure.error_file)):
        return None
    data = failure.error_file_data
    message = data.get("message") if isinstance(data, dict) else None
    return message if isinstance(message, str) and message.strip() else None


def exit_status(failures: dict) -> int:
    """2 when every failure that is a cause was bad input (its rank said which file or
    key), else 1."""
    causes = _first_cause(failures)
    return EXIT_USER if causes and all(f.exitcode == EXIT_USER for _, f in causes) else 1


def main(argv: list[str] | None = None) -> int:
    debug = os.environ.get("N2N_DEBUG") == "1"
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import parse_args, run

    if not debug:
        # Its warnings ("Sending process N closing signal SIGTERM") and errors are
        # about the ranks, which report for themselves; the launcher says the rest.
        for name in ("torch.distributed.elastic", "torch.distributed.run"):
            logging.getLogger(name).setLevel(logging.CRITICAL)
    args = parse_args(list(sys.argv[1:] if argv is None else argv))
    try:
        run(args)
    except ChildFailedError as e:
        if debug:
            raise
        for line in failure_lines(e.failures):
            print(line, file=sys.stderr)
        return exit_status(e.failures)
    except Exception as e:  # rendezvous lost with a node, store gone, ...
        if debug:
            raise
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        what = e.__class__.__name__ + (f": {first}" if first else "")
        print(error_line(f"torchrun: {what}"), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
