// EMS Extract Captions: show the captions the LLM wrote (or the cache/overrides supplied) on the
// node after a run, so the user sees exactly what EMS will encode. The backend sends them as the
// node's UI "text" output (V3 ui.PreviewText).
//
// Also: open workflows saved by an early EMS correctly. Its widgets were instruction, model, base_url,
// api_key_env, temperature, seed, refresh (+ the two overrides); now they are instruction, provider,
// model, temperature, seed, refresh. The frontend assigns saved widget values by position, so an old
// node would get its model as the provider and a variable name as the temperature. We put each
// value back by name. The provider becomes "openai" / "ollama" only where the old layout meant exactly that
// built-in (same server, same key variable); otherwise it becomes the old server URL, which the
// node refuses at run time with a message saying what changed and how to define a provider on this
// machine (a generic entry: the workflow's URL is named only as untrusted, never offered as one).
// Nothing here can choose a destination: providers live on the server.
import { app } from "../../../scripts/app.js";

const NODE_ID = "EMSExtractCaptions";
const WIDGET = "ems_captions";

function captionsWidget(node) {
  let widget = node.widgets?.find((w) => w.name === WIDGET);
  if (!widget) {
    // A read-only text area through the node's own addDOMWidget (no frontend-internal module).
    const area = document.createElement("textarea");
    area.readOnly = true;
    Object.assign(area.style, { opacity: 0.75, width: "100%", minHeight: "4em", resize: "none" });
    widget = node.addDOMWidget(WIDGET, "ems_text", area, {
      serialize: false, getValue: () => area.value, setValue: (v) => { area.value = v; } });
    // Display only: keep it out of the saved workflow and out of the queued prompt, otherwise the
    // shown text would become an input and change the node's cache signature on every run.
    widget.serialize = false;
    if (widget.options) widget.options.serialize = false;
  }
  return widget;
}

const OPENAI_URL = "https://api.openai.com/v1";

// The old layout has a string (api_key_env) where the provider layout has a number (temperature).
export function legacyValues(values) {
  if (!Array.isArray(values) || values.length < 7) return null;
  const [instruction, model, baseUrl, keyEnv, temperature] = values;
  if (![instruction, model, baseUrl, keyEnv].every((v) => typeof v === "string")) return null;
  if (typeof temperature !== "number") return null;
  return { instruction, model, baseUrl, keyEnv, temperature, seed: values[5], refresh: values[6],
           source: values[7], target: values[8] };
}

export function legacyProvider(baseUrl, keyEnv) {
  const url = (baseUrl || "").trim().replace(/\/+$/, "");
  if ((url === "" || url === OPENAI_URL) && keyEnv.trim() === "OPENAI_API_KEY") return "openai";
  if (/^https?:\/\/(localhost|127\.0\.0\.1):11434(\/v1)?$/.test(url) && keyEnv.trim() === "") return "ollama";
  return url || OPENAI_URL;
}

function migrateV1(node, values) {
  const old = legacyValues(values);
  if (!old) return;
  const set = { instruction: old.instruction, provider: legacyProvider(old.baseUrl, old.keyEnv), model: old.model,
                temperature: old.temperature, seed: old.seed, refresh: old.refresh,
                source_prompt: old.source, target_prompt: old.target };
  for (const widget of node.widgets ?? []) {
    if (widget.name in set && set[widget.name] !== undefined) widget.value = set[widget.name];
  }
  const note = set.provider === "openai" || set.provider === "ollama"
    ? `moved to provider '${set.provider}'`
    : "its server URL is now in 'provider'; running it says what changed and how to define a provider of your own";
  const text = `EMS Extract Captions (node ${node.id}): saved by an early EMS (base_url/api_key_env); ${note}.`;
  console.warn(text);
  try {
    app.extensionManager?.toast?.add?.({ severity: "warn", summary: "EMS: workflow from an early version", detail: text, life: 10000 });
  } catch (e) {
    // an older frontend without toasts: the console line above is the note
  }
}

app.registerExtension({
  name: "EMS.ExtractCaptions.Preview",
  async beforeRegisterNodeDef(nodeType, nodeData) {
    if (nodeData.name !== NODE_ID) return;
    const onConfigure = nodeType.prototype.onConfigure;
    nodeType.prototype.onConfigure = function (info) {
      const result = onConfigure?.apply(this, arguments);
      migrateV1(this, info?.widgets_values);
      return result;
    };
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
