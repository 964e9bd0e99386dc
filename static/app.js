// catalogd web UI: the few behaviours pages need, without inline scripts (the CSP forbids them).
(function () {
  "use strict";

  // htmx requests carry the session's CSRF token.
  document.addEventListener("htmx:configRequest", function (event) {
    var meta = document.querySelector('meta[name="csrf-token"]');
    if (meta) {
      event.detail.headers["X-CSRF-Token"] = meta.getAttribute("content");
    }
  });

  // Review queue keyboard shortcuts: j/k move, a approve, r reject, e edit.
  function proposals() {
    return Array.prototype.slice.call(document.querySelectorAll("article.proposal"));
  }

  function current() {
    return document.querySelector("article.proposal.current");
  }

  function select(index) {
    var items = proposals();
    if (items.length === 0) {
      return;
    }
    index = Math.max(0, Math.min(items.length - 1, index));
    items.forEach(function (item) {
      item.classList.remove("current");
      item.removeAttribute("aria-current");
    });
    items[index].classList.add("current");
    items[index].setAttribute("aria-current", "true");
    items[index].focus();
  }

  function typing(target) {
    var tag = target && target.tagName;
    return tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT" || (target && target.isContentEditable);
  }

  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey || typing(event.target)) {
      return;
    }
    var items = proposals();
    if (items.length === 0) {
      return;
    }
    var here = current();
    var index = here ? items.indexOf(here) : -1;
    var button;
    switch (event.key) {
      case "j":
        select(index + 1);
        break;
      case "k":
        select(index < 0 ? 0 : index - 1);
        break;
      case "a":
        button = here && here.querySelector("button.approve");
        if (button) { button.click(); }
        break;
      case "r":
        button = here && here.querySelector("button.reject");
        if (button) { button.click(); }
        break;
      case "e":
        var details = here && here.querySelector("details.edit");
        if (details) {
          details.open = true;
          var field = details.querySelector("textarea");
          if (field) { field.focus(); }
          event.preventDefault();
        }
        break;
      default:
        return;
    }
  });

  // Clicking into a proposal makes it the current one.
  document.addEventListener("focusin", function (event) {
    var item = event.target.closest && event.target.closest("article.proposal");
    if (item && !item.classList.contains("current")) {
      select(proposals().indexOf(item));
    }
  });
})();
