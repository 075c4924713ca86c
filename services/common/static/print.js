// Shows the Print button of a recovery code list and prints the page (style.css prints only the
// codes). Without JavaScript the button stays hidden and the browser's own Print does the same.
document.addEventListener("DOMContentLoaded", function () {
  var button = document.getElementById("print-codes");
  if (!button) { return; }
  button.hidden = false;
  button.addEventListener("click", function () { window.print(); });
});
