"""Training: demonstrations, behaviour cloning and DAgger on sequences (and other algorithms
that plug into ``python -m cfc_control.train``). Submodules are imported on use."""
