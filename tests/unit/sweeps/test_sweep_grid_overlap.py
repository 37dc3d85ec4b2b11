"""A point's params are the values it ran: a grid key inside a gridded section (or a
--set key inside one, or --seeds under a gridded train section) would be recorded in
params but replaced by the section's value. Such overlaps are refused, in any order,
with one error line; a grid key inside a --set section is fine (the value lands in it)."""

from __future__ import annotations

import pytest
from cli_helpers import assert_user_error, n2n_in_process

from n2n_core.errors import UserError
from n2n_core.sweeps.plan import holds, parse_grid, plan_sweep

SECTION = "noise={type: gaussian}"


def test_holds_is_about_whole_dotted_parts():
    assert holds("noise", "noise.val_sigma")
    assert holds("data", "data.train.path")
    assert not holds("noise", "noise")
    assert not holds("noise.val", "noise.val_sigma")  # a prefix of the text only
    assert not holds("noise.val_sigma", "noise")


@pytest.mark.parametrize(
    "grid",
    [
        ["noise.val_sigma=10", SECTION],
        [SECTION, "noise.val_sigma=10"],
        ["train.lr=1e-3", "train={steps: 4, lr: 0.01}"],
        ["train={steps: 4}", "train.lr=1e-3,2e-3"],
    ],
)
def test_a_grid_key_inside_a_gridded_section_is_refused(make_preset, grid):
    _, _, problems = parse_grid(grid)
    assert len(problems) == 1 and "whose values replace the whole" in problems[0], problems
    with pytest.raises(UserError) as e:
        plan_sweep(make_preset(), grid, [], 1)
    assert len(e.value.problems) == 1


def test_a_set_key_inside_a_gridded_section_is_refused(make_preset):
    with pytest.raises(UserError, match="--set noise.val_sigma: inside --grid noise") as e:
        plan_sweep(make_preset(), [SECTION], ["noise.val_sigma=10"], 1)
    assert len(e.value.problems) == 1


def test_a_grid_key_inside_a_set_section_keeps_its_value(make_preset):
    plan = plan_sweep(make_preset(), ["noise.val_sigma=10,20"], [SECTION], 1)
    assert [p["noise.val_sigma"] for p in plan.params] == [10, 20]
    assert [p.noise.val_sigma for p in plan.presets] == [10, 20]  # recorded == ran


def test_seeds_under_a_gridded_train_section_are_refused(make_preset):
    with pytest.raises(UserError, match="--grid train: holds train.seed"):
        plan_sweep(make_preset(), ["train={steps: 4, seed: 3}"], [], 2)
    plan = plan_sweep(make_preset(), ["train={steps: 4, seed: 3}"], [], 1)  # one seed: fine
    assert plan.presets[0].train.seed == 3


def test_every_recorded_param_is_what_the_point_ran(make_preset):
    plan = plan_sweep(make_preset(), ["noise.val_sigma=15,25", "train.lr=1e-3"], [], 2)
    for params, preset in zip(plan.params, plan.presets, strict=True):
        assert preset.noise.val_sigma == params["noise.val_sigma"]
        assert preset.train.seed == params["train.seed"]


def test_the_cli_says_it_in_one_line_and_creates_nothing(make_preset, tmp_path):
    res = tmp_path / "res"
    for args in (
        ["--grid", "noise.val_sigma=10", "--grid", SECTION],
        ["--grid", SECTION, "--grid", "noise.val_sigma=10"],
        ["--set", "noise.val_sigma=10", "--grid", SECTION],
    ):
        r = n2n_in_process("sweep", make_preset(), *args, "--results-dir", res)
        assert_user_error(r, "noise.val_sigma", "inside --grid noise")
    assert not res.exists()
