"""The width text is read at: on a wide window the transcript and the composer stay centred in a
column this wide, since longer lines are hard to follow."""

MAX_READING_WIDTH = 860
SIDE_MARGIN = 24  # the least space beside the column


def side_margin(width: int) -> int:
    """The margin on each side that centres the column in ``width``."""
    return max(SIDE_MARGIN, (width - MAX_READING_WIDTH) // 2)
