from .picture import Picture, load_picture
from .samples import SamplePanel

__all__ = ["Picture", "SamplePanel", "load_picture"]
