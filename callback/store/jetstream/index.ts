import { connect, type NatsConnection } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import { Kvm, KvWatchInclude, type KV, type KvEntry } from '@nats-io/kv';
import type { Logger } from '../../../common/logger.js';
import { errorMessage } from '../../../common/error-message.js';
import {
  DAY_MS,
  StoreUnavailableError,
  foldStats,
  matchesDeadLetterFilter,
  matchesEventQuery,
  selectsDeadLetter,
  settleMethods,
  type ClaimedDelivery,
  type ClaimOptions,
  type DeadLetter,
  type DeadLetterKey,
  type DeliveryStore,
  type DeliveryView,
  type DisabledState,
  type EventSummary,
  type SettleFn,
} from '../types.js';
import { connectionOptions, DEFAULT_LEASE_MS, DEFAULT_PREFIX, type JetStreamSettings } from './config.js';
import { createMirror, type MirroredDelivery } from './mirror.js';
import {
  deliveryId,
  disableEntry,
  fromKeyToken,
  keyToken,
  logAttempt,
  newEventRecord,
  pruneRecord,
  replayEntry,
  serializeRecord,
  settleEntry,
  splitDeliveryId,
  type DeliveryEntry,
  type EventRecord,
  type LaneRecord,
} from './records.js';

/**
 * The delivery store on NATS JetStream, shared by any number of callback replicas.
 *
 * Layout (two KV buckets, created at open unless they exist; see docs/callback.md):
 * - `<prefix>-events`: one entry per event id holding the event and its deliveries (records.ts).
 *   accept = kv.create (resolves on the PubAck, fails if the id exists: the duplicate check across
 *   replicas, for as long as the entry is kept, i.e. the retention, not JetStream's 2-minute
 *   duplicate window); every outcome, replay or disable is a compare-and-set on that entry.
 * - `<prefix>-subscribers`: `lane.<sub>` holds the leases on that subscriber's deliveries, written by
 *   compare-and-set, so a claim is exclusive across replicas and the number of live leases is capped
 *   at the subscriber's maxConcurrency (maxLeased) whichever replica holds them; `off.<sub>` marks a
 *   disabled subscriber; `fail.<sub>` marks one failing since a time (created by compare-and-set, so
 *   the first mark stays). The attempt log is kept in the event's entry, with each delivery.
 * Each replica follows both buckets with a watch into an in-memory index (mirror.ts) to find due
 * deliveries without scanning. A lease ends after at most `leaseMs` (default 30 s): what a dead
 * replica held is then claimable by the others with the same delivery id (same webhook-id).
 */

export interface JetStreamStoreOptions extends Partial<JetStreamSettings> {
  servers: string[];
  /** The cap on live leases of one subscriber across all replicas: its maxConcurrency. */
  maxLeased?: (subscriber: string) => number | undefined;
  log?: Logger;
  /** The client name NATS shows for this connection (e.g. the pod name). */
  name?: string;
}

/**
 * How long after another replica's write this replica's lanes look for the work it made. The replica
 * that accepted an event claims its deliveries at once; the others look a moment later, so that they
 * do not all race for the same lane entry (a lost compare-and-set costs a re-read and a retry), yet
 * take over at once if it cannot.
 */
const REMOTE_WAKE_MS = 250;

/** A claim that loses a compare-and-set re-reads and tries again, this many times at most. */
const CAS_TRIES = 20;

function isWrongSequence(err: unknown): boolean {
  const code = (err as { api_error?: { err_code?: number } } | undefined)?.api_error?.err_code;
  return code === 10071 || /wrong last sequence/i.test(errorMessage(err));
}

/** A kv.create that failed because the key exists (also once nats() wrapped the error: its message quotes it). */
function alreadyExists(err: unknown): boolean {
  return isWrongSequence(err) || isWrongSequence((err as { cause?: unknown }).cause);
}

/** The store, plus word of work another replica made (new or replayed deliveries, freed slots). */
export interface JetStreamStore extends DeliveryStore {
  /** The listener gets subscriber names whose lanes should look for work (the worker's notify). */
  onWork(listener: (subscribers: string[]) => void): void;
}

