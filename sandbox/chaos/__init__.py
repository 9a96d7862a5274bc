"""Chaos runs of the whole pipeline on loopback: many changes, injected faults, then proof it converged."""
