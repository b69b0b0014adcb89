"""The models layer: the student network, checkpoints, and teachers (exact labels, label
folders, model files). Imports `amslib.data` and `amslib.core`."""
