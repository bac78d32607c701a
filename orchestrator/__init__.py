"""Event-driven incident response: alerts in, playbooks decide, actions and a timeline out."""

__version__ = "0.1.0"
