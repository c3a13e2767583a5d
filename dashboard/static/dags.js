// The DAG views: the DAGs page (paused, schedule, last runs), a DAG's grid
// (runs × tasks) and a run's graph (tasks as nodes coloured by state, their
// edges, mapped tasks with their count).
import { api } from './api.js';
import { ago, badge, clock, duration, fill, h, shortID } from './dom.js';

const svgNS = 'http://www.w3.org/2000/svg';

function s(tag, attrs, ...children) {
  const el = document.createElementNS(svgNS, tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, String(v));
  for (const c of children) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return el;
}

const dagHref = (id) => '#/dags/' + encodeURIComponent(id);
const runHref = (id, run) => dagHref(id) + '/runs/' + encodeURIComponent(run);

// taskState sums up the instances of one task: a mapped task is running
// while one runs, failed when one failed, success when all succeeded.
export function taskState(tis) {
  if (tis.length === 0) return 'none';
  const has = (st) => tis.some((t) => t.state === st);
  for (const st of ['running', 'queued', 'deferred', 'up_for_retry', 'up_for_reschedule', 'scheduled']) if (has(st)) return st;
  if (has('none')) return tis.some((t) => t.state !== 'none') ? 'running' : 'none';
  for (const st of ['failed', 'upstream_failed', 'cancelled']) if (has(st)) return st;
  if (tis.every((t) => t.state === 'skipped')) return 'skipped';
  return tis.every((t) => t.state === 'success' || t.state === 'skipped') ? 'success' : tis[0].state;
}

// byTask groups a run's task instances by task id, in the run's order.
function byTask(run) {
  const m = new Map();
  for (const ti of run.task_instances || []) {
    if (!m.has(ti.task_id)) m.set(ti.task_id, []);
    m.get(ti.task_id).push(ti);
  }
  return m;
}

export function dagsView(ctx) {
  const body = h('tbody', { id: 'dags-body' });
  const el = h('section', {}, h('h1', {}, 'DAGs'),
    h('table', { class: 'list', id: 'dags' },
      h('thead', {}, h('tr', {}, ['DAG', 'state', 'schedule', 'version', 'tasks', 'next run', 'last runs', ''].map((c) => h('th', {}, c)))),
      body));
  const toggle = async (d) => {
    try {
      await api.pauseDag(d.dag_id, !d.is_paused);
      ctx.flash('ok', `${d.dag_id} ${d.is_paused ? 'unpaused' : 'paused'}`);
    } catch (err) {
      if (ctx.failed(err)) ctx.flash('error', err.message);
    }
    ctx.refresh();
  };
  return {
    nav: 'dags', title: 'DAGs', el,
    async refresh() {
      const { dags } = await api.dags();
      if (!dags.length) {
        fill(body, h('tr', {}, h('td', { colspan: 8, class: 'muted' }, 'No DAGs yet: executor dags apply -f dag.yaml')));
        return;
      }
      fill(body, dags.map((d) => h('tr', { dataset: { dag: d.dag_id } },
        h('td', {}, h('a', { href: dagHref(d.dag_id), class: 'dag-link' }, d.dag_id)),
        h('td', {}, badge(d.is_paused ? 'paused' : 'active')),
        h('td', {}, d.schedule ? d.schedule + (d.timezone ? ' (' + d.timezone + ')' : '') : h('span', { class: 'muted' }, 'manual')),
        h('td', {}, 'v' + d.version),
        h('td', {}, d.tasks),
        h('td', {}, d.next_dagrun_at ? ago(d.next_dagrun_at) : h('span', { class: 'muted' }, '—')),
        h('td', { class: 'last-runs' }, d.last_runs.map((r) => h('a', {
          href: runHref(d.dag_id, r.run_id), class: 'run-dot s-' + r.state, title: `${r.run_id}: ${r.state}`,
        }))),
        h('td', {}, h('button', { class: 'link', onclick: () => toggle(d) }, d.is_paused ? 'unpause' : 'pause')))));
    },
  };
}

