"""Benchmarks of diff-inverse's solvers against exact posteriors."""
