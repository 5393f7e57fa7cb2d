// The console's shell: who we talk to (sign-in), which page shows (the URL's hash), and the
// navigation. Each page is a module under views/ that renders into <main> and returns a function
// that stops its live updates when the page is left.

import { Api, explain } from "./api.js";
import { h, fill, notice } from "./dom.js";
import { callsPage } from "./views/calls.js";
import { callPage } from "./views/call.js";
import { healthPage } from "./views/health.js";
import { localPage } from "./views/local.js";

const main = document.getElementById("main");
const nav = document.getElementById("nav");
let api = Api.fromSession();
// What the runner serving these files says about itself (config.json beside them): read once,
// before the first page shows.
let runner = {};
let stop = () => {};
// Set once per page load: the browser tests read it to prove nothing reloaded the page.
window.ringbackConsoleLoadedAt ??= Date.now();

/** Routes: "#/calls?…", "#/calls/<id>", "#/health", "#/local". */
function parse() {
  const [path, query = ""] = location.hash.replace(/^#/, "").split("?");
  const decode = (part) => {
    try {
      return decodeURIComponent(part);
    } catch {
      return part; // a malformed escape: shown as typed (an unknown call), never thrown
    }
  };
  return { parts: path.split("/").filter(Boolean).map(decode), query: new URLSearchParams(query) };
}

/** Shows the page the hash names. `moved`: the operator went there from another page, so focus
 * moves to the new content (as a screen reader expects); a first load leaves focus at the top. */
function show(moved = false) {
  stop();
  stop = () => {};
  // A confirmation left open belongs to the page being left: cancel it.
  for (const dialog of document.querySelectorAll("dialog.confirm")) dialog.close();
  if (!api) return signIn();
  const { parts, query } = parse();
  renderNav(parts[0] ?? "calls");
  const ctx = { api, main, query, failed: authFailed, runner };
  main.replaceChildren();
  if (parts[0] === "calls" && parts[1]) stop = callPage(ctx, parts[1]);
  else if (parts[0] === "health") stop = healthPage(ctx);
  else if (parts[0] === "local" && api.local) stop = localPage(ctx);
  else stop = callsPage(ctx);
  if (moved) main.focus({ preventScroll: true });
}

/** A 401 anywhere sends the operator back to sign-in, saying why. */
function authFailed(err) {
  if (err?.status !== 401) return false;
  if (!api) return true; // another request of the same page was refused first: sign-in shows already
  const base = api.base;
  Api.forget();
  api = null;
  signIn(explain(err, base), base);
  return true;
}

function renderNav(current) {
  const link = (href, label, key) =>
    h("a", { href, "aria-current": current === key ? "page" : null }, label);
  fill(
    nav,
    h(
      "ul",
      {},
      h("li", {}, link("#/calls", "Calls", "calls")),
      h("li", {}, link("#/health", "Health", "health")),
      api.local ? h("li", {}, link("#/local", "Local", "local")) : null,
    ),
    h(
      "p",
      { class: "target" },
      api.local ? "This runner" : api.base,
      " ",
      h("button", { type: "button", class: "link", onclick: signOut }, "Sign out"),
    ),
  );
}

function signOut() {
  Api.forget();
  api = null;
  show(true);
}

/** The sign-in form. ringback-local answers its development token at /console/config.json when it
 * runs with it (the token is public then, printed and in the README); otherwise the operator types it. */
function signIn(message, base = "") {
  stop();
  nav.replaceChildren();
  const dev = base === "" ? runner.devToken ?? null : null;
  const error = h("div", { id: "signin-error" }, message ? notice(message, "error") : null);
  const baseInput = h("input", {
    id: "api-base",
    name: "base",
    type: "url",
    value: base,
    placeholder: "https://abc123.execute-api.us-east-1.amazonaws.com",
    "aria-describedby": "api-base-hint",
  });
  const tokenInput = h("input", {
    id: "api-token",
    name: "token",
    type: "password",
    required: true,
    autocomplete: "off",
    value: dev ?? "",
    "aria-describedby": "api-token-hint",
  });
  const submit = async (ev) => {
    ev.preventDefault();
    const candidate = new Api(baseInput.value.trim(), tokenInput.value.trim());
    fill(error, notice("Connecting…"));
    try {
      await candidate.listCalls({ limit: 1 });
    } catch (err) {
      fill(error, notice(explain(err, candidate.base), "error"));
      tokenInput.focus();
      return;
    }
    candidate.save();
    api = candidate;
    if (!location.hash || location.hash === "#/signin") location.hash = "#/calls"; // hashchange shows it
    else show(true);
  };
  fill(
    main,
    h(
      "section",
      { class: "signin", "aria-labelledby": "signin-title" },
      h("h1", { id: "signin-title" }, "Connect to ringback"),
      error,
      h(
        "form",
        { onsubmit: submit },
        h("label", { for: "api-base" }, "API URL"),
        baseInput,
        h("p", { id: "api-base-hint", class: "hint" }, "Leave empty for this runner. A deployment's URL is its stack's ApiUrl output; its template must allow this page's origin (ConsoleOrigins)."),
        h("label", { for: "api-token" }, "API token"),
        tokenInput,
        h("p", { id: "api-token-hint", class: "hint" }, dev ? "This runner's development token is filled in." : "Kept for this browser tab only."),
        h("button", { type: "submit", class: "primary" }, "Connect"),
      ),
    ),
  );
  (dev ? main.querySelector("button[type=submit]") : tokenInput).focus();
}

// The skip link's "#main" is no route: it moves focus, and the page stays.
document.querySelector(".skip").addEventListener("click", (ev) => {
  ev.preventDefault();
  main.focus();
});

fetch("config.json")
  .then((r) => (r.ok ? r.json() : {}))
  .catch(() => ({}))
  .then((info) => {
    runner = info;
    window.addEventListener("hashchange", () => show(true));
    show();
  });
