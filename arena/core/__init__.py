"""The arena's core: errors, content ids, text clean-up, the clock and the chat message type.

Imports nothing else of ours, so that every package (storage aside, which imports nothing of
ours at all) may use it.
"""
