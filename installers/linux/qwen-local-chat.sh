#!/bin/sh
# /usr/bin/qwen-local-chat: starts the app that the .deb installs under /opt/qwen-local-chat.
exec /opt/qwen-local-chat/qwen-local-chat "$@"
