from .modals import ConfirmModal, ErrorModal, InputModal, PathModal, TextModal
from .table import Col, RunsTable
from .toggles import MarkedRadioButton, WordSwitch

__all__ = [
    "Col",
    "ConfirmModal",
    "ErrorModal",
    "InputModal",
    "MarkedRadioButton",
    "PathModal",
    "RunsTable",
    "TextModal",
    "WordSwitch",
]
