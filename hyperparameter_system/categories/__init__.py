"""Category plugins: each turns one option of its category into config changes and a run name."""