export async function openJetStreamStore(opts: JetStreamStoreOptions): Promise<JetStreamStore> {
  const settings: JetStreamSettings = {
    prefix: DEFAULT_PREFIX,
    replicas: 1,
    storage: 'file',
    leaseMs: DEFAULT_LEASE_MS,
    ...opts,
  };
  let nc: NatsConnection;
  try {
    nc = await connect(connectionOptions(settings, opts.name ?? 'kfp-notify-callback'));
  } catch (err) {
    // A refusal (bad credentials, TLS): said once, clearly; the process exits rather than retrying forever.
    throw new StoreUnavailableError(`NATS JetStream: cannot connect to ${settings.servers.join(',')}: ${errorMessage(err)}`);
  }
  let connected = true;
  let closed = false;
  void (async () => {
    for await (const s of nc.status()) {
      if (s.type === 'disconnect') {
        connected = false;
        opts.log?.warn({ server: s.server }, 'NATS disconnected; hook calls get 503 until it is back');
      } else if (s.type === 'reconnect') {
        connected = true;
        opts.log?.info({ server: s.server }, 'NATS reconnected');
      }
    }
  })();

  try {
    const jsm = await jetstreamManager(nc);
    const kvm = new Kvm(nc);
    /** Binds to the bucket an operator made (its settings rule), else creates it with ours. */
    const bucket = async (suffix: string): Promise<KV> => {
      const name = `${settings.prefix}-${suffix}`;
      const exists = await jsm.streams.info(`KV_${name}`).then(
        () => true,
        () => false,
      );
      if (exists) return kvm.open(name);
      return kvm.create(name, { replicas: settings.replicas, storage: settings.storage === 'memory' ? 'memory' : 'file', history: 1 });
    };
    const eventsKv = await bucket('events');
    const subsKv = await bucket('subscribers');
    return await storeOn(nc, eventsKv, subsKv, settings, opts, () => connected && !closed, () => (closed = true));
  } catch (err) {
    await nc.close().catch(() => undefined);
    throw err instanceof StoreUnavailableError ? err : new StoreUnavailableError(`NATS JetStream: ${errorMessage(err)}`);
  }
}

