"""The arena's core: errors, content ids, text clean-up, the clock, the chat message type, and
output files written whole or not at all (`files`).

Imports nothing else of ours, so that every package (storage aside, which imports nothing of
ours at all) may use it.
"""
