// The keys view: a prefix tree (split at "/"), a key's value, revisions, lease and
// history; put and delete.

import { call } from './api.js';
import { fromBase64, prefixRange, printable, show, toBase64, toHex, utf8 } from './bytes.js';
import { $, h, status } from './dom.js';

/** A lease id (a decimal int64 string) as etcdctl prints it: 16 hex digits. */
function hexLease(id) {
  return BigInt(id).toString(16).padStart(16, '0');
}

/** Keys listed per tree node (the rest are counted, not shown). */
const LIMIT = 500;
/** Earlier versions shown in a key's history. */
const HISTORY = 20;
const SLASH = 0x2f;

let rootPrefix = new Uint8Array();

function describe(error) {
  if (error.denied) return 'permission denied';
  return error.message;
}

/** The keys directly under `prefix` and its sub-"directories" with their key counts. */
async function listChildren(prefix) {
  const data = await call('/v3/kv/range', { ...prefixRange(prefix), keys_only: true, limit: LIMIT });
  const dirs = new Map();
  const leaves = [];
  for (const kv of data.kvs || []) {
    const key = fromBase64(kv.key);
    const rest = key.subarray(prefix.length);
    const slash = rest.indexOf(SLASH);
    if (slash >= 0 && slash < rest.length - 1) {
      const dir = key.slice(0, prefix.length + slash + 1);
      const id = toHex(dir);
      const entry = dirs.get(id) || { prefix: dir, count: 0 };
      entry.count++;
      dirs.set(id, entry);
    } else {
      leaves.push(key);
    }
  }
  return { dirs: [...dirs.values()], leaves, more: Boolean(data.more), count: Number(data.count || 0) };
}

function label(bytes, prefixLength) {
  return show(bytes.subarray(prefixLength));
}

async function fillNode(list, prefix) {
  list.replaceChildren(h('li', { class: 'muted' }, 'loading…'));
  let result;
  try {
    result = await listChildren(prefix);
  } catch (error) {
    const where = prefix.length ? `“${show(prefix)}”` : 'the whole key space';
    list.replaceChildren(h('li', { class: 'denied' }, `${describe(error)}: cannot list ${where}`));
    return;
  }
  const items = [];
  for (const dir of result.dirs) items.push(dirNode(dir.prefix, prefix.length, dir.count));
  for (const key of result.leaves) {
    items.push(
      h('li', { class: 'leaf' },
        h('button', { type: 'button', class: 'key', dataset: { key: show(key) }, onclick: () => showKey(key) }, label(key, prefix.length)),
      ),
    );
  }
  if (!items.length) items.push(h('li', { class: 'muted' }, 'no keys'));
  if (result.more) items.push(h('li', { class: 'muted' }, `first ${LIMIT} of ${result.count} keys shown`));
  list.replaceChildren(...items);
}

function dirNode(prefix, parentLength, count) {
  const children = h('ul', { hidden: true });
  const toggle = h('button', { type: 'button', class: 'dir', dataset: { prefix: show(prefix) } },
    label(prefix, parentLength), h('small', {}, ` ${count}${count >= LIMIT ? '+' : ''}`));
  toggle.addEventListener('click', () => {
    const opening = children.hidden;
    children.hidden = !opening;
    toggle.classList.toggle('open', opening);
    if (opening) fillNode(children, prefix);
  });
  return h('li', {}, toggle, children);
}

export async function browse(prefix = rootPrefix) {
  rootPrefix = prefix;
  const list = h('ul', { class: 'tree' });
  $('tree').replaceChildren(h('div', { class: 'muted' }, prefix.length ? `keys under “${show(prefix)}”` : 'all keys'), list);
  await fillNode(list, prefix);
}

function field(name, value, id) {
  return [h('dt', {}, name), h('dd', { id }, String(value))];
}

async function leaseInfo(lease) {
  try {
    const data = await call('/v3/lease/timetolive', { ID: lease });
    const ttl = Number(data.TTL);
    return ttl < 0 ? 'expired' : `${ttl}s left of ${data.grantedTTL}s`;
  } catch (error) {
    return `TTL unavailable (${describe(error)})`;
  }
}

/** Earlier versions of the key's current life, newest first, until one is compacted. */
async function history(key, kv) {
  const rows = [];
  let current = kv;
  while (rows.length < HISTORY && Number(current.version || 0) > 1) {
    let data;
    try {
      data = await call('/v3/kv/range', { key: toBase64(key), revision: String(Number(current.mod_revision) - 1) });
    } catch (error) {
      if (error.compacted) return { rows, note: 'older revisions are compacted' };
      return { rows, note: describe(error) };
    }
    const previous = (data.kvs || [])[0];
    if (!previous) break;
    rows.push(previous);
    current = previous;
  }
  return { rows, note: Number(current.version || 0) > 1 ? `only the last ${HISTORY} versions shown` : '' };
}

