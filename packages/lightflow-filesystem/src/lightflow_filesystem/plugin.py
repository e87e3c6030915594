"""The hooks lightflow-filesystem implements (entry point ``lightflow``, name ``filesystem``)."""
