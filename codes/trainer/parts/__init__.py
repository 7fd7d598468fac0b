"""Builders of the model, optimizer, scheduler, loss and data loaders of one training run.

Kept empty, so that `trainer.parts.registry` (torch-free) can be imported by the schema.
"""
