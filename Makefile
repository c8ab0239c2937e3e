# One-command entry points. Each recipe is one line you can also type yourself; the scripts find
# (or fetch) ComfyUI and the Python as scripts/env.sh describes.
#
#   make test        every test tier (the README's test command)
#   make lint        ruff check + ruff format --check (also part of `make test`)
#   make format      ruff format + ruff check --fix
#   make demo        the main job on the toy world: no download
#   make bench       the cost bench on the CPU (tiny SD3): model calls, time and memory as ratios
#   make workflows   regenerate example_workflows/*.json from a real server's /object_info
#   make thumbnails  re-render the workflow thumbnails: each template run on the toy world (a minute or two)
#   make icon        redraw the Registry icon (web/icon.png)
#   make toy-train   retrain the toy world's weights: SD3, Flux and v3 toys (toyworld/weights; ~2.5 h on a 2-core CPU)

PY ?= python3

.PHONY: test lint format demo bench workflows thumbnails icon toy-train

test:
	bash scripts/test.sh

lint:
	$(PY) -m ruff check . && $(PY) -m ruff format --check .

format:
	$(PY) -m ruff format . && $(PY) -m ruff check --fix .

demo:
	bash scripts/run.sh --demo

bench:
	bash scripts/tool.sh -m bench --quick

workflows:
	bash scripts/tool.sh -m scripts.build_workflows

thumbnails:
	bash scripts/tool.sh -m scripts.render_thumbnails

icon:
	bash scripts/tool.sh -m scripts.make_icon

toy-train:
	bash scripts/tool.sh -m comfyui_ems.toyworld.train