// dagView is a DAG's grid: one column per run (latest first), one row
// per task, each cell its state (a mapped task shows done/total).
export function dagView(dagID, ctx) {
  const head = h('div', { class: 'dag-head' });
  const grid = h('table', { class: 'dag-grid', id: 'dag-grid' });
  const trigger = async () => {
    try {
      const run = await api.triggerRun(dagID);
      ctx.flash('ok', 'triggered ' + run.run_id);
      location.hash = runHref(dagID, run.run_id);
    } catch (err) {
      if (ctx.failed(err)) ctx.flash('error', err.message);
    }
  };
  const el = h('section', {}, h('h1', {}, h('a', { href: '#/dags' }, 'DAGs'), ' / ', dagID), head, grid);
  return {
    nav: 'dags', title: dagID, el,
    async refresh() {
      const [rec, { dag_runs: runs }] = await Promise.all([api.dag(dagID), api.dagRuns(dagID)]);
      fill(head, h('p', {},
        badge(rec.is_paused ? 'paused' : 'active'), ' version ', rec.version, ' · ',
        rec.dag.schedule ? 'schedule ' + rec.dag.schedule : 'triggered manually', ' · ',
        rec.dag.tasks.length, ' tasks ',
        h('button', { class: 'primary', id: 'trigger-run', onclick: trigger, disabled: rec.is_paused }, 'Trigger run')));
      const shown = runs.slice(0, 25);
      const tasks = rec.dag.tasks.map((t) => t.task_id);
      const cols = shown.map((r) => byTask(r));
      fill(grid,
        h('thead', {}, h('tr', {}, h('th', {}, 'task'), shown.map((r) => h('th', { class: 'run-col' },
          h('a', { href: runHref(dagID, r.run_id), class: 'run-dot s-' + r.state, title: `${r.run_id}: ${r.state}` }))))),
        h('tbody', {}, tasks.map((id) => h('tr', {}, h('td', { class: 'task-id' }, id), cols.map((m, i) => {
          const tis = m.get(id) || [];
          const st = taskState(tis);
          const mapped = tis.some((t) => t.mapped);
          const done = tis.filter((t) => ['success', 'failed', 'skipped', 'upstream_failed', 'removed', 'cancelled'].includes(t.state)).length;
          return h('td', { class: 'cell' }, h('a', {
            href: runHref(dagID, shown[i].run_id), class: 'cell-box s-' + st,
            title: `${id} in ${shown[i].run_id}: ${st}` + (mapped ? ` (${done}/${tis.length} mapped)` : ''),
          }, mapped ? String(tis.length) : ''));
        })))));
      if (!shown.length) grid.append(h('caption', { class: 'muted' }, 'No runs yet.'));
    },
  };
}

// layout places the tasks in columns by depth (longest path from a root).
function layout(tasks, edges) {
  const ups = new Map(tasks.map((t) => [t, []]));
  for (const [u, d] of edges) if (ups.has(d)) ups.get(d).push(u);
  const depth = new Map();
  const depthOf = (t, seen = new Set()) => {
    if (depth.has(t)) return depth.get(t);
    if (seen.has(t)) return 0;
    seen.add(t);
    const d = Math.max(-1, ...ups.get(t).map((u) => depthOf(u, seen))) + 1;
    depth.set(t, d);
    return d;
  };
  const cols = [];
  for (const t of tasks) {
    const d = depthOf(t);
    (cols[d] = cols[d] || []).push(t);
  }
  return cols;
}

