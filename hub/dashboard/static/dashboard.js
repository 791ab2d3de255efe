// Fleet dashboard: reload the parts of a page marked data-refresh (the URL of that part)
// every data-every seconds, and submit a filter when its choice changes. A reloaded part
// may carry <template data-replaces="ID">: its content replaces that of element ID
// elsewhere on the page (a device's heading). Every page works without this script; it
// only saves a reload.
"use strict";

function fillElsewhere(template) {
  const target = document.getElementById(template.dataset.replaces);
  if (target) {
    target.replaceChildren(template.content.cloneNode(true));
  }
}

function refreshEvery(element) {
  const every = Math.max(1, Number(element.dataset.every || 5)) * 1000;
  const tick = async () => {
    try {
      const response = await fetch(element.dataset.refresh, {
        credentials: "same-origin",
        headers: { "Accept": "text/html" },
      });
      if (response.redirected && new URL(response.url).pathname === "/login") {
        window.location.reload(); // the session ended: the page goes to the login form
        return;
      }
      if (response.ok) {
        element.innerHTML = await response.text();
        element.classList.remove("stale");
        element.querySelectorAll("template[data-replaces]").forEach(fillElsewhere);
      } else {
        element.classList.add("stale");
      }
    } catch (error) {
      element.classList.add("stale"); // the hub is unreachable: keep what is shown
    }
    window.setTimeout(tick, every);
  };
  window.setTimeout(tick, every);
}

document.querySelectorAll("[data-refresh]").forEach(refreshEvery);
document.querySelectorAll("select[data-submit]").forEach((select) => {
  select.addEventListener("change", () => select.form.submit());
});
