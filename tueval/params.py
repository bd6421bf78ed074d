"""The settings base shared by scorers and objectives: ``__init__`` stores settings, ``get_params`` returns them."""
from __future__ import annotations

import inspect
from typing import Any


class Configurable:
    """sklearn-style settings: every named ``__init__`` argument along the MRO is an attribute of the same name."""

    @classmethod
    def _param_names(cls) -> list[str]:
        names: list[str] = []
        for klass in cls.__mro__:
            if "__init__" in klass.__dict__ and klass is not object:
                for p in inspect.signature(klass.__init__).parameters.values():
                    if p.name != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL) and p.name not in names:
                        names.append(p.name)
        return names

    def get_params(self) -> dict[str, Any]:
        """Every setting of this object (the run spec records it)."""
        return {k: getattr(self, k) for k in self._param_names()}
