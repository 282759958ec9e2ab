"""``python -m app`` runs the ``qwen-local-chat`` command: the app, or ``serve``."""

import sys

from app.command_line import main

sys.exit(main())