function historyTable(rows) {
  return h('table', { id: 'history' },
    h('thead', {}, h('tr', {}, h('th', {}, 'Mod rev'), h('th', {}, 'Version'), h('th', {}, 'Value'))),
    h('tbody', {}, rows.map((kv) => h('tr', {},
      h('td', { class: 'num' }, kv.mod_revision), h('td', { class: 'num' }, kv.version || 0),
      h('td', { class: 'mono' }, show(fromBase64(kv.value)))))),
  );
}

export async function showKey(key) {
  const detail = $('key-detail');
  let data;
  try {
    data = await call('/v3/kv/range', { key: toBase64(key) });
  } catch (error) {
    detail.replaceChildren(h('p', { class: 'denied' }, `${describe(error)}: cannot read “${show(key)}”`));
    return;
  }
  const kv = (data.kvs || [])[0];
  if (!kv) {
    detail.replaceChildren(h('p', { class: 'muted' }, `“${show(key)}” does not exist (revision ${data.header.revision}).`));
    return;
  }
  const value = fromBase64(kv.value);
  const lease = kv.lease && kv.lease !== '0' ? kv.lease : null;
  const binary = printable(value) === null;
  const remove = h('button', { type: 'button', id: 'delete', class: 'danger' }, 'Delete');
  remove.addEventListener('click', () => {
    if (remove.dataset.armed) return deleteKey(key);
    remove.dataset.armed = '1';
    remove.textContent = 'Really delete?';
  });
  const edit = h('button', { type: 'button', id: 'edit', disabled: binary || printable(key) === null }, 'Edit');
  edit.addEventListener('click', () => {
    $('put-key').value = printable(key);
    $('put-value').value = printable(value);
    $('put-lease').value = lease ? hexLease(lease) : '';
  });
  detail.replaceChildren(
    h('h3', { id: 'detail-key', class: 'mono' }, show(key)),
    h('dl', {},
      field('create revision', kv.create_revision, 'detail-create'),
      field('mod revision', kv.mod_revision, 'detail-mod'),
      field('version', kv.version, 'detail-version'),
      field('lease', lease ? hexLease(lease) : 'none', 'detail-lease'),
      lease ? field('lease TTL', '…', 'detail-ttl') : [],
      field('size', `${value.length} bytes${binary ? ' (binary, shown as hex)' : ''}`)),
    h('pre', { id: 'detail-value' }, show(value)),
    h('div', { class: 'row' }, edit, remove),
    h('h4', {}, 'History'),
    h('div', { id: 'history-box', class: 'muted' }, 'loading…'),
  );
  if (lease) leaseInfo(lease).then((text) => ($('detail-ttl').textContent = text));
  const past = await history(key, kv);
  $('history-box').replaceChildren(historyTable([kv, ...past.rows]), past.note ? h('p', { class: 'muted' }, past.note) : '');
}

async function deleteKey(key) {
  try {
    const data = await call('/v3/kv/deleterange', { key: toBase64(key) });
    status(`deleted ${data.deleted || 0} key(s) at revision ${data.header.revision}`);
  } catch (error) {
    status(`delete failed: ${describe(error)}`, true);
  }
  await showKey(key);
  await browse();
}

async function put(event) {
  event.preventDefault();
  const key = utf8($('put-key').value);
  const body = { key: toBase64(key), value: toBase64(utf8($('put-value').value)) };
  const lease = $('put-lease').value.trim().replace(/^0x/i, '');
  $('put-error').textContent = '';
  try {
    if (lease && lease !== '0') body.lease = BigInt('0x' + lease).toString();
    const data = await call('/v3/kv/put', body);
    status(`put “${show(key)}” at revision ${data.header.revision}`);
  } catch (error) {
    $('put-error').textContent = error instanceof SyntaxError ? 'lease must be hex' : describe(error);
    return;
  }
  await showKey(key);
  await browse();
}

/** Forget what the last user saw (on logout). */
export function reset() {
  rootPrefix = new Uint8Array();
  $('tree').replaceChildren();
  $('key-detail').replaceChildren(h('p', { class: 'muted' }, 'Select a key.'));
  for (const id of ['browse-prefix', 'put-key', 'put-value', 'put-lease']) $(id).value = '';
}

export function setUp() {
  $('browse-form').addEventListener('submit', (event) => {
    event.preventDefault();
    browse(utf8($('browse-prefix').value));
  });
  $('put-form').addEventListener('submit', put);
}
