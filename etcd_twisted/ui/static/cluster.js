// The cluster view: members and their status, refreshed every second, and a history
// chart of this member's metrics.

import { call, metricsText } from './api.js';
import { formatBytes } from './bytes.js';
import { $, h, status } from './dom.js';
import { lineChart, parseMetrics } from './chart.js';

const REFRESH_MS = 1000;
const METRICS_MS = 2000;
const HISTORY_SECONDS = 300;

const samples = [];
let timer = null;
let metricsTimer = null;
let lastOwnStatus = null;

/** A member id (a decimal uint64 string) as etcdctl prints it: hex. */
export function hexId(id) {
  return id ? BigInt(id).toString(16) : '0';
}

/** Member's status, from this page's origin for this member, else its first client URL. */
async function memberStatus(member, ownId) {
  if (member.ID === ownId) return call('/v3/maintenance/status');
  const url = (member.clientURLs || [])[0];
  if (!url) throw new Error('not started');
  const controller = new AbortController();
  const timeout = setTimeout(() => controller.abort(), REFRESH_MS * 2);
  try {
    return await call('/v3/maintenance/status', {}, { base: url, signal: controller.signal });
  } finally {
    clearTimeout(timeout);
  }
}

function roleOf(member, st, leaderId) {
  if (!st) return 'unreachable';
  if (member.isLearner || st.isLearner) return 'learner';
  if (!leaderId) return 'no leader';
  return member.ID === leaderId ? 'leader' : 'follower';
}

function cell(text, cls) {
  return h('td', { class: cls }, text === undefined || text === null ? '' : String(text));
}

function row(member, result, leaderStatus, leaderId) {
  const st = result.status;
  const role = roleOf(member, st, leaderId);
  const applied = st ? Number(st.raftAppliedIndex || 0) : null;
  const lag = st && leaderStatus ? Math.max(0, Number(leaderStatus.raftIndex || 0) - applied) : null;
  const alarms = st && st.errors ? st.errors.join(', ') : '';
  return h(
    'tr',
    { dataset: { memberName: member.name || '', memberId: hexId(member.ID), role }, class: 'role-' + role.replace(' ', '-') },
    cell(member.name || '(unstarted)', 'name'),
    cell(hexId(member.ID), 'mono'),
    cell(role, 'role'),
    cell((member.peerURLs || []).join(', '), 'mono'),
    cell((member.clientURLs || []).join(', '), 'mono'),
    cell(st ? st.raftTerm || 0 : result.error, st ? 'num' : 'error'),
    cell(st ? st.raftIndex || 0 : '', 'num'),
    cell(st ? applied : '', 'num'),
    cell(lag, 'num'),
    cell(st ? formatBytes(st.dbSize) : '', 'num'),
    cell(st ? formatBytes(st.dbSizeInUse) : '', 'num'),
    cell(alarms, alarms ? 'error' : ''),
    cell(st ? st.version : ''),
  );
}

async function refresh() {
  const list = await call('/v3/cluster/member/list');
  const ownId = list.header.member_id;
  const members = (list.members || []).slice().sort((a, b) => (a.name || '').localeCompare(b.name || ''));
  const results = await Promise.all(
    members.map((m) =>
      memberStatus(m, ownId).then(
        (st) => ({ status: st }),
        (error) => ({ error: error.name === 'AbortError' ? 'timed out' : error.message }),
      ),
    ),
  );
  const byId = new Map(members.map((m, i) => [m.ID, results[i].status]));
  lastOwnStatus = byId.get(ownId) || null;
  // The leader as the members that answer see it (this member's view first).
  const views = [lastOwnStatus, ...results.map((r) => r.status)].filter((s) => s && s.leader && s.leader !== '0');
  const leaderId = views.length ? views[0].leader : null;
  const leaderStatus = leaderId ? byId.get(leaderId) || null : null;
  $('members').tBodies[0].replaceChildren(...members.map((m, i) => row(m, results[i], leaderStatus, leaderId)));
  const leader = members.find((m) => m.ID === leaderId);
  const own = members.find((m) => m.ID === ownId);
  $('cluster-summary').textContent =
    `${members.length} members · leader ${leader ? leader.name || hexId(leader.ID) : 'none'}` +
    ` · serving this page: ${own ? own.name : hexId(ownId)}`;
  $('charts-member').textContent = own ? `(${own.name})` : '';
  status(`Updated ${new Date().toLocaleTimeString()}`);
}

async function sample() {
  const values = parseMetrics(await metricsText());
  const now = performance.now() / 1000;
  samples.push({
    t: now,
    revision: values.etcd_debugging_mvcc_current_revision,
    dbSize: values.etcd_mvcc_db_total_size_in_bytes,
    raftIndex: lastOwnStatus ? Number(lastOwnStatus.raftIndex || 0) : null,
  });
  while (samples.length && samples[0].t < now - HISTORY_SECONDS) samples.shift();
  drawCharts();
}

function drawCharts() {
  const writes = [];
  for (let i = 1; i < samples.length; i++) {
    const a = samples[i - 1];
    const b = samples[i];
    if (a.revision !== undefined && b.revision !== undefined) {
      writes.push([b.t, Math.max(0, (b.revision - a.revision) / (b.t - a.t))]);
    }
  }
  const series = (field) => samples.filter((s) => s[field] !== null && s[field] !== undefined).map((s) => [s.t, s[field]]);
  $('charts').replaceChildren(
    lineChart('Writes/s', writes, (v) => v.toFixed(1)),
    lineChart('Raft index', series('raftIndex'), (v) => String(Math.round(v))),
    lineChart('DB size', series('dbSize'), formatBytes),
  );
}

/** Run `fn` now and `ms` after each run ends, until the returned function is called. */
function loop(fn, ms) {
  let handle = null;
  let running = true;
  const tick = async () => {
    try {
      await fn();
    } catch (error) {
      status(error.message, true);
    }
    if (running) handle = setTimeout(tick, ms);
  };
  tick();
  return () => {
    running = false;
    clearTimeout(handle);
  };
}

export function show() {
  if (!timer) timer = loop(refresh, REFRESH_MS);
  if (!metricsTimer) metricsTimer = loop(sample, METRICS_MS);
}

export function hide() {
  // The chart keeps sampling in the background so its history stays continuous.
  if (timer) timer();
  timer = null;
}
