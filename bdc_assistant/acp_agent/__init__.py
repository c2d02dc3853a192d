"""``bdc acp``: the assistant as an Agent Client Protocol agent over stdio (SDK: the ``acp`` package)."""
