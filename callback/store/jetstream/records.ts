import type { KfpEvent } from '../../types.js';
import type { AttemptNote, AttemptRecord } from '../types.js';

/**
 * What the JetStream store keeps, and the pure rules that change it (no I/O here).
 *
 * One KV entry per event (bucket `<prefix>-events`, key = the event id): the event and its
 * deliveries, one per subscriber. Keeping the deliveries inside the event's entry makes accept
 * atomic without transactions (one message, one PubAck) and lets kv.create() be the first-writer
 * check that recognises a duplicate from any replica; every later change is a compare-and-set on
 * that entry's revision. The entries are scannable (a watch or keys()), so events can later be
 * listed and searched and dead letters filtered by run or time without a new layout.
 */

export type DeliveryState = 'pending' | 'delivered' | 'dead';

export interface DeliveryEntry {
  /** Index within its event: the delivery id is eventSeq * ID_STRIDE + i. */
  i: number;
  sub: string;
  state: DeliveryState;
  attempts: number;
  dueAt: number;
  updatedAt: number;
  lastStatus?: number;
  lastError?: string;
  /** The attempt log (dashboard), oldest first, the latest ATTEMPT_LOG_KEEP only; kept across replays. */
  log?: LoggedAttempt[];
}

/** One logged attempt; `n` numbers the delivery's attempts from 1 (across replays) and is its id. */
export interface LoggedAttempt extends AttemptRecord {
  n: number;
}

/**
 * Attempts kept per delivery. The log lives in the event's entry so that an attempt is written in
 * the same compare-and-set as its outcome and pruned with its delivery, as in SQLite; a cap keeps
 * the entry under NATS's message size (1 MB by default) whatever a subscriber's retry history.
 */
export const ATTEMPT_LOG_KEEP = 20;

/**
 * What an entry may weigh before the requests of its oldest logged attempts are dropped (their
 * outcome, status and timing stay): a quarter of NATS's default 1 MB max_payload.
 */
export const RECORD_BUDGET_BYTES = 256 * 1024;

export interface EventRecord {
  event: KfpEvent;
  acceptedAt: number;
  /**
   * The entry's first revision (the KV stream sequence of the create), written with the first
   * update. An entry without it was never updated, so its revision is its first one.
   */
  seq?: number;
  deliveries: DeliveryEntry[];
}

/** Room for this many subscribers per event in a delivery id (ids stay below 2^53 for entry sequences below 2^41). */
export const ID_STRIDE = 4096;

export function deliveryId(seq: number, i: number): number {
  return seq * ID_STRIDE + i;
}

export function splitDeliveryId(id: number): { seq: number; i: number } {
  return { seq: Math.floor(id / ID_STRIDE), i: id % ID_STRIDE };
}

const PLAIN_KEY = /^[A-Za-z0-9_-]+$/;

/** A KV key token for any string: readable when it is already a valid token, base64url otherwise. */
export function keyToken(s: string): string {
  return PLAIN_KEY.test(s) ? `p.${s}` : `x.${Buffer.from(s, 'utf8').toString('base64url') || '_'}`;
}

export function fromKeyToken(token: string): string {
  if (token.startsWith('p.')) return token.slice(2);
  if (token === 'x._') return '';
  return Buffer.from(token.slice(2), 'base64url').toString('utf8');
}

/** A new event's record: one pending delivery per distinct subscriber, dead at once for a disabled one. */
export function newEventRecord(
  event: KfpEvent,
  subscribers: readonly string[],
  now: number,
  disabledReason: (sub: string) => string | undefined,
): EventRecord {
  const names = [...new Set(subscribers)];
  if (names.length > ID_STRIDE) throw new Error(`an event can go to at most ${ID_STRIDE} subscribers (got ${names.length})`);
  return {
    event,
    acceptedAt: now,
    deliveries: names.map((sub, i) => {
      const off = disabledReason(sub);
      return {
        i,
        sub,
        state: off === undefined ? 'pending' : 'dead',
        attempts: 0,
        dueAt: now,
        updatedAt: now,
        ...(off === undefined ? {} : { lastError: `subscriber disabled: ${off}` }),
      };
    }),
  };
}

/**
 * An attempt's outcome. Same rule as SQLite and memory: only a pending delivery moves, except that a
 * success also settles one that disable() moved to the dead letters while it was in flight.
 * Returns whether anything changed.
 */
export function settleEntry(d: DeliveryEntry, state: DeliveryState, dueAt: number, note: AttemptNote): boolean {
  if (!(d.state === 'pending' || (d.state === 'dead' && state === 'delivered'))) return false;
  d.state = state;
  d.dueAt = dueAt;
  d.attempts += 1;
  d.updatedAt = note.now;
  if (note.status !== undefined) d.lastStatus = note.status;
  else delete d.lastStatus;
  if (note.error !== undefined) d.lastError = note.error;
  else delete d.lastError;
  return true;
}

/** Appends an attempt to a delivery's log, dropping the oldest beyond ATTEMPT_LOG_KEEP. */
export function logAttempt(d: DeliveryEntry, attempt: AttemptRecord): void {
  const log = d.log ?? [];
  log.push({ ...attempt, n: (log.at(-1)?.n ?? 0) + 1 });
  d.log = log.slice(-ATTEMPT_LOG_KEEP);
}

/**
 * The record as JSON within `budget` bytes where the attempt log allows: the requests of the oldest
 * attempts (all deliveries, by start time) are dropped until it fits. Mutates `r`.
 */
export function serializeRecord(r: EventRecord, budget = RECORD_BUDGET_BYTES): string {
  let json = JSON.stringify(r);
  if (Buffer.byteLength(json) <= budget) return json;
  const withRequest = r.deliveries.flatMap((d) => (d.log ?? []).filter((a) => a.request !== undefined)).sort((a, b) => a.startedAt - b.startedAt);
  for (const a of withRequest) {
    delete a.request;
    json = JSON.stringify(r);
    if (Buffer.byteLength(json) <= budget) break;
  }
  return json;
}

export function replayEntry(d: DeliveryEntry, now: number): boolean {
  if (d.state !== 'dead') return false;
  Object.assign(d, { state: 'pending', attempts: 0, dueAt: now, updatedAt: now });
  return true;
}

export function disableEntry(d: DeliveryEntry, reason: string, now: number): boolean {
  if (d.state !== 'pending') return false;
  Object.assign(d, { state: 'dead', lastError: `subscriber disabled: ${reason}`, updatedAt: now });
  return true;
}

/**
 * prune, as SQLite and memory do it: drops delivered deliveries settled before `before`; 'delete'
 * when the whole event can go (accepted before `before`, no delivery left: none pending, dead or
 * delivered since), 'keep' when nothing changed.
 */
export function pruneRecord(r: EventRecord, before: number): 'delete' | 'keep' | 'update' {
  const kept = r.deliveries.filter((d) => !(d.state === 'delivered' && d.updatedAt < before));
  if (r.acceptedAt < before && kept.length === 0) return 'delete';
  if (kept.length === r.deliveries.length) return 'keep';
  r.deliveries = kept;
  return 'update';
}

/** Leases of one subscriber's deliveries, shared by every replica: `<prefix>-subscribers`, key lane.<sub>. */
export interface LaneRecord {
  /** Delivery id → lease end (ms since the epoch). */
  leases: Record<string, number>;
}
