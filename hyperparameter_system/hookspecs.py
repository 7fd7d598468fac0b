"""The plugin hooks. A category plugin implements `register_categories(register)`.

Third-party packages expose a module through the entry-point group
`hyperparameter_system.categories`; the module defines the hook with `@hookimpl`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from hyperparameter_system.categories.base import Register

hookspec = pluggy.HookspecMarker("hyperparameter_system")
hookimpl = pluggy.HookimplMarker("hyperparameter_system")


@hookspec
def register_categories(register: Register) -> None:
    """Call `register(category)` once for each category this plugin provides."""
