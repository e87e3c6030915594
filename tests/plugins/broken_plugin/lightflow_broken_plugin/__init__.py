"""A test extension whose entry point (``lightflow_broken_plugin.missing_module``) is missing."""
