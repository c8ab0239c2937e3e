// EMS frontend extension: EMS CSDS Latent Edit graphs saved before the node had `step_units`
// (v0.1) gave their step sizes in the residual's space ("latent"); a new node's default is "image".
// A saved node that stored no value for step_units therefore opens with "latent", so the graph keeps
// the push it had. The server reads a prompt without the input the same way
// (nodes/csds_latent_edit.py, SAVED_BEFORE_UNITS).
import { app } from "../../../scripts/app.js";

const NODE = "EMSCSDSLatentEdit";
const WIDGET = "step_units";
const SAVED_BEFORE_UNITS = "latent";

// Did the saved node store a value for `widget`? Saved values are a list in widget order, or (in
// some frontends) an object by name.
function savedHas(node, saved, widget) {
  if (Array.isArray(saved)) return saved.length > node.widgets.indexOf(widget);
  return Object.prototype.hasOwnProperty.call(saved, widget.name);
}

app.registerExtension({
  name: "EMS.CSDSUnits",
  async beforeRegisterNodeDef(nodeType, nodeData) {
    if (nodeData?.name !== NODE) return;
    const onConfigure = nodeType.prototype.onConfigure;
    nodeType.prototype.onConfigure = function (info) {
      const result = onConfigure?.apply(this, arguments);
      const saved = info?.widgets_values;
      const widget = this.widgets?.find((w) => w.name === WIDGET);
      if (widget && saved && typeof saved === "object" && !savedHas(this, saved, widget)) {
        widget.value = SAVED_BEFORE_UNITS;
      }
      return result;
    };
  },
});
