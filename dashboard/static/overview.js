// The overview: cluster totals, queues, workers, triggerers and the task
// instances, filterable by state, queue and DAG (kept in the URL's hash).
import { api } from './api.js';
import { ago, badge, duration, fill, h, shortID, states } from './dom.js';

const active = 'queued,running,deferred,up_for_retry,up_for_reschedule';

export function overview(params, ctx) {
  const filter = {
    state: params.get('state') || '',
    queue: params.get('queue') || '',
    dag_id: params.get('dag_id') || '',
    limit: params.get('limit') || '100',
  };
  const go = (change) => {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries({ ...filter, ...change })) {
      if (v && !(k === 'limit' && v === '100')) q.set(k, v);
    }
    const s = q.toString();
    location.hash = '#/' + (s ? '?' + s : '');
  };

  const summary = h('div', { class: 'cards', id: 'summary' });
  const queuesBody = h('tbody');
  const poolsBody = h('tbody');
  const workersBody = h('tbody');
  const triggerersBody = h('tbody');
  const tasksBody = h('tbody');
  const tasksCount = h('span', { class: 'muted', id: 'tasks-count' });

  const stateSel = h('select', { id: 'filter-state', onchange: (e) => go({ state: e.target.value }) },
    h('option', { value: '' }, 'any state'),
    h('option', { value: active }, 'active (not finished)'),
    states.map((s) => h('option', { value: s }, s.replaceAll('_', ' '))));
  stateSel.value = filter.state;
  const queueSel = h('select', { id: 'filter-queue', onchange: (e) => go({ queue: e.target.value }) });
  const dagList = h('datalist', { id: 'dag-ids' });
  const dagInput = h('input', {
    id: 'filter-dag', type: 'search', placeholder: 'dag id', list: 'dag-ids', value: filter.dag_id,
    onchange: (e) => go({ dag_id: e.target.value.trim() }),
  });
  const limitSel = h('select', { id: 'filter-limit', onchange: (e) => go({ limit: e.target.value }) },
    ['50', '100', '500', '2000'].map((n) => h('option', { value: n }, n + ' rows')));
  limitSel.value = filter.limit;
  const anyFilter = filter.state || filter.queue || filter.dag_id;

  const el = h('div', { class: 'overview' },
    summary,
    h('div', { class: 'grid' },
      section('Queues', 'queues', ['Queue', 'Pending', 'Waiting', 'Running', 'Deferred', 'Workers', 'Done/min', 'Failed/min'], queuesBody, 'num'),
      section('Triggerers', 'triggerers', ['Triggerer', 'Host', 'Held', 'State', 'Heartbeat', 'Up since'], triggerersBody)),
    section('Pools', 'pools', ['Pool', 'Slots', 'Open', 'Running', 'Queued', 'Deferred', 'Waiting'], poolsBody, 'num'),
    section('Workers', 'workers', ['Worker', 'Host', 'Version', 'Queues', 'Slots', 'Runtimes', 'State', 'Heartbeat', 'Up since', ''], workersBody),
    h('section', { class: 'panel', id: 'tasks' },
      h('div', { class: 'panel-head' },
        h('h2', {}, 'Task instances'), tasksCount,
        h('div', { class: 'filters' }, stateSel, queueSel, dagInput, dagList, limitSel,
          anyFilter && h('button', { class: 'link', id: 'filter-clear', onclick: () => go({ state: '', queue: '', dag_id: '' }) }, 'clear filters'))),
      table(['State', 'DAG / task', 'Run', 'Queue', 'Try', 'Queued', 'Started', 'Duration', 'Host', 'Id'], tasksBody)));

  let queueNames = [];
  function renderQueueOptions() {
    const names = [...new Set([...queueNames, filter.queue].filter(Boolean))].sort();
    fill(queueSel, h('option', { value: '' }, 'any queue'), names.map((n) => h('option', { value: n }, n)));
    queueSel.value = filter.queue;
  }
  renderQueueOptions();

  async function refresh() {
    const [qs, ws, ts, tis, ps] = await Promise.allSettled([
      api.queues(), api.workers(), api.triggerers(),
      api.taskInstances({ state: filter.state, queue: filter.queue, dag_id: filter.dag_id, limit: filter.limit }),
      api.pools(),
    ]);
    for (const r of [qs, ws, ts, tis, ps]) {
      if (r.status === 'rejected' && !ctx.failed(r.reason)) throw r.reason;
    }
    const now = Date.now();
    const queues = qs.value ? qs.value.queues || [] : null;
    const workers = ws.value ? ws.value.workers || [] : null;
    const triggerers = ts.value ? ts.value.triggerers || [] : null;

    renderSummary(queues, workers, triggerers);
    if (queues) {
      const names = queues.map((q) => q.name);
      if (names.join() !== queueNames.join()) {
        queueNames = names;
        renderQueueOptions();
      }
    }
    const pools = ps.value ? ps.value.pools || [] : null;
    const limit = (n) => (n < 0 ? h('td', { class: 'num muted' }, '∞') : num(n));
    rows(poolsBody, ps, pools, 7, 'No pools.', (p) => h('tr', { dataset: { pool: p.name }, title: p.description || '' },
      h('td', {}, p.name), limit(p.slots), limit(p.open), num(p.running), num(p.queued), num(p.deferred),
      num(p.waiting, p.waiting > 0 ? 'warn' : '')));
    rows(queuesBody, qs, queues, 8, 'No queues yet: submit a task.', (q) => h('tr', { dataset: { queue: q.name } },
      h('td', {}, h('a', { href: '#/?queue=' + encodeURIComponent(q.name), title: 'Show its tasks' }, q.name)),
      num(q.pending), num(q.waiting || 0, q.waiting > 0 ? 'warn' : ''), num(q.running), num(q.deferred), num(q.workers, q.workers === 0 && q.pending > 0 ? 'warn' : ''),
      num(q.finished_last_minute), num(q.failed_last_minute, q.failed_last_minute > 0 ? 'bad' : '')));
    rows(triggerersBody, ts, triggerers, 6, 'No triggerer is running: deferred tasks wait.', (t) => h('tr', { class: t.state, dataset: { triggerer: t.id } },
      h('td', { class: 'mono' }, t.id), h('td', {}, t.hostname), num(t.held), h('td', {}, badge(t.state)),
      h('td', {}, ago(t.last_heartbeat, now)), h('td', {}, ago(t.started_at, now))));
    // A drain waiting for its confirming click keeps its row.
    if (!workersBody.querySelector('.armed')) rows(workersBody, ws, workers, 10, 'No worker has registered.', (w) => h('tr', { class: w.state, dataset: { worker: w.id } },
      h('td', { class: 'mono' }, w.id), h('td', {}, w.hostname), h('td', { class: 'mono' }, w.version),
      h('td', {}, (w.queues || []).map((q) => h('span', { class: 'chip' }, q))),
      h('td', {}, slots(w)), h('td', {}, (w.runtimes || []).map((r) => h('span', { class: 'chip' }, r))),
      h('td', {}, badge(w.state)), h('td', {}, ago(w.last_heartbeat, now)), h('td', {}, ago(w.started_at, now)),
      h('td', { class: 'actions' }, w.state === 'live' && confirmButton('Drain', 'Confirm drain', async () => {
        await api.drain(w.id);
        ctx.flash('ok', `Worker ${w.id} is draining: it takes no new tasks and stops when its running ones end.`);
        ctx.refresh();
      }, ctx))));

    if (tis.status === 'rejected') {
      fill(tasksBody, errorRow(10, tis.reason));
      fill(tasksCount, '');
      return;
    }
    const list = tis.value.task_instances || [];
    const total = tis.value.total;
    fill(tasksCount, list.length < total ? `${list.length} of ${total}` : `${total}`);
    const dags = [...new Set(list.map((t) => t.dag_id))].sort();
    fill(dagList, dags.map((d) => h('option', { value: d })));
    if (list.length === 0) {
      fill(tasksBody, h('tr', { class: 'empty' }, h('td', { colspan: 10 }, anyFilter ? 'No task instance matches.' : 'No task instances yet.')));
      return;
    }
    fill(tasksBody, list.map((t) => {
      const href = '#/ti/' + encodeURIComponent(t.id);
      return h('tr', { class: 'link-row', dataset: { id: t.id, state: t.state }, onclick: (e) => { if (!e.target.closest('a')) location.hash = href; } },
        h('td', {}, badge(t.state, t.reason)),
        h('td', {}, h('a', { href, class: 'task-link' }, t.dag_id, h('span', { class: 'sep' }, ' / '), t.task_id, t.map_index >= 0 ? `[${t.map_index}]` : '')),
        h('td', { class: 'mono small', title: t.run_id }, t.run_id),
        h('td', {}, t.queue),
        h('td', { class: 'num' }, `${t.try_number}/${t.max_tries}`),
        h('td', {}, ago(t.queued_at, now)),
        h('td', {}, ago(t.start_date, now)),
        h('td', { class: 'num' }, duration(t.start_date, t.end_date, now)),
        h('td', { class: 'small' }, t.hostname || ''),
        h('td', { class: 'mono small', title: t.id }, shortID(t.id)));
    }));
  }

  function renderSummary(queues, workers, triggerers) {
    const sum = (k) => (queues || []).reduce((n, q) => n + (q[k] || 0), 0);
    const live = (xs) => (xs || []).filter((x) => x.state === 'live').length;
    const lost = (xs) => (xs || []).filter((x) => x.state === 'lost').length;
    fill(summary,
      card('Pending', queues && sum('pending'), 's-queued', '#/?state=queued'),
      card('Running', queues && sum('running'), 's-running', '#/?state=running'),
      card('Deferred', queues && sum('deferred'), 's-deferred', '#/?state=deferred'),
      card('Done / min', queues && sum('finished_last_minute'), 's-success'),
      card('Failed / min', queues && sum('failed_last_minute'), 's-failed', '#/?state=failed'),
      card('Workers live', workers && `${live(workers)}` + (lost(workers) ? ` (${lost(workers)} lost)` : ''), 'plain'),
      card('Triggerers live', triggerers && `${live(triggerers)}` + (lost(triggerers) ? ` (${lost(triggerers)} lost)` : ''), 'plain'));
  }

  return { el, nav: 'overview', title: 'Overview', refresh };
}

