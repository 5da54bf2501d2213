// The hand-off: "Download execution (zip)" prepares an archive job on the server, shows
// its progress from the status endpoint, then starts the browser's download of the zip.
import { api } from "./api.js";
import { clear, counted, errorBox, h, humanSize } from "./dom.js";

const POLL_MS = 500;

export function archivePanel(executionId) {
  const bar = h("progress", { id: "archive-progress", max: "1", value: "0", hidden: true });
  const text = h("span", { id: "archive-text", class: "muted", role: "status" });
  const link = h("span", { id: "archive-link" });
  const button = h("button", { type: "button", class: "primary", id: "archive-start" }, "Download execution (zip)");
  const node = h("section", { class: "panel", id: "archive", "aria-label": "Download", dataset: { state: "idle" } },
    h("div", { class: "row" }, button, bar, text, link));
  let timer = null;
  let stopped = false;

  const show = (job) => {
    node.dataset.state = job.status;
    const total = job.total || 0;
    bar.hidden = false;
    bar.value = job.status === "ready" ? 1 : total ? (job.processed || 0) / total : job.progress || 0;
    text.textContent = job.status === "ready"
      ? `ready: ${counted(job.total ?? "?", "object")}, ${humanSize(job.file_size)}`
      : `${job.status}: ${job.processed ?? 0} of ${counted(total || "?", "object")}, ${humanSize(job.bytes_packed || 0)} packed`;
  };
  const finish = (job) => {
    const anchor = h("a", { href: api.archiveUrl(job.job_id), download: job.filename || "", id: "archive-download",
      class: "button" }, "Save " + (job.filename || "zip"));
    clear(link).append(anchor);
    anchor.click();
    button.disabled = false;
  };
  const poll = async (jobId) => {
    if (stopped) return;
    try {
      const job = await api.archiveStatus(jobId);
      if (stopped) return;
      show(job);
      if (job.status === "ready") return finish(job);
      if (job.status === "failed" || job.status === "cancelled") {
        button.disabled = false;
        clear(link).append(errorBox(job.error || `the archive job was ${job.status}`));
        return;
      }
    } catch (err) {
      button.disabled = false;
      clear(link).append(errorBox(err));
      return;
    }
    timer = setTimeout(() => poll(jobId), POLL_MS);
  };
  button.addEventListener("click", async () => {
    button.disabled = true;
    clear(link);
    try {
      const job = await api.prepareArchive(executionId);
      node.dataset.job = job.job_id;
      show(job);
      poll(job.job_id);
    } catch (err) {
      button.disabled = false;
      clear(link).append(errorBox(err));
    }
  });
  return { node, cleanup: () => { stopped = true; clearTimeout(timer); } };
}
