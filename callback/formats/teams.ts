import { truncate } from '../messages.js';
import type { KfpEvent } from '../types.js';
import type { Delivery } from './delivery.js';
import { OPEN_RUN, facts, failureText, headline, toneOf, type Tone } from './human.js';

/**
 * Format `teams`: the body a Microsoft Teams Workflows webhook ("When a Teams webhook request is
 * received", the Office 365 connectors' replacement) accepts (integrations.md §2): a `message` with
 * one Adaptive Card attachment. The card declares version 1.4 (Teams supports up to 1.5; 1.4 is what
 * Argo CD's teams-workflows service sends) and uses only 1.4 elements: TextBlock, FactSet and
 * Action.OpenUrl (never Action.Submit, which Teams webhooks refuse).
 *
 * Size: Teams refuses a message over 28 KB. Every text is cut with an ellipsis (headline 300, each
 * fact 500, the error 2000 characters), which keeps the worst case (every field at its longest, in
 * three-byte characters) under that limit; test/callback/core/chat-formats.test.ts checks it.
 */

export const TEAMS_CARD_VERSION = '1.4';
export const TEAMS_LIMITS = { messageBytes: 28 * 1024, headline: 300, fact: 500, error: 2000 } as const;

const COLOR: Readonly<Record<Tone, 'Good' | 'Attention' | 'Default'>> = { good: 'Good', bad: 'Attention', neutral: 'Default' };

export interface AdaptiveCard {
  $schema: string;
  type: 'AdaptiveCard';
  version: string;
  body: Record<string, unknown>[];
  actions?: { type: 'Action.OpenUrl'; title: string; url: string }[];
}

export interface TeamsMessage {
  type: 'message';
  attachments: { contentType: 'application/vnd.microsoft.card.adaptive'; contentUrl: null; content: AdaptiveCard }[];
}

export function teamsCard(e: KfpEvent): AdaptiveCard {
  const body: Record<string, unknown>[] = [
    { type: 'TextBlock', text: truncate(headline(e), TEAMS_LIMITS.headline), size: 'Medium', weight: 'Bolder', color: COLOR[toneOf(e)], wrap: true },
  ];
  const failure = failureText(e);
  if (failure) {
    body.push({ type: 'TextBlock', text: failure.step ? `Failed step: ${truncate(failure.step, TEAMS_LIMITS.fact)}` : 'What failed:', weight: 'Bolder', wrap: true });
    body.push({ type: 'TextBlock', text: truncate(failure.error, TEAMS_LIMITS.error), fontType: 'Monospace', wrap: true });
  }
  body.push({ type: 'FactSet', facts: facts(e).map(([title, value]) => ({ title, value: truncate(value, TEAMS_LIMITS.fact) })) });
  const card: AdaptiveCard = { $schema: 'http://adaptivecards.io/schemas/adaptive-card.json', type: 'AdaptiveCard', version: TEAMS_CARD_VERSION, body };
  const runUrl = e.RunUrl ?? '';
  if (runUrl !== '') card.actions = [{ type: 'Action.OpenUrl', title: OPEN_RUN, url: runUrl }];
  return card;
}

export function teamsMessage(e: KfpEvent): TeamsMessage {
  return { type: 'message', attachments: [{ contentType: 'application/vnd.microsoft.card.adaptive', contentUrl: null, content: teamsCard(e) }] };
}

export function teamsDelivery(e: KfpEvent): Delivery {
  return { headers: { 'content-type': 'application/json' }, body: JSON.stringify(teamsMessage(e)) };
}
