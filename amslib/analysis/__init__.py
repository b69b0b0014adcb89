"""The analysis layer: running schemes to result tables, metrics over them, experiments and
sweeps, claims, the benchmark, dataset checks, and the figures of all of these.
Imports the simulation layer and below."""
