// Keep the release page's build log scrolled to its end as htmx reloads it,
// unless the reader has scrolled up to read earlier lines.
(function () {
  "use strict";

  let followEnd = true;
  let savedScrollTop = 0;

  function buildLog() {
    return document.querySelector("#release-build .build-log");
  }

  function isAtEnd(pre) {
    return pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
  }

  document.addEventListener("htmx:beforeSwap", function () {
    const pre = buildLog();
    if (pre) {
      followEnd = isAtEnd(pre);
      savedScrollTop = pre.scrollTop;
    }
  });

  document.addEventListener("htmx:afterSettle", function () {
    const pre = buildLog();
    if (pre) {
      pre.scrollTop = followEnd ? pre.scrollHeight : savedScrollTop;
    }
  });

  document.addEventListener("DOMContentLoaded", function () {
    const pre = buildLog();
    if (pre) {
      pre.scrollTop = pre.scrollHeight;
    }
  });
})();
