"""Signal-processing building blocks for the voice plugins (WORLD analysis, content labels, frame matching)."""
