import { request } from 'undici';
import { loadHookKeys } from '../../common/data-dir.js';
import { HOOK_PATH } from '../../common/hook-contract.js';
import { mintHookToken } from '../../common/hook-token.js';

/** What an injected hook does: POST the form with the token minted from the data dir's hook key. */
export async function postHook(url: string, dataDir: string, fields: Record<string, string>): Promise<{ status: number; body: unknown }> {
  const [key] = loadHookKeys({ dataDir, create: false });
  if (!key) throw new Error('no hook key');
  const res = await request(`${url}${HOOK_PATH}`, {
    method: 'POST',
    headers: {
      'content-type': 'application/x-www-form-urlencoded',
      authorization: `Bearer ${mintHookToken(key, { namespace: fields.namespace ?? '', kfpRunId: fields.kfpRunId ?? '' })}`,
    },
    body: new URLSearchParams(fields).toString(),
  });
  return { status: res.statusCode, body: await res.body.json() };
}
