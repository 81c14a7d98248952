"""LIMoE: one sparse mixture-of-experts transformer for images and text."""
