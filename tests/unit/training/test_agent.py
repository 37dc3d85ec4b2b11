"""torchrun's agent made to speak in `error:` lines: the failures of ranks -> lines and exit status."""

from __future__ import annotations

import json
import signal


def test_agent_names_the_cause_once(tmp_path):
    """Unit: torchrun's failures -> the lines and status n2n_core.training.agent gives."""
    from types import SimpleNamespace

    from n2n_core.training.agent import exit_status, failure_lines

    def failure(rank, exitcode, timestamp, message=None):
        """As torchrun builds it: error_file_data from the rank's file, if it wrote one."""
        path, data = "<N/A>", {"message": "<NONE>"}
        if message is not None:
            p = tmp_path / f"err{rank}.json"
            p.write_text(json.dumps({"message": message}))
            path, data = str(p), {"message": message}
        return SimpleNamespace(
            exitcode=exitcode,
            pid=10 + rank,
            timestamp=timestamp,
            error_file=path,
            error_file_data=data,
        )

    bad = "data/x.png: cannot decode image"
    same = {r: failure(r, 2, 5, bad) for r in range(8)}
    assert failure_lines(same) == [f"error: {bad}"] and exit_status(same) == 2
    # rank 3 aborted; rank 0 lost its peer a moment later; torchrun SIGTERMed the rest
    lost = "rank 0: RuntimeError: Connection closed by peer"
    mixed = {
        0: failure(0, 1, 4, lost),
        3: failure(3, -signal.SIGABRT, 6),
        5: failure(5, -signal.SIGTERM, 6),
    }
    assert failure_lines(mixed) == ["error: rank 3 (pid 13) died of SIGABRT", f"error: {lost}"]
    assert exit_status(mixed) == 1
    # Stopped before they could take the stop (still starting): one line for both.
    early = {0: failure(0, -signal.SIGTERM, 3), 1: failure(1, -signal.SIGTERM, 3)}
    assert failure_lines(early) == ["error: ranks 0, 1 (pids 10, 11) died of SIGTERM"]
