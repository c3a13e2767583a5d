// Small DOM helpers. Text always goes in as text nodes, never as HTML:
// task names, reasons and log lines are data, not markup.

// h makes an element: h('td', {class: 'x', onclick: f}, 'text', child, …).
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (v === true) el.setAttribute(k, '');
    else el.setAttribute(k, String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === undefined || c === null || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

// fill replaces el's children.
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

export const states = ['queued', 'running', 'deferred', 'up_for_retry', 'up_for_reschedule', 'success', 'failed', 'skipped', 'cancelled', 'removed'];
export const terminal = new Set(['success', 'failed', 'skipped', 'removed', 'cancelled']);

// badge shows a state in its colour; title (e.g. the reason) shows on hover.
export function badge(state, title) {
  return h('span', { class: 'badge s-' + (state || 'none'), title: title || state }, (state || '—').replaceAll('_', ' '));
}

// ago formats a time as "12s ago", with the exact time as its title.
export function ago(iso, now = Date.now()) {
  if (!iso || iso.startsWith('0001-')) return h('span', { class: 'muted' }, '—');
  const t = new Date(iso);
  const s = Math.round((now - t.getTime()) / 1000);
  let text;
  if (Math.abs(s) < 2) text = 'now';
  else if (s < 0) text = 'in ' + span(-s * 1000);
  else text = span(s * 1000) + ' ago';
  return h('time', { datetime: iso, title: t.toLocaleString() }, text);
}

// clock formats a time compactly: 14:03:07 today, 11-02 14:03:07 before,
// with the full date and time as its title.
export function clock(iso) {
  if (!iso || iso.startsWith('0001-')) return h('span', { class: 'muted' }, '—');
  const t = new Date(iso);
  const pad = (n) => String(n).padStart(2, '0');
  let text = `${pad(t.getHours())}:${pad(t.getMinutes())}:${pad(t.getSeconds())}`;
  if (t.toDateString() !== new Date().toDateString()) {
    text = `${t.getFullYear()}-${pad(t.getMonth() + 1)}-${pad(t.getDate())} ` + text;
  }
  return h('time', { datetime: iso, title: t.toString() }, text);
}

// span formats milliseconds: 850ms, 4.2s, 3m 04s, 2h 05m, 3d 4h.
export function span(ms) {
  if (ms < 1000) return Math.max(0, Math.round(ms)) + 'ms';
  const s = ms / 1000;
  if (s < 60) return s.toFixed(s < 10 ? 1 : 0) + 's';
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${String(Math.floor(s % 60)).padStart(2, '0')}s`;
  const hr = Math.floor(m / 60);
  if (hr < 48) return `${hr}h ${String(m % 60).padStart(2, '0')}m`;
  return `${Math.floor(hr / 24)}d ${hr % 24}h`;
}

// duration of a try: start to end, or to now while it runs.
export function duration(start, end, now = Date.now()) {
  if (!start) return h('span', { class: 'muted' }, '—');
  const stop = end ? new Date(end).getTime() : now;
  return span(stop - new Date(start).getTime());
}

export function shortID(id) {
  return id && id.length > 13 ? '…' + id.slice(-12) : id;
}
