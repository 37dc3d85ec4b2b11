"""The built-in photo sets: photos-plus and photos-max keep validation held out."""

from __future__ import annotations


def test_photos_plus_adds_grey_pictures_and_keeps_validation_held_out():
    from n2n_core.data.sources import load_images

    plus, names = load_images("builtin:photos-plus")
    photos, photo_names = load_images("builtin:photos")
    _, val_names = load_images("builtin:photos-val")
    assert names[: len(photo_names)] == photo_names and len(names) == 2 * len(photo_names)
    assert not set(names) & set(val_names)
    grey = plus[len(photos) :]
    # Read as RGB with three equal channels: texture to learn, no palette.
    assert all(g.shape[2] == 3 and (g[..., 0] == g[..., 1]).all() for g in grey)
    assert all((g[..., 1] == g[..., 2]).all() and g.std() > 10 for g in grey)


def test_photos_max_trains_on_all_but_the_held_out_photo():
    from n2n_core.data.sources import load_images

    _, plus = load_images("builtin:photos-plus")
    _, most = load_images("builtin:photos-max")
    _, held = load_images("builtin:photos-holdout")
    _, val = load_images("builtin:photos-val")
    assert set(plus) < set(most) and held and set(held) < set(val)
    assert not set(most) & set(held)
    assert set(most) | set(held) == set(plus) | set(val)
