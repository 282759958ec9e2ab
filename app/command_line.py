"""The ``qwen-local-chat`` command: ``serve`` runs the local API without a window
(``app.serve_command``); anything else opens the app (``app.main``). Decided before either is
imported, so the headless server never loads Qt."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["serve"]:
        from app.serve_command import main as serve

        return serve(argv[1:])
    from app.main import main as desktop

    return desktop(argv)


if __name__ == "__main__":
    sys.exit(main())