function card(label, value, cls, href) {
  const body = [h('div', { class: 'value' }, value === null || value === undefined ? '—' : value), h('div', { class: 'label' }, label)];
  return href ? h('a', { class: 'card ' + cls, href }, body) : h('div', { class: 'card ' + cls }, body);
}

function section(title, id, heads, body, cls) {
  return h('section', { class: 'panel', id },
    h('div', { class: 'panel-head' }, h('h2', {}, title)),
    table(heads, body, cls));
}

function table(heads, body, cls) {
  return h('div', { class: 'table-wrap' },
    h('table', { class: cls || '' }, h('thead', {}, h('tr', {}, heads.map((x) => h('th', {}, x)))), body));
}

function num(n, cls) {
  return h('td', { class: 'num ' + (cls || '') }, n ?? '—');
}

function rows(body, settled, list, cols, empty, row) {
  if (settled.status === 'rejected') {
    fill(body, errorRow(cols, settled.reason));
    return;
  }
  if (list.length === 0) {
    fill(body, h('tr', { class: 'empty' }, h('td', { colspan: cols }, empty)));
    return;
  }
  fill(body, list.map(row));
}

function errorRow(cols, err) {
  return h('tr', { class: 'error-row' }, h('td', { colspan: cols }, err.message));
}

function slots(w) {
  const used = w.concurrency - w.free_slots;
  const pct = w.concurrency > 0 ? Math.round((100 * used) / w.concurrency) : 0;
  const bar = h('span', { class: 'bar' }, h('span', { class: 'fill' }));
  bar.firstChild.style.width = pct + '%';
  return h('span', { class: 'slots', title: `${w.running} running, ${w.free_slots} of ${w.concurrency} slots free` }, bar, ` ${used}/${w.concurrency}`);
}

// confirmButton asks for a second click within 4 seconds before it acts.
export function confirmButton(label, confirmLabel, action, ctx, cls = 'danger') {
  let armed = null;
  const btn = h('button', { class: 'btn ' + cls }, label);
  btn.addEventListener('click', async (e) => {
    e.stopPropagation();
    if (!armed) {
      btn.textContent = confirmLabel;
      btn.classList.add('armed');
      armed = setTimeout(() => { armed = null; btn.textContent = label; btn.classList.remove('armed'); }, 4000);
      return;
    }
    clearTimeout(armed);
    armed = null;
    btn.disabled = true;
    try {
      await action();
    } catch (err) {
      if (ctx.failed(err)) ctx.flash('error', err.message);
    } finally {
      btn.disabled = false;
      btn.textContent = label;
      btn.classList.remove('armed');
    }
  });
  return btn;
}
