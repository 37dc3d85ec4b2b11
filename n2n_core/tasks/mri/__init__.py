"""The MRI task: Noise2Noise reconstruction of undersampled k-space (the paper's Sec. 3.4).

``kspace`` holds the k-space operations, ``lr_schedule`` the reference's epoch
schedule, ``validation`` the reference's ``test_db_clamped`` and ``task`` the
training hooks. The slices themselves come from :mod:`n2n_core.data.mri`.
"""
