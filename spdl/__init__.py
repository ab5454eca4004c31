"""spdl: fast batched image loading."""
