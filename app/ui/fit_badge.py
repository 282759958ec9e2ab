"""A "will it run well?" badge: the verdict from memory and speed, the expected tokens a second,
and a bar of the memory the model and its context (and its image support, when it has one) need
against what is available."""

from __future__ import annotations

from PySide6.QtCore import QCoreApplication, Qt
from PySide6.QtGui import QColor, QIcon, QPainter, QPixmap
from PySide6.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QWidget

from app.core.models.fit_estimate import FitAssessment, FitVerdict, format_gb, format_speed

VERDICT_COLORS = {
    FitVerdict.RUNS_WELL: "#1e8e3e",
    FitVerdict.SLOW: "#9a6700",
    FitVerdict.TIGHT: "#e37400",
    FitVerdict.WONT_FIT: "#d93025",
}


def verdict_text(verdict: FitVerdict) -> str:
    texts = {
        FitVerdict.RUNS_WELL: QCoreApplication.translate("FitBadge", "Runs well"),
        FitVerdict.SLOW: QCoreApplication.translate("FitBadge", "Fits · slow"),
        FitVerdict.TIGHT: QCoreApplication.translate("FitBadge", "Tight"),
        FitVerdict.WONT_FIT: QCoreApplication.translate("FitBadge", "Won't fit"),
    }
    return texts[verdict]


def speed_text(assessment: FitAssessment) -> str:
    """"~12 tok/s", or "" when the model would not fit at all."""
    if assessment.memory_verdict is FitVerdict.WONT_FIT:
        return ""
    if assessment.tokens_per_second >= 100:  # tiny models: computing, not memory, sets the pace
        return QCoreApplication.translate("FitBadge", "100+ tok/s")
    return QCoreApplication.translate("FitBadge", "~%1 tok/s").replace("%1", format_speed(assessment.tokens_per_second))


def verdict_icon(verdict: FitVerdict) -> QIcon:
    """A coloured dot, for lists where a whole badge would not fit."""
    pixmap = QPixmap(12, 12)
    pixmap.fill(Qt.GlobalColor.transparent)
    painter = QPainter(pixmap)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.setBrush(QColor(VERDICT_COLORS[verdict]))
    painter.setPen(Qt.PenStyle.NoPen)
    painter.drawEllipse(1, 1, 10, 10)
    painter.end()
    return QIcon(pixmap)


class FitBadge(QWidget):
    """Shows a :class:`FitAssessment`; the tooltip carries the numbers behind the verdict."""

    def __init__(self, assessment: FitAssessment, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        color = VERDICT_COLORS[assessment.verdict]
        pill = QLabel(verdict_text(assessment.verdict))
        pill.setObjectName("fitPill")
        pill.setStyleSheet(f"color: white; background: {color}; border-radius: 8px; padding: 1px 8px;")
        pill.setFixedHeight(18)
        self.speed_label = QLabel(speed_text(assessment))
        self.speed_label.setObjectName("fitSpeed")
        self.speed_label.setMinimumWidth(self.speed_label.fontMetrics().horizontalAdvance("~00 tok/s"))
        bar = QProgressBar()
        bar.setObjectName("fitBar")
        bar.setTextVisible(False)
        bar.setFixedSize(60, 6)
        needed, available = assessment.needed_bytes, assessment.shown_available_bytes
        bar.setRange(0, 100)
        bar.setValue(min(100, round(100 * needed / available)) if available else 100)
        bar.setStyleSheet(f"QProgressBar::chunk {{ background: {color}; border-radius: 3px; }}")
        self.memory_label = QLabel(f"{format_gb(needed)} / {format_gb(available)}")
        self.memory_label.setObjectName("fitMemory")
        self.memory_label.setToolTip(
            self.tr("Memory for the model, its context and its image support / memory available now")
            if assessment.estimate.image_support
            else self.tr("Memory for the model and its context / memory available now")
        )
        layout = QHBoxLayout(self)
        layout.setContentsMargins(4, 0, 4, 0)
        layout.addWidget(pill, 0, Qt.AlignmentFlag.AlignVCenter)
        layout.addWidget(self.speed_label, 0, Qt.AlignmentFlag.AlignVCenter)
        layout.addWidget(bar, 0, Qt.AlignmentFlag.AlignVCenter)
        layout.addWidget(self.memory_label, 0, Qt.AlignmentFlag.AlignVCenter)
        layout.addStretch(1)
        self.setToolTip(assessment.explanation)
        self.setAccessibleName(f"{verdict_text(assessment.verdict)} {speed_text(assessment)}: {assessment.explanation}")
        self.verdict = assessment.verdict
