"""Every service the container runs, one module or folder each (see base.py, registry.py)."""
