"""eval: ratings (Elo, Bradley-Terry with bootstrap CIs), PCP/BBQ metrics, judge quality, reports.

It reads what the engine recorded (through `storage`) and never calls a model.
Not written yet: see the project's issue on ratings and reports.
"""
