// New records without a reload: the page listens to its event stream (data-live) and, on a
// record, fetches itself again and swaps its <main> in place. No data comes in the event.
"use strict";
(function () {
  const url = document.body.dataset.live;
  if (!url || !window.EventSource) return;
  let busy = false, again = false;
  async function refresh() {
    if (busy) { again = true; return; }
    busy = true;
    try {
      const answer = await fetch(window.location.href, { credentials: "same-origin" });
      if (answer.ok) {
        const page = new DOMParser().parseFromString(await answer.text(), "text/html");
        const fresh = page.querySelector("main");
        if (fresh) document.querySelector("main").replaceWith(fresh);
        document.body.dataset.updates = String(Number(document.body.dataset.updates || 0) + 1);
      }
    } finally {
      busy = false;
      if (again) { again = false; refresh(); }
    }
  }
  const source = new EventSource(url);
  source.addEventListener("open", () => { document.body.dataset.liveState = "open"; });
  source.addEventListener("record", refresh);
})();
