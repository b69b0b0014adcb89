"""AMS Workbench: Adaptive Model Streaming (Khani et al., ICCV 2021) as an interactive library."""
__version__ = "0.1.0"
