"""Make ``aiida`` unimportable, for checking that ``slem`` and ``tests/slem`` work without AiiDA.

Put this folder first on ``PYTHONPATH``: Python imports ``sitecustomize`` at start-up, in every interpreter
that inherits the environment (pytest and the ``slem`` commands the tests start), and this finder then
refuses ``aiida`` and its submodules as if the package were not installed. ``aiida_slem`` (a different
name) still imports; the plugins built on aiida (aiida_pseudo, aiida_quantumespresso) fail with it.
``scripts/test.sh`` runs ``tests/slem -m "not slow"`` this way.
"""

from __future__ import annotations

import sys
from importlib.abc import MetaPathFinder


class _NoAiida(MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        if fullname == "aiida" or fullname.startswith("aiida."):
            message = f"No module named {fullname!r} (blocked by scripts/no_aiida)"
            raise ModuleNotFoundError(message, name=fullname)
        return None


sys.meta_path.insert(0, _NoAiida())
