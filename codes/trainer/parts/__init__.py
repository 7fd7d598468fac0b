"""Builders of the model, optimizer, scheduler and loss of one training run, and `assemble`,
which builds them with the data loaders into the `Parts` of a fit. What they can build by name
is `trainer.registry` (torch-free, read by the schema)."""
