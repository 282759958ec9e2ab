"""``python -m app`` starts the app, like the ``qwen-local-chat`` command."""

import sys

from app.main import main

sys.exit(main())
