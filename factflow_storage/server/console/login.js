// The token form of a token-protected server. The token goes once, in a POST body, to
// /api/v1/session, which answers with an HttpOnly session cookie; it never enters a URL,
// the page's storage, or the history (the form is never submitted the browser's way).
import { api } from "./api.js";
import { clear, errorBox, h } from "./dom.js";

export async function renderLogin(main, route, ctx) {
  ctx.setCrumbs([["log in", null]]);
  const next = route.params.get("next") || "#/";
  const input = h("input", { type: "password", id: "token", name: "token", autocomplete: "off", required: true,
    "aria-label": "API token" });
  const message = h("div", { id: "login-message" });
  const form = h("form", { class: "login", id: "login", method: "post", action: "#" },
    h("label", { for: "token" }, "API token (FACTFLOW_API_TOKEN of this server)"), input,
    h("button", { type: "submit", class: "primary" }, "Log in"), message);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clear(message);
    try {
      await api.login(input.value);
      input.value = "";
      sessionStorage.setItem("factflow.session", "1");
      document.getElementById("logout").hidden = false;
      // Only a route of this console: `next` comes from the URL.
      location.hash = next.startsWith("#/") && !next.startsWith("#/login") ? next : "#/";
    } catch (err) {
      message.append(errorBox(err.status === 401 ? "That token is not this server's." : err));
      input.select();
    }
  });
  clear(main).append(h("h1", null, "Log in"),
    h("p", { class: "muted" }, "This server needs its API token. It is exchanged for a session cookie that stays in this browser."),
    form);
  input.focus();
}
