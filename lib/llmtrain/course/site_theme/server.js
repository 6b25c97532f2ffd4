// The course website's theme: a MyST site template with no dependencies but Node.js.
//
// `jupyter-book build --html` (MyST) parses the chapters, extracts their outputs,
// serves the result as JSON on a content server (CONTENT_CDN_PORT), starts this
// server (PORT), fetches every page from it and writes the static site.  This
// file turns MyST's document tree (mdast with notebook outputs) into HTML: the
// chapter text, its code cells with their outputs (plots, tables, printed
// text), and its playgrounds as their saved widget state, which the
// @jupyter-widgets/html-manager script (public/widgets/embed.js, fetched from the
// npm registry by `python -m llmtrain site`) draws in the browser.
//
// Why a theme of our own: MyST's stock themes are downloaded from the internet
// when a site is built, and the course must build offline (package registries
// only).  See lib/llmtrain/course/site.py.
'use strict';

const http = require('http');

const PORT = Number(process.env.PORT || 3000);
const HOST = process.env.HOST || 'localhost';
const CONTENT = `http://localhost:${process.env.CONTENT_CDN_PORT || 3100}`;
const BASE = (process.env.BASE_URL || '').replace(/\/$/, '');

// ---------------------------------------------------------------- helpers

function esc(text) {
  return String(text ?? '')
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;');
}

