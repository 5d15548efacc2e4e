"""The pipeline as one flow: step records (records.py), the one command (run.py, `python -m pipeline`) and the
offline emulation of AWS it can run against (emulate.py)."""
