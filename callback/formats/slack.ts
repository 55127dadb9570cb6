import { truncate } from '../messages.js';
import type { KfpEvent } from '../types.js';
import type { Delivery } from './delivery.js';
import { OPEN_RUN, facts, failureText, headline, toneOf, type Tone } from './human.js';

/**
 * Format `slack`: the body a Slack incoming webhook accepts (integrations.md §1): a plain `text`
 * (Slack's notification fallback, and all that Mattermost's Slack-compatible webhook reads: it has no
 * `blocks` and refuses a message without `text`), plus Block Kit `blocks`:
 *   header  `<emoji> <run> <what happened>`              plain_text, ≤150 chars
 *   section the failed step and its error (failures only) mrkdwn, ≤3000 chars
 *   section fields: pipeline, namespace, step, run id, time  each ≤2000 chars, ≤10 fields
 *   actions a button to the run in the KFP UI (only with a RunUrl)  text ≤75, url ≤3000
 * Longer texts are cut with an ellipsis to those limits, never refused. `&`, `<` and `>` in event
 * text are escaped as Slack requires (mrkdwn and the fallback text; plain_text needs none).
 */

/** Slack's documented limits (docs.slack.dev Block Kit reference), in characters. */
export const SLACK_LIMITS = {
  header: 150,
  sectionText: 3000,
  field: 2000,
  fields: 10,
  buttonText: 75,
  buttonUrl: 3000,
  /** Our own cap on `text`: Slack truncates at 40,000; a notification needs far less. */
  fallbackText: 3000,
} as const;

const EMOJI: Readonly<Record<Tone, string>> = { good: ':white_check_mark:', bad: ':x:', neutral: ':arrow_forward:' };

/** Slack's control characters, escaped as its formatting reference says (and nothing else). */
const ENTITIES: Readonly<Record<string, string>> = { '&': '&amp;', '<': '&lt;', '>': '&gt;' };

export function slackEscape(text: string): string {
  return /[&<>]/.test(text) ? text.replace(/[&<>]/g, (c) => ENTITIES[c] ?? c) : text;
}

/** Escapes, then cuts to `max` characters of the escaped text without splitting an entity. */
function escapedWithin(text: string, max: number): string {
  let t = text;
  let out = slackEscape(t);
  while (out.length > max) {
    t = truncate(t, Math.max(1, t.length - (out.length - max)));
    out = slackEscape(t);
  }
  return out;
}

type TextObject = { type: 'plain_text'; text: string; emoji?: boolean } | { type: 'mrkdwn'; text: string };
export type SlackBlock =
  | { type: 'header'; text: TextObject }
  | { type: 'section'; text?: TextObject; fields?: TextObject[] }
  | { type: 'actions'; elements: { type: 'button'; text: TextObject; url: string; action_id: string; style?: 'primary' | 'danger' }[] };

export interface SlackMessage {
  text: string;
  blocks: SlackBlock[];
}

function failureSection(e: KfpEvent): SlackBlock | undefined {
  const failure = failureText(e);
  if (!failure) return undefined;
  const lead = failure.step ? `*Failed step:* ${escapedWithin(failure.step, 500)}\n` : '*What failed:*\n';
  // The error in a code block, cut so the whole section text stays within its limit.
  const room = SLACK_LIMITS.sectionText - lead.length - 6;
  return { type: 'section', text: { type: 'mrkdwn', text: `${lead}\`\`\`${escapedWithin(failure.error.replace(/```/g, "'''"), room)}\`\`\`` } };
}

export function slackMessage(e: KfpEvent): SlackMessage {
  const title = headline(e);
  const failure = failureText(e);
  const runUrl = e.RunUrl ?? '';
  const blocks: SlackBlock[] = [{ type: 'header', text: { type: 'plain_text', text: truncate(`${EMOJI[toneOf(e)]} ${title}`, SLACK_LIMITS.header), emoji: true } }];
  const section = failureSection(e);
  if (section) blocks.push(section);
  const fields = facts(e)
    .slice(0, SLACK_LIMITS.fields)
    .map(([label, value]): TextObject => ({ type: 'mrkdwn', text: `*${label}*\n${escapedWithin(value, SLACK_LIMITS.field - label.length - 3)}` }));
  blocks.push({ type: 'section', fields });
  if (runUrl !== '' && runUrl.length <= SLACK_LIMITS.buttonUrl) {
    blocks.push({ type: 'actions', elements: [{ type: 'button', text: { type: 'plain_text', text: OPEN_RUN }, url: runUrl, action_id: 'open-run', ...(toneOf(e) === 'bad' ? { style: 'danger' as const } : {}) }] });
  }
  // The fallback: what a notification (and Mattermost) shows. A link in Slack's `<url|label>` form.
  const link = runUrl !== '' ? ` <${runUrl}|${OPEN_RUN}>` : '';
  // The headline names a failed step already; a run failure's error names its steps.
  const detail = failure ? `: ${failure.error}` : '';
  const text = `${escapedWithin(`${title}${detail}`, SLACK_LIMITS.fallbackText - link.length)}${link}`;
  return { text, blocks };
}

export function slackDelivery(e: KfpEvent): Delivery {
  return { headers: { 'content-type': 'application/json' }, body: JSON.stringify(slackMessage(e)) };
}
