import { createRequire } from 'node:module';
import type * as AdaptiveCards from 'adaptivecards';

/**
 * Validates a Teams Workflows body with Microsoft's own Adaptive Cards parser (the devDependency
 * `adaptivecards`; its UMD build parses without a DOM). Problems found:
 * - the envelope is not `{type: "message", attachments: [{contentType: adaptive, content}]}`;
 * - the parser reports an event (an element or action unknown in the declared version, a bad value);
 * - `validateProperties()` reports one;
 * - the card does not serialize back to itself (a property the schema does not know is dropped);
 * - Teams' own limits (integrations.md §2): Action.Submit is refused, version ≤ 1.5, 28 KB per message.
 */

const require = createRequire(import.meta.url);
const AC = require('adaptivecards/dist/adaptivecards.js') as typeof AdaptiveCards;

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Key order does not matter to a JSON reader; compare canonical forms. */
function canonical(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(canonical);
  if (!isObj(v)) return v;
  return Object.fromEntries(Object.keys(v).sort().map((k) => [k, canonical(v[k])]));
}

export const TEAMS_MAX_BYTES = 28 * 1024;

export function teamsProblems(bodyText: string): string[] {
  const problems: string[] = [];
  const bytes = Buffer.byteLength(bodyText, 'utf8');
  if (bytes > TEAMS_MAX_BYTES) problems.push(`message is ${bytes} bytes, over Teams' 28 KB`);
  const body = JSON.parse(bodyText) as unknown;
  if (!isObj(body) || body.type !== 'message' || !Array.isArray(body.attachments) || body.attachments.length !== 1) return [...problems, 'not a Teams message envelope with one attachment'];
  const att = body.attachments[0] as unknown;
  if (!isObj(att) || att.contentType !== 'application/vnd.microsoft.card.adaptive' || !isObj(att.content)) return [...problems, 'the attachment is not an Adaptive Card'];
  const content = att.content;
  const version = typeof content.version === 'string' ? content.version : '';
  const target = AC.Version.parse(version, new AC.SerializationContext());
  if (!target?.isValid) return [...problems, `card version ${version} is not a valid version`];
  if (target.major !== 1 || target.minor > 5) problems.push(`card version ${version}: Teams supports 1.5 or earlier`);
  if (JSON.stringify(content).includes('"Action.Submit"')) problems.push('Action.Submit is not supported by Teams webhooks');

  const card = new AC.AdaptiveCard();
  const ctx = new AC.SerializationContext(target);
  card.parse(content, ctx);
  for (let i = 0; i < ctx.eventCount; i++) problems.push(`parser: ${ctx.getEventAt(i).message}`);
  for (const e of card.validateProperties().validationEvents) problems.push(`validation: ${e.message}`);
  const back = card.toJSON(new AC.SerializationContext(target));
  if (JSON.stringify(canonical(back)) !== JSON.stringify(canonical(content))) {
    problems.push(`the card does not serialize back to itself (unknown or invalid properties): ${JSON.stringify(back)}`);
  }
  return problems;
}
