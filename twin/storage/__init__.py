"""SQL of the twin, one module per concern. Everything else calls these functions."""
