// The dashboard's shell: hash routes, the refresh loop, the operator-token
// dialog and the flash line for errors and results.
import { APIError, setToken, token } from './api.js';
import { fill, h } from './dom.js';
import { overview } from './overview.js';
import { taskView } from './task.js';
import { dagsView, dagView, runView } from './dags.js';

const refreshEvery = 2000;
const main = document.getElementById('main');
const flashEl = document.getElementById('flash');
const autoRefresh = document.getElementById('auto-refresh');
let view = null;
let timer = null;
let flashTimer = null;

// flash shows a message (kind: 'error' or 'ok'); errors stay until the next
// action, results fade after a few seconds.
export function flash(kind, text) {
  clearTimeout(flashTimer);
  flashEl.className = 'flash ' + kind;
  fill(flashEl, text, h('button', { class: 'close', title: 'Dismiss', onclick: () => { flashEl.hidden = true; } }, '×'));
  flashEl.hidden = false;
  if (kind === 'ok') flashTimer = setTimeout(() => { flashEl.hidden = true; }, 4000);
}

export function clearFlash() {
  flashEl.hidden = true;
}

// failed handles an API error of a view: 401 asks for the token, anything
// else is shown; it reports whether the view should show it too.
export function failed(err) {
  if (err instanceof APIError && err.status === 401) {
    askToken(token() ? 'The executor refused this token: ' + err.detail : 'This executor needs its operator token for the API.');
    return false;
  }
  return true;
}

const dialog = document.getElementById('token-dialog');
document.getElementById('token-form').addEventListener('submit', () => {
  const input = document.getElementById('token-input');
  setToken(input.value.trim());
  input.value = '';
  showAuth();
  route();
});

function askToken(reason) {
  fill(document.getElementById('token-reason'), reason);
  if (!dialog.open) dialog.showModal();
  document.getElementById('token-input').focus();
}

function showAuth() {
  const el = document.getElementById('auth');
  if (!token()) {
    fill(el, h('button', { class: 'link', onclick: () => askToken('Set the operator token for this tab.') }, 'set token'));
    return;
  }
  fill(el, 'token set · ', h('button', {
    class: 'link', id: 'forget-token', onclick: () => { setToken(''); showAuth(); route(); },
  }, 'forget'));
}

function parseHash() {
  const hash = location.hash.replace(/^#/, '') || '/';
  const [path, query] = hash.split('?');
  return { path, params: new URLSearchParams(query || '') };
}

let generation = 0;

// tick refreshes the view, then schedules the next refresh; a tick started
// meanwhile (an action, a new route) takes over the schedule.
async function tick() {
  clearTimeout(timer);
  const mine = ++generation;
  if (!view) return;
  let again = autoRefresh.checked;
  try {
    await view.refresh();
    fill(document.getElementById('updated'), 'updated ' + new Date().toLocaleTimeString());
  } catch (err) {
    if (failed(err)) flash('error', err.message);
    else again = false; // waiting for a token
  }
  if (mine === generation && again) timer = setTimeout(tick, refreshEvery);
}

function route() {
  const { path, params } = parseHash();
  if (view && view.stop) view.stop();
  clearFlash();
  let m;
  const ctx = { flash, failed, refresh: tick };
  if ((m = path.match(/^\/ti\/(.+)$/))) {
    view = taskView(decodeURIComponent(m[1]), ctx);
  } else if ((m = path.match(/^\/dags\/([^/]+)\/runs\/(.+)$/))) {
    view = runView(decodeURIComponent(m[1]), decodeURIComponent(m[2]), ctx);
  } else if ((m = path.match(/^\/dags\/([^/]+)$/))) {
    view = dagView(decodeURIComponent(m[1]), ctx);
  } else if (path === '/dags') {
    view = dagsView(ctx);
  } else {
    view = overview(params, { flash, failed, refresh: tick });
  }
  for (const a of document.querySelectorAll('[data-nav]')) {
    a.classList.toggle('active', a.dataset.nav === view.nav);
  }
  document.title = view.title ? view.title + ' · taskwire' : 'taskwire';
  fill(main, view.el);
  tick();
}

autoRefresh.checked = localStorage.getItem('taskwire.auto-refresh') !== 'off';
autoRefresh.addEventListener('change', () => {
  localStorage.setItem('taskwire.auto-refresh', autoRefresh.checked ? 'on' : 'off');
  if (autoRefresh.checked) tick();
  else clearTimeout(timer);
});
document.addEventListener('visibilitychange', () => {
  if (!document.hidden && autoRefresh.checked) tick();
});
window.addEventListener('hashchange', route);
showAuth();
route();
