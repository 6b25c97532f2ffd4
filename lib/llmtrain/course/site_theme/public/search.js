// Search the course: the box in the chapter list looks through the index MyST writes
// (myst.search.json: every heading and paragraph with its page and section), loaded
// the first time the box is used. All words must appear; words in a heading count more.
'use strict';
(function () {
  const input = document.getElementById('search');
  const list = document.getElementById('search-results');
  if (!input || !list) return;
  const base = document.body.dataset.base || '';
  let records = null;
  let loading = null;

  function load() {
    loading = loading || fetch(`${base}/myst.search.json`)
      .then((resp) => (resp.ok ? resp.json() : { records: [] }))
      .then((index) => {
        records = index.records || [];
        for (const r of records) {
          r.title = Object.keys(r.hierarchy || {}).sort().map((k) => r.hierarchy[k]).filter(Boolean).join(' › ');
          r.haystack = `${r.title}\n${r.content || ''}`.toLowerCase();
        }
        return records;
      });
    return loading;
  }

  function address(url) {
    const [path, hash] = url.split('#');
    const page = !path || path === '/' ? '/' : `${path.replace(/\/$/, '')}/`;
    return base + page + (hash ? `#${hash}` : '');
  }

  // A piece of the paragraph around the first word found, with the words marked.
  function snippet(record, words) {
    const text = (record.content || '').replace(/\s+/g, ' ');
    const lower = text.toLowerCase();
    const at = Math.max(0, Math.min(...words.map((w) => lower.indexOf(w)).filter((i) => i >= 0), text.length));
    const start = Math.max(0, at - 50);
    const piece = (start > 0 ? '…' : '') + text.slice(start, start + 160) + (start + 160 < text.length ? '…' : '');
    const out = document.createElement('span');
    const pattern = new RegExp(`(${words.map((w) => w.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('|')})`, 'gi');
    for (const part of piece.split(pattern)) {
      if (!part) continue;
      const node = words.includes(part.toLowerCase()) ? document.createElement('mark') : document.createTextNode(part);
      if (node.nodeType === 1) node.textContent = part;
      out.appendChild(node);
    }
    return out;
  }

  function search(query) {
    const words = query.toLowerCase().split(/\s+/).filter((w) => w.length > 1);
    if (!words.length) return [];
    const best = new Map();
    for (const r of records) {
      if (!words.every((w) => r.haystack.includes(w))) continue;
      const titleText = r.title.toLowerCase();
      const score = words.reduce((s, w) => s + (titleText.includes(w) ? 5 : 1), 0) - r.position / 1e4;
      const seen = best.get(r.url);
      if (!seen || seen.score < score || (!seen.record.content && r.content)) best.set(r.url, { record: r, score });
    }
    return [...best.values()].sort((a, b) => b.score - a.score).slice(0, 12).map((x) => x.record);
  }

  async function show() {
    const query = input.value.trim();
    if (query.length < 2) { list.replaceChildren(); return; }
    await load();
    if (query !== input.value.trim()) return;          // a newer search is on its way
    list.replaceChildren();
    const words = query.toLowerCase().split(/\s+/).filter((w) => w.length > 1);
    const found = search(query);
    if (!found.length) {
      const li = document.createElement('li');
      li.className = 'none';
      li.textContent = `Nothing in the course matches “${query}”.`;
      list.appendChild(li);
      return;
    }
    for (const r of found) {
      const li = document.createElement('li');
      const a = document.createElement('a');
      a.href = address(r.url);
      const title = document.createElement('strong');
      title.textContent = r.title;
      a.appendChild(title);
      if (r.content) a.appendChild(snippet(r, words));
      li.appendChild(a);
      list.appendChild(li);
    }
  }

  input.addEventListener('input', () => { show(); });
  input.addEventListener('keydown', (e) => {
    if (e.key === 'Escape') { input.value = ''; list.replaceChildren(); }
    if (e.key === 'Enter') { const first = list.querySelector('a'); if (first) first.click(); }
  });
  document.addEventListener('keydown', (e) => {
    if (e.key === '/' && document.activeElement !== input && !/input|textarea|select/i.test(document.activeElement.tagName)) {
      e.preventDefault();
      input.focus();
    }
  });
})();
