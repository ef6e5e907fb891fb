// The dashboard's only script: follow the server's events, and copy a record.
// Without it the pages still work: reload to see changes.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const live = document.getElementById("live");
  if (live && live.dataset.events && window.EventSource) {
    const es = new EventSource(live.dataset.events);
    // Replacing the live part must not throw a keyboard user's focus away: the link
    // that had it gets it back.
    const update = (e) => {
      const focused = live.contains(document.activeElement) ? document.activeElement.getAttribute("href") : null;
      live.innerHTML = e.data;
      if (focused) {
        const again = Array.from(live.querySelectorAll("a[href]")).find((a) => a.getAttribute("href") === focused);
        if (again) again.focus();
      }
    };
    es.addEventListener("releases", update);
    es.addEventListener("release", update);
  }
  for (const b of document.querySelectorAll("button.copy")) {
    b.addEventListener("click", async () => {
      const r = await fetch(b.dataset.copy);
      const text = await r.text();
      try {
        await navigator.clipboard.writeText(text);
        b.textContent = "Copied";
      } catch (err) {
        b.textContent = "Copy failed: " + err;
      }
    });
  }
});
