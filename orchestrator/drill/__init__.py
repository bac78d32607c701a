"""Tabletop drills: scenario files, the runner that plays them through the real pipeline on a
simulated (or live) clock, the scoring of what responders did, and the after-action record."""
