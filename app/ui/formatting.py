"""Human-readable numbers for the UI."""

from __future__ import annotations


def format_bytes(count: float) -> str:
    """1,234,567,890 → "1.23 GB" (decimal units, as disk makers and download sites use)."""
    for unit in ("B", "KB", "MB", "GB"):
        if abs(count) < 1000:
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.3g} {unit}"
        count /= 1000
    return f"{count:.3g} TB"


def format_binary_bytes(count: float) -> str:
    """327,155,712 → "312 MB"; 2,147,483,648 → "2 GB": binary units labelled as operating
    systems do (``format_gb``'s), for sizes set in such gigabytes."""
    for unit in ("B", "KB", "MB", "GB"):
        if abs(count) < 999.5:  # 1000–1023 of a unit reads better as 0.98 of the next
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.3g} {unit}"
        count /= 1024
    return f"{count:.3g} TB"


def format_duration(seconds: float) -> str:
    """95 → "1 min 35 s"; 7300 → "2 h 1 min"."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"
