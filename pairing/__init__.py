"""pairing: turn-level preference pairs (PERSUADE rules), rewards, and dataset export.

It reads what the engine recorded (through `storage`) and never calls a model.
Not written yet: see the project's issue on preference pairs.
"""
