/**
 * The link to a run in the KFP UI, the `RunUrl` of every event. Pure.
 *
 * The KFP UI routes by hash: `<ui base>/#/runs/details/<run id>`. The base is the address people open
 * the UI at: `https://kubeflow.example.com/pipeline` (standalone KFP's `ml-pipeline-ui`), or
 * `https://kubeflow.example.com/_/pipeline` inside Kubeflow's central dashboard. The run page does not
 * name a namespace, so in multi-user KFP one link works for every profile (the UI checks access).
 */

/** Checks and normalizes a --kfp-ui-url value: http(s), no query or fragment, no trailing slash. */
export function parseKfpUiUrl(value: string): { ok: true; base: string } | { ok: false; error: string } {
  let url: URL;
  try {
    url = new URL(value.trim());
  } catch {
    return { ok: false, error: `the KFP UI URL '${value}' is not a valid URL (expected e.g. https://kubeflow.example.com/pipeline)` };
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return { ok: false, error: `the KFP UI URL must use http or https (got ${url.protocol.replace(/:$/, '')})` };
  if (url.search !== '' || url.hash !== '' || url.username !== '' || url.password !== '') {
    return { ok: false, error: 'the KFP UI URL must be the UI base only, without query, fragment (#/...) or credentials' };
  }
  return { ok: true, base: url.toString().replace(/\/+$/, '') };
}

/** `<base>/#/runs/details/<run id>`, '' without a base: no link rather than a broken one. */
export function runUrl(base: string | undefined, kfpRunId: string): string {
  if (!base || kfpRunId === '') return '';
  return `${base}/#/runs/details/${encodeURIComponent(kfpRunId)}`;
}
