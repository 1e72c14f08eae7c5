// sql-traits console: the chart's hover card and series toggles. No dependencies.
(function () {
  "use strict";
  var wrap = document.getElementById("chart");
  var dataNode = document.getElementById("chart-data");
  if (!wrap || !dataNode) return;
  var chart = JSON.parse(dataNode.textContent);
  var tip = wrap.querySelector(".tip");
  var svg = wrap.querySelector("svg");
  if (!svg) return;
  function fmt(n) { return n === null || n === undefined ? "–" : Number(n).toLocaleString("en-US"); }
  function esc(s) { return String(s).replace(/[&<>"]/g, function (c) { return {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"}[c]; }); }
  svg.querySelectorAll("rect.hover").forEach(function (rect) {
    rect.addEventListener("mouseenter", function () {
      var p = chart.points[Number(rect.dataset.index)];
      var rows = chart.series.map(function (s) { return "<tr><td>" + s + "</td><td class=n>" + fmt(p[s]) + "</td></tr>"; }).join("");
      if (p.exit_limit !== null) rows += "<tr><td>exit limit</td><td class=n>" + fmt(p.exit_limit) + "</td></tr>";
      if (p.change_limit !== null) rows += "<tr><td>change limit</td><td class=n>" + fmt(p.change_limit) + "</td></tr>";
      var dests = Object.keys(p.destinations).map(function (d) {
        var c = p.destinations[d];
        return "<div>" + esc(d) + ": +" + fmt(c.added) + " ~" + fmt(c.changed) + " −" + fmt(c.exited) + " · sent " + fmt(c.sent) + (c.failed ? ", failed " + fmt(c.failed) : "") + "</div>";
      }).join("");
      tip.innerHTML = "<strong>" + esc(p.started_at.replace("T", " ").slice(0, 19)) + "</strong> · " + esc(p.status) +
        "<table>" + rows + "</table>" + dests + "<div style='opacity:.7'>" + esc(p.run_id) + " (click to open)</div>";
      var box = svg.getBoundingClientRect(), r = rect.getBoundingClientRect();
      var left = r.left - box.left + r.width / 2 + 12;
      if (left > box.width - 220) left = left - 240;
      tip.style.left = left + "px";
      tip.hidden = false;
    });
    rect.addEventListener("mouseleave", function () { tip.hidden = true; });
    rect.addEventListener("click", function () { window.location.href = "/runs/" + encodeURIComponent(rect.dataset.run); });
  });
  document.querySelectorAll(".legend .key[data-series]").forEach(function (key) {
    key.addEventListener("click", function () {
      key.classList.toggle("off");
      svg.querySelectorAll('[data-series="' + key.dataset.series + '"]').forEach(function (el) { el.classList.toggle("hidden"); });
    });
  });
})();
