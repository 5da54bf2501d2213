// The page's one event stream: an execution's writes, read with fetch rather than
// EventSource, because EventSource gives up for good after a refusal (the server answers
// 503 once its streams are all taken) and never shows the Retry-After it was sent. Here a
// refused or dropped stream waits what the server asks, else a growing backoff, and
// resumes with Last-Event-ID, so the server sends exactly what was missed. With
// replay "counts" the stream starts from the current state: one storage.counts event
// (objects per route and stage), then only new writes, counted once between the two.
import { api } from "./api.js";

const FIRST_BACKOFF_MS = 1000;
const MAX_BACKOFF_MS = 30000;

// States a view shows: connecting, open, reconnecting (server away), paused (refused),
// finished (the execution ended), error (a refusal that retrying cannot mend).
export const STATE_TEXT = {
  connecting: "connecting…", open: "following writes", reconnecting: "server unreachable, reconnecting…",
  paused: "live updates paused", finished: "execution finished", error: "live updates unavailable",
};

function parseBlock(block) {
  const event = { id: null, type: "message", data: "" };
  for (const line of block.split(/\r?\n/)) {
    if (!line || line.startsWith(":")) continue;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
    if (field === "id") event.id = value;
    else if (field === "event") event.type = value;
    else if (field === "data") event.data += (event.data ? "\n" : "") + value;
  }
  return event;
}

// Listeners: onCounts(data), onObject(data), onCompleted(data), onState(name, detail).
// replay: "events" (every object already written, then new ones) or "counts". Returns close().
export function openStream(executionId, { onCounts, onObject, onCompleted, onState, filters, replay = "events" }) {
  let lastId = null;
  let stopped = false;
  let timer = null;
  let controller = null;
  let backoff = FIRST_BACKOFF_MS;
  const state = (name, detail) => { if (!stopped) onState?.(name, detail); };

  const again = (name, waitMs, detail) => {
    if (stopped) return;
    state(name, detail);
    timer = setTimeout(connect, waitMs);
  };
  const nextBackoff = () => { const wait = backoff; backoff = Math.min(backoff * 2, MAX_BACKOFF_MS); return wait; };

  async function connect() {
    timer = null;
    controller = new AbortController();
    let response;
    try {
      response = await fetch(api.eventsUrl(executionId, { ...filters, replay: replay === "events" ? null : replay }), { credentials: "same-origin", cache: "no-store",
        headers: lastId ? { "Last-Event-ID": lastId } : {}, signal: controller.signal });
    } catch (_) {
      again("reconnecting", nextBackoff());
      return;
    }
    if (response.status === 204) { state("finished"); return; }
    if (response.status === 503 || response.status === 429 || response.status >= 500) {
      const seconds = Number(response.headers.get("Retry-After"));
      const wait = Number.isFinite(seconds) && seconds > 0 ? Math.max(seconds * 1000, nextBackoff()) : nextBackoff();
      response.body?.cancel().catch(() => {});
      again("paused", wait, Math.round(wait / 1000));
      return;
    }
    if (!response.ok) {
      if (response.status === 401) window.dispatchEvent(new CustomEvent("factflow:unauthorized"));
      let detail = `HTTP ${response.status}`;
      try { detail = (await response.json()).detail || detail; } catch (_) { /* not JSON */ }
      state("error", detail);
      return;
    }
    backoff = FIRST_BACKOFF_MS;
    state("open");
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        let end;
        while ((end = buffer.search(/\r?\n\r?\n/)) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end).replace(/^\r?\n\r?\n/, "");
          const event = parseBlock(block);
          if (event.id !== null) lastId = event.id;
          if (event.type === "storage.object.created") onObject?.(JSON.parse(event.data));
          else if (event.type === "storage.counts") onCounts?.(JSON.parse(event.data));
          else if (event.type === "execution.completed") {
            stopped = true;
            controller.abort();
            onState?.("finished");
            onCompleted?.(JSON.parse(event.data));
            return;
          }
        }
      }
    } catch (_) {
      if (stopped) return;
    }
    // The server ended the stream (its timeout) or went away: resume where it stopped.
    // (The backoff was reset when it opened: a stream that ran resumes after a second.)
    again("reconnecting", nextBackoff());
  }

  state("connecting");
  connect();
  return () => { stopped = true; clearTimeout(timer); controller?.abort(); };
}
