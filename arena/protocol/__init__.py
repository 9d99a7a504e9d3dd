"""The debate protocol: sides, roles, the transcript, the turn instruction and prompt templates;
and BBQ items (`bbq`: reading, the template-disjoint split, the prompt, reading replies).

Imports only `arena.core`, so that `eval` and `pairing` can rebuild what a debater was shown
without importing the engine.
"""
