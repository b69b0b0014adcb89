"""One module per scheme family over a shared base; `amslib.core.registry.SCHEMES` names them."""
