"""Multimodal recommendation lab engine."""
