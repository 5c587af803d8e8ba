// Page-side helpers for tests/browser/test_editor.py, evaluated once in ComfyUI's editor page.
// Everything hangs off window.__fooocusTest; each function returns plain JSON for the DevTools protocol.
(() => {
  const T = {};
  const PACK_PREFIX = 'FooocusInpaint_';
  T.done = [];
  app.api.addEventListener('execution_success', (e) => T.done.push({ ok: true, id: e.detail.prompt_id }));
  app.api.addEventListener('execution_error', (e) =>
    T.done.push({ ok: false, id: e.detail.prompt_id, error: `${e.detail.node_type}: ${e.detail.exception_message}` }));

  const visible = (el) => !!(el && el.offsetParent !== null && el.getBoundingClientRect().height > 0);
  // open dialogs (PrimeVue): the missing-nodes / missing-models warnings, error reports, ...
  T.openDialogs = () => [...document.querySelectorAll('.p-dialog')].filter(visible).map((d) => d.innerText.slice(0, 500));
  T.closeDialogs = () => {
    for (const d of document.querySelectorAll('.p-dialog')) {
      const b = d.querySelector('.p-dialog-close-button, button[aria-label="Close"]');
      if (b) b.click();
    }
  };

  // the "Introducing Nodes 2.0" banner only takes room in screenshots
  T.dismissBanner = () => {
    const banner = [...document.querySelectorAll('div')].find(
      (d) => d.children.length && d.innerText.startsWith('Introducing Nodes 2.0') && d.querySelector('button'));
    if (!banner) return false;
    const root = banner.parentElement || banner;
    const close = [...root.querySelectorAll('button')].find((b) => !b.innerText.trim());
    if (close) close.click();
    return !!close;
  };

  // every node type of this pack as the frontend registered it (its node definition: what the tooltips,
  // titles and the node library are built from) and as an instance on the canvas
  T.packNodeDefs = () => {
    const out = {};
    for (const [type, cls] of Object.entries(LiteGraph.registered_node_types)) {
      if (!type.startsWith(PACK_PREFIX)) continue;
      const def = cls.nodeData || {};
      const node = LiteGraph.createNode(type);
      // added and removed again, so that the frontend's own clean-up drops its DOM widgets
      if (node) app.graph.add(node);
      out[type] = {
        display_name: def.display_name, category: def.category, description: def.description,
        search_aliases: def.search_aliases || null,
        title: node ? node.title : null,
        inputs: Object.fromEntries(Object.entries(def.inputs || {}).map(([k, v]) => [k, {
          tooltip: v.tooltip || null, advanced: !!v.advanced, type: v.type }])),
        outputs: (def.outputs || []).map((o) => ({ name: o.name, tooltip: o.tooltip || null })),
        widgets: node ? (node.widgets || []).map((w) => ({ name: w.name, advanced: !!w.advanced,
          optionsAdvanced: !!(w.options && w.options.advanced), visible: node.isWidgetVisible ? node.isWidgetVisible(w) : true })) : [],
        hasAdvancedMenu: node ? !!(node.widgets || []).some((w) => w.advanced) : false,
      };
      if (node) app.graph.remove(node);
    }
    app.canvas.setDirty(true, true);
    return out;
  };

  T.load = async (workflow, name) => {
    T.closeDialogs();
    await app.loadGraphData(workflow, true, true, name);
    await new Promise((r) => setTimeout(r, 300));
    const graph = app.graph;
    const serial = graph.serialize();
    return {
      dialogs: T.openDialogs(),
      unregistered: graph.nodes.filter((n) => !LiteGraph.registered_node_types[n.type]).map((n) => n.type),
      missingDefs: graph.nodes.filter((n) => n.type !== 'Note' && !(n.constructor && n.constructor.nodeData)).map((n) => n.type),
      nodes: serial.nodes.map((n) => ({ id: n.id, type: n.type, title: n.title, widgets_values: n.widgets_values })),
    };
  };

  T.nodeOf = (type) => app.graph.nodes.find((n) => n.type === type);
  T.setWidget = (type, name, value) => {
    const node = T.nodeOf(type);
    if (!node) throw new Error(`no ${type} node`);
    const w = (node.widgets || []).find((x) => x.name === name);
    if (!w) throw new Error(`${type} has no widget ${name}`);
    if (w.options && Array.isArray(w.options.values) && !w.options.values.includes(value)) {
      throw new Error(`${type}.${name}: ${value} is not among ${JSON.stringify(w.options.values)}`);
    }
    w.value = value;
    if (w.callback) w.callback(value);
    return w.value;
  };

  // set a widget on every node of a type (none is fine); returns how many were set
  T.setWidgetAll = (type, name, value) => {
    let count = 0;
    for (const node of app.graph.nodes.filter((n) => n.type === type)) {
      const w = (node.widgets || []).find((x) => x.name === name);
      if (!w) throw new Error(`${type} has no widget ${name}`);
      w.value = value;
      if (w.callback) w.callback(value);
      count += 1;
    }
    return count;
  };

  // combo widgets whose value is not one of the values the server offers (red on queueing)
  T.badComboValues = () => {
    const bad = [];
    for (const n of app.graph.nodes) {
      for (const w of n.widgets || []) {
        const values = w.options && w.options.values;
        if (w.type === 'combo' && Array.isArray(values) && !values.includes(w.value)) bad.push(`${n.type}.${w.name}=${w.value}`);
      }
    }
    return bad;
  };

  // press the editor's Run button, as a user does
  T.clickRun = () => {
    const btn = [...document.querySelectorAll('button')].find((b) => b.innerText.trim() === 'Run' && visible(b));
    if (!btn) throw new Error('no visible Run button');
    T.done.length = 0;
    btn.click();
    return true;
  };

  T.result = () => (T.done.length ? T.done[T.done.length - 1] : null);

  // the output image, loaded in a DOM <img> (the queue's result thumbnail), and the node's own outputs
  T.outputShown = (filename) => {
    const imgs = [...document.querySelectorAll('img')].filter((i) => i.src.includes(`filename=${encodeURIComponent(filename)}`));
    const loaded = imgs.filter((i) => i.complete && i.naturalWidth > 0);
    // the image is the output of a node of the graph (ComfyUI's SaveImage or the pack's Fooocus Save Image)
    const onNode = app.graph.nodes.some((n) => {
      const outs = app.nodeOutputs ? app.nodeOutputs[String(n.id)] : null;
      return !!(outs && (outs.images || []).some((im) => im.filename === filename));
    });
    return loaded.length && onNode ? { width: loaded[0].naturalWidth, height: loaded[0].naturalHeight } : null;
  };

  T.fitView = async () => {
    await app.extensionManager.command.execute('Comfy.Canvas.FitView');
    app.canvas.min_font_size_for_lod = 0; // full detail (text) at any zoom, for the screenshot
    app.canvas.setDirty(true, true);
  };

  // the client-pixel box [left, top, right, bottom] around every node and group
  T.graphBounds = () => {
    const c = app.canvas;
    const r = c.canvas.getBoundingClientRect();
    const boxes = [...app.graph.nodes.map((n) => [n.pos[0], n.pos[1] - LiteGraph.NODE_TITLE_HEIGHT, n.pos[0] + n.size[0], n.pos[1] + n.size[1]]),
      ...(app.graph.groups || []).map((g) => [g.pos[0], g.pos[1], g.pos[0] + g.size[0], g.pos[1] + g.size[1]])];
    const lo = c.ds.convertOffsetToCanvas([Math.min(...boxes.map((b) => b[0])), Math.min(...boxes.map((b) => b[1]))]);
    const hi = c.ds.convertOffsetToCanvas([Math.max(...boxes.map((b) => b[2])), Math.max(...boxes.map((b) => b[3]))]);
    return [r.left + lo[0], r.top + lo[1], r.left + hi[0], r.top + hi[1]];
  };

  // where (client pixels) to hover to get a node's title, widget, input or output tooltip
  T.hoverPoint = (type, what, name) => {
    const node = T.nodeOf(type);
    if (!node) throw new Error(`no ${type} node`);
    const c = app.canvas;
    c.ds.scale = 1;
    c.ds.offset[0] = -node.pos[0] + 300;
    c.ds.offset[1] = -node.pos[1] + 250;
    c.setDirty(true, true);
    c.draw(true, true);
    let g;
    if (what === 'title') g = [node.pos[0] + node.size[0] / 2, node.pos[1] - LiteGraph.NODE_TITLE_HEIGHT / 2];
    else if (what === 'input') g = node.getConnectionPos(true, node.inputs.findIndex((i) => i.name === name));
    else if (what === 'output') g = node.getConnectionPos(false, node.outputs.findIndex((o) => o.name === name));
    else {
      const w = node.widgets.find((x) => x.name === name);
      g = [node.pos[0] + node.size[0] / 2, node.pos[1] + (w.last_y ?? w.y) + LiteGraph.NODE_WIDGET_HEIGHT / 2];
    }
    const p = c.ds.convertOffsetToCanvas(g);
    const r = c.canvas.getBoundingClientRect();
    return [r.left + p[0], r.top + p[1]];
  };
  T.tooltipText = () => {
    const t = document.querySelector('.node-tooltip');
    return t ? t.innerText : null;
  };

  // the node library sidebar: open it, unfold inpaint > fooocus > ... (folders only), return the labels shown
  T.openNodeLibrary = async () => {
    const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
    const tab = [...document.querySelectorAll('button, .side-bar-button, [role="button"]')].find(
      (b) => b.innerText.trim() === 'Nodes' && visible(b));
    if (!tab) throw new Error('no Nodes sidebar button');
    tab.click();
    await sleep(500);
    const labels = () => [...document.querySelectorAll('.p-tree-node-label, .p-treenode-label')].filter(visible);
    for (let round = 0; round < 6; round++) {
      let clicked = false;
      for (const el of labels()) {
        const text = el.innerText.trim();
        const item = el.closest('.p-tree-node, .p-treenode');
        const expanded = item && item.getAttribute('aria-expanded') === 'true';
        const path = [];
        for (let p = item; p; p = p.parentElement && p.parentElement.closest('.p-tree-node, .p-treenode')) {
          const l = p.querySelector('.p-tree-node-label, .p-treenode-label');
          if (l) path.unshift(l.innerText.trim().split('\n')[0]);
        }
        const key = path.join('/');
        const wanted = key === 'inpaint' || key.startsWith('inpaint/fooocus');
        // folders only: a click on a leaf (a node) adds that node to the graph
        const leaf = item && (item.classList.contains('p-tree-node-leaf') || item.classList.contains('p-treenode-leaf'));
        if (wanted && item && !leaf && item.getAttribute('aria-expanded') === 'false' && !expanded) {
          (item.querySelector('.p-tree-node-content, .p-treenode-content') || el).click();
          clicked = true;
          await sleep(150);
        }
      }
      if (!clicked) break;
    }
    const inpaint = labels().find((el) => el.innerText.trim().split('\n')[0] === 'inpaint');
    if (inpaint) inpaint.scrollIntoView({ block: 'start' });
    await sleep(200);
    const tree = [];
    for (const el of labels()) {
      const item = el.closest('.p-tree-node, .p-treenode');
      const path = [];
      for (let p = item; p; p = p.parentElement && p.parentElement.closest('.p-tree-node, .p-treenode')) {
        const l = p.querySelector('.p-tree-node-label, .p-treenode-label');
        if (l) path.unshift(l.innerText.trim().split('\n')[0]);
      }
      tree.push(path.join('/'));
    }
    return tree;
  };
  T.closeNodeLibrary = () => {
    const tab = [...document.querySelectorAll('button, .side-bar-button, [role="button"]')].find(
      (b) => b.innerText.trim() === 'Nodes' && visible(b));
    if (tab) tab.click();
  };


  // -- the node search dialog (double-click on an empty spot of the canvas) --------------------------
  // a client point over the bare canvas: no node or group there, nothing of the UI on top of it
  T.emptyCanvasPoint = () => {
    const c = app.canvas, el = c.canvas, r = el.getBoundingClientRect();
    for (let y = r.top + r.height * 0.25; y < r.bottom - 80; y += 40) {
      for (let x = r.left + r.width * 0.25; x < r.right - 80; x += 40) {
        if (document.elementFromPoint(x, y) !== el) continue;
        const [gx, gy] = c.ds.convertCanvasToOffset([x - r.left, y - r.top]);
        if (app.graph.getNodeOnPos(gx, gy, app.graph.nodes, 40)) continue;
        if (app.graph.getGroupOnPos && app.graph.getGroupOnPos(gx, gy)) continue;
        return [x, y];
      }
    }
    throw new Error('no empty spot on the canvas');
  };
  T.searchInput = () => [...document.querySelectorAll('input[id^="comfy-vue-node-search-box-input"]')].find(visible) || null;
  T.searchOpen = () => !!T.searchInput();
  // replace the query (the typing itself is done with real key input from the test)
  T.selectSearchText = () => {
    const i = T.searchInput();
    if (!i) throw new Error('the node search box is not open');
    i.focus();
    i.select();
    return document.activeElement === i;
  };
  // the suggestions shown, top first: display name and category as the dialog shows them
  T.searchResults = () => {
    const i = T.searchInput();
    if (!i) return null;
    const box = i.closest('.comfy-vue-node-search-container') || document;
    const empty = [...box.querySelectorAll('.p-autocomplete-empty-message')].some(visible);
    const options = [...box.querySelectorAll('.p-autocomplete-option')].filter(visible).map((o) => {
      const nameEl = o.querySelector('.option-display-name > div > span:not(:has(i))');
      const cat = o.querySelector('.option-category');
      return { display_name: (nameEl ? nameEl.innerText : o.innerText.split('\n')[0]).replace(/\u00a0/g, ' ').trim(),
        category: cat ? cat.innerText.trim() : null };
    });
    return { query: i.value, empty, options };
  };
  // the fields the frontend's node search indexes (its Fuse.js keys), read from the frontend's own code
  // as served to this page; null when the pattern is not found (another frontend build)
  T.nodeSearchKeys = async () => {
    const urls = new Set([...performance.getEntriesByType('resource').map((e) => e.name),
      ...[...document.querySelectorAll('script[src]')].map((e) => e.src),
      ...[...document.querySelectorAll('link[rel="modulepreload"]')].map((e) => e.href)]
      .filter((u) => u.startsWith(location.origin) && /\.js(\?|$)/.test(u)));
    const re = /nodeFuseSearch\s*=\s*new\s+[\w$]+\(\s*[\w$]+\s*,\s*\{\s*fuseOptions\s*:\s*\{\s*keys\s*:\s*(\[[^\]]*\])/;
    for (const u of urls) {
      const m = (await (await fetch(u)).text()).match(re);
      if (m) return { keys: m[1], url: u.replace(location.origin, '') };
    }
    return null;
  };

  window.__fooocusTest = T;
  return true;
})()
