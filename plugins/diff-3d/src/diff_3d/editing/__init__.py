"""Editing a capture (issue 19): Instruct-NeRF2NeRF's iterative dataset update with any diffcore prior with a condition.

Modules: ``capture`` (a synthetic capture the project makes, written and read in nerfstudio's
``transforms.json`` layout), ``edit`` (one view edited by a prior: SDEdit), ``in2n`` (the iterative
dataset update on diff-3d's representations), ``consistency`` (the multi-view consistency score).
Importing the package imports nothing.
"""
