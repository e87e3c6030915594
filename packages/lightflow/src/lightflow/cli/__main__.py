"""``python -m lightflow.cli`` runs the command line, like the ``lightflow`` script."""

from .main import main

main()
