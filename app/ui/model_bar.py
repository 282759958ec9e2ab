"""The bar above the chat: which model (the files on this computer with their fit verdicts, then
each model server's models), Models…, and Chat settings."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QEvent, Qt, Signal
from PySide6.QtGui import QFont, QPalette
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QStyle,
    QStyleOptionComboBox,
    QStylePainter,
    QWidget,
)

from app.core.domain.generation import ModelSource, RemoteModel
from app.core.engines.remote.model_servers import ModelServer, ModelServers, ServerListed
from app.core.models.fit_estimate import FitVerdict
from app.ui.event_bridges import ModelServersBridge
from app.ui.fit_badge import verdict_icon, verdict_text
from app.ui.icons import themed_icon
from app.ui.model_server_texts import server_status, where_it_runs
from app.ui.models_controller import ModelsController

LISTING_FRESH_SECONDS = 30  # opening the list asks servers again whose answer is older
STATUS_ROW_CHARACTERS = 90  # a server's problem is cut to this in the list (the tooltip has it all)
CLOSED_TEXT_ROLE = Qt.ItemDataRole.UserRole + 1  # what the closed box shows for the row, if not its text


@dataclass(frozen=True)
class _Row:
    """One row of the list, as data: rows are rebuilt only when these change, so an answer
    that changes nothing leaves an open list alone."""

    text: str
    kind: str  # "model", "header" (a group's title), "status" (why a server shows no models) or "separator"
    source: ModelSource | None = None
    tooltip: str = ""
    verdict: FitVerdict | None = None  # a local model's, shown as its icon
    closed_text: str = ""


class ModelPicker(QComboBox):
    """The model list. A model on a server shows, once chosen, with its server's name beside it;
    under its server's title in the open list it needs none."""

    sig_opening = Signal()
    """The person is opening the list (it is not shown yet)."""

    def showPopup(self) -> None:  # noqa: N802 (Qt API)
        self.sig_opening.emit()
        super().showPopup()

    def paintEvent(self, _event) -> None:  # noqa: N802 (Qt API)
        # QComboBox's own painting, with the chosen row's closed text where it has one.
        painter = QStylePainter(self)
        painter.setPen(self.palette().color(QPalette.ColorRole.Text))
        option = QStyleOptionComboBox()
        self.initStyleOption(option)
        painter.drawComplexControl(QStyle.ComplexControl.CC_ComboBox, option)
        if self.currentIndex() < 0 and self.placeholderText():
            option.palette.setBrush(QPalette.ColorRole.ButtonText, option.palette.placeholderText())
            option.currentText = self.placeholderText()
        elif self.currentData(CLOSED_TEXT_ROLE):
            option.currentText = self.currentData(CLOSED_TEXT_ROLE)
        painter.drawControl(QStyle.ControlElement.CE_ComboBoxLabel, option)


