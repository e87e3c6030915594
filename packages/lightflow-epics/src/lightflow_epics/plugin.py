"""The hooks lightflow-epics implements (entry point ``lightflow``, name ``epics``)."""
