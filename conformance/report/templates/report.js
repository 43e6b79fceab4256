(function () {
  function key(cell) {
    var t = (cell ? cell.textContent : '').trim();
    if (t === '' || t === '—') return null;
    if (t === '∞') return Infinity;
    var n = Number(t.replace(/%$/, ''));
    return isNaN(n) ? t.toLowerCase() : n;
  }
  function cmp(a, b) {
    if (typeof a === typeof b) return a < b ? -1 : a > b ? 1 : 0;
    return typeof a === 'number' ? -1 : 1;
  }
  document.querySelectorAll('table.sortable').forEach(function (table) {
    var head = table.tHead; if (!head || !table.tBodies.length) return;
    var row = head.rows[head.rows.length - 1];
    Array.prototype.forEach.call(row.cells, function (th, i) {
      th.classList.add('sortkey'); th.title = 'click to sort';
      th.addEventListener('click', function () {
        var dir = th.classList.contains('asc') ? -1 : 1;
        Array.prototype.forEach.call(row.cells, function (o) { o.classList.remove('asc', 'desc'); });
        th.classList.add(dir === 1 ? 'asc' : 'desc');
        var body = table.tBodies[0], rows = Array.prototype.slice.call(body.rows);
        rows.sort(function (a, b) {
          var ka = key(a.cells[i]), kb = key(b.cells[i]);
          if (ka === null || kb === null) return ka === kb ? 0 : ka === null ? 1 : -1;  // blanks last
          return dir * cmp(ka, kb);
        });
        rows.forEach(function (r) { body.appendChild(r); });
      });
    });
  });
  document.querySelectorAll('.filterbar').forEach(function (bar) {
    var table = document.getElementById(bar.getAttribute('data-table'));
    if (!table || !table.tBodies.length) return;
    var text = bar.querySelector('input[type=search]'), status = bar.querySelector('select'),
        failing = bar.querySelector('input[type=checkbox]'), count = bar.querySelector('.count');
    function apply() {
      var words = text.value.toLowerCase().split(/\s+/).filter(Boolean), shown = 0, rows = table.tBodies[0].rows;
      Array.prototype.forEach.call(rows, function (r) {
        var txt = r.textContent.toLowerCase();
        var ok = words.every(function (w) { return txt.indexOf(w) >= 0; });
        if (ok && status && status.value) ok = r.querySelector('td.st-' + status.value) !== null;
        if (ok && failing && failing.checked)
          ok = r.querySelector('td.stcell:not(.st-pass):not(.st-unsupported)') !== null;
        r.style.display = ok ? '' : 'none'; if (ok) shown++;
      });
      if (count) count.textContent = shown + ' of ' + rows.length + ' rows shown';
    }
    [text, status, failing].forEach(function (el) {
      if (el) { el.addEventListener('input', apply); el.addEventListener('change', apply); }
    });
    apply();
  });
})();
(function () {
  // A jump to a row inside a collapsed table opens its <details> first, so that it lands on the row.
  function reveal(id) {
    var target = id && document.getElementById(id);
    for (var node = target; node; node = node.parentElement) if (node.tagName === 'DETAILS') node.open = true;
    return target;
  }
  document.addEventListener('click', function (event) {
    var link = event.target.closest && event.target.closest('a[href^="#"]');
    if (link) reveal(decodeURIComponent(link.getAttribute('href').slice(1)));
  });
  var first = location.hash && reveal(decodeURIComponent(location.hash.slice(1)));
  if (first) first.scrollIntoView();
})();
