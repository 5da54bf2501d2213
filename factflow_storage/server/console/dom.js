// Building DOM without HTML strings: every stored value lands in a text node, so nothing
// read from storage is ever parsed as markup on the console's origin.

export function h(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "class") node.className = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else if (name === "dataset") Object.assign(node.dataset, value);
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  append(node, children);
  return node;
}

export function append(node, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export function clear(node) {
  node.replaceChildren();
  return node;
}

// "1 object", "2 objects": a count with its noun in the number it takes.
export function counted(count, one, many = one + "s") {
  return `${count} ${Number(count) === 1 ? one : many}`;
}

const UNITS = ["B", "KiB", "MiB", "GiB", "TiB"];

export function humanSize(bytes) {
  if (bytes === undefined || bytes === null) return "";
  let value = Number(bytes);
  let unit = 0;
  while (value >= 1024 && unit < UNITS.length - 1) { value /= 1024; unit += 1; }
  return unit === 0 ? `${value} B` : `${value.toFixed(value < 10 ? 1 : 0)} ${UNITS[unit]}`;
}

export function humanTime(iso) {
  if (!iso) return "";
  const moment = new Date(iso);
  if (Number.isNaN(moment.getTime())) return String(iso);
  const seconds = (Date.now() - moment.getTime()) / 1000;
  const ago = seconds < 60 ? `${Math.max(0, Math.round(seconds))} s ago`
    : seconds < 3600 ? `${Math.round(seconds / 60)} min ago`
    : seconds < 86400 ? `${Math.round(seconds / 3600)} h ago` : `${Math.round(seconds / 86400)} d ago`;
  return ago;
}

export function time(iso) {
  // The exact time stays in the tooltip and the datetime attribute.
  return h("time", { datetime: iso || "", title: iso || "" }, humanTime(iso));
}

export function badge(status) {
  const known = ["running", "completed", "failed", "cancelled", "interrupted", "deleting", "deleted"];
  return h("span", { class: "badge " + (known.includes(status) ? status : "unknown"), dataset: { status: status || "" } },
    status || "unknown");
}

export function errorBox(err) {
  return h("p", { class: "error", role: "alert" }, err && err.message ? err.message : String(err));
}
