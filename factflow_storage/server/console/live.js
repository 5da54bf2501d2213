// Writes of a running execution as they happen: an EventSource on the events endpoint.
// The stream first replays what the execution holds, then follows; on a dropped
// connection EventSource reconnects by itself with Last-Event-ID, and the server sends
// exactly what was missed. The list keeps the newest SHOWN entries; the count is exact.
import { api } from "./api.js";
import { h, humanSize } from "./dom.js";
import { href } from "./router.js";

const SHOWN = 200;
const FLUSH_MS = 50;

export function livePanel(executionId, onFinished) {
  const list = h("ul", { class: "live-list", id: "live-list", "aria-live": "off" });
  const state = h("span", { id: "live-state", class: "muted" }, "connecting…");
  const counter = h("span", { id: "live-count" }, "0");
  const node = h("section", { class: "panel", id: "live", "aria-label": "Live writes", dataset: { state: "connecting" } },
    h("div", { class: "row" }, h("strong", null, "Live"), state, h("span", { class: "muted" }, "objects seen:"), counter),
    list);
  let count = 0;
  let pending = [];
  let timer = null;
  let replaying = true;

  const flush = () => {
    timer = null;
    const items = pending.map((event) => h("li", { class: replaying ? "" : "new", dataset: { key: event.key } },
      h("a", { href: href("object", event.key) }, event.key), " ", h("span", { class: "muted" }, humanSize(event.size))));
    pending = [];
    list.prepend(...items.reverse());
    while (list.childElementCount > SHOWN) list.lastElementChild.remove();
    counter.textContent = String(count);
  };
  const set = (name, text) => { node.dataset.state = name; state.textContent = text; };

  const source = new EventSource(api.eventsUrl(executionId));
  source.onopen = () => {
    set("open", "following writes");
    node._quiet = setTimeout(() => { replaying = false; }, 500);
  };
  source.onerror = () => {
    if (source.readyState !== EventSource.CLOSED) set("reconnecting", "reconnecting…");
  };
  source.addEventListener("storage.object.created", (message) => {
    count += 1;
    pending.push(JSON.parse(message.data));
    if (timer === null) timer = setTimeout(flush, FLUSH_MS);
    // Events arriving after the first quiet moment are new writes, highlighted as such.
    clearTimeout(node._quiet);
    node._quiet = setTimeout(() => { replaying = false; }, 500);
  });
  source.addEventListener("execution.completed", (message) => {
    source.close();
    flush();
    const data = JSON.parse(message.data);
    set("finished", `execution ${data.status}`);
    onFinished(data.status);
  });
  return { node, cleanup: () => { source.close(); clearTimeout(timer); clearTimeout(node._quiet); } };
}
