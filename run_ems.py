"""The headless runner with any Python that runs ComfyUI — the way on Windows, where there is no bash:

    ..\\..\\..\\python_embeded\\python.exe -s run_ems.py --demo       (portable ComfyUI, in this folder)
    python run_ems.py --demo                                         (ComfyUI's own environment)

Same options as ``bash scripts/run.sh`` (``--help``), but it sets nothing up: the Python that runs it
must already have ComfyUI's requirements (the Python that runs your ComfyUI does). ``run_demo.bat``
beside it does the portable case on a double-click. Works even where the interpreter ignores the
current folder (an embedded Python's ``._pth`` file, or ``python -I``).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from headless.__main__ import main  # noqa: E402  (after the path: the pack's folder is the root)

if __name__ == "__main__":
    sys.exit(main())
