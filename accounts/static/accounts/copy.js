/* The licence keys' Copy buttons on the order page.

   Served from our own origin under the page's CSP (`script-src 'self'`): no inline script,
   no inline handler, no framework. Without it the buttons stay hidden and the key is still
   selectable (one click selects all of it: `user-select: all` in store.css). */
(function () {
  "use strict";

  var CLEAR_AFTER_MS = 4000;

  function select(node) {
    var range = document.createRange();
    range.selectNodeContents(node);
    var selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
  }

  // The fallback: select the key, then ask the browser to copy the selection. When it
  // cannot, the key stays selected for the buyer to copy themselves.
  function copyBySelecting(node) {
    select(node);
    try {
      return document.execCommand("copy");
    } catch (error) {
      return false;
    }
  }

  function setUp(button) {
    var key = document.getElementById(button.getAttribute("data-copy-target"));
    var status = document.getElementById(button.getAttribute("data-copy-status"));
    if (!key || !status) {
      return;
    }
    var timer = null;
    // The words come from the page (translated there); English when a page has none.
    var copiedText = button.getAttribute("data-copied") || "Copied";
    var selectedText =
      button.getAttribute("data-selected") || "Selected: press Ctrl+C (\u2318C on a Mac) to copy";

    function say(text, copied) {
      window.clearTimeout(timer);
      // Emptied first, so a second copy is announced again by screen readers.
      status.textContent = "";
      button.classList.remove("is-copied");
      timer = window.setTimeout(function () {
        status.textContent = text;
        button.classList.toggle("is-copied", copied);
        timer = window.setTimeout(function () {
          status.textContent = "";
          button.classList.remove("is-copied");
        }, CLEAR_AFTER_MS);
      }, 50);
    }

    function fallback() {
      if (copyBySelecting(key)) {
        say(copiedText, true);
      } else {
        say(selectedText, false);
      }
    }

    button.addEventListener("click", function () {
      var text = key.textContent.trim();
      if (navigator.clipboard && typeof navigator.clipboard.writeText === "function") {
        navigator.clipboard.writeText(text).then(function () {
          say(copiedText, true);
        }, fallback);
      } else {
        fallback();
      }
    });
    button.hidden = false;
  }

  var buttons = document.querySelectorAll("button[data-copy-target]");
  for (var i = 0; i < buttons.length; i += 1) {
    setUp(buttons[i]);
  }
})();
