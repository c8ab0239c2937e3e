"""ComfyUI adapters for EMS: one module per node (V3 schema); the node list is in ``nodes.extension``."""
