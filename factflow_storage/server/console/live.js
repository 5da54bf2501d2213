// Writes of a running execution as they happen, fed by the view's one event stream
// (stream.js): it starts with the counts per route and stage of what the execution holds,
// then sends each new write. The list keeps the newest SHOWN writes; the counts are exact.
import { h, humanSize } from "./dom.js";
import { href } from "./router.js";
import { STATE_TEXT } from "./stream.js";

const SHOWN = 200;
const FLUSH_MS = 50;

// The state line every live view shows: what the stream is doing, in words.
export function streamState(node, label, name, detail) {
  node.dataset.state = name;
  let text = STATE_TEXT[name] || name;
  if (name === "paused" && detail) text += ` (the server refused the stream; retrying in ${detail} s)`;
  else if (name === "error" && detail) text += `: ${detail}`;
  label.textContent = text;
  label.classList.toggle("error", name === "paused" || name === "error" || name === "reconnecting");
}

export function livePanel() {
  const list = h("ul", { class: "live-list", id: "live-list", "aria-live": "off" });
  const state = h("span", { id: "live-state", class: "muted" }, STATE_TEXT.connecting);
  const counter = h("span", { id: "live-count" }, "0");
  const stages = h("tbody");
  const node = h("section", { class: "panel", id: "live", "aria-label": "Live writes", dataset: { state: "connecting" } },
    h("div", { class: "row" }, h("strong", null, "Live"), state, h("span", { class: "muted" }, "objects:"), counter),
    h("table", { id: "live-counts" }, h("thead", null, h("tr", null, h("th", null, "Route"), h("th", null, "Stage"),
      h("th", { class: "num" }, "Objects"))), stages),
    list);
  let count = 0;
  let pending = [];
  let timer = null;
  const perStage = new Map(); // "route/stage" -> objects

  const flush = () => {
    timer = null;
    const items = pending.map((event) => h("li", { class: "new", dataset: { key: event.key } },
      h("a", { href: href("object", event.key) }, event.key), " ", h("span", { class: "muted" }, humanSize(event.size))));
    pending = [];
    list.prepend(...items.reverse());
    while (list.childElementCount > SHOWN) list.lastElementChild.remove();
    counter.textContent = String(count);
    const rows = [...perStage].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    stages.replaceChildren(...rows.map(([id, objects]) => {
      const [route, stage] = id.split("/");
      return h("tr", { dataset: { stage: id } }, h("td", { class: "key" }, route), h("td", { class: "key" }, stage),
        h("td", { class: "num" }, String(objects)));
    }));
  };
  const soon = () => { if (timer === null) timer = setTimeout(flush, FLUSH_MS); };
  return {
    node,
    onState: (name, detail) => streamState(node, state, name, detail),
    // Sent once, first: what the execution held when the stream opened.
    onCounts: (data) => {
      count = data.objects;
      perStage.clear();
      for (const row of data.routes) perStage.set(`${row.route_id ?? ""}/${row.stage ?? ""}`, row.objects);
      soon();
    },
    onObject: (event) => {
      count += 1;
      const id = `${event.route_id ?? ""}/${event.stage ?? ""}`;
      perStage.set(id, (perStage.get(id) || 0) + 1);
      pending.push(event);
      soon();
    },
    onCompleted: (data) => { flush(); streamState(node, state, "finished"); state.textContent = `execution ${data.status}`; },
    cleanup: () => { clearTimeout(timer); },
  };
}
