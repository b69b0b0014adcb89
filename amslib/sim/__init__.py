"""The simulation layer: the clock and the edge loop (engine), the link, the update codec,
parameter selection, the server's training, and the schemes (`amslib.sim.schemes`).
Imports `amslib.models`, `amslib.data` and `amslib.core`."""
