"""Event-driven incident response orchestrator: alerts in, playbooks decide, actions and a timeline out."""

__version__ = "0.1.0"
