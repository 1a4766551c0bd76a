// Live charts on the release page: request rate, error rate and p95 latency per version.
// Polls the release's metrics URL every 2 s with uPlot (static/vendor/uplot) and stops
// after the first response that says the release is final.
(function () {
  "use strict";

  var POLL_MS = 2000;
  var COLORS = ["#3b6ee6", "#e08a1e", "#1e7a3c", "#b3261e", "#7b3fc4", "#5d6675"];
  var root = document.getElementById("release-charts");
  if (!root || !window.uPlot) {
    return;
  }

  var charts = {};
  var timer = null;

  function chartWidth(element) {
    return Math.max(240, element.clientWidth || 300);
  }

  // Join the versions' points on one time axis, as uPlot wants: [times, values per version...].
  function align(versions, metric) {
    var times = {};
    versions.forEach(function (series) {
      series.points.forEach(function (point) { times[point.t] = true; });
    });
    var axis = Object.keys(times).map(Number).sort(function (a, b) { return a - b; });
    var data = [axis];
    versions.forEach(function (series) {
      var byTime = {};
      series.points.forEach(function (point) { byTime[point.t] = point[metric]; });
      data.push(axis.map(function (t) { return t in byTime ? byTime[t] : null; }));
    });
    return data;
  }

  function timeLabels(u, splits) {
    return splits.map(function (seconds) {
      return new Date(seconds * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false });
    });
  }

  function build(element, versions, data) {
    var unit = element.dataset.unit;
    var series = [{}].concat(versions.map(function (entry, index) {
      return {
        label: entry.label,
        stroke: COLORS[index % COLORS.length],
        width: 2,
        spanGaps: false,
        value: function (u, v) { return v == null ? "–" : v.toFixed(2) + " " + unit; }
      };
    }));
    return new window.uPlot({
      width: chartWidth(element),
      height: 180,
      series: series,
      axes: [{ values: timeLabels, space: 70 }, { size: 60 }],
      scales: { x: { time: true } }
    }, data, element);
  }

  function draw(versions) {
    var empty = root.querySelector(".chart-empty");
    empty.hidden = versions.some(function (entry) { return entry.points.length > 0; });

    root.querySelectorAll(".chart").forEach(function (element) {
      var metric = element.dataset.metric;
      var data = align(versions, metric);
      var key = versions.map(function (entry) { return entry.label; }).join(",");
      var chart = charts[metric];
      if (chart && chart.key === key) {
        chart.plot.setData(data);
        return;
      }
      if (chart) {
        chart.plot.destroy();
      }
      charts[metric] = { key: key, plot: build(element, versions, data) };
    });
  }

  function poll() {
    fetch(root.dataset.url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) {
        if (!response.ok) {
          throw new Error("metrics request failed with status " + response.status);
        }
        return response.json();
      })
      .then(function (body) {
        draw(body.versions);
        if (!body.final) {
          timer = window.setTimeout(poll, POLL_MS);
        }
      })
      .catch(function (error) {
        console.warn("Release charts stopped:", error);
      });
  }

  window.addEventListener("resize", function () {
    Object.keys(charts).forEach(function (metric) {
      var element = root.querySelector('.chart[data-metric="' + metric + '"]');
      charts[metric].plot.setSize({ width: chartWidth(element), height: 180 });
    });
  });

  poll();
})();
