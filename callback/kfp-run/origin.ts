import { createHash } from 'node:crypto';

/**
 * Where a triggered run came from, written into the run's description, and read back. Pure.
 *
 * KFP has no idempotency key and, from 2.14, refuses unknown JSON fields; undeclared run parameters
 * are refused by every 2.x. The description is the one free-text field every version keeps and can
 * filter on (`description` IS_SUBSTRING), so it carries one machine-readable line:
 *
 *   kfp-notify-origin: trigger=trg_<32 hex> event=evt_<...> upstream-run=<run id> root-run=<run id> chain=<pipeline id>,<pipeline id>
 *
 * - trigger: sha256(subscriber name, event id): one per (subscriber, event), what a retry, a restart
 *   or a dead-letter replay searches for before creating;
 * - upstream-run: the run whose event started this one; root-run: the first run of the chain (one no
 *   trigger started); chain: the pipelines the chain has run so far, root first. A trigger that would
 *   start a pipeline already in its upstream run's chain is a loop, and is refused.
 */

export const ORIGIN_PREFIX = 'kfp-notify-origin:';

export interface Origin {
  trigger: string;
  event: string;
  upstreamRun: string;
  rootRun: string;
  /** Pipeline ids, root first, ending with the pipeline of the run this origin is written on. */
  chain: string[];
}

/** `trg_` + 32 hex of sha256(subscriber \n eventId): the same for every attempt at one delivery. */
export function triggerId(subscriber: string, eventId: string): string {
  return `trg_${createHash('sha256').update(`${subscriber}\n${eventId}`).digest('hex').slice(0, 32)}`;
}

/** The text searched for (IS_SUBSTRING on description): unique to one trigger, no characters a filter must escape. */
export function triggerMarker(trigger: string): string {
  return `trigger=${trigger}`;
}

/** Ids and names go in as single tokens: whitespace and commas would split them when read back. */
function token(s: string): string {
  return s.replace(/[\s,]/g, '_');
}

export function originLine(o: Origin): string {
  return `${ORIGIN_PREFIX} ${triggerMarker(token(o.trigger))} event=${token(o.event)} upstream-run=${token(o.upstreamRun)} root-run=${token(o.rootRun)} chain=${o.chain.map(token).join(',')}`;
}

/** The run description: a sentence for people, then the origin line. */
export function runDescription(o: Origin, upstream: { pipelineName: string; runName: string }): string {
  const what = upstream.runName || upstream.pipelineName || 'a run';
  return `Started by kfp-notify after ${what} (run ${o.upstreamRun}).\n${originLine(o)}`;
}

/** The origin line of a description, or undefined when it has none (a run no trigger started). */
export function parseOrigin(description: string | undefined): Origin | undefined {
  const line = description?.split('\n').find((l) => l.startsWith(ORIGIN_PREFIX));
  if (!line) return undefined;
  const fields = new Map<string, string>();
  for (const part of line.slice(ORIGIN_PREFIX.length).trim().split(/\s+/)) {
    const i = part.indexOf('=');
    if (i > 0) fields.set(part.slice(0, i), part.slice(i + 1));
  }
  const trigger = fields.get('trigger');
  const rootRun = fields.get('root-run');
  if (!trigger || !rootRun) return undefined;
  return {
    trigger,
    event: fields.get('event') ?? '',
    upstreamRun: fields.get('upstream-run') ?? '',
    rootRun,
    chain: (fields.get('chain') ?? '').split(',').filter((p) => p !== ''),
  };
}

/** What the trigger knows of the run whose event it got (KFP's GET run), when KFP knows the run. */
export interface UpstreamRun {
  runId: string;
  pipelineId?: string;
  description?: string;
}

export type ChainDecision = { ok: true; rootRun: string; chain: string[] } | { ok: false; reason: string };

/**
 * The chain a new run of `pipelineId` continues, or a refusal when that pipeline already ran in it:
 * train → evaluate → train would otherwise run forever. A run no trigger started is a chain's root.
 */
export function nextChain(upstreamRunId: string, upstream: UpstreamRun | undefined, pipelineId: string): ChainDecision {
  const origin = parseOrigin(upstream?.description);
  const rootRun = origin?.rootRun ?? upstreamRunId;
  const chain = origin ? [...origin.chain] : upstream?.pipelineId ? [upstream.pipelineId] : [];
  if (chain.includes(pipelineId)) {
    return {
      ok: false,
      reason: `trigger loop: pipeline ${pipelineId} already ran in the chain started by run ${rootRun} (chain ${chain.join(' -> ')}); not starting it again`,
    };
  }
  return { ok: true, rootRun, chain: [...chain, pipelineId] };
}
