// EMS frontend extension: show the warnings EMS Encode Prompts and EMS Text Direction return as
// UI text (identical prompts, the attribute words used, α outside the usual range) on the node
// itself, and clear them on a run without a warning. API clients read the same text from
// /history/<prompt_id> → outputs → <node id> → text.
import { app } from "../../../scripts/app.js";

const NODES = ["EMSEncodePrompts", "EMSTextDirection"];
const WARNING = "ems_warning";

app.registerExtension({
  name: "EMS.Warnings",
  async beforeRegisterNodeDef(nodeType, nodeData) {
    if (!NODES.includes(nodeData?.name)) return;
    const onExecuted = nodeType.prototype.onExecuted;
    nodeType.prototype.onExecuted = function (message) {
      onExecuted?.apply(this, arguments);
      const text = Array.isArray(message?.text) ? message.text.filter(Boolean).join("\n") : "";
      let widget = this.widgets?.find((w) => w.name === WARNING);
      if (!widget && !text) return;
      if (!widget) {
        // Display only, as in ems_sweep.js: not an input of the next prompt, not saved.
        widget = this.addWidget("text", WARNING, "", () => {}, { serialize: false });
        widget.serialize = false;
        if (widget.options) widget.options.serialize = false;
      }
      widget.value = text ? `⚠ ${text}` : "";
      this.setDirtyCanvas?.(true, true);
    };
  },
});
