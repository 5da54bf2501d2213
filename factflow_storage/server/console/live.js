// Writes of a running execution as they happen, fed by the view's one event stream
// (stream.js): it first replays what the execution holds, then follows. The list keeps
// the newest SHOWN entries; the count is exact.
import { h, humanSize } from "./dom.js";
import { href } from "./router.js";
import { STATE_TEXT } from "./stream.js";

const SHOWN = 200;
const FLUSH_MS = 50;
const QUIET_MS = 500;

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
  const node = h("section", { class: "panel", id: "live", "aria-label": "Live writes", dataset: { state: "connecting" } },
    h("div", { class: "row" }, h("strong", null, "Live"), state, h("span", { class: "muted" }, "objects seen:"), counter),
    list);
  let count = 0;
  let pending = [];
  let timer = null;
  let quiet = null;
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
  // Events arriving after the first quiet moment are new writes, highlighted as such.
  const settle = () => { clearTimeout(quiet); quiet = setTimeout(() => { replaying = false; }, QUIET_MS); };
  return {
    node,
    onState: (name, detail) => { streamState(node, state, name, detail); if (name === "open") settle(); },
    onObject: (event) => {
      count += 1;
      pending.push(event);
      if (timer === null) timer = setTimeout(flush, FLUSH_MS);
      settle();
    },
    onCompleted: (data) => { flush(); streamState(node, state, "finished"); state.textContent = `execution ${data.status}`; },
    cleanup: () => { clearTimeout(timer); clearTimeout(quiet); },
  };
}
