"""The PaLI family: an image encoder feeding an mT5 encoder-decoder."""
