"""Colour palettes: a plugin package adding a PALETTE socket type and the nodes that use it.

A package plugin registers the nodes its __init__ exposes; importing them here is the list.
"""

from .nodes import ApplyPalette, ExtractPalette, PresetPalette
