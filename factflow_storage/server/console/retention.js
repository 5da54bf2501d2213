// Where the execution delete (dry run, then a confirmed delete) goes once the server has
// an API for it; until then the section says so rather than offering a button.
import { h } from "./dom.js";

export function retentionPanel(executionId) {
  return h("section", { class: "panel", id: "retention", "aria-label": "Retention", dataset: { execution: executionId } },
    h("h2", null, "Retention"),
    h("p", { class: "muted" }, "Deleting an execution is not available from this server yet."));
}
