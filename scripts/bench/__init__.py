"""The parts of scripts/bench.py: servers, load, reports, and the scenarios by subject."""
