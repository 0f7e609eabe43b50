// The watch view: a live tail of a prefix through the gateway's streaming /v3/watch,
// with pause (events are kept, not shown, until resumed) and a filter.

import { watchStream } from './api.js';
import { fromBase64, prefixRange, show, utf8 } from './bytes.js';
import { $, h } from './dom.js';

/** Rows kept in the table (oldest dropped first). */
const KEEP = 500;

let controller = null;
let paused = false;
let held = [];

function state(text) {
  $('watch-state').textContent = text;
}

function matches(row) {
  const type = $('watch-type').value;
  const text = $('watch-filter').value;
  if (type && row.dataset.type !== type) return false;
  return !text || row.dataset.key.includes(text) || row.dataset.value.includes(text);
}

function eventRow(event) {
  const kv = event.kv || {};
  const type = event.type || 'PUT';
  const key = show(fromBase64(kv.key));
  const value = type === 'PUT' ? show(fromBase64(kv.value)) : '';
  const row = h('tr', { class: 'event-' + type.toLowerCase(), dataset: { type, key, value } },
    h('td', { class: 'num' }, kv.mod_revision || ''),
    h('td', {}, type),
    h('td', { class: 'mono' }, key),
    h('td', { class: 'mono' }, value));
  row.hidden = !matches(row);
  return row;
}

function addRows(rows) {
  const body = $('events').tBodies[0];
  body.prepend(...rows.reverse());
  while (body.rows.length > KEEP) body.deleteRow(body.rows.length - 1);
}

function onMessage(result, prefixText) {
  if (result.created) state(`Watching ${prefixText} from revision ${Number(result.header.revision) + 1}.`);
  if (result.canceled) {
    stop();
    state(`Watch canceled: ${result.cancel_reason || 'by the server'}${result.compact_revision ? ` (compacted at ${result.compact_revision})` : ''}.`);
    return;
  }
  const rows = (result.events || []).map(eventRow);
  if (!rows.length) return;
  if (paused) {
    held.push(...rows);
    $('watch-pause').textContent = `Resume (${held.length} new)`;
  } else {
    addRows(rows);
  }
}

function stop() {
  if (controller) controller.abort();
  controller = null;
  $('watch-start').textContent = 'Watch';
  $('watch-pause').disabled = true;
}

async function start(event) {
  event.preventDefault();
  if (controller) {
    stop();
    state('Stopped.');
    return;
  }
  const prefix = utf8($('watch-prefix').value);
  const prefixText = prefix.length ? `“${show(prefix)}”` : 'all keys';
  controller = new AbortController();
  const mine = controller;
  $('watch-start').textContent = 'Stop';
  $('watch-pause').disabled = false;
  state(`Connecting to watch ${prefixText}…`);
  try {
    await watchStream(prefixRange(prefix), (result) => onMessage(result, prefixText), mine.signal);
    if (controller === mine) state('The server ended the watch.');
  } catch (error) {
    if (error.name !== 'AbortError') state(`Watch failed: ${error.denied ? 'permission denied' : error.message}`);
  } finally {
    if (controller === mine) stop();
  }
}

function togglePause() {
  paused = !paused;
  const button = $('watch-pause');
  if (!paused) {
    addRows(held);
    held = [];
  }
  button.textContent = paused ? 'Resume (0 new)' : 'Pause';
  button.classList.toggle('active', paused);
}

function refilter() {
  for (const row of $('events').tBodies[0].rows) row.hidden = !matches(row);
}

export function setUp() {
  $('watch-form').addEventListener('submit', start);
  $('watch-pause').addEventListener('click', togglePause);
  $('watch-filter').addEventListener('input', refilter);
  $('watch-type').addEventListener('change', refilter);
}

/** End the watch (on logout: its token is gone). */
export function reset() {
  stop();
  $('events').tBodies[0].replaceChildren();
  state('Not watching.');
}
