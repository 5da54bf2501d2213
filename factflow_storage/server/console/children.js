// An object's children (the objects whose lineage names it), shown once the object view
// is up: finding them lists the object's execution and reads the lineage index, which can
// take a while on a large execution, so the view never waits for it.
import { api } from "./api.js";
import { clear, errorBox, h } from "./dom.js";
import { href } from "./router.js";

// A fan-out of thousands helps nobody as a list; the CLI has them all.
const SHOWN = 200;

export function childrenSection() {
  return h("section", { id: "children-section", "aria-busy": "true", "aria-live": "polite" },
    h("h2", null, "Children"),
    h("p", { class: "muted", id: "children-status" }, "Looking for children…"));
}

function render(section, children) {
  const heading = h("h2", null, "Children", children.length ? h("span", { class: "muted" }, ` (${children.length})`) : null);
  if (!children.length) {
    clear(section).append(heading, h("p", { class: "muted", id: "children-none" },
      "None known: no object of this execution, and none the lineage index records elsewhere, names it as a parent."));
    return;
  }
  const list = h("ul", { class: "plain mono", id: "children" },
    children.slice(0, SHOWN).map((key) => h("li", null, h("a", { href: href("object", key) }, key))));
  clear(section).append(heading, list);
  if (children.length > SHOWN) {
    section.append(h("p", { class: "muted" }, `and ${children.length - SHOWN} more (factflow storage lineage --children)`));
  }
}

// Fills `section` in the background; the returned function abandons it (view left).
export function loadChildren(section, key) {
  const abort = new AbortController();
  api.children(key, abort.signal).then((tree) => {
    render(section, tree.children || []);
  }).catch((err) => {
    if (abort.signal.aborted) return;
    clear(section).append(h("h2", null, "Children"), errorBox(err));
  }).finally(() => {
    section.removeAttribute("aria-busy");
    section.dataset.loaded = "true";
  });
  return () => abort.abort();
}
