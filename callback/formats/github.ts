import { KFP_EVENT_FIELDS, type EventType, type KfpEvent } from '../types.js';
import type { Delivery } from './delivery.js';

/**
 * Format `github`: a `repository_dispatch` (POST /repos/{owner}/{repo}/dispatches; integrations.md §3)
 * that starts the GitHub Actions workflows declaring `on: repository_dispatch: types: [<event_type>]`.
 * GitHub answers 204 with no body; any 2xx is success here as for every subscriber.
 *
 * - `event_type`: `kfp-` + the EventType in kebab case (EVENT_TYPE_NAMES): `kfp-workflow-failed`...
 * - `client_payload`: GitHub allows at most 10 top-level properties, so the nine fields a workflow
 *   most often reads are top-level and the rest of the documented event is under `Details`.
 * - Headers: `Accept: application/vnd.github+json`, `X-GitHub-Api-Version: 2022-11-28` and a
 *   `User-Agent` (GitHub refuses requests without one). The token is the subscriber's own
 *   `headers.Authorization` (`Bearer <token>`, from a Secret): parse.ts requires it for this format.
 */

export const GITHUB_API_VERSION = '2022-11-28';

export const EVENT_TYPE_NAMES: Readonly<Record<EventType, string>> = {
  WorkflowRunning: 'kfp-workflow-running',
  WorkflowSucceeded: 'kfp-workflow-succeeded',
  WorkflowFailed: 'kfp-workflow-failed',
  WorkflowNodeSucceeded: 'kfp-workflow-node-succeeded',
  WorkflowNodeFailed: 'kfp-workflow-node-failed',
};

/** client_payload's top level: GitHub's maximum is 10 properties, `Details` included. */
const TOP_LEVEL = ['KfpRunId', 'EventType', 'EventId', 'RunName', 'PipelineName', 'Namespace', 'NodeName', 'Message', 'RunUrl'] as const;
type TopLevel = (typeof TOP_LEVEL)[number];
type DetailField = Exclude<(typeof KFP_EVENT_FIELDS)[number], TopLevel>;
/** Every other field of the documented event, so a field added later is carried without a change here. */
const DETAILS = KFP_EVENT_FIELDS.filter((k): k is DetailField => !(TOP_LEVEL as readonly string[]).includes(k));

export interface RepositoryDispatch {
  event_type: string;
  client_payload: Record<TopLevel, string> & { Details: Record<DetailField, string> };
}

export function repositoryDispatch(e: KfpEvent): RepositoryDispatch {
  const top = {} as Record<TopLevel, string>;
  for (const k of TOP_LEVEL) top[k] = e[k] ?? '';
  const details = {} as Record<DetailField, string>;
  // Events stored before a field existed read back without it.
  for (const k of DETAILS) details[k] = e[k] ?? '';
  return { event_type: EVENT_TYPE_NAMES[e.EventType], client_payload: { ...top, Details: details } };
}

export function githubDelivery(e: KfpEvent): Delivery {
  return {
    headers: {
      'content-type': 'application/json',
      accept: 'application/vnd.github+json',
      'x-github-api-version': GITHUB_API_VERSION,
      'user-agent': 'kfp-notify',
    },
    body: JSON.stringify(repositoryDispatch(e)),
  };
}

/** `…/repos/<owner>/<repo>/dispatches`, on api.github.com or any GitHub Enterprise API base (`https://HOST/api/v3`). */
export const DISPATCHES_PATH = /^(?:\/[^/]+)*\/repos\/[A-Za-z0-9_.-]+\/[A-Za-z0-9_.-]+\/dispatches$/;
