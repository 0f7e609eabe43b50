// The dashboard's entry point: views by URL fragment, and the login when auth is on.

import { call, login, logout, session } from './api.js';
import { toBase64, utf8 } from './bytes.js';
import * as cluster from './cluster.js';
import { $, status } from './dom.js';
import * as keys from './keys.js';
import * as watch from './watch.js';

const VIEWS = ['cluster', 'keys', 'watch'];
let authRequired = false;
let wanted = 'cluster';

function showView(name) {
  for (const view of [...VIEWS, 'login']) $('view-' + view).hidden = view !== name;
  for (const view of VIEWS) $('nav-' + view).classList.toggle('active', view === name);
  document.body.dataset.view = name;
  if (name === 'cluster') cluster.show();
  else cluster.hide();
  if (name === 'keys') keys.browse();
  if (name === 'login') $('login-user').focus();
}

function route() {
  const name = location.hash.slice(1);
  wanted = VIEWS.includes(name) ? name : 'cluster';
  showView(authRequired && !session.loggedIn ? 'login' : wanted);
}

function showSession() {
  $('session-user').textContent = session.loggedIn ? `user: ${session.user}` : authRequired ? 'not logged in' : '';
  $('logout').hidden = !session.loggedIn;
}

/** Whether the gateway wants a user: a read without a token fails with "user name is empty". */
async function probeAuth() {
  if (session.loggedIn) authRequired = true;
  try {
    await call('/v3/kv/range', { key: toBase64(utf8('/')), count_only: true });
  } catch (error) {
    if (error.denied) authRequired = true; // a permission error means auth is on
  }
}

session.onLoginNeeded(() => {
  const expired = session.loggedIn;
  authRequired = true;
  logout();
  watch.reset();
  keys.reset();
  showSession();
  $('login-error').textContent = expired ? 'Your session expired: please log in again.' : '';
  showView('login');
});

$('login-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  $('login-error').textContent = '';
  try {
    await login($('login-user').value, $('login-password').value);
  } catch (error) {
    $('login-error').textContent = error.message;
    return;
  }
  $('login-password').value = '';
  showSession();
  status(`logged in as ${session.user}`);
  route();
});

$('logout').addEventListener('click', () => {
  logout();
  watch.reset();
  keys.reset();
  showSession();
  route();
});

keys.setUp();
watch.setUp();
window.addEventListener('hashchange', route);
await probeAuth();
showSession();
route();
