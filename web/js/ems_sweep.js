// EMS frontend extension: after a run, show EMS Alpha Sweep's labels (which α is which batch
// item) on the node itself, so a sweep can be read without opening the output.
import { app } from "../../../scripts/app.js";

const LABELS = "ems_labels";

app.registerExtension({
  name: "EMS.Sweep",
  async beforeRegisterNodeDef(nodeType, nodeData) {
    if (nodeData?.name !== "EMSAlphaSweep") return;
    const onExecuted = nodeType.prototype.onExecuted;
    nodeType.prototype.onExecuted = function (message) {
      onExecuted?.apply(this, arguments);
      const text = Array.isArray(message?.text) ? message.text.join("\n") : "";
      if (!text) return;
      let widget = this.widgets?.find((w) => w.name === LABELS);
      if (!widget) {
        // Display only: never saved into the workflow nor sent with the prompt. The frontend reads
        // `options.serialize` when it builds the prompt and `widget.serialize` when it saves the
        // workflow; with only the latter, the labels became an input after the first run and
        // changed the node's signature, so the whole chain ran again.
        widget = this.addWidget("text", LABELS, "", () => {}, { serialize: false });
        widget.serialize = false;
        if (widget.options) widget.options.serialize = false;
      }
      widget.value = text.split("\n").join("   ");
      this.setDirtyCanvas?.(true, true);
    };
  },
});
