"""Cortex-M measurements without a board: cross-build, ELF sizes, unicorn emulation, cost models."""
