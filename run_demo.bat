@echo off
rem EMS demo on Windows portable ComfyUI: double-click, or run from this folder.
rem Edits a drawn toy scene with the toy model (no download) and prints a readout of every tile;
rem the results go to the "out" folder here. Extra options are passed on (run_ems.py --help).
cd /d "%~dp0"
set "EMS_PY=..\..\..\python_embeded\python.exe"
if not exist "%EMS_PY%" set "EMS_PY=python"
"%EMS_PY%" -s run_ems.py --demo %*
pause