function stripAnsi(text) {
  return String(text ?? '').replace(/\x1b\[[0-9;]*[A-Za-z]/g, '');
}

async function getJson(path) {
  const resp = await fetch(CONTENT + path);
  if (!resp.ok) throw new Error(`content server: ${resp.status} for ${path}`);
  return resp.json();
}

function textOf(node) {
  if (!node) return '';
  if (typeof node.value === 'string' && !node.children) return node.value;
  return (node.children || []).map(textOf).join('');
}

// A link's address.  MyST resolves a link to another page of the site to the page's
// slug path ("/claims"), and a cross-reference to a label to that path and the
// label's html_id; pages are folders in the static site ("/claims/").
function href(node) {
  const url = node.url || '';
  const anchor = node.type === 'crossReference' && node.html_id ? `#${node.html_id}` : '';
  if (!url) return anchor || '#';
  if (url.startsWith('/') && !url.startsWith('//')) {
    const [path, fragment] = url.split('#');
    const page = path === '/' ? '/' : `${path.replace(/\/$/, '')}/`;
    return BASE + page + (fragment ? `#${fragment}` : anchor);
  }
  return url;
}

// A file MyST copied into the site's build folder ("/name-hash.png").
function asset(url) {
  return url.startsWith('/') && !url.startsWith('//') ? `${BASE}/build${url}` : url;
}

// An id for elements that are link targets ("(c1)=" before a paragraph).
function idAttr(node) {
  return node.html_id ? ` id="${esc(node.html_id)}"` : '';
}

// ------------------------------------------------------------ python code

const PY_KEYWORDS = new Set(('False None True and as assert async await break class continue def ' +
  'del elif else except finally for from global if import in is lambda nonlocal not or pass raise ' +
  'return try while with yield').split(' '));
const PY_TOKEN = /(#[^\n]*)|("""[\s\S]*?"""|'''[\s\S]*?'''|[rbfuRBFU]{0,2}"(?:\\.|[^"\\\n])*"|[rbfuRBFU]{0,2}'(?:\\.|[^'\\\n])*')|(\b\d[\d_]*(?:\.\d+)?(?:e-?\d+)?\b)|([A-Za-z_]\w*)|(\s+|.)/g;

// Colours Python source: comments, strings, numbers, keywords, function names.
function highlightPython(source) {
  let out = '';
  let previous = '';
  for (const m of source.matchAll(PY_TOKEN)) {
    const [token, comment, string, number, word] = m;
    if (comment) out += `<span class="c">${esc(token)}</span>`;
    else if (string) out += `<span class="s">${esc(token)}</span>`;
    else if (number) out += `<span class="n">${esc(token)}</span>`;
    else if (word && PY_KEYWORDS.has(word)) out += `<span class="k">${esc(token)}</span>`;
    else if (word && (previous === 'def' || previous === 'class')) out += `<span class="f">${esc(token)}</span>`;
    else out += esc(token);
    if (word) previous = word;
    else if (!/^\s+$/.test(token)) previous = '';
  }
  return out;
}

// ------------------------------------------------------------ notebook outputs

function mimeText(entry) {
  if (entry === undefined) return undefined;
  if (typeof entry === 'string') return entry;
  if (Array.isArray(entry)) return entry.join('');
  return entry.content ?? '';
}

// matplotlib's text form of a figure ("<Figure size 700x380 with 1 Axes>") says nothing.
function altText(plain) {
  return plain && !plain.startsWith('<Figure') ? plain : 'a plot made by the code above';
}

function renderOutput(data, ctx) {
  const kind = data.output_type;
  if (kind === 'stream') {
    const text = stripAnsi(mimeText(data.text));
    if (!text.trim()) return '';
    return `<pre class="output stream ${data.name === 'stderr' ? 'stderr' : ''}">${esc(text)}</pre>`;
  }
  if (kind === 'error') {
    const trace = stripAnsi((data.traceback || []).join('\n')) || `${data.ename}: ${data.evalue}`;
    return `<pre class="output error">${esc(trace)}</pre>`;
  }
  const bundle = data.data || {};
  const widget = bundle['application/vnd.jupyter.widget-view+json'];
  if (widget) {
    ctx.widgets += 1;
    const view = mimeText(widget);
    const fallback = mimeText(bundle['text/plain']) || '';
    return `<div class="output widget"><script type="application/vnd.jupyter.widget-view+json">` +
      `${typeof view === 'string' ? view : JSON.stringify(view)}</script>` +
      `<noscript><pre>${esc(fallback)}</pre></noscript></div>`;
  }
  for (const mime of ['image/png', 'image/jpeg', 'image/svg+xml', 'image/gif']) {
    const image = bundle[mime];
    if (image && image.path) {
      ctx.images += 1;
      return `<div class="output image"><img src="${esc(asset(image.path.replace(/^\/?/, '/')))}" ` +
        `alt="${esc(altText(mimeText(bundle['text/plain'])))}" loading="lazy"></div>`;
    }
  }
  const html = mimeText(bundle['text/html']);
  if (html !== undefined && html.trim()) return `<div class="output html">${html}</div>`;
  const markdown = mimeText(bundle['text/markdown']);
  if (markdown !== undefined && markdown.trim()) return `<pre class="output">${esc(markdown)}</pre>`;
  const plain = mimeText(bundle['text/plain']);
  if (plain !== undefined && plain.trim()) return `<pre class="output">${esc(stripAnsi(plain))}</pre>`;
  return '';
}

// ---------------------------------------------------------------- the tree

function children(node, ctx) {
  return (node.children || []).map((child) => render(child, ctx)).join('');
}

function headingId(node) {
  return node.html_id || node.identifier || textOf(node).toLowerCase().replace(/[^a-z0-9]+/g, '-');
}

function render(node, ctx) {
  switch (node.type) {
    case 'root':
      return children(node, ctx);
    case 'block': {
      const code = (node.children || []).some((c) => c.type === 'code' && c.executable);
      return `<section class="cell ${code ? 'code-cell' : 'text-cell'}">${children(node, ctx)}</section>`;
    }
    case 'text':
      return esc(node.value);
    case 'paragraph':
      return `<p${idAttr(node)}>${children(node, ctx)}</p>`;
    case 'heading': {
      const id = headingId(node);
      if (node.depth === 2) ctx.outline.push({ id, title: textOf(node) });
      return `<h${node.depth} id="${esc(id)}">${children(node, ctx)}` +
        `<a class="anchor" href="#${esc(id)}" aria-label="link to this section">#</a></h${node.depth}>`;
    }
    case 'strong':
      return `<strong>${children(node, ctx)}</strong>`;
    case 'emphasis':
      return `<em>${children(node, ctx)}</em>`;
    case 'delete':
      return `<del>${children(node, ctx)}</del>`;
    case 'subscript':
      return `<sub>${children(node, ctx)}</sub>`;
    case 'superscript':
      return `<sup>${children(node, ctx)}</sup>`;
    case 'break':
      return '<br>';
    case 'inlineCode':
      return `<code>${esc(node.value)}</code>`;
    case 'code': {
      const python = !node.lang || node.lang === 'python' || node.lang === 'ipython3';
      // The test suite's cell markers (# NBVAL_...) say nothing to a reader.
      const source = node.executable ? (node.value || '').replace(/^# NBVAL_\w+\n/gm, '') : node.value || '';
      const body = python ? highlightPython(source) : esc(source);
      const cls = node.executable ? 'source' : 'listing';
      return `<pre class="${cls}"><code>${body}</code></pre>`;
    }
    case 'outputs':
      return `<div class="outputs">${children(node, ctx)}</div>`;
    case 'output':
      return node.jupyter_data ? renderOutput(node.jupyter_data, ctx) : children(node, ctx);
    case 'link':
    case 'crossReference':
    case 'linkBlock': {
      const target = href(node);
      const external = /^[a-z]+:/i.test(target) && !target.startsWith(BASE + '/');
      return `<a href="${esc(target)}"${external ? ' rel="noopener"' : ''}>${children(node, ctx) || esc(target)}</a>`;
    }
    case 'list': {
      const tag = node.ordered ? 'ol' : 'ul';
      const start = node.ordered && node.start && node.start !== 1 ? ` start="${node.start}"` : '';
      return `<${tag}${idAttr(node)}${start}>${children(node, ctx)}</${tag}>`;
    }
    case 'listItem':
      return `<li>${children(node, ctx)}</li>`;
    case 'blockquote':
      return `<blockquote>${children(node, ctx)}</blockquote>`;
    case 'thematicBreak':
      return '<hr>';
    case 'table':
      return `<div class="table"${idAttr(node)}><table>${children(node, ctx)}</table></div>`;
    case 'tableRow':
      return `<tr>${children(node, ctx)}</tr>`;
    case 'tableCell': {
      const tag = node.header ? 'th' : 'td';
      const align = node.align ? ` style="text-align:${esc(node.align)}"` : '';
      return `<${tag}${align}>${children(node, ctx)}</${tag}>`;
    }
    case 'math':
      return `<div class="math">${node.html || esc(node.value)}</div>`;
    case 'inlineMath':
      return node.html || `<code>${esc(node.value)}</code>`;
    case 'image':
      return `<img src="${esc(asset(node.url || ''))}" alt="${esc(node.alt || '')}">`;
    case 'html':
      return node.value || '';
    case 'mystTarget':
      return `<span id="${esc(node.label)}"></span>`;
    case 'comment':
      return '';
    case 'admonition':
      return `<aside class="admonition ${esc(node.kind || 'note')}">${children(node, ctx)}</aside>`;
    case 'admonitionTitle':
      return `<p class="admonition-title">${children(node, ctx)}</p>`;
    case 'footnoteReference':
      return `<sup>${esc(node.enumerator || node.label || '')}</sup>`;
    case 'footnoteDefinition':
      return `<div class="footnote">${children(node, ctx)}</div>`;
    default:
      ctx.unknown.add(node.type);
      return children(node, ctx);
  }
}

// ---------------------------------------------------------------- the page

function favicon() {
  // A 16 x 16 icon in the course's colour: one 32-bit BMP inside an ICO file.
  const size = 16;
  const pixels = Buffer.alloc(size * size * 4);
  for (let i = 0; i < size * size; i += 1) pixels.writeUInt32LE(0xff2f5d8a, i * 4);
  const mask = Buffer.alloc(size * 4);
  const header = Buffer.alloc(40);
  header.writeUInt32LE(40, 0);
  header.writeInt32LE(size, 4);
  header.writeInt32LE(size * 2, 8);
  header.writeUInt16LE(1, 12);
  header.writeUInt16LE(32, 14);
  const image = Buffer.concat([header, pixels, mask]);
  const dir = Buffer.alloc(22);
  dir.writeUInt16LE(1, 2);
  dir.writeUInt16LE(1, 4);
  dir.writeUInt8(size, 6);
  dir.writeUInt8(size, 7);
  dir.writeUInt16LE(1, 10);
  dir.writeUInt16LE(32, 12);
  dir.writeUInt32LE(image.length, 14);
  dir.writeUInt32LE(22, 18);
  return Buffer.concat([dir, image]);
}

function sidebar(config, project, slug) {
  const items = [`<li class="${slug === project.index ? 'current' : ''}"><a href="${BASE}/">Home</a></li>`];
  for (const page of project.pages || []) {
    if (!page.slug) continue;
    items.push(`<li class="${page.slug === slug ? 'current' : ''}">` +
      `<a href="${BASE}/${esc(page.slug)}/">${esc(page.title)}</a></li>`);
  }
  const search = '<input id="search" type="search" placeholder="Search the course ( / )" ' +
    'aria-label="Search the course" autocomplete="off"><ol id="search-results" aria-live="polite"></ol>';
  return `<nav class="sidebar"><a class="site-title" href="${BASE}/">${esc(project.title)}</a>` +
    `${search}<details class="chapters" open><summary>Chapters</summary><ul>${items.join('')}</ul></details>` +
    // On a phone the list would push the chapter a screen down: it starts folded there.
    `<script>if (matchMedia('(max-width: 800px)').matches) document.querySelector('details.chapters').open = false;</script>` +
    '</nav>';
}

function neighbours(project, slug) {
  const slugs = [project.index, ...(project.pages || []).filter((p) => p.slug).map((p) => p.slug)];
  const titles = { [project.index]: 'Home' };
  for (const page of project.pages || []) titles[page.slug] = page.title;
  const at = slugs.indexOf(slug);
  const link = (s, rel) => {
    const url = s === project.index ? `${BASE}/` : `${BASE}/${s}/`;
    return `<a class="${rel}" href="${url}"><small>${rel === 'prev' ? 'Previous' : 'Next'}</small>${esc(titles[s])}</a>`;
  };
  return `<nav class="pager">${at > 0 ? link(slugs[at - 1], 'prev') : '<span></span>'}` +
    `${at >= 0 && at < slugs.length - 1 ? link(slugs[at + 1], 'next') : ''}</nav>`;
}

function actions(config, page, isHome) {
  const options = config.options || {};
  const location = (page.location || '').replace(/^\//, '');
  const links = [];
  if (options.binder_url && (isHome || page.kind === 'Notebook')) {
    const where = `lab/tree/${options.notebook_folder || ''}${isHome ? '' : location}`.replace(/\/$/, '');
    const label = isHome ? 'Launch the course on Binder' : 'Launch on Binder';
    links.push(`<a class="button binder" href="${esc(`${options.binder_url}?urlpath=${encodeURIComponent(where)}`)}">${label}</a>`);
  }
  const exported = ((page.frontmatter || {}).exports || []).find((e) => e.format === 'ipynb');
  if (exported && exported.url) {
    links.push(`<a class="button" href="${esc(asset(exported.url))}" download="${esc(exported.filename || location)}">Download the notebook</a>`);
  }
  if (options.repo_url && (isHome || location)) {
    const folder = page.kind === 'Notebook' ? (options.notebook_folder || '') : (options.page_folder || '');
    const url = isHome ? options.repo_url : `${options.repo_url}/blob/main/${folder}${location}`;
    links.push(`<a class="button" href="${esc(url)}">${isHome ? 'The repository' : 'Source'}</a>`);
  }
  return links.length ? `<div class="actions">${links.join('')}</div>` : '';
}

async function renderPage(config, slug) {
  const project = config.projects[0];
  const page = await getJson(`/content/${slug}.json`);
  const ctx = { outline: [], widgets: 0, images: 0, unknown: new Set() };
  const body = render(page.mdast, ctx);
  const title = (page.frontmatter || {}).title || project.title;
  const isHome = slug === project.index;
  const state = page.widgets && page.widgets['application/vnd.jupyter.widget-state+json'];
  let widgetScripts = '';
  if (ctx.widgets && state) {
    // "</" inside a script element would end it early; JSON allows "<\/".
    const json = JSON.stringify(state).replace(/<\//g, '<\\/');
    widgetScripts = `<script type="application/vnd.jupyter.widget-state+json">${json}</script>` +
      `<script src="${BASE}/widgets/embed.js" defer></script>`;
  }
  if (ctx.unknown.size) console.error(`page ${slug}: shown without markup: ${[...ctx.unknown].join(', ')}`);
  const outline = !isHome && ctx.outline.length
    ? `<aside class="outline"><p>On this page</p><ul>${ctx.outline.map((h) => `<li><a href="#${esc(h.id)}">${esc(h.title)}</a></li>`).join('')}</ul></aside>`
    : '';
  const heading = `<h1 class="title">${esc(title)}</h1>`;
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(isHome ? project.title : `${title} | ${project.title}`)}</title>
<link rel="icon" href="${BASE}/favicon.ico">
<link rel="stylesheet" href="${BASE}/myst-theme.css">
<link rel="stylesheet" href="${BASE}/katex/katex.min.css" onerror="this.remove()">
</head>
<body class="${isHome ? 'home' : 'chapter'}" data-base="${esc(BASE)}">
${sidebar(config, project, slug)}
<main>
<article>
${heading}
${actions(config, page, isHome)}
${body}
${neighbours(project, slug)}
</article>
${outline}
</main>
${widgetScripts}
<script src="${BASE}/search.js" defer></script>
</body>
</html>
`;
}

function sitemap(config) {
  const project = config.projects[0];
  const urls = [`${BASE}/`, ...(project.pages || []).filter((p) => p.slug).map((p) => `${BASE}/${p.slug}/`)];
  return `<?xml version="1.0" encoding="UTF-8"?>\n<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">\n` +
    urls.map((u) => `  <url><loc>${esc(u)}</loc></url>`).join('\n') + '\n</urlset>\n';
}

const SITEMAP_STYLE = `<?xml version="1.0" encoding="UTF-8"?>
<xsl:stylesheet version="1.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform">
<xsl:template match="/"><html><body><xsl:apply-templates/></body></html></xsl:template>
</xsl:stylesheet>
`;

// ---------------------------------------------------------------- routes

async function answer(url) {
  const path = decodeURIComponent(new URL(url, 'http://x').pathname).replace(/^\/+/, '').replace(/\/+$/, '');
  const config = await getJson('/config.json');
  const project = config.projects[0];
  if (path === '' || path === 'index.html') return ['text/html', await renderPage(config, project.index)];
  if (path === 'myst-theme.css') return ['text/css', require('fs').readFileSync(`${__dirname}/course.css`)];
  if (path === 'robots.txt') return ['text/plain', 'User-agent: *\nAllow: /\n'];
  if (path === 'favicon.ico') return ['image/x-icon', favicon()];
  if (path === 'sitemap.xml') return ['application/xml', sitemap(config)];
  if (path === 'sitemap_style.xsl') return ['application/xml', SITEMAP_STYLE];
  if (path.endsWith('.json')) {
    const slug = path.slice(0, -'.json'.length);
    return ['application/json', JSON.stringify(await getJson(`/content/${slug}.json`))];
  }
  const slugs = new Set([project.index, ...(project.pages || []).map((p) => p.slug)]);
  if (slugs.has(path)) return ['text/html', await renderPage(config, path)];
  return null;
}

http
  .createServer(async (req, res) => {
    try {
      const found = await answer(req.url);
      if (!found) {
        res.writeHead(404, { 'Content-Type': 'text/plain' });
        res.end(`no page at ${req.url}\n`);
        return;
      }
      res.writeHead(200, { 'Content-Type': `${found[0]}; charset=utf-8` });
      res.end(found[1]);
    } catch (error) {
      console.error(`error rendering ${req.url}: ${error.stack || error}`);
      res.writeHead(500, { 'Content-Type': 'text/plain' });
      res.end(`error rendering ${req.url}\n`);
    }
  })
  .listen(PORT, HOST, () => console.log(`The course theme is serving on http://${HOST}:${PORT}`));
