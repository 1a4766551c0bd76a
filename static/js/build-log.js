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

  // Other parts of the page swap too, sometimes between this panel's swap
  // and its settle, so only swaps of the build panel itself count.
  function isBuildPanelSwap(event) {
    const target = event.detail && event.detail.target;
    return Boolean(target && target.id === "release-build");
  }

  document.addEventListener("htmx:beforeSwap", function (event) {
    const pre = buildLog();
    if (pre && isBuildPanelSwap(event)) {
      followEnd = isAtEnd(pre);
      savedScrollTop = pre.scrollTop;
    }
  });

  document.addEventListener("htmx:afterSettle", function (event) {
    const pre = buildLog();
    if (pre && isBuildPanelSwap(event)) {
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
