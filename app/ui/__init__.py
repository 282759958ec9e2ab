"""The only PySide6 code: widgets and controllers that show the core's state and forward what the user asks.

Nothing here holds a business rule, opens the store or touches an engine: the chat session,
the conversation library and the engine host do the work, and Qt bridges (``event_bridges``)
bring their events to the GUI thread.
"""
