"""`n2n-core devices`: the devices present here and the CPU cores available."""

import json

from cli_helpers import n2n_in_process


def test_devices_lists_what_is_present():
    from n2n_core.engine.device import available_devices, cpu_cores

    r = n2n_in_process("devices", "--json")
    assert r.code == 0, r.err
    data = json.loads(r.out)
    assert data == {"devices": available_devices(), "cpu_cores": cpu_cores()}
    assert data["devices"][-1] == "cpu" and data["cpu_cores"] >= 1