async function storeOn(
  nc: NatsConnection,
  eventsKv: KV,
  subsKv: KV,
  settings: JetStreamSettings,
  opts: JetStreamStoreOptions,
  usable: () => boolean,
  markClosed: () => void,
): Promise<JetStreamStore> {
  const mirror = createMirror();
  const laneKey = (sub: string) => `lane.${keyToken(sub)}`;
  const offKey = (sub: string) => `off.${keyToken(sub)}`;
  const failKey = (sub: string) => `fail.${keyToken(sub)}`;
  const disabledReason = (sub: string) => mirror.disabledReason(sub);

  let onWork: (subscribers: string[]) => void = () => undefined;
  const wake = new Set<string>();
  let wakeTimer: NodeJS.Timeout | undefined;
  function wakeSoon(subs: readonly string[]): void {
    for (const s of subs) wake.add(s);
    if (wakeTimer) return;
    wakeTimer = setTimeout(() => {
      wakeTimer = undefined;
      const batch = [...wake];
      wake.clear();
      onWork(batch);
    }, REMOTE_WAKE_MS);
    wakeTimer.unref();
  }

  /** Returns the subscribers with work new to this replica. */
  function applyEventEntry(e: KvEntry): string[] {
    return [...mirror.applyEvent(e.key, e.revision, e.operation === 'PUT' ? e.json<EventRecord>() : undefined)];
  }
  function applySubsEntry(e: KvEntry): string[] {
    const [kind, ...rest] = e.key.split('.');
    const sub = fromKeyToken(rest.join('.'));
    const put = e.operation === 'PUT';
    if (kind === 'lane') return mirror.applyLane(sub, e.revision, put ? e.json<LaneRecord>().leases : undefined) ? [sub] : [];
    if (kind === 'off') mirror.applyDisabled(sub, e.revision, put ? e.json<DisabledState>() : undefined);
    if (kind === 'fail') mirror.applyFailing(sub, e.revision, put ? e.json<{ since: number }>().since : undefined);
    return [];
  }

  /** Follows a bucket into the mirror; resolves once everything stored at the start has been seen. */
  async function follow(kv: KV, apply: (e: KvEntry) => string[]): Promise<{ stop(): void }> {
    const last = (await kv.status()).streamInfo.state.last_seq;
    const it = await kv.watch({ include: KvWatchInclude.LastValue });
    let caughtUp: () => void = () => undefined;
    const synced = new Promise<void>((resolve) => (caughtUp = resolve));
    if (last === 0) caughtUp();
    void (async () => {
      for await (const e of it) {
        try {
          // What another replica wrote wakes this replica's lanes: a delivery it accepted or
          // replayed, a slot it freed. Own writes were applied already and come back as no-ops.
          const subs = apply(e);
          if (subs.length > 0) wakeSoon(subs);
        } catch (err) {
          opts.log?.error({ err: errorMessage(err), key: e.key }, 'unreadable entry in a kfp-notify bucket; ignored');
        }
        if (e.revision >= last) caughtUp();
      }
    })();
    await synced;
    return { stop: () => it.stop() };
  }
  const watches = [await follow(eventsKv, applyEventEntry), await follow(subsKv, applySubsEntry)];

  function guard(): void {
    if (!usable()) throw new StoreUnavailableError('NATS JetStream unreachable');
  }
  /** Any NATS failure becomes StoreUnavailableError (the app answers 503 with Retry-After). */
  async function nats<T>(what: string, fn: () => Promise<T>): Promise<T> {
    guard();
    try {
      return await fn();
    } catch (err) {
      if (err instanceof StoreUnavailableError) throw err;
      throw new StoreUnavailableError(`NATS JetStream: ${what}: ${errorMessage(err)}`);
    }
  }

  // Writes to one key are serialised within this process, so that they never race each other
  // (compare-and-set only has to arbitrate between replicas).
  const chains = new Map<string, Promise<unknown>>();
  function serial<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const run = (chains.get(key) ?? Promise.resolve()).then(fn, fn);
    const tail = run.catch(() => undefined);
    chains.set(key, tail);
    void tail.then(() => chains.get(key) === tail && chains.delete(key));
    return run;
  }

  /** Read-modify-write of one event entry by compare-and-set; `change` returns whether it changed anything. */
  function mutateEvent(key: string, change: (r: EventRecord) => boolean): Promise<boolean> {
    return serial(`e:${key}`, async () => {
      for (let i = 0; i < CAS_TRIES; i++) {
        const e = await nats('read event', () => eventsKv.get(key));
        if (!e || e.operation !== 'PUT') return false;
        const r = e.json<EventRecord>();
        r.seq ??= e.revision;
        if (!change(r)) return false;
        try {
          const rev = await eventsKv.update(key, serializeRecord(r), e.revision);
          mirror.applyEvent(key, rev, r);
          return true;
        } catch (err) {
          if (!isWrongSequence(err)) throw new StoreUnavailableError(`NATS JetStream: update event: ${errorMessage(err)}`);
        }
      }
      throw new StoreUnavailableError(`NATS JetStream: event ${key} kept changing under ${CAS_TRIES} tries`);
    });
  }

  async function refreshLane(sub: string): Promise<void> {
    const e = await nats('read lane', () => subsKv.get(laneKey(sub)));
    if (e) applySubsEntry(e);
  }

  /** Compare-and-set of one subscriber's leases; `change` edits a copy and says whether to write. */
  async function writeLane(sub: string, change: (leases: Map<number, number>) => boolean): Promise<boolean> {
    for (let i = 0; i < CAS_TRIES; i++) {
      const lane = mirror.laneOf(sub);
      const next = new Map(lane.leases);
      if (!change(next)) return false;
      const value: LaneRecord = { leases: Object.fromEntries(next) };
      try {
        guard();
        const data = JSON.stringify(value);
        const rev = lane.revision === 0 ? await subsKv.create(laneKey(sub), data) : await subsKv.update(laneKey(sub), data, lane.revision);
        mirror.applyLane(sub, rev, value.leases);
        return true;
      } catch (err) {
        if (err instanceof StoreUnavailableError) throw err;
        if (!isWrongSequence(err)) throw new StoreUnavailableError(`NATS JetStream: write leases: ${errorMessage(err)}`);
        await refreshLane(sub);
      }
    }
    throw new StoreUnavailableError(`NATS JetStream: leases of ${sub} kept changing under ${CAS_TRIES} tries`);
  }

  // Lease drops of one turn are written together (one compare-and-set per subscriber).
  const drops = new Map<string, { ids: Set<number>; done: Promise<void> }>();
  function dropLeases(sub: string, ids: readonly number[]): Promise<void> {
    let batch = drops.get(sub);
    if (!batch) {
      const b: { ids: Set<number>; done: Promise<void> } = { ids: new Set(), done: Promise.resolve() };
      b.done = serial(`l:${sub}`, async () => {
        if (drops.get(sub) === b) drops.delete(sub);
        await writeLane(sub, (m) => {
          let changed = false;
          for (const id of b.ids) changed = m.delete(id) || changed;
          return changed;
        });
      });
      drops.set(sub, (batch = b));
    }
    for (const id of ids) batch.ids.add(id);
    return batch.done;
  }

  async function readEvents(keys: Iterable<string>): Promise<Map<string, { revision: number; record: EventRecord }>> {
    const out = new Map<string, { revision: number; record: EventRecord }>();
    await Promise.all(
      [...new Set(keys)].map(async (key) => {
        const e = await nats('read event', () => eventsKv.get(key));
        if (!e) return;
        applyEventEntry(e);
        if (e.operation !== 'PUT') return;
        const record = e.json<EventRecord>();
        record.seq ??= e.revision;
        out.set(key, { revision: e.revision, record });
      }),
    );
    return out;
  }

  function claimOne(sub: string, { now, limit, leaseMs }: ClaimOptions): Promise<ClaimedDelivery[]> {
    return serial(`l:${sub}`, async () => {
      guard();
      const cap = opts.maxLeased?.(sub);
      let picks: ReturnType<typeof mirror.due> = [];
      const until = now + Math.min(leaseMs, settings.leaseMs);
      await writeLane(sub, (m) => {
        // Leases that ended, or whose delivery is no longer pending, are dropped on the way.
        for (const [id, end] of m) if (end <= now || mirror.delivery(id)?.state !== 'pending') m.delete(id);
        const room = Math.min(limit, cap === undefined ? limit : cap - m.size);
        picks = room > 0 ? mirror.due(sub, now, room) : [];
        for (const d of picks) m.set(d.id, until);
        return picks.length > 0 || m.size !== mirror.laneOf(sub).leases.size;
      });
      if (picks.length === 0) return [];
      // The index may lag another replica's writes by a moment: each claim is checked against the
      // stored entry, and a delivery settled meanwhile gives its lease back instead of being sent twice.
      const records = await readEvents(picks.map((d) => mirror.eventKeyOf(d.id) ?? ''));
      const claimed: ClaimedDelivery[] = [];
      const stale: number[] = [];
      for (const d of picks) {
        const rec = records.get(mirror.eventKeyOf(d.id) ?? '');
        const { seq, i } = splitDeliveryId(d.id);
        const entry = rec?.record.seq === seq ? rec.record.deliveries.find((x) => x.i === i) : undefined;
        if (!rec || !entry || entry.state !== 'pending' || entry.dueAt > now) {
          stale.push(d.id);
          continue;
        }
        claimed.push({
          delivery: { id: d.id, eventId: rec.record.event.EventId, subscriber: sub, attempts: entry.attempts, dueAt: entry.dueAt },
          event: rec.record.event,
        });
      }
      if (stale.length > 0) void dropLeases(sub, stale).catch(() => undefined);
      return claimed;
    });
  }

  const settle: SettleFn = async (id, state, dueAt, note) => {
    const key = mirror.eventKeyOf(id);
    const sub = mirror.delivery(id)?.sub;
    if (key === undefined || sub === undefined) return;
    const { seq, i } = splitDeliveryId(id);
    await mutateEvent(key, (r) => {
      const d = r.seq === seq ? r.deliveries.find((x) => x.i === i) : undefined;
      if (d === undefined) return false;
      // As in SQLite and memory: the attempt is logged even when the mark moves nothing (a failure
      // after disable); both go in the same compare-and-set.
      const moved = settleEntry(d, state, dueAt, note);
      if (note.attempt) logAttempt(d, note.attempt);
      return moved || note.attempt !== undefined;
    });
    await dropLeases(sub, [id]);
  };

  /** Groups delivery ids by the event entry that holds them. */
  function byEvent(ids: Iterable<number>): Map<string, Set<number>> {
    const out = new Map<string, Set<number>>();
    for (const id of ids) {
      const key = mirror.eventKeyOf(id);
      if (key === undefined) continue;
      let set = out.get(key);
      if (!set) out.set(key, (set = new Set()));
      set.add(id);
    }
    return out;
  }

  /** Applies `change` to the selected deliveries of each event; returns the ids it changed. */
  async function changeDeliveries(ids: Iterable<number>, change: (d: EventRecord['deliveries'][number]) => boolean): Promise<number[]> {
    const changed: number[] = [];
    await Promise.all(
      [...byEvent(ids)].map(async ([key, set]) => {
        let mine: number[] = [];
        await mutateEvent(key, (r) => {
          mine = [];
          for (const d of r.deliveries) {
            const id = deliveryId(r.seq ?? 0, d.i);
            if (set.has(id) && change(d)) mine.push(id);
          }
          return mine.length > 0;
        });
        changed.push(...mine);
      }),
    );
    return changed.sort((a, b) => a - b);
  }

  function deadKey(d: MirroredDelivery): DeadLetterKey {
    const info = mirror.eventInfo(mirror.eventKeyOf(d.id) ?? '');
    return { id: d.id, subscriber: d.sub, kfpRunId: info?.fields.KfpRunId, deadAt: d.updatedAt };
  }

  /** A stored delivery as the dashboard shows it; a claimed one is due at its lease end, as in SQLite. */
  function view(r: EventRecord, d: DeliveryEntry): DeliveryView {
    const id = deliveryId(r.seq ?? 0, d.i);
    const leaseEnd = d.state === 'pending' ? mirror.laneOf(d.sub).leases.get(id) : undefined;
    return {
      id,
      eventId: r.event.EventId,
      subscriber: d.sub,
      state: d.state,
      attempts: d.attempts,
      dueAt: leaseEnd !== undefined && leaseEnd > d.dueAt ? leaseEnd : d.dueAt,
      ...(d.lastStatus !== undefined ? { lastStatus: d.lastStatus } : {}),
      ...(d.lastError !== undefined ? { lastError: d.lastError } : {}),
      updatedAt: d.updatedAt,
    };
  }
  const viewsOf = (r: EventRecord): DeliveryView[] =>
    r.deliveries.map((d) => view(r, d)).sort((a, b) => (a.subscriber < b.subscriber ? -1 : a.subscriber > b.subscriber ? 1 : 0));

  /** The stored record and entry of one delivery id, read from KV. */
  async function readDelivery(id: number): Promise<{ record: EventRecord; entry: DeliveryEntry } | undefined> {
    const key = mirror.eventKeyOf(id);
    if (key === undefined) return undefined;
    const record = (await readEvents([key])).get(key)?.record;
    const { seq, i } = splitDeliveryId(id);
    const entry = record?.seq === seq ? record.deliveries.find((x) => x.i === i) : undefined;
    return record && entry ? { record, entry } : undefined;
  }

  async function clearFailing(sub: string): Promise<void> {
    const e = await nats('read failing', () => subsKv.get(failKey(sub)));
    if (!e || e.operation !== 'PUT') return;
    await nats('clear failing', () => subsKv.delete(failKey(sub)));
    // As for enable: the delete marker's revision is above the entry's.
    mirror.applyFailing(sub, e.revision + 1, undefined);
  }

  return {
    async accept(items, now) {
      guard();
      const seen = new Set<string>();
      return Promise.all(
        items.map(async ({ event, subscribers }) => {
          const eventId = event.EventId;
          if (seen.has(eventId)) return { eventId, duplicate: true };
          seen.add(eventId);
          const key = keyToken(eventId);
          // As in SQLite: acceptance times never go back (as far as this replica has seen), so
          // acceptance order is time order for the events search.
          const record = newEventRecord(event, subscribers, Math.max(now, mirror.lastAcceptedAt()), disabledReason);
          try {
            const rev = await nats('store event', () => eventsKv.create(key, JSON.stringify(record)));
            mirror.applyEvent(key, rev, record);
            return { eventId, duplicate: false };
          } catch (err) {
            if (alreadyExists(err)) return { eventId, duplicate: true };
            throw err;
          }
        }),
      );
    },

    claim: (sub, o) => claimOne(sub, o),
    claimMany: (requests, now) => Promise.all(requests.map((r) => claimOne(r.subscriber, { now, limit: r.limit, leaseMs: r.leaseMs }))),
    async nextDueAt(sub) {
      const next = mirror.nextDueAt(sub);
      const cap = opts.maxLeased?.(sub);
      if (next === undefined || cap === undefined) return next;
      // All slots taken (by any replica): nothing is claimable before a lease ends; the watch says
      // sooner when a holder settles.
      const now = Date.now();
      const live = [...mirror.laneOf(sub).leases.values()].filter((end) => end > now);
      return live.length >= cap ? Math.max(next, Math.min(...live)) : next;
    },

    onWork(listener) {
      onWork = listener;
    },

    ...settleMethods(settle),

    async release(ids) {
      const bySub = new Map<string, number[]>();
      for (const id of ids) {
        const sub = mirror.delivery(id)?.sub;
        if (sub !== undefined) bySub.set(sub, [...(bySub.get(sub) ?? []), id]);
      }
      await Promise.all([...bySub].map(([sub, list]) => dropLeases(sub, list)));
    },

    async listDeadLetters(o = {}) {
      const rows = mirror
        .dead()
        .filter((d) => matchesDeadLetterFilter(o, deadKey(d)))
        .sort((a, b) => a.updatedAt - b.updatedAt || a.id - b.id)
        .slice(0, o.limit ?? 1000);
      const records = await readEvents(rows.map((d) => mirror.eventKeyOf(d.id) ?? ''));
      return rows.flatMap((d): DeadLetter[] => {
        const event = records.get(mirror.eventKeyOf(d.id) ?? '')?.record.event;
        if (!event) return [];
        return [
          {
            id: d.id,
            eventId: d.eventId,
            subscriber: d.sub,
            attempts: d.attempts,
            ...(d.lastStatus !== undefined ? { lastStatus: d.lastStatus } : {}),
            ...(d.lastError !== undefined ? { lastError: d.lastError } : {}),
            deadAt: d.updatedAt,
            event,
          },
        ];
      });
    },

    async replayDeadLetters(selector, now) {
      guard();
      const ids = mirror
        .dead()
        .filter((d) => selectsDeadLetter(selector, deadKey(d)))
        .map((d) => d.id);
      return changeDeliveries(ids, (d) => replayEntry(d, now));
    },

    queueDepth: async () => mirror.depth(),

    async disable(sub, reason, now) {
      const state: DisabledState = { since: now, reason };
      const rev = await nats('disable', () => subsKv.put(offKey(sub), JSON.stringify(state)));
      mirror.applyDisabled(sub, rev, state);
      const moved = await changeDeliveries(
        mirror.pendingOf(sub).map((d) => d.id),
        (d) => d.sub === sub && disableEntry(d, reason, now),
      );
      await serial(`l:${sub}`, () => writeLane(sub, (m) => m.size > 0 && (m.clear(), true)));
      return moved.length;
    },

    async enable(sub) {
      await clearFailing(sub);
      const e = await nats('read disabled', () => subsKv.get(offKey(sub)));
      if (!e || e.operation !== 'PUT') return false;
      await nats('enable', () => subsKv.delete(offKey(sub)));
      // The delete marker's revision is above the entry's: the watch cannot bring the old entry back.
      mirror.applyDisabled(sub, e.revision + 1, undefined);
      return true;
    },

    disabledSubscribers: async () => mirror.disabled(),

    async getEvent(eventId) {
      const e = await nats('read event', () => eventsKv.get(keyToken(eventId)));
      return e && e.operation === 'PUT' ? e.json<EventRecord>().event : undefined;
    },

    async markFailing(sub, since) {
      try {
        const rev = await nats('mark failing', () => subsKv.create(failKey(sub), JSON.stringify({ since })));
        mirror.applyFailing(sub, rev, since);
      } catch (err) {
        if (!alreadyExists(err)) throw err;
        // Marked already (by any replica): the earlier mark stays; learn it now rather than from the watch.
        const e = await nats('read failing', () => subsKv.get(failKey(sub)));
        if (e) applySubsEntry(e);
      }
    },

    clearFailing,

    failingSince: async () => mirror.failing(),

    async prune(before) {
      guard();
      let removed = 0;
      const candidates = [...mirror.events()]
        .filter(([, ev]) => ev.acceptedAt < before || ev.deliveries.some((d) => d.state === 'delivered' && d.updatedAt < before))
        .map(([key]) => key);
      for (const key of candidates) {
        await serial(`e:${key}`, async () => {
          const e = await nats('read event', () => eventsKv.get(key));
          if (!e || e.operation !== 'PUT') return;
          const r = e.json<EventRecord>();
          r.seq ??= e.revision;
          const verdict = pruneRecord(r, before);
          try {
            if (verdict === 'delete') {
              await eventsKv.delete(key, { previousSeq: e.revision });
              mirror.applyEvent(key, e.revision + 1, undefined);
              removed++;
            } else if (verdict === 'update') {
              mirror.applyEvent(key, await eventsKv.update(key, serializeRecord(r), e.revision), r);
            }
          } catch (err) {
            // Changed meanwhile by another replica: the next prune looks again.
            if (!isWrongSequence(err)) throw new StoreUnavailableError(`NATS JetStream: prune: ${errorMessage(err)}`);
          }
        });
      }
      return removed;
    },

    // --- Delivery dashboard: searched in this replica's index, bodies and logs read from KV ---
    async listEvents(query) {
      guard();
      const page: string[] = [];
      let next: number | undefined;
      for (const [key, info] of mirror.latestFirst(query.before)) {
        if (!matchesEventQuery(query, info.fields, info.acceptedAt)) continue;
        if (page.length === query.limit) {
          next = mirror.eventInfo(page.at(-1) ?? '')?.seq;
          break;
        }
        page.push(key);
      }
      const records = await readEvents(page);
      const events = page.flatMap((key): EventSummary[] => {
        const r = records.get(key)?.record;
        return r ? [{ seq: r.seq ?? 0, acceptedAt: r.acceptedAt, event: r.event, deliveries: viewsOf(r) }] : [];
      });
      return next === undefined ? { events } : { events, next };
    },

    async eventDeliveries(eventId) {
      const key = keyToken(eventId);
      const r = (await readEvents([key])).get(key)?.record;
      return r ? viewsOf(r) : [];
    },

    async getDelivery(id) {
      const found = await readDelivery(id);
      return found && { ...view(found.record, found.entry), event: found.record.event };
    },

    async listAttempts(id) {
      const found = await readDelivery(id);
      return (found?.entry.log ?? []).map(({ n, ...a }) => ({ ...a, id: n, deliveryId: id, subscriber: found?.entry.sub ?? '' }));
    },

    async subscriberStats(now) {
      guard();
      return foldStats(mirror.attemptsSince(now - DAY_MS), mirror.depth(), now);
    },

    async close() {
      if (!usable() && nc.isClosed()) return;
      markClosed();
      if (wakeTimer) clearTimeout(wakeTimer);
      for (const w of watches) w.stop();
      await Promise.allSettled(chains.values());
      await nc.close().catch(() => undefined);
    },
  };
}
