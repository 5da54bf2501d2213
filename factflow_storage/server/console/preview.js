// A preview of an object's first bytes, chosen by type. Stored content only ever lands in
// text nodes or an <img> (which runs no script, SVG included), so stored HTML and SVG show
// as their source; the server additionally answers object reads with a sandbox policy.
import { api, objectUrl } from "./api.js";
import { counted, h, humanSize } from "./dom.js";

export const PREVIEW_BYTES = 256 * 1024;
const GZIP_BYTES = 1024 * 1024;
const HEX_BYTES = 512;
const JSON_OPEN_DEPTH = 2;
const JSON_MAX_CHILDREN = 500;

const TEXT_TYPES = /^(text\/|application\/(xml|xhtml\+xml|javascript|x-ndjson|x-yaml|yaml|toml|csv|sql|x-sh)|image\/svg\+xml)/;
const JSON_TYPES = /^application\/([\w.+-]*\+)?json\b/;
const TEXT_SUFFIXES = /\.(txt|md|markdown|csv|tsv|log|html?|xml|svg|ya?ml|toml|ini|py|js|css|sh|ndjson|jsonl)$/i;

function baseType(contentType) {
  return (contentType || "").split(";")[0].trim().toLowerCase();
}

function isGzip(type, key, bytes, metadata) {
  return type === "application/gzip" || type === "application/x-gzip" || /\.gz$/i.test(key)
    || metadata?.content_encoding === "gzip" || (bytes.length > 2 && bytes[0] === 0x1f && bytes[1] === 0x8b);
}

async function gunzip(bytes) {
  // Decompresses as much as arrived: a preview of a partial read ends where the bytes do.
  const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip"));
  const reader = stream.getReader();
  const parts = [];
  let size = 0;
  try {
    while (size < PREVIEW_BYTES) {
      const { done, value } = await reader.read();
      if (done) break;
      parts.push(value);
      size += value.length;
    }
  } catch (_) { /* truncated or corrupt input: keep what decompressed */ }
  reader.cancel().catch(() => {});
  const out = new Uint8Array(size);
  let at = 0;
  for (const part of parts) { out.set(part, at); at += part.length; }
  return out;
}

function decodeText(bytes) {
  try {
    const text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
    return /[\x00-\x08\x0e-\x1f]/.test(text.slice(0, 4096)) ? null : text;
  } catch (err) {
    // A read cut mid-character is still text: retry without the last few bytes.
    if (bytes.length > 4) {
      try { return new TextDecoder("utf-8", { fatal: true }).decode(bytes.subarray(0, bytes.length - 3)); } catch (_) { /* binary */ }
    }
    return null;
  }
}

export function jsonTree(value, depth = 0, label = null) {
  const name = label === null ? [] : [h("span", { class: "k" }, JSON.stringify(label)), ": "];
  if (value === null || typeof value !== "object") {
    const cls = typeof value === "string" ? "s" : typeof value === "number" ? "n" : "b";
    return h("div", null, ...name, h("span", { class: cls }, JSON.stringify(value)));
  }
  const isArray = Array.isArray(value);
  const entries = isArray ? value.map((item, index) => [index, item]) : Object.entries(value);
  const [open, close] = isArray ? ["[", "]"] : ["{", "}"];
  if (!entries.length) return h("div", null, ...name, open + close);
  const shown = entries.slice(0, JSON_MAX_CHILDREN);
  const inner = h("div", { class: "inner" }, shown.map(([key, item]) => jsonTree(item, depth + 1, isArray ? null : key)),
    entries.length > shown.length ? h("div", { class: "muted" }, `… ${entries.length - shown.length} more`) : null);
  return h("details", { open: depth < JSON_OPEN_DEPTH },
    h("summary", null, ...name, open, h("span", { class: "muted" }, ` ${entries.length} ${isArray ? "item" : "key"}${entries.length === 1 ? "" : "s"} `), close),
    inner);
}

export function hexDump(bytes) {
  const lines = [];
  for (let offset = 0; offset < bytes.length; offset += 16) {
    const row = bytes.subarray(offset, offset + 16);
    const hex = [...row].map((byte) => byte.toString(16).padStart(2, "0")).join(" ");
    const ascii = [...row].map((byte) => (byte >= 0x20 && byte < 0x7f ? String.fromCharCode(byte) : ".")).join("");
    lines.push(`${offset.toString(16).padStart(8, "0")}  ${hex.padEnd(47)}  ${ascii}`);
  }
  return lines.join("\n");
}

function textPreview(text, kind) {
  return h("pre", { class: "preview", id: "preview-text", dataset: { kind } }, text);
}

export async function renderPreview(key, metadata) {
  const declared = baseType(metadata?.content_type);
  if (declared.startsWith("image/") && declared !== "image/svg+xml") {
    return { kind: "image", node: h("img", { class: "preview", id: "preview-image", alt: key, src: objectUrl(key) + "?view=content" }) };
  }
  const size = metadata?.content_length;
  const gzipLikely = isGzip(declared, key, new Uint8Array(0), metadata);
  const response = await api.head(key, gzipLikely ? GZIP_BYTES : PREVIEW_BYTES);
  const type = declared || baseType(response.headers.get("Content-Type"));
  let bytes = new Uint8Array(await response.arrayBuffer());
  const whole = size === undefined || bytes.length >= size;
  const notes = [];
  let innerKey = key;
  if (isGzip(type, key, bytes, metadata)) {
    bytes = await gunzip(bytes);
    innerKey = key.replace(/\.gz$/i, "");
    notes.push(`gzip, decompressed for preview (${humanSize(bytes.length)}${whole ? "" : " from the first part"})`);
  } else if (!whole) {
    notes.push(`the first ${humanSize(bytes.length)} of ${humanSize(size)}`);
  }
  const looksJson = JSON_TYPES.test(type) || /\.json$/i.test(innerKey);
  const text = decodeText(bytes);
  let node;
  let kind;
  if (looksJson && text !== null && whole) {
    try {
      node = h("div", { class: "json", id: "preview-json" }, jsonTree(JSON.parse(text)));
      kind = "json";
    } catch (_) { /* not valid JSON after all: show the text */ }
  }
  if (!node && text !== null && (TEXT_TYPES.test(type) || looksJson || TEXT_SUFFIXES.test(innerKey) || type === "" || type === "application/octet-stream" || type === "application/gzip")) {
    kind = /html|svg|xml/.test(type) || /\.(html?|svg|xml)$/i.test(innerKey) ? "source" : "text";
    node = textPreview(text, kind);
  }
  if (!node) {
    kind = "hex";
    node = textPreview(hexDump(bytes.subarray(0, HEX_BYTES)), "hex");
    notes.push(`binary: the first ${counted(Math.min(bytes.length, HEX_BYTES), "byte")} as hex`);
  }
  return { kind, node, notes };
}
