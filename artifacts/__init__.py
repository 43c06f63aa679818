"""The multi-model artifact: layout, packing, checking and serving."""
