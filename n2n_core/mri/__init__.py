"""The MRI task: Noise2Noise reconstruction of undersampled k-space (the paper's Sec. 3.4).

``dataset`` slices NIfTI volumes, ``phantoms`` makes brain-like volumes without
IXI, ``spectral`` holds the k-space operations, ``schedule`` the reference's
epoch schedule, ``task`` the training hooks and ``evaluate`` the validation.
"""
