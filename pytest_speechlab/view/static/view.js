// speechlab view: the live progress of a run in progress, and the trend plots (plotly, served by
// this viewer). Data reaches scripts only as JSON; every value becomes text, never markup.
(function () {
  "use strict";

  function fmt(v, digits) {
    return typeof v === "number" && isFinite(v) ? v.toFixed(digits === undefined ? 3 : digits) : "-";
  }

  function cell(row, text, numeric) {
    var td = document.createElement("td");
    td.textContent = text;
    if (numeric) td.className = "n";
    row.appendChild(td);
  }

  function live() {
    var section = document.getElementById("live");
    if (!section || section.dataset.status === "complete") return;
    var every = parseInt(section.dataset.refreshMs, 10) || 2000;
    function poll() {
      fetch(section.dataset.progress, {credentials: "same-origin", cache: "no-store"})
        .then(function (r) { if (!r.ok) throw new Error(String(r.status)); return r.json(); })
        .then(function (p) {
          if (p.status === "complete") { window.location.reload(); return; }
          document.getElementById("live-summary").textContent = "In progress: " + p.done + " of " + p.total +
            " utterances written (refreshes by itself every " + Math.round(every / 1000) + " s).";
          var body = document.querySelector("#live-table tbody");
          var rows = document.createDocumentFragment();
          p.evaluations.forEach(function (e) {
            var tr = document.createElement("tr");
            cell(tr, e.model); cell(tr, e.dataset); cell(tr, String(e.done), true);
            cell(tr, e.total === null ? "-" : String(e.total), true); cell(tr, fmt(e.wer), true); cell(tr, fmt(e.rtf), true);
            rows.appendChild(tr);
          });
          body.replaceChildren(rows);
          section.dataset.updated = String(Date.now());
          window.setTimeout(poll, every);
        })
        .catch(function () { window.setTimeout(poll, every * 2); });
    }
    window.setTimeout(poll, every);
  }

  function plain(s) {  // model identities come from outside: no markup in Plotly's hover text
    return String(s).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
  }

  function plots() {
    if (typeof window.Plotly === "undefined") return;
    document.querySelectorAll(".plot[data-series]").forEach(function (div) {
      var data = JSON.parse(document.getElementById(div.dataset.series).textContent);
      var xs = [], ys = [], up = [], down = [], text = [], symbols = [], shapes = [];
      data.points.forEach(function (p, i) {
        var f = p.figures[data.metric];
        xs.push((i + 1) + " · " + p.commit);
        ys.push(f.value);
        up.push(f.ci ? f.ci[1] - f.value : 0);
        down.push(f.ci ? f.value - f.ci[0] : 0);
        text.push("run " + p.run_id.slice(0, 8) + (p.baselines.length ? " (baseline " + p.baselines.join(", ") + ")" : "")
                  + (p.changes.length ? "<br>changed: " + plain(p.changes.join("; ")) : ""));
        symbols.push(p.baselines.length ? "star" : p.changes.length ? "diamond" : "circle");
        if (p.changes.length) {  // a dashed line where the model or the machine changed
          shapes.push({type: "line", xref: "x", yref: "paper", x0: xs[i], x1: xs[i], y0: 0, y1: 1,
                       line: {color: "#c25400", width: 1, dash: "dash"}});
        }
      });
      var trace = {x: xs, y: ys, text: text, mode: "lines+markers", type: "scatter", name: data.label,
                   hovertemplate: "%{x}<br>" + data.label + " %{y:.3f}<br>%{text}<extra></extra>",
                   marker: {size: symbols.map(function (s) { return s === "star" ? 16 : 9; }), symbol: symbols, color: "#0b4f9c"},
                   line: {color: "#0b4f9c"},
                   error_y: {type: "data", symmetric: false, array: up, arrayminus: down, color: "#555", visible: true}};
      var layout = {margin: {l: 60, r: 20, t: 10, b: 60}, xaxis: {title: {text: "run, in commit order"}, type: "category"},
                    yaxis: {title: {text: data.label}, rangemode: "tozero"}, font: {color: "#1a1a1a"}, showlegend: false,
                    shapes: shapes};
      window.Plotly.newPlot(div, [trace], layout, {displayModeBar: false, responsive: true}).then(function () {
        div.dataset.points = String(data.points.length);
        div.dataset.changes = String(shapes.length);
      });
    });
  }

  function scrollers() {  // a table wider than the page scrolls in its box, which the keyboard can then reach
    document.querySelectorAll(".scroll").forEach(function (box) {
      if (box.scrollWidth > box.clientWidth) {
        var caption = box.querySelector("caption");
        box.setAttribute("tabindex", "0");
        box.setAttribute("role", "region");
        box.setAttribute("aria-label", (caption ? caption.textContent : "table") + " (scrolls sideways)");
      } else {
        ["tabindex", "role", "aria-label"].forEach(function (a) { box.removeAttribute(a); });
      }
    });
  }

  // a MUSHRA slider shows its value beside it (the page works without: the form posts the slider)
  function sliders() {
    document.querySelectorAll("fieldset.mushra input[type=range]").forEach(function (input) {
      var shown = document.querySelector("output[for='" + input.id + "']");
      if (shown) input.addEventListener("input", function () { shown.textContent = input.value; });
    });
  }

  document.addEventListener("DOMContentLoaded", function () { live(); plots(); scrollers(); sliders(); });
  window.addEventListener("resize", scrollers);
})();
