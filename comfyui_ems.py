"""The pack under one name for the tools: ``import comfyui_ems.ems.csds``, ``comfyui_ems.nodes.common``.

ComfyUI imports this repository as a package named after its folder and runs ``__init__.py``. The
tools (``bench``, ``headless``, ``scripts``, ``tests``) run from the repository root and need the same
modules with the same relative imports (``nodes`` → ``..ems``), under one name in every process, so
that an exception class or a default is one object and not two copies. Giving this module a
``__path__`` makes it that package: its submodules are the repository's folders, and the pack's
``__init__.py`` (ComfyUI's entry point) is not executed, so importing a pack module never starts
ComfyUI's extension machinery. ComfyUI never imports this file.
"""

import os

__path__ = [os.path.dirname(os.path.abspath(__file__))]
