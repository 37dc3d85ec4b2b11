from .modals import ConfirmModal, ErrorModal, InputModal, PathModal, TextModal
from .table import RunsTable
from .toggles import MarkedRadioButton, WordSwitch

__all__ = [
    "ConfirmModal",
    "ErrorModal",
    "InputModal",
    "MarkedRadioButton",
    "PathModal",
    "RunsTable",
    "TextModal",
    "WordSwitch",
]
