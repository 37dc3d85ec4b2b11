"""MRI data: NIfTI volumes to slices, the built-in phantoms, what a data spec names."""
