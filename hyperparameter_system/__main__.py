"""`python -m hyperparameter_system` opens the interactive menu."""

from hyperparameter_system.run_experiments import main

raise SystemExit(main())
