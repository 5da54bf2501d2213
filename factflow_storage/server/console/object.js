// One object: its metadata as a table, its lineage (parents, then children once found)
// as links, a preview of its content and a download link.
import { api, objectUrl } from "./api.js";
import { clear, counted, errorBox, h, humanSize, time } from "./dom.js";
import { crumbsFor } from "./browse.js";
import { href } from "./router.js";
import { renderPreview } from "./preview.js";
import { childrenSection, loadChildren } from "./children.js";

const FIRST_FIELDS = ["key", "content_type", "content_length", "created_at", "execution_id", "route_id", "stage",
  "msg_id", "adapter", "lineage", "checksum", "config_hash"];

function looksLikeKey(value) {
  return typeof value === "string" && value.includes("/") && !/^[a-z]+:\/\//i.test(value);
}

function parents(lineage) {
  if (lineage === undefined || lineage === null) return [];
  return (Array.isArray(lineage) ? lineage : [lineage]).filter(looksLikeKey);
}

function cell(name, value) {
  if (name === "lineage") {
    const keys = parents(value);
    if (keys.length) return h("ul", { class: "plain", id: "lineage" }, keys.map((key) => h("li", null, h("a", { href: href("object", key) }, key))));
  }
  if (name === "content_length") return `${humanSize(value)} (${counted(value, "byte")})`;
  if (name === "created_at") return h("span", null, String(value), " ", h("span", { class: "muted" }, "(", time(value), ")"));
  if (name === "execution_id") return h("a", { href: href("execution", String(value)) }, String(value));
  if (value !== null && typeof value === "object") return h("code", null, JSON.stringify(value));
  return String(value);
}

function metadataTable(metadata) {
  const names = [...FIRST_FIELDS.filter((name) => name in metadata),
    ...Object.keys(metadata).filter((name) => !FIRST_FIELDS.includes(name)).sort()];
  return h("table", { class: "meta", id: "metadata" }, h("tbody", null, names.map((name) => h("tr", { dataset: { field: name } },
    h("th", { scope: "row" }, name), h("td", { class: "mono" }, cell(name, metadata[name]))))));
}

export async function renderObject(main, route, ctx) {
  const key = route.arg;
  ctx.setCrumbs(crumbsFor(key));
  const metadata = await api.metadata(key);
  const previewHolder = h("div", { id: "preview", "aria-busy": "true" }, h("p", { class: "muted" }, "Loading preview…"));
  const downloadName = key.split("/").pop();
  const children = childrenSection();
  clear(main).append(
    h("h1", { class: "mono" }, key),
    h("div", { class: "row" },
      h("a", { class: "button primary", id: "download", href: objectUrl(key) + "?view=content", download: downloadName }, "Download"),
      h("span", { class: "muted" }, `${metadata.content_type || "unknown type"}, ${humanSize(metadata.content_length)}`)),
    h("h2", null, "Metadata"), metadataTable(metadata), children,
    h("h2", null, "Preview"), previewHolder);
  try {
    const preview = await renderPreview(key, metadata);
    previewHolder.dataset.kind = preview.kind;
    clear(previewHolder).append(...(preview.notes || []).map((note) => h("p", { class: "muted" }, note)), preview.node);
  } catch (err) {
    clear(previewHolder).append(errorBox(err));
  }
  previewHolder.removeAttribute("aria-busy");
  // Only now: the children never delay the view, and the view has its data before them.
  return ctx.isCurrent() ? loadChildren(children, key) : undefined;
}
