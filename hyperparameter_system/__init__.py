"""hyperparameter_system: cross models with categories of options, run them, report the winners.

The runner never imports torch or timm; it talks to training only through files, argv and env.
"""

__version__ = "0.1.0"
