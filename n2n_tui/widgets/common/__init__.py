from .modals import ConfirmModal, ErrorModal, PathModal, TextModal
from .table import RunsTable

__all__ = ["ConfirmModal", "ErrorModal", "PathModal", "RunsTable", "TextModal"]