class ModelBar(QWidget):
    sig_model_chosen = Signal(object)
    """The user picked another model in the list: a ``Path`` (a file on this computer) or a
    ``RemoteModel`` (a model on a model server)."""

    def __init__(
        self,
        models: ModelsController,
        model_servers: ModelServers,
        servers_bridge: ModelServersBridge,
        parent: QWidget | None = None,
    ) -> None:
        """Lists ``models``' files and ``model_servers``' models, following the servers'
        answers through ``servers_bridge``."""
        super().__init__(parent)
        self.setObjectName("chatHeader")
        self._models = models
        self._servers = model_servers
        self.picker = ModelPicker()
        self.picker.setObjectName("modelPicker")
        self.picker.setAccessibleName(self.tr("Model"))
        self.picker.setMinimumContentsLength(12)
        self.picker.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.picker.setPlaceholderText(self.tr("No model yet"))  # short: Qt sizes the box to fit it
        self.picker.setToolTip(self.tr(
            "The model to chat with. Models… downloads one; File › Open Model File… opens a .gguf file; "
            "Settings › Model servers adds the models of other computers."
        ))
        self.picker.activated.connect(self._on_picked)
        self.picker.sig_opening.connect(self._ask_stale_servers)
        self.models_button = QPushButton(self.tr("Models…"))
        self.models_button.setObjectName("modelsButton")
        self.models_button.setToolTip(self.tr("Download models, see what fits this computer"))
        self.chat_settings_button = QPushButton(self.tr("Chat settings"))
        self.chat_settings_button.setCheckable(True)
        self.chat_settings_button.setToolTip(self.tr("System prompt, sampling presets, reply length, context size"))
        layout = QHBoxLayout(self)
        layout.setContentsMargins(16, 8, 16, 8)
        layout.addWidget(QLabel(self.tr("Model:")))
        layout.addWidget(self.picker, 1)
        layout.addWidget(self.models_button)
        layout.addWidget(self.chat_settings_button)
        self._recent: list[Path] = []
        self._current: ModelSource | None = None
        self._rows: list[_Row] = []
        servers_bridge.sig_servers_changed.connect(self._show_rows)
        servers_bridge.sig_server_listed.connect(self._on_listed)

    def show_models(self, recent: list[Path], current: ModelSource | None) -> None:
        """Lists the models on this computer, the ``recent`` ones first, each with its fit
        verdict, then each server's models, and selects ``current`` (the loaded model, or the
        one used last)."""
        self._recent, self._current = list(recent), current
        self._show_rows()

    def has_models(self) -> bool:
        """Whether the list offers any model (a server still being asked offers none yet)."""
        return any(row.kind == "model" for row in self._rows)

    # ------------------------------------------------------------------------------- rows

    def _local_rows(self) -> list[_Row]:
        models = {model.path: model for model in self._models.local_models()}
        rows = []
        for path in self._recent + sorted(set(models) - set(self._recent)):
            model = models.get(path)
            assessment = self._models.assess_local(model) if model else None
            tooltip = str(path)
            if assessment is not None:
                tooltip += "\n" + verdict_text(assessment.verdict) + ": " + assessment.explanation
            rows.append(_Row(path.stem, "model", path, tooltip, assessment.verdict if assessment else None))
        return rows

    def _server_rows(self, server: ModelServer) -> list[_Row]:
        address = server.address
        header = _Row(self.tr("%1 · %2").replace("%1", server.name).replace("%2", address), "header")
        blocked = self._servers.blocked_offline(server)
        listed = [] if blocked else [model.id for model in self._servers.listing(server.name).models]
        current = self._current
        if isinstance(current, RemoteModel) and current.server == server.name and current.model_id not in listed:
            listed.insert(0, current.model_id)  # loaded, or used last: shown whatever the server says now
        tooltip = where_it_runs(server)
        rows = [header] + [
            _Row(model_id, "model", RemoteModel(server.name, model_id), tooltip,
                 closed_text=self.tr("%1 · %2").replace("%1", model_id).replace("%2", server.name))
            for model_id in listed
        ]
        status, trouble = server_status(self._servers, server)
        if blocked or trouble or not self._servers.listing(server.name).models:
            shown = status if len(status) <= STATUS_ROW_CHARACTERS else status[: STATUS_ROW_CHARACTERS - 1].rstrip() + "…"
            rows.append(_Row(shown, "status", tooltip=status))
        return rows

    def _all_rows(self) -> list[_Row]:
        local = self._local_rows()
        servers = self._servers.servers
        if not servers:
            return local
        rows = [_Row(self.tr("On this computer"), "header"), *local] if local else []
        for server in servers:
            rows += [_Row("", "separator")] if rows else []
            rows += self._server_rows(server)
        return rows

    def _show_rows(self, _event: object = None) -> None:
        rows = self._all_rows()
        picker = self.picker
        if rows != self._rows:
            self._rows = rows
            picker.blockSignals(True)
            picker.clear()
            for row in rows:
                self._add_row(row)
            picker.blockSignals(False)
        index = next((i for i, row in enumerate(rows) if row.kind == "model" and row.source == self._current), -1)
        if index != picker.currentIndex():
            picker.blockSignals(True)
            picker.setCurrentIndex(index)
            picker.blockSignals(False)
        # Shown while no model is chosen: whether there is one to choose.
        picker.setPlaceholderText(self.tr("Choose a model to load") if self.has_models() else self.tr("No model yet"))

    def _add_row(self, row: _Row) -> None:
        picker = self.picker
        if row.kind == "separator":
            picker.insertSeparator(picker.count())
            return
        if isinstance(row.source, RemoteModel):
            picker.addItem(themed_icon("server", self.palette()), row.text)
        elif row.verdict is not None:
            picker.addItem(verdict_icon(row.verdict), row.text)
        else:
            picker.addItem(row.text)
        index = picker.count() - 1
        item = picker.model().item(index)
        if row.tooltip:
            item.setToolTip(row.tooltip)
        if row.closed_text:
            item.setData(row.closed_text, CLOSED_TEXT_ROLE)
        if row.kind != "model":
            # Not choosable, by mouse or by arrow keys (which skip disabled rows), but drawn in
            # the text's colour: a title, or the reason a server shows no models.
            item.setFlags(Qt.ItemFlag.NoItemFlags)
            item.setForeground(self.palette().brush(QPalette.ColorGroup.Active, QPalette.ColorRole.PlaceholderText))
            font = QFont(picker.font())
            font.setBold(row.kind == "header")
            font.setItalic(row.kind == "status")
            item.setFont(font)

    # ------------------------------------------------------------------------------ events

    def _on_picked(self, index: int) -> None:
        source = self._rows[index].source if 0 <= index < len(self._rows) else None
        if source is not None and source != self._current:
            self.sig_model_chosen.emit(source)

    def _on_listed(self, _event: ServerListed) -> None:
        self._show_rows()

    def _ask_stale_servers(self) -> None:
        """The list opens: servers whose answer is old are asked again, in the background
        (their last answer shows meanwhile)."""
        now = time.monotonic()

        def stale(server: ModelServer) -> bool:
            listing = self._servers.listing(server.name)
            answered = listing.answered_at
            return not listing.checking and (answered is None or now - answered >= LISTING_FRESH_SECONDS)

        names = [server.name for server in self._servers.servers if not self._servers.blocked_offline(server) and stale(server)]
        if names:
            self._servers.refresh(names)

    def changeEvent(self, event) -> None:  # noqa: N802 (Qt API)
        super().changeEvent(event)
        if event.type() == QEvent.Type.PaletteChange and self._rows:
            self._rows = []  # the theme changed: icons and titles take its colours
            self._show_rows()

