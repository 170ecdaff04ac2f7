"""Export to TFLite (LiteRT): conversion (bytes), metadata, op report, parity, and the export stage."""
