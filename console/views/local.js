// Local mode (ringback-local only): place a call on the built-in Vapi simulator and follow it, and
// the runner's own receiver at /dev/callbacks as an inbox, each event with its signature check.

import { explain } from "../api.js";
import { badge, every, fill, h, newKey, notice, when } from "../dom.js";

// The simulator picks a scenario from a [word] in the provider's name (simulator/README.md).
const SCENARIOS = [
  ["answered", "answered: rings, talks, ends complete"],
  ["no-answer", "no-answer: rings out"],
  ["busy", "busy"],
  ["voicemail", "voicemail"],
  ["no-webhook", "no-webhook: completes through the watchdog"],
  ["duplicate-webhooks", "duplicate-webhooks: every webhook twice"],
  ["out-of-order", "out-of-order: the report first"],
  ["api-flaky", "api-flaky: GET /call fails three times"],
  ["never-complete", "never-complete: ends fetch_failed"],
  ["lost-answer", "lost-answer: POST /call answers 504 after placing it"],
  ["refused", "refused: POST /call answers 400"],
];
const URGENCIES = ["immediate", "within_24_hours", "within_2_days", "flexible"];

export function localPage({ api, main, failed, runner }) {
  const result = h("div", { "aria-live": "polite" });
  const inbox = h("div", {});
  const receiver = `${location.origin}/dev/callbacks`;
  const field = (id, label, input, hint, wide = false) =>
    h("div", { class: wide ? "field wide" : "field" }, h("label", { for: id }, label), input, hint ? h("p", { class: "hint", id: `${id}-hint` }, hint) : null);

  const form = h(
    "form",
    { class: "place", onsubmit: (ev) => place(ev) },
    field("p-name", "Provider name", h("input", { id: "p-name", name: "providerName", required: true, value: "Acme Plumbing" })),
    field("p-phone", "Phone (E.164)", h("input", { id: "p-phone", name: "providerPhone", required: true, value: "+14155550123", inputmode: "tel" })),
    field("p-scenario", "Scenario", h("select", { id: "p-scenario", name: "scenario" }, SCENARIOS.map(([v, l]) => h("option", { value: v }, l)))),
    field("p-service", "Service needed", h("input", { id: "p-service", name: "serviceNeeded", required: true, value: "plumber" })),
    field("p-criteria", "Criteria", h("input", { id: "p-criteria", name: "userCriteria", required: true, value: "licensed, available this week" })),
    field("p-location", "Location", h("input", { id: "p-location", name: "location", required: true, value: "Oakland, CA" })),
    field("p-urgency", "Urgency", h("select", { id: "p-urgency", name: "urgency" }, URGENCIES.map((u) => h("option", { value: u, selected: u === "within_24_hours" }, u)))),
    field("p-request", "Service request ID (optional)", h("input", { id: "p-request", name: "serviceRequestId", "aria-describedby": "p-request-hint" }), "Lets you filter the list to this request's calls."),
    field("p-callback", "Callback URL (optional)", h("input", { id: "p-callback", name: "callbackUrl", type: "url", value: receiver, "aria-describedby": "p-callback-hint" }), "This runner's receiver shows what arrives in the inbox below.", true),
    h("button", { type: "submit", class: "primary" }, "Place call"),
  );

  // One Idempotency-Key per call meant: kept until the call is placed or the form is edited, so a
  // click again after a lost answer finds the same call instead of placing a second one.
  let key = null;
  form.addEventListener("input", () => {
    key = null;
  });
  const place = async (ev) => {
    ev.preventDefault();
    key ??= newKey();
    const d = new FormData(form);
    const scenario = d.get("scenario");
    const name = d.get("providerName").toString().trim();
    const request = {
      providerName: scenario === "answered" ? name : `${name} [${scenario}]`,
      providerPhone: d.get("providerPhone").toString().trim(),
      serviceNeeded: d.get("serviceNeeded"),
      userCriteria: d.get("userCriteria"),
      location: d.get("location"),
      urgency: d.get("urgency"),
    };
    for (const key of ["serviceRequestId", "callbackUrl"]) {
      const v = d.get(key).toString().trim();
      if (v) request[key] = v;
    }
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    fill(result, notice("Placing the call…"));
    try {
      const placed = (await api.placeCall(request, key)).data;
      key = null;
      location.hash = `#/calls/${encodeURIComponent(placed.callId)}`;
    } catch (err) {
      if (!failed(err)) fill(result, notice(`The call was not placed: ${explain(err, api.base)}`, "error"));
    } finally {
      button.disabled = false;
    }
  };

  let drawn = null;
  const refreshInbox = async () => {
    let got;
    try {
      got = (await api.received()).data.received;
    } catch (err) {
      if (failed(err)) return;
      drawn = null;
      fill(inbox, notice(explain(err, api.base), "error"));
      return;
    }
    const now = JSON.stringify(got);
    if (now === drawn) return;
    drawn = now;
    fill(
      inbox,
      got.length
        ? h(
            "table",
            { class: "inbox" },
            h("caption", { class: "sr-only" }, "Events received, newest first"),
            h("thead", {}, h("tr", {}, ["Received", "Event", "Call", "Data", "Signature"].map((c) => h("th", { scope: "col" }, c)))),
            h(
              "tbody",
              {},
              got
                .slice()
                .reverse()
                .map((e) =>
                  h(
                    "tr",
                    { "data-webhook-id": e.webhookId },
                    h("td", { "data-label": "Received" }, when(e.receivedAt)),
                    h("td", { "data-label": "Event" }, e.type ?? "?", h("br"), h("span", { class: "mono small" }, e.webhookId)),
                    h("td", { "data-label": "Call" }, e.callId ? h("a", { href: `#/calls/${encodeURIComponent(e.callId)}`, class: "mono" }, e.callId) : "—"),
                    h("td", { "data-label": "Data" }, badge(e.dataStatus)),
                    h("td", { "data-label": "Signature" }, e.verified ? h("span", { class: "badge badge-ok" }, "✓ verified") : h("span", { class: "badge badge-bad" }, "✗ does not verify")),
                  ),
                ),
            ),
          )
        : notice("Nothing received yet. Place a call with this runner's callback URL."),
    );
  };

  fill(
    main,
    h("h1", {}, "Local runner"),
    h(
      "section",
      { "aria-labelledby": "place-title" },
      h("h2", { id: "place-title" }, "Place a simulated call"),
      runner.simulator
        ? [h("p", { class: "hint" }, "The built-in Vapi simulator plays the call out and sends its webhooks back to this runner; you follow it live on its page."), form]
        : notice("This runner places real calls (VAPI_BASE_URL is set): place them through the API or the CLI, not from here."),
      result,
    ),
    h("section", { "aria-labelledby": "inbox-title" }, h("h2", { id: "inbox-title" }, "Callback inbox (", h("code", {}, "/dev/callbacks"), ")"), inbox),
  );
  return every(2000, refreshInbox);
}
