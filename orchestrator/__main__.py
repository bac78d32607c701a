"""Lets `python -m orchestrator` run the CLI."""

from orchestrator.cli import main

main()
