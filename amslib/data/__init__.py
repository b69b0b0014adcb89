"""The data layer: the manifest, downloads, video sources (files, the synthetic street) and
example clips. Imports only `amslib.core`."""
