"""The lesson's Lightning parts: the module (``lit_module``), the data (``datamodule``)
and the callbacks (atomic checkpoint, epoch progress)."""
