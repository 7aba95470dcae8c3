// The dashboard's live parts: sections with data-refresh are fetched again every few
// seconds and replaced in place; the log follows a server-sent event stream.
"use strict";
(function () {
  function refresh(el) {
    var every = parseInt(el.dataset.every || "2000", 10);
    function tick() {
      fetch(el.dataset.refresh, { credentials: "same-origin", headers: { Accept: "text/html" } })
        .then(function (r) { return r.ok ? r.text() : null; })
        .then(function (html) { if (html !== null) el.innerHTML = html; })
        .catch(function () {})
        .finally(function () { setTimeout(tick, every); });
    }
    setTimeout(tick, every);
  }
  document.querySelectorAll("[data-refresh]").forEach(refresh);

  var log = document.getElementById("log");
  var form = document.getElementById("log-filters");
  if (!log || !window.EventSource) return;
  var source = null;
  function follow() {
    if (source) source.close();
    var params = new URLSearchParams(new FormData(form));
    log.textContent = "";
    source = new EventSource(log.dataset.stream + "?" + params.toString());
    source.onmessage = function (e) {
      var line = JSON.parse(e.data);
      var atBottom = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
      log.appendChild(document.createTextNode(line.time + " " + line.source + "[" + line.dyno + "]: " + line.text + "\n"));
      while (log.childNodes.length > 1500) log.removeChild(log.firstChild);
      if (atBottom) log.scrollTop = log.scrollHeight;
    };
  }
  form.addEventListener("change", follow);
  form.addEventListener("submit", function (e) { e.preventDefault(); follow(); });
  follow();
})();
