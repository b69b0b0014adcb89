"""The base layer: configuration, label sets, metrics, file and progress helpers, registries.

Imports nothing else of amslib; every other layer may import it."""
