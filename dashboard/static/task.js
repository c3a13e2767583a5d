// One task instance: its record, tries, trigger and logs (polled while it
// runs), and the cancel and retry actions.
import { api } from './api.js';
import { ago, badge, clock, duration, fill, h, terminal } from './dom.js';
import { confirmButton } from './overview.js';

const maxLogLines = 5000;

export function taskView(id, ctx) {
  const title = h('h1', { id: 'ti-title' }, id);
  const stateEl = h('span', { id: 'ti-state' });
  const errorBox = h('div', { class: 'error-box', id: 'ti-error', hidden: true });
  const props = h('tbody');
  const triesBody = h('tbody');
  const triggerBox = h('section', { class: 'panel', id: 'ti-trigger', hidden: true });
  const logBox = h('pre', { class: 'logs', id: 'logs' });
  const logInfo = h('span', { class: 'muted', id: 'logs-info' });
  const trySel = h('select', { id: 'logs-try', onchange: () => { pinnedTry = Number(trySel.value); loadLogs(true); } });
  let ti = null;
  let pinnedTry = 0; // 0: follow the current try
  let logTry = -1;
  let logsDoneFor = ''; // "<try>/<state>" of a finished try whose logs are complete
  let stopped = false;

  const retryBtn = h('button', { class: 'btn primary', id: 'btn-retry', disabled: true, title: 'Start a new try of this failed task' }, 'Retry');
  retryBtn.addEventListener('click', async () => {
    retryBtn.disabled = true;
    try {
      const t = await api.retry(id);
      ctx.flash('ok', `Retrying: try ${t.try_number} is queued.`);
      pinnedTry = 0;
      ctx.refresh();
    } catch (err) {
      if (ctx.failed(err)) ctx.flash('error', err.message);
      retryBtn.disabled = false;
    }
  });
  const cancelBtn = confirmButton('Cancel', 'Confirm cancel', async () => {
    await api.cancel(id);
    ctx.flash('ok', 'Cancelled: a running try is killed by its worker.');
    ctx.refresh();
  }, ctx);
  cancelBtn.id = 'btn-cancel';
  cancelBtn.disabled = true;

  const body = h('div', { class: 'detail', id: 'ti-body', hidden: true },
    h('div', { class: 'grid' },
      h('section', { class: 'panel' }, h('div', { class: 'panel-head' }, h('h2', {}, 'Task instance')),
        h('div', { class: 'table-wrap' }, h('table', { class: 'props' }, props))),
      h('section', { class: 'panel' }, h('div', { class: 'panel-head' }, h('h2', {}, 'Tries')),
        h('div', { class: 'table-wrap' }, h('table', { id: 'tries' },
          h('thead', {}, h('tr', {}, ['Try', 'State', 'Host', 'Started', 'Ended', 'Duration', 'Reason'].map((x) => h('th', {}, x)))),
          triesBody)))),
    triggerBox,
    h('section', { class: 'panel' },
      h('div', { class: 'panel-head' }, h('h2', {}, 'Logs'), logInfo, h('div', { class: 'filters' }, trySel)),
      logBox));

  const el = h('div', { class: 'task' },
    h('div', { class: 'crumbs' }, h('a', { href: '#/' }, '← Overview')),
    h('div', { class: 'title-row' }, title, stateEl, h('div', { class: 'spacer' }), retryBtn, cancelBtn),
    errorBox, body);

  async function refresh() {
    let t;
    try {
      t = await api.taskInstance(id);
    } catch (err) {
      if (!ctx.failed(err)) throw err;
      fill(errorBox, err.message);
      errorBox.hidden = false;
      body.hidden = ti === null;
      if (err.status === 404) {
        body.hidden = true;
        retryBtn.disabled = true;
        cancelBtn.disabled = true;
      }
      return;
    }
    errorBox.hidden = true;
    body.hidden = false;
    ti = t;
    render(t);
    await loadLogs(false);
  }

  function render(t) {
    const now = Date.now();
    fill(title, t.dag_id, h('span', { class: 'sep' }, ' / '), t.task_id, t.map_index >= 0 ? `[${t.map_index}]` : '');
    fill(stateEl, badge(t.state));
    retryBtn.disabled = t.state !== 'failed';
    if (!cancelBtn.classList.contains('armed')) cancelBtn.disabled = terminal.has(t.state);
    const ep = t.entrypoint || {};
    const entry = ep.command ? ep.command.join(' ') : [ep.module, ep.function].filter(Boolean).join(':') || JSON.stringify(ep);
    fill(props, [
      prop('Id', h('span', { class: 'mono' }, t.id)),
      prop('DAG', t.dag_id), prop('Task', t.task_id), prop('Run', h('span', { class: 'mono' }, t.run_id)),
      t.map_index >= 0 && prop('Map index', t.map_index),
      prop('Queue', h('a', { href: '#/?queue=' + encodeURIComponent(t.queue) }, t.queue)),
      prop('State', badge(t.state)),
      t.reason && prop('Reason', h('span', { class: 'reason', id: 'ti-reason' }, t.reason)),
      prop('Try', `${t.try_number} of ${t.max_tries}`),
      prop('Entrypoint', h('code', {}, entry)),
      t.execution_timeout && prop('Execution timeout', t.execution_timeout),
      prop('Queued', ago(t.queued_at, now)),
      t.start_date && prop('Started', clock(t.start_date)),
      t.end_date && prop('Ended', clock(t.end_date)),
      t.start_date && prop('Duration', duration(t.start_date, t.end_date, now)),
      t.heartbeat_at && !terminal.has(t.state) && prop('Heartbeat', ago(t.heartbeat_at, now)),
      t.hostname && prop('Host', `${t.hostname}${t.pid ? ' pid ' + t.pid : ''}`),
      t.worker_id && prop('Worker', h('span', { class: 'mono' }, t.worker_id)),
      t.retry_at && prop('Retry at', ago(t.retry_at, now)),
      t.next_method && prop('Next method', h('code', {}, t.next_method)),
      prop('Activity', h('span', { class: 'mono small' }, t.activity_id || '—')),
    ]);
    const tries = t.tries || [];
    fill(triesBody, tries.slice().reverse().map((tr) => h('tr', { dataset: { try: tr.try_number, state: tr.state } },
      h('td', { class: 'num' }, tr.try_number), h('td', {}, badge(tr.state)), h('td', { class: 'small' }, tr.hostname || ''),
      h('td', {}, clock(tr.start_date)), h('td', {}, clock(tr.end_date)),
      h('td', { class: 'num' }, duration(tr.start_date, tr.end_date, now)),
      h('td', { class: 'reason' }, tr.reason || ''))));
    renderTrigger(t);
    const want = tries.map((tr) => String(tr.try_number));
    if ([...trySel.options].map((o) => o.value).join() !== ['0', ...want].join()) {
      fill(trySel, h('option', { value: '0' }, 'current try'), want.map((n) => h('option', { value: n }, 'try ' + n)));
    }
    trySel.value = String(pinnedTry);
  }

  function renderTrigger(t) {
    const tr = t.trigger;
    if (!tr) {
      triggerBox.hidden = true;
      return;
    }
    triggerBox.hidden = false;
    const rows = [
      prop('Classpath', h('code', {}, tr.classpath)),
      tr.kind && prop('Kind', tr.kind),
      prop('Trigger id', h('span', { class: 'mono small' }, tr.id)),
      tr.deferred_at && prop('Deferred', ago(tr.deferred_at)),
      tr.timeout && prop('Timeout', tr.timeout),
      t.next_method && prop('Resumes in', h('code', {}, t.next_method)),
      prop('Kwargs', h('pre', { class: 'json' }, JSON.stringify(tr.kwargs || {}, null, 2))),
    ];
    fill(triggerBox, h('div', { class: 'panel-head' }, h('h2', {}, 'Trigger'),
      t.state === 'deferred' ? h('span', { class: 'muted' }, 'waiting for it to fire') : null),
    h('div', { class: 'table-wrap' }, h('table', { class: 'props', id: 'trigger-props' }, h('tbody', {}, rows))));
  }

  // loadLogs reads the chosen try's log lines again; a finished try's
  // lines are read once more after it ended, then no more.
  async function loadLogs(force) {
    if (!ti || stopped) return;
    const tryNumber = pinnedTry || ti.try_number;
    const cur = ti.tries && ti.tries.find((x) => x.try_number === tryNumber);
    const done = cur && terminalTry(cur.state);
    const key = `${tryNumber}/${cur ? cur.state : ''}`;
    if (!force && done && logsDoneFor === key && logTry === tryNumber) return;
    let lines;
    try {
      lines = await api.logs(id, tryNumber);
    } catch (err) {
      if (!ctx.failed(err)) throw err;
      fill(logInfo, 'logs: ' + err.message);
      return;
    }
    if (stopped) return;
    const atBottom = logBox.scrollTop + logBox.clientHeight >= logBox.scrollHeight - 8;
    const shown = lines.length > maxLogLines ? lines.slice(-maxLogLines) : lines;
    fill(logBox, shown.length ? shown.map(logLine) : h('span', { class: 'muted' }, done ? 'This try wrote no log lines.' : 'No log lines yet…'));
    if (atBottom || logTry !== tryNumber) logBox.scrollTop = logBox.scrollHeight;
    logTry = tryNumber;
    logsDoneFor = done ? key : '';
    fill(logInfo, `try ${tryNumber} · ${lines.length} line${lines.length === 1 ? '' : 's'}` +
      (lines.length > maxLogLines ? ` (last ${maxLogLines} shown)` : '') + (done ? '' : ' · live'));
  }

  return { el, nav: '', title: id, refresh, stop: () => { stopped = true; } };
}

// A try whose logs will not grow: it ended (up_for_retry is a finished try;
// up_for_reschedule is not: the same try runs again).
function terminalTry(state) {
  return terminal.has(state) || state === 'up_for_retry';
}

function prop(name, value) {
  return h('tr', {}, h('th', {}, name), h('td', {}, value));
}

function logLine(l) {
  const ts = l.timestamp ? String(l.timestamp) : '';
  const time = ts ? ts.replace(/^\d{4}-\d\d-\d\dT/, '').replace(/(\.\d{3})\d*/, '$1').replace(/Z$/, '') : '';
  const level = String(l.level || 'info').toLowerCase();
  const extra = Object.entries(l).filter(([k]) => !['timestamp', 'level', 'event', 'logger', 'try'].includes(k));
  return h('div', { class: 'line lv-' + level },
    h('span', { class: 'ts', title: ts }, time), ' ',
    h('span', { class: 'lv' }, level.padEnd(5).slice(0, 5)), ' ',
    l.logger ? h('span', { class: 'lg' }, l.logger + ' ') : null,
    h('span', { class: 'ev' }, l.event === undefined ? '' : String(l.event)),
    extra.length ? h('span', { class: 'kv' }, ' ' + extra.map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`).join(' ')) : null);
}

