"""A small "will it fit?" badge: verdict pill plus a bar of memory needed versus available."""

from __future__ import annotations

from PySide6.QtCore import QCoreApplication, Qt
from PySide6.QtGui import QColor, QIcon, QPainter, QPixmap
from PySide6.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QWidget

from app.core.models.fit_estimate import FitAssessment, FitVerdict

VERDICT_COLORS = {FitVerdict.RUNS_WELL: "#1e8e3e", FitVerdict.TIGHT: "#e37400", FitVerdict.WONT_FIT: "#d93025"}


def verdict_text(verdict: FitVerdict) -> str:
    texts = {
        FitVerdict.RUNS_WELL: QCoreApplication.translate("FitBadge", "Runs well"),
        FitVerdict.TIGHT: QCoreApplication.translate("FitBadge", "Tight"),
        FitVerdict.WONT_FIT: QCoreApplication.translate("FitBadge", "Won't fit"),
    }
    return texts[verdict]


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
        bar = QProgressBar()
        bar.setObjectName("fitBar")
        bar.setTextVisible(False)
        bar.setFixedSize(70, 6)
        share = assessment.estimate.total / assessment.available_bytes if assessment.available_bytes else 1.0
        bar.setRange(0, 100)
        bar.setValue(min(100, round(share * 100)))
        bar.setStyleSheet(f"QProgressBar::chunk {{ background: {color}; border-radius: 3px; }}")
        layout = QHBoxLayout(self)
        layout.setContentsMargins(4, 0, 4, 0)
        layout.addWidget(pill, 0, Qt.AlignmentFlag.AlignVCenter)
        layout.addWidget(bar, 0, Qt.AlignmentFlag.AlignVCenter)
        layout.addStretch(1)
        self.setToolTip(assessment.explanation)
        self.setAccessibleName(f"{verdict_text(assessment.verdict)}: {assessment.explanation}")
        self.verdict = assessment.verdict
