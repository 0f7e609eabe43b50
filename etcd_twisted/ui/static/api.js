// The member's JSON gateway and /metrics, with the logged-in user's token.
//
// The token is sent only to this page's own origin. Other members are asked only for
// what etcd serves without a token (Maintenance.Status), so it never leaves this member.

const STORE = window.sessionStorage;
let token = STORE.getItem('etcd-token') || '';
let user = STORE.getItem('etcd-user') || '';
const listeners = new Set();

export class ApiError extends Error {
  constructor(httpStatus, code, message) {
    super(message || `HTTP ${httpStatus}`);
    this.httpStatus = httpStatus;
    this.code = code;
  }

  /** The call needs a (new) login: no token, or one the server no longer knows. */
  get needsLogin() {
    return /user name is empty|invalid auth token/.test(this.message) || this.code === 16;
  }

  get denied() {
    return this.code === 7 || /permission denied/.test(this.message);
  }

  get compacted() {
    return /required revision has been compacted/.test(this.message);
  }
}

export const session = {
  get user() {
    return user;
  },
  get loggedIn() {
    return token !== '';
  },
  /** Call `listener(error)` whenever a call says a login is needed. */
  onLoginNeeded(listener) {
    listeners.add(listener);
  },
};

function headers(sameOrigin) {
  return sameOrigin && token ? { authorization: token } : {};
}

async function decode(response) {
  const text = await response.text();
  let data;
  try {
    data = JSON.parse(text);
  } catch {
    throw new ApiError(response.status, 0, text.trim());
  }
  if (!response.ok || data.error) {
    throw new ApiError(response.status, data.code, data.message || data.error);
  }
  return data;
}

/** POST `body` to a gateway path; `base` is another member's client URL. */
export async function call(path, body = {}, { base = '', signal } = {}) {
  const response = await fetch(base + path, {
    method: 'POST',
    headers: headers(base === ''),
    body: JSON.stringify(body),
    signal,
    cache: 'no-store',
  });
  try {
    return await decode(response);
  } catch (error) {
    if (base === '' && error.needsLogin) for (const listener of listeners) listener(error);
    throw error;
  }
}

export async function login(name, password) {
  const data = await call('/v3/auth/authenticate', { name, password });
  token = data.token;
  user = name;
  STORE.setItem('etcd-token', token);
  STORE.setItem('etcd-user', user);
}

export function logout() {
  token = '';
  user = '';
  STORE.removeItem('etcd-token');
  STORE.removeItem('etcd-user');
}

/** The member's Prometheus text. */
export async function metricsText() {
  const response = await fetch('/metrics', { cache: 'no-store' });
  if (!response.ok) throw new ApiError(response.status, 0, `metrics: HTTP ${response.status}`);
  return response.text();
}

/**
 * Open the gateway's streaming /v3/watch with one create request; `onMessage(result)`
 * gets each response. Resolves when the stream ends; rejects on an error line.
 */
export async function watchStream(createRequest, onMessage, signal) {
  const response = await fetch('/v3/watch', {
    method: 'POST',
    headers: headers(true),
    body: JSON.stringify({ create_request: createRequest }),
    signal,
    cache: 'no-store',
  });
  if (!response.ok) await decode(response);
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffered = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffered += value;
    let newline;
    while ((newline = buffered.indexOf('\n')) >= 0) {
      const line = buffered.slice(0, newline).trim();
      buffered = buffered.slice(newline + 1);
      if (!line) continue;
      const message = JSON.parse(line);
      if (message.error) {
        const error = new ApiError(message.error.http_code, message.error.grpc_code, message.error.message);
        if (error.needsLogin) for (const listener of listeners) listener(error);
        throw error;
      }
      onMessage(message.result);
    }
  }
}
