"""The pipeline as one flow: the one command (run.py, `python -m pipeline`) and the offline emulation of AWS it can
run against (emulate.py). The step records every step writes and reads are `core/records.py`: the steps sit
below this package and never import it."""
