// EMS Extract Captions: show the captions the LLM wrote (or the cache/overrides supplied) on the
// node after a run, so the user sees exactly what EMS will encode. The backend sends them as the
// node's UI "text" output (V3 ui.PreviewText).
import { app } from "../../../scripts/app.js";
import { ComfyWidgets } from "../../../scripts/widgets.js";

const NODE_ID = "EMSExtractCaptions";
const WIDGET = "ems_captions";

function captionsWidget(node) {
  let widget = node.widgets?.find((w) => w.name === WIDGET);
  if (!widget) {
    widget = ComfyWidgets.STRING(node, WIDGET, ["STRING", { multiline: true }], app).widget;
    widget.element.readOnly = true;
    widget.element.style.opacity = 0.75;
    // Display only: keep it out of the saved workflow and out of the queued prompt, otherwise the
    // shown text would become an input and change the node's cache signature on every run.
    widget.serialize = false;
    if (widget.options) widget.options.serialize = false;
  }
  return widget;
}

app.registerExtension({
  name: "EMS.ExtractCaptions.Preview",
  async beforeRegisterNodeDef(nodeType, nodeData) {
    if (nodeData.name !== NODE_ID) return;
    const onExecuted = nodeType.prototype.onExecuted;
    nodeType.prototype.onExecuted = function (message) {
      onExecuted?.apply(this, [message]);
      const text = message?.text;
      if (!text) return;
      captionsWidget(this).value = Array.isArray(text) ? text.join("\n") : String(text);
      this.setDirtyCanvas?.(true, true);
    };
  },
});
