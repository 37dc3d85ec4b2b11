"""Training and validation data: image files, packed sets, the built-in photos."""

from n2n_core.data.images import list_images, load_image, save_image
from n2n_core.data.sources import CropSampler, ValImage, load_images, open_train, open_val

__all__ = [
    "CropSampler",
    "ValImage",
    "list_images",
    "load_image",
    "load_images",
    "open_train",
    "open_val",
    "save_image",
]
