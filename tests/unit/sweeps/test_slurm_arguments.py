"""Every argument the Slurm backend builds from a file stays one argument: a preset's
slurm strings become `#SBATCH --key=value` lines of the job script, so a line break
in a value (or a key that is not an option name) is refused when the preset is read,
not written into the script as lines of shell."""

from __future__ import annotations

import pytest
from cli_helpers import assert_user_error, n2n

from n2n_core.config.schema import validate_preset
from n2n_core.errors import UserError

BASE = {"name": "big", "train": {"steps": 10}, "runtime": {"device": "cuda", "nproc": 1}}


@pytest.mark.parametrize(
    "slurm, key",
    [
        ({"partition": "gpu\ntouch /tmp/pwned #"}, "slurm.partition"),
        ({"account": "proj\r\nid"}, "slurm.account"),
        ({"account": ""}, "slurm.account"),
        ({"extra": {"qos": "high\ntouch /tmp/pwned #"}}, "slurm.extra"),
        ({"extra": {"x\ntouch /tmp/pwned\n#": 1}}, "slurm.extra"),
        ({"extra": {"--wrap": "id"}}, "slurm.extra"),
        ({"extra": {"qos=high wrap": "id"}}, "slurm.extra"),
    ],
)
def test_a_slurm_value_that_would_add_script_lines_is_refused(slurm, key):
    with pytest.raises(UserError, match=key) as e:
        validate_preset({**BASE, "slurm": slurm})
    assert len(e.value.problems) == 1


def test_ordinary_slurm_settings_still_pass():
    preset = validate_preset(
        {
            **BASE,
            "slurm": {
                "partition": "gpu,debug",
                "account": "proj-42",
                "extra": {
                    "qos": "high",
                    "constraint": "a100|h100",
                    "gres": "npu:8",
                    "cpus_per_gpu": 4,
                },
            },
        }
    )
    assert preset.slurm.extra["constraint"] == "a100|h100"


def test_the_cli_refuses_it_before_anything_is_submitted(make_preset, tmp_path):
    pytest.importorskip("submitit")
    res = tmp_path / "res"
    r = n2n(
        "sweep",
        make_preset(),
        "--executor",
        "slurm",
        "--set",
        "slurm.cluster=local",
        "--set",
        'slurm.partition="gpu\\ntouch /tmp/pwned #"',
        "--results-dir",
        res,
    )
    assert_user_error(r, "slurm.partition")
    assert not res.exists()
