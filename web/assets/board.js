// Live updates: follow the log over server-sent events and, when the read
// models have moved, fetch this page again and swap its live part in place.
// No reload, no framework; the page works without this script too.
(function () {
  "use strict";
  var live = document.getElementById("live");
  if (!live || !window.EventSource) {
    return;
  }
  var after = document.body.getAttribute("data-position") || "0";
  var source = new EventSource("/live?after=" + encodeURIComponent(after));
  var fetching = false;
  var again = false;

  function refresh() {
    if (fetching) {
      again = true;
      return;
    }
    fetching = true;
    fetch(window.location.href, { credentials: "same-origin", headers: { "X-Board-Live": "1" } })
      .then(function (response) {
        if (!response.ok) {
          throw new Error("status " + response.status);
        }
        return response.text();
      })
      .then(function (text) {
        var page = new DOMParser().parseFromString(text, "text/html");
        var fresh = page.getElementById("live");
        if (fresh) {
          live.innerHTML = fresh.innerHTML;
          var position = page.body.getAttribute("data-position");
          if (position) {
            document.body.setAttribute("data-position", position);
          }
        }
      })
      .catch(function () {
        // The next event tries again; the page keeps what it shows.
      })
      .then(function () {
        fetching = false;
        if (again) {
          again = false;
          refresh();
        }
      });
  }

  source.addEventListener("moved", refresh);
})();
