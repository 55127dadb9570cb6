import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { loadHookKeys } from '../../../common/data-dir.js';
import { HOOK_PATH } from '../../../common/hook-contract.js';
import { mintHookToken } from '../../../common/hook-token.js';
import { newSigningSecret } from '../engine/harness.js';
import { startCallbackProcess, type CallbackProcess } from '../engine/process.js';
import { answer, startReceiver, type Receiver } from '../engine/receiver.js';

/**
 * What the dashboard tests run against: a real `kfp-notify callback` process (dist/) with three real
 * subscribers on loopback:
 * - ops: answers 204; signed, and sends an X-Api-Key header whose value comes from a Secret;
 * - flaky: answers 500 until `flakyHeals()`, two attempts 50 ms apart, so it dead-letters at once;
 * - gone: answers 410 (the callback disables it).
 */
export interface DashboardFixture {
  cb: CallbackProcess;
  url: string;
  adminToken: string;
  apiKey: string;
  receivers: { ops: Receiver; flaky: Receiver; gone: Receiver };
  flakyHeals(): void;
  postHook(fields: Partial<Record<string, string>>): Promise<number>;
  close(): Promise<void>;
}

export const HOOK_FIELDS = {
  v: '1',
  event: 'workflow-exit',
  kfpRunId: 'run-ui',
  namespace: 'team-a',
  workflowName: 'train-xyz',
  workflowUid: 'uid-ui',
  workflowStatus: 'Succeeded',
  exitHandlerStatus: '',
  failures: 'null',
  duration: '12',
  pipelineName: 'train',
  runName: 'nightly',
};

export async function startDashboardFixture(): Promise<DashboardFixture> {
  const dataDir = mkdtempSync(join(tmpdir(), 'kfp-notify-ui-'));
  let healed = false;
  const ops = await startReceiver(answer(204));
  const flaky = await startReceiver((got, res, req) => answer(healed ? 204 : 500)(got, res, req));
  const gone = await startReceiver(answer(410));
  const apiKey = `key-${Math.random().toString(36).slice(2)}`;
  const subscribers = join(dataDir, 'subscribers.yaml');
  const secrets = join(dataDir, 'secrets.json');
  writeFileSync(
    subscribers,
    [
      'ops:',
      `  url: ${ops.url}`,
      '  signingKey: { secretKeyRef: { name: hooks, key: ops } }',
      '  headers: { X-Api-Key: { secretKeyRef: { name: hooks, key: apikey } }, X-Team: ml }',
      'flaky:',
      `  url: ${flaky.url}`,
      '  retry: { schedule: [50ms], jitter: 0 }',
      'gone:',
      `  url: ${gone.url}`,
      '',
    ].join('\n'),
  );
  writeFileSync(secrets, JSON.stringify({ hooks: { ops: newSigningSecret(), apikey: apiKey } }));
  const cb = await startCallbackProcess(['--data-dir', dataDir, '--subscribers', subscribers, '--secrets', secrets]);
  const adminToken = readFileSync(join(dataDir, 'admin-token'), 'utf8').trim();
  const [key] = loadHookKeys({ dataDir, create: false });
  if (!key) throw new Error('no hook key');
  return {
    cb,
    url: cb.url,
    adminToken,
    apiKey,
    receivers: { ops, flaky, gone },
    flakyHeals: () => (healed = true),
    async postHook(over) {
      const fields = { ...HOOK_FIELDS, ...over };
      const res = await request(`${cb.url}${HOOK_PATH}`, {
        method: 'POST',
        headers: {
          'content-type': 'application/x-www-form-urlencoded',
          authorization: `Bearer ${mintHookToken(key, { namespace: fields.namespace, kfpRunId: fields.kfpRunId })}`,
        },
        body: new URLSearchParams(fields as Record<string, string>).toString(),
      });
      await res.body.dump();
      return res.statusCode;
    },
    async close() {
      await cb.stop('SIGKILL');
      for (const r of [ops, flaky, gone]) await r.close();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
