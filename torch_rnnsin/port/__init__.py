"""Porting Keras recurrent models to PyTorch and back (no Keras, no Lightning needed)."""
