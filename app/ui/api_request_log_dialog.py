"""The local API's request log: what programs asked for and how it went, newest first, as it
happens. Only counts: the log never holds what a request said (``app.core.api.request_log``)."""

from __future__ import annotations

from PySide6.QtCore import QAbstractTableModel, QDateTime, QModelIndex, QObject, Qt
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QHeaderView, QLabel, QTableView, QVBoxLayout, QWidget

from app.core.api.request_log import MAX_RECORDS, ApiRequestLog, ApiRequestRecord
from app.ui.event_bridges import ApiRequestLogBridge

_NUMBER_COLUMNS = {3, 4, 5, 6, 7}


class ApiRequestTableModel(QAbstractTableModel):
    """The log's records as table rows, the newest on top."""

    def __init__(self, records: list[ApiRequestRecord], parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._records = list(reversed(records))
        self._headers = [
            self.tr("Time"), self.tr("Client"), self.tr("Request"), self.tr("Status"), self.tr("Prompt tokens"),
            self.tr("Cached"), self.tr("Reply tokens"), self.tr("Duration"), self.tr("Problem"),
        ]

    def add(self, record: ApiRequestRecord) -> None:
        # The record may already be in the snapshot this model started from: it was logged
        # between the dialog connecting to the bridge and reading the log.
        if any(shown is record for shown in self._records):
            return
        self.beginInsertRows(QModelIndex(), 0, 0)
        self._records.insert(0, record)
        self.endInsertRows()
        if len(self._records) > MAX_RECORDS:
            self.beginRemoveRows(QModelIndex(), MAX_RECORDS, len(self._records) - 1)
            del self._records[MAX_RECORDS:]
            self.endRemoveRows()

    def rowCount(self, parent: QModelIndex = QModelIndex()) -> int:  # noqa: N802 (Qt API)
        return 0 if parent.isValid() else len(self._records)

    def columnCount(self, parent: QModelIndex = QModelIndex()) -> int:  # noqa: N802 (Qt API)
        return 0 if parent.isValid() else len(self._headers)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole):  # noqa: N802 (Qt API)
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return self._headers[section]
        return None

    def data(self, index: QModelIndex, role: int = Qt.ItemDataRole.DisplayRole):
        if not index.isValid():
            return None
        record = self._records[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            return self._cell(record, index.column())
        if role == Qt.ItemDataRole.ToolTipRole:
            return record.summary()
        if role == Qt.ItemDataRole.TextAlignmentRole and index.column() in _NUMBER_COLUMNS:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None

    def _cell(self, record: ApiRequestRecord, column: int) -> str:
        generated = bool(record.prompt_tokens or record.completion_tokens)
        match column:
            case 0:
                return QDateTime.fromMSecsSinceEpoch(round(record.finished_at * 1000)).toString("HH:mm:ss")
            case 1:
                return record.client
            case 2:
                request = f"{record.method} {record.path}"
                return request + " · " + self.tr("streamed") if record.streamed else request
            case 3:
                return str(record.status)
            case 4:
                return f"{record.prompt_tokens:,}" if generated else ""
            case 5:
                return f"{record.cached_tokens:,}" if generated else ""
            case 6:
                return f"{record.completion_tokens:,}" if generated else ""
            case 7:
                return self.tr("%1 s").replace("%1", f"{record.duration_s:.2f}")
            case _:
                return record.problem


class ApiRequestLogDialog(QDialog):
    """The request log, updated live through ``bridge`` while it is open."""

    def __init__(self, log: ApiRequestLog, bridge: ApiRequestLogBridge, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(self.tr("Local API request log"))
        self.model = ApiRequestTableModel([], self)
        # Connected before the log is read, so no request falls between the two.
        bridge.sig_request_logged.connect(self.model.add)
        for record in log.records():
            self.model.add(record)
        self.note = QLabel(self.tr(
            "The last %1 requests from other programs, newest first. Only their size and outcome are "
            "kept, never what they said, and none of them is added to your chats."
        ).replace("%1", f"{MAX_RECORDS:,}"))
        self.note.setObjectName("secondaryText")
        self.note.setWordWrap(True)
        self.empty_note = QLabel(self.tr("No requests yet."))
        self.empty_note.setObjectName("secondaryText")
        self.table = QTableView()
        self.table.setModel(self.model)
        self.table.setAccessibleName(self.tr("API requests"))
        self.table.setSelectionBehavior(QTableView.SelectionBehavior.SelectRows)
        self.table.setAlternatingRowColors(True)
        self.table.verticalHeader().hide()
        self.table.setWordWrap(False)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setStretchLastSection(True)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.note)
        layout.addWidget(self.empty_note)
        layout.addWidget(self.table, 1)
        layout.addWidget(buttons)
        self.model.rowsInserted.connect(self._show_empty_note)
        self._show_empty_note()
        self.resize(1160, 440)

    def _show_empty_note(self) -> None:
        self.empty_note.setVisible(self.model.rowCount() == 0)
