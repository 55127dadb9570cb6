import { Agent } from 'undici';
import { errorMessage } from '../../common/error-message.js';
import type { Logger } from '../../common/logger.js';
import { compileTemplate, type CompiledTemplate } from '../template.js';
import type { KfpEvent, SendResult, Subscriber, Transport } from '../types.js';
import { KfpApiError, kfpClient } from './client.js';
import { nextChain, runDescription, triggerId, triggerMarker } from './origin.js';
import { renderRun } from './request.js';
import { defaultTokenFile, tokenFiles } from './token-file.js';

/**
 * `type: kfp-run`: one matching event → one KFP run (docs/kfp-trigger.md). Per delivery:
 *  1. render runName and parameters (a render error is permanent: the template will not change);
 *  2. resolve pipeline, version (newest when not named) and experiment by name or id;
 *  3. look for this trigger's run (its id in a run description, origin.ts); found → delivered, so a
 *     create that timed out after KFP made the run, a restart mid-delivery or a dead-letter replay
 *     never starts a second run;
 *  4. read the upstream run's origin and refuse a loop (permanent);
 *  5. create the run.
 * Outcomes: KFP 4xx → permanent (dead letter with KFP's reason), except 401/403/408/429, which a
 * token rotation, an RBAC fix or time can cure; 5xx → retry; no answer (refused, timeout) → retry
 * with the lane paused, like an unreachable HTTP endpoint.
 */

export interface KfpRunTransportOptions {
  log: Logger;
  /** For the default token file (KF_PIPELINES_SA_TOKEN_PATH). */
  env?: Readonly<Record<string, string | undefined>>;
}

const RETRYABLE_4XX = new Set([401, 403, 408, 429]);

function outcome(started: number, r: Omit<SendResult, 'durationMs'>): SendResult {
  return { ...r, durationMs: Date.now() - started };
}

export function createKfpRunTransport(opts: KfpRunTransportOptions): Transport {
  const { log } = opts;
  const dispatcher = new Agent({ keepAliveTimeout: 10_000 });
  const tokens = tokenFiles(log);
  const templates = new Map<string, CompiledTemplate | string>();
  const sdkTokenFile = defaultTokenFile(opts.env ?? process.env);

  function compile(source: string): CompiledTemplate | string {
    let t = templates.get(source);
    if (t === undefined) {
      const c = compileTemplate(source, 'none');
      t = c.ok ? c.template : c.error;
      templates.set(source, t);
    }
    return t;
  }

  /** The subscriber's headers plus, unless it sets Authorization itself, the token file's bearer token. */
  function authHeaders(sub: Subscriber): Record<string, string> | Error {
    const headers = { ...sub.headers };
    if (headers.authorization !== undefined) return headers;
    const file = sub.kfpRun?.tokenFile ?? sdkTokenFile;
    if (!file) return headers;
    const token = tokens.token(file);
    if (token instanceof Error) return token;
    headers.authorization = `Bearer ${token}`;
    return headers;
  }

  async function deliver(sub: Subscriber, event: KfpEvent, signal: AbortSignal): Promise<SendResult> {
    const started = Date.now();
    const target = sub.kfpRun;
    if (!target || !sub.url) return outcome(started, { ok: false, permanent: true, error: 'not a kfp-run subscriber (no pipeline or url)' });
    const rendered = renderRun(target, event, compile);
    if (!rendered.ok) return outcome(started, { ok: false, permanent: true, error: rendered.error });
    const headers = authHeaders(sub);
    // A token file that is missing now may be mounted later (or rotated in): retried, never logged.
    if (headers instanceof Error) return outcome(started, { ok: false, error: headers.message });
    const kfp = kfpClient({ baseUrl: sub.url, apiVersion: target.apiVersion, headers, timeoutMs: sub.timeoutMs, signal, dispatcher });
    const trigger = triggerId(sub.name, event.EventId);
    try {
      const pipelineId = await kfp.findPipeline(target.pipeline, target.namespace);
      const versionId = await kfp.findVersion(pipelineId, target.pipelineVersion);
      const experimentId = target.experiment ? await kfp.findExperiment(target.experiment, target.namespace) : undefined;
      const scope = { ...(experimentId ? { experimentId } : {}), ...(target.namespace ? { namespace: target.namespace } : {}) };
      const existing = await kfp.findRunWith(triggerMarker(trigger), scope);
      if (existing) {
        log.info({ subscriber: sub.name, eventId: event.EventId, runId: existing }, 'KFP run for this event already exists; counted as delivered');
        return outcome(started, { ok: true, status: 200 });
      }
      const upstream = await kfp.getRun(event.KfpRunId);
      const chain = nextChain(event.KfpRunId, upstream, pipelineId);
      if (!chain.ok) return outcome(started, { ok: false, permanent: true, error: chain.reason });
      const description = runDescription(
        { trigger, event: event.EventId, upstreamRun: event.KfpRunId, rootRun: chain.rootRun, chain: chain.chain },
        { pipelineName: event.PipelineName, runName: event.RunName },
      );
      const runId = await kfp.createRun({
        run: rendered.run,
        description,
        pipelineId,
        versionId,
        ...(experimentId ? { experimentId } : {}),
        ...(target.serviceAccount ? { serviceAccount: target.serviceAccount } : {}),
      });
      log.info({ subscriber: sub.name, eventId: event.EventId, runId, upstreamRun: event.KfpRunId, runName: rendered.run.displayName }, 'KFP run started');
      return outcome(started, { ok: true, status: 200 });
    } catch (err) {
      if (!(err instanceof KfpApiError)) return outcome(started, { ok: false, error: errorMessage(err) });
      const status = err.status;
      const permanent = status !== undefined && status >= 400 && status < 500 && !RETRYABLE_4XX.has(status);
      return outcome(started, { ok: false, error: err.message, ...(status !== undefined ? { status } : {}), ...(permanent ? { permanent } : {}) });
    }
  }

  return {
    deliver,
    async close() {
      tokens.close();
      await dispatcher.close();
    },
  };
}
