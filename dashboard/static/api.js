// The executor's public API, as the dashboard calls it: JSON over fetch,
// with the operator token from sessionStorage as a bearer header.

const tokenKey = 'taskwire.operator-token';

export class APIError extends Error {
  constructor(status, code, detail) {
    super(detail ? `${status} ${code}: ${detail}` : `${status} ${code}`);
    this.status = status;
    this.code = code;
    this.detail = detail;
  }
}

export function token() {
  return sessionStorage.getItem(tokenKey) || '';
}

export function setToken(t) {
  if (t) sessionStorage.setItem(tokenKey, t);
  else sessionStorage.removeItem(tokenKey);
}

// request sends one call and returns the answer's text; an answer that is
// not 2xx throws an APIError carrying the API's {error, detail}.
async function request(method, path, query) {
  const url = new URL('/api/v1' + path, location.origin);
  for (const [k, v] of Object.entries(query || {})) {
    if (v !== undefined && v !== null && v !== '') url.searchParams.set(k, v);
  }
  const headers = { Accept: 'application/json' };
  const t = token();
  if (t) headers.Authorization = 'Bearer ' + t;
  let resp;
  try {
    resp = await fetch(url, { method, headers, cache: 'no-store' });
  } catch (e) {
    throw new APIError(0, 'unreachable', `the executor did not answer (${e.message})`);
  }
  const text = await resp.text();
  if (!resp.ok) {
    let code = resp.statusText.toLowerCase().replaceAll(' ', '_') || 'http_error';
    let detail = text.trim();
    try {
      const body = JSON.parse(text);
      if (body && body.error) ({ error: code, detail } = body);
    } catch { /* not the API's JSON: keep the text */ }
    throw new APIError(resp.status, code, detail);
  }
  return text;
}

async function json(method, path, query) {
  const text = await request(method, path, query);
  return text ? JSON.parse(text) : null;
}

const ti = (id) => '/task-instances/' + encodeURIComponent(id);
const dag = (id) => '/dags/' + encodeURIComponent(id);

export const api = {
  queues: () => json('GET', '/queues'),
  pools: () => json('GET', '/pools'),
  workers: () => json('GET', '/workers'),
  triggerers: () => json('GET', '/triggerers'),
  taskInstances: (filter) => json('GET', '/task-instances', filter),
  taskInstance: (id) => json('GET', ti(id)),
  cancel: (id) => json('POST', ti(id) + '/cancel'),
  retry: (id) => json('POST', ti(id) + '/retry'),
  drain: (id) => json('POST', '/workers/' + encodeURIComponent(id) + '/drain'),
  dags: () => json('GET', '/dags'),
  dag: (id) => json('GET', dag(id)),
  pauseDag: (id, paused) => json('POST', dag(id) + (paused ? '/pause' : '/unpause')),
  triggerRun: (id) => json('POST', dag(id) + '/runs'),
  dagRuns: (id) => json('GET', dag(id) + '/runs', { task_instances: 'true' }),
  dagRun: (id, runID) => json('GET', dag(id) + '/runs/' + encodeURIComponent(runID)),
  // logs answers the parsed NDJSON lines of one try (0: every try).
  logs: async (id, tryNumber) => {
    const text = await request('GET', ti(id) + '/logs', { try: tryNumber || undefined });
    const lines = [];
    for (const raw of text.split('\n')) {
      if (!raw.trim()) continue;
      try {
        const l = JSON.parse(raw);
        lines.push(typeof l === 'object' && l ? l : { event: String(l) });
      } catch {
        lines.push({ event: raw });
      }
    }
    return lines;
  },
};
