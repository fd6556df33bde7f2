"""``python -m saleshub`` runs the command line."""

from saleshub.cli import main

main()
