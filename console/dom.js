// Small helpers for building the page. Everything a call holds (names, transcripts, URLs) reaches
// the page as text nodes, never as markup: a transcript cannot inject a script.

/** An element: h("a", {href: "#/calls"}, "Calls"). Children: strings, nodes, arrays, null. */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "class") el.className = value;
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
}

/** Replaces an element's content. */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** Like fill, for content a poll redraws: the control that had focus (known by its data-key) has
 * it again afterwards, so a keyboard user is not thrown back to the top of the page. */
export function redraw(el, ...children) {
  const key = el.contains(document.activeElement) ? document.activeElement.dataset.key : undefined;
  fill(el, ...children);
  if (key) el.querySelector(`[data-key="${CSS.escape(key)}"]`)?.focus();
  return el;
}

const DATE = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "medium" });

export function when(iso) {
  if (!iso) return "—";
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : DATE.format(d);
}

export function time(iso) {
  const el = h("time", { datetime: iso ?? "" }, when(iso));
  return el;
}

export function seconds(s) {
  if (s === null || s === undefined) return "—";
  return s >= 60 ? `${Math.floor(s / 60)} min ${Math.round(s % 60)} s` : `${Math.round(s * 10) / 10} s`;
}

export function money(usd) {
  return usd === null || usd === undefined ? "—" : `$${usd.toFixed(4)}`;
}

/** A status word as a badge: the word is always there (colour is never the only signal). */
export function badge(word) {
  const text = word ?? "—";
  return h("span", { class: `badge badge-${String(text).replace(/[^a-z_]/g, "")}` }, text);
}

/** Description list from [term, value] pairs. */
export function facts(pairs) {
  return h("dl", { class: "facts" }, pairs.map(([term, value]) => [h("dt", {}, term), h("dd", {}, value ?? "—")]));
}

/** A message for assistive technology and for the eye (role=status, or alert for errors). */
export function notice(text, kind = "info") {
  return h("p", { class: `notice notice-${kind}`, role: kind === "error" ? "alert" : "status" }, text);
}

/** Asks before an action; resolves true when confirmed. A native modal dialog: focus is trapped
 * and Escape cancels, as assistive technology expects. */
export function confirmAction(title, text, confirmLabel) {
  const opener = document.activeElement;
  const key = opener?.dataset?.key;
  return new Promise((resolve) => {
    const dialog = h(
      "dialog",
      { class: "confirm", "aria-labelledby": "confirm-title" },
      h("h2", { id: "confirm-title" }, title),
      h("p", {}, text),
      h(
        "form",
        { method: "dialog", class: "actions" },
        h("button", { value: "cancel", class: "secondary" }, "Cancel"),
        h("button", { value: "confirm", class: "primary" }, confirmLabel),
      ),
    );
    dialog.addEventListener("close", () => {
      resolve(dialog.returnValue === "confirm");
      dialog.remove();
      // A poll may have redrawn the page meanwhile: focus the opener's successor.
      if (!opener?.isConnected && key) document.querySelector(`[data-key="${CSS.escape(key)}"]`)?.focus();
    });
    document.body.append(dialog);
    dialog.showModal();
  });
}

/** An Idempotency-Key. crypto.randomUUID exists only in secure contexts (https, localhost): a
 * runner reached as http://host:3000 still gets a random key. */
export function newKey() {
  if (crypto.randomUUID) return crypto.randomUUID();
  return Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Runs `tick` now and then every `everyMs` while the page is visible, until stopped. A tick
 * never overlaps the previous one. */
export function every(everyMs, tick) {
  let timer = null;
  let stopped = false;
  const run = async () => {
    if (stopped) return;
    if (!document.hidden) {
      try {
        await tick();
      } catch (e) {
        console.error(e);
      }
    }
    if (!stopped) timer = setTimeout(run, everyMs);
  };
  run();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}
