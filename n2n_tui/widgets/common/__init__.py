from .modals import ConfirmModal, ErrorModal, InputModal, PathModal, TextModal
from .table import RunsTable

__all__ = ["ConfirmModal", "ErrorModal", "InputModal", "PathModal", "RunsTable", "TextModal"]