// runView is a run's graph and its task instances.
export function runView(dagID, runID, ctx) {
  const head = h('div', { class: 'run-head' });
  const graph = h('div', { class: 'graph', id: 'run-graph' });
  const body = h('tbody', { id: 'run-tis' });
  const el = h('section', {},
    h('h1', {}, h('a', { href: '#/dags' }, 'DAGs'), ' / ', h('a', { href: dagHref(dagID) }, dagID), ' / ', runID),
    head, graph,
    h('table', { class: 'list' },
      h('thead', {}, h('tr', {}, ['task', 'map index', 'state', 'try', 'started', 'duration', 'reason'].map((c) => h('th', {}, c)))),
      body));
  return {
    nav: 'dags', title: runID, el,
    async refresh() {
      const run = await api.dagRun(dagID, runID);
      const c = run.counts || {};
      fill(head, h('p', {}, badge(run.state), ' ', run.run_type, ' · logical date ', clock(run.logical_date),
        ' · version ', run.dag_version, ' · ', Object.entries(c).map(([k, v]) => `${v} ${k.replaceAll('_', ' ')}`).join(', '),
        run.conf ? h('code', { class: 'conf' }, ' conf ' + JSON.stringify(run.conf)) : ''));
      const groups = byTask(run);
      const tasks = [...groups.keys()];
      const cols = layout(tasks, run.edges || []);
      const W = 170, H = 46, GX = 70, GY = 22;
      const rows = Math.max(1, ...cols.map((c) => c.length));
      const width = cols.length * (W + GX) - GX + 20, height = rows * (H + GY) - GY + 20;
      const pos = new Map();
      cols.forEach((col, x) => col.forEach((t, y) => {
        const off = (rows - col.length) * (H + GY) / 2;
        pos.set(t, { x: 10 + x * (W + GX), y: 10 + off + y * (H + GY) });
      }));
      const svg = s('svg', { width, height, viewBox: `0 0 ${width} ${height}`, role: 'img', 'aria-label': 'the run\'s graph' });
      svg.append(s('defs', {}, s('marker', { id: 'arrow', viewBox: '0 0 10 10', refX: 10, refY: 5, markerWidth: 7, markerHeight: 7, orient: 'auto' },
        s('path', { d: 'M0,0 L10,5 L0,10 z', class: 'arrow' }))));
      for (const [u, d] of run.edges || []) {
        const a = pos.get(u), b = pos.get(d);
        if (!a || !b) continue;
        const x1 = a.x + W, y1 = a.y + H / 2, x2 = b.x, y2 = b.y + H / 2, mx = (x1 + x2) / 2;
        svg.append(s('path', { d: `M${x1},${y1} C${mx},${y1} ${mx},${y2} ${x2},${y2}`, class: 'edge', 'marker-end': 'url(#arrow)' }));
      }
      for (const t of tasks) {
        const tis = groups.get(t), p = pos.get(t), st = taskState(tis);
        const mapped = tis.some((x) => x.mapped);
        const g = s('g', { class: 'node s-' + st, 'data-task': t, 'data-state': st, transform: `translate(${p.x},${p.y})` },
          s('title', {}, `${t}: ${st}`), s('rect', { width: W, height: H, rx: 7 }),
          s('text', { x: 10, y: 19, class: 'name' }, t),
          s('text', { x: 10, y: 36, class: 'sub' }, st.replaceAll('_', ' ') + (mapped ? `  ×${tis.length}` : '')));
        if (tis.length === 1 && tis[0].ti_id && st !== 'none' && st !== 'upstream_failed') {
          const a = s('a', { href: '#/ti/' + encodeURIComponent(tis[0].ti_id) });
          a.append(g);
          svg.append(a);
        } else svg.append(g);
      }
      fill(graph, svg);
      fill(body, (run.task_instances || []).map((ti) => h('tr', {},
        h('td', {}, ti.ti_id && ti.state !== 'none' ? h('a', { href: '#/ti/' + encodeURIComponent(ti.ti_id), title: ti.ti_id }, ti.task_id) : ti.task_id),
        h('td', {}, ti.map_index >= 0 ? ti.map_index : ''),
        h('td', {}, badge(ti.state, ti.reason)),
        h('td', {}, ti.try_number || ''),
        h('td', {}, ti.start_date ? clock(ti.start_date) : ''),
        h('td', {}, ti.start_date ? duration(ti.start_date, ti.end_date) : ''),
        h('td', { class: 'reason', title: ti.reason || '' }, ti.reason || ''))));
      void shortID;
    },
  };
}
