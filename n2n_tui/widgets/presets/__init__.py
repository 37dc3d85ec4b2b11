from .form import PresetForm

__all__ = ["PresetForm"]
