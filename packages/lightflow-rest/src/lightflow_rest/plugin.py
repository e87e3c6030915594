"""The hooks lightflow-rest implements (entry point ``lightflow``, name ``rest``)."""
