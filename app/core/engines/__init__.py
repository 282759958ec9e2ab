"""Engines that write replies, behind one interface, and the host thread that runs them."""
