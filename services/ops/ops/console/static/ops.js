// CalHub ops console: a few behaviours, no framework and no build step.
(function () {
  "use strict";
  // Sparkline bar heights (set from JS: the Content-Security-Policy forbids inline style attributes).
  document.querySelectorAll(".spark i[data-h]").forEach(function (bar) {
    bar.style.height = Math.max(2, Number(bar.getAttribute("data-h"))) + "%";
  });
  // "Select all" checkbox of the dead-letter list.
  document.querySelectorAll("input[data-select-all]").forEach(function (box) {
    box.addEventListener("change", function () {
      var name = box.getAttribute("data-select-all");
      box.form.querySelectorAll('input[type=checkbox][name="' + name + '"]').forEach(function (item) {
        item.checked = box.checked;
      });
    });
  });
  // Timeline search: the chosen kind becomes the query parameter's name.
  var kind = document.querySelector("select[data-kind]");
  var value = document.getElementById("value");
  if (kind && value) {
    kind.addEventListener("change", function () { value.name = kind.value; });
  }
  // Auto-refresh of the overview, paused while the user is typing or has text selected.
  var refresh = document.querySelector("[data-refresh]");
  if (refresh) {
    var seconds = Number(refresh.getAttribute("data-refresh")) || 15;
    setInterval(function () {
      var active = document.activeElement;
      var typing = active && (active.tagName === "INPUT" || active.tagName === "SELECT");
      if (!typing && String(window.getSelection()) === "") { window.location.reload(); }
    }, seconds * 1000);
  }
})();
