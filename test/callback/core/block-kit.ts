/**
 * A check of a Slack incoming-webhook body against Slack's documented Block Kit shape and limits
 * (integrations.md §1.1–1.2, from docs.slack.dev's Block Kit reference; Slack ships no validator
 * package). Returns every problem found, [] for a body Slack accepts. Mattermost's Slack-compatible
 * webhook has no `blocks`, so `text` must be non-empty (§1.6).
 */

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

function keysIn(o: Obj, allowed: string[], at: string, problems: string[]): void {
  for (const k of Object.keys(o)) if (!allowed.includes(k)) problems.push(`${at}: unknown property ${k}`);
}

function textObject(v: unknown, at: string, max: number, problems: string[], only?: 'plain_text'): void {
  if (!isObj(v)) return void problems.push(`${at}: not a text object`);
  if (v.type !== 'plain_text' && v.type !== 'mrkdwn') problems.push(`${at}.type must be plain_text or mrkdwn`);
  if (only && v.type !== only) problems.push(`${at}.type must be ${only}`);
  keysIn(v, v.type === 'plain_text' ? ['type', 'text', 'emoji'] : ['type', 'text', 'verbatim'], at, problems);
  if (typeof v.text !== 'string' || v.text.length < 1 || v.text.length > max) problems.push(`${at}.text must be 1-${max} characters (is ${typeof v.text === 'string' ? v.text.length : typeof v.text})`);
}

export function blockKitProblems(body: unknown): string[] {
  const problems: string[] = [];
  if (!isObj(body)) return ['body is not an object'];
  keysIn(body, ['text', 'blocks', 'attachments', 'thread_ts', 'mrkdwn'], 'body', problems);
  if (typeof body.text !== 'string' || body.text.trim() === '') problems.push('text must be a non-empty string (the fallback; Mattermost refuses a body without it)');
  else if (body.text.length > 40_000) problems.push('text is over 40,000 characters');
  const blocks = body.blocks;
  if (!Array.isArray(blocks)) return [...problems, 'blocks must be a list'];
  if (blocks.length > 50) problems.push(`${blocks.length} blocks, over 50`);
  const ids = new Set<string>();
  blocks.forEach((b, i) => {
    const at = `blocks[${i}]`;
    if (!isObj(b)) return void problems.push(`${at}: not an object`);
    if (b.block_id !== undefined) {
      if (typeof b.block_id !== 'string' || b.block_id.length > 255 || ids.has(b.block_id)) problems.push(`${at}.block_id must be unique and ≤255 characters`);
      else ids.add(b.block_id);
    }
    switch (b.type) {
      case 'header':
        keysIn(b, ['type', 'text', 'block_id'], at, problems);
        textObject(b.text, `${at}.text`, 150, problems, 'plain_text');
        break;
      case 'section': {
        keysIn(b, ['type', 'text', 'fields', 'block_id', 'accessory'], at, problems);
        if (b.text === undefined && b.fields === undefined) problems.push(`${at}: a section needs text or fields`);
        if (b.text !== undefined) textObject(b.text, `${at}.text`, 3000, problems);
        if (b.fields !== undefined) {
          if (!Array.isArray(b.fields) || b.fields.length === 0 || b.fields.length > 10) problems.push(`${at}.fields must hold 1-10 items`);
          else b.fields.forEach((f, j) => textObject(f, `${at}.fields[${j}]`, 2000, problems));
        }
        break;
      }
      case 'actions': {
        keysIn(b, ['type', 'elements', 'block_id'], at, problems);
        if (!Array.isArray(b.elements) || b.elements.length === 0 || b.elements.length > 25) return void problems.push(`${at}.elements must hold 1-25 items`);
        b.elements.forEach((el, j) => {
          const eat = `${at}.elements[${j}]`;
          if (!isObj(el) || el.type !== 'button') return void problems.push(`${eat}: only buttons are checked here`);
          keysIn(el, ['type', 'text', 'url', 'action_id', 'value', 'style'], eat, problems);
          textObject(el.text, `${eat}.text`, 75, problems, 'plain_text');
          if (el.url !== undefined && (typeof el.url !== 'string' || el.url.length > 3000 || !/^https?:\/\//.test(el.url))) problems.push(`${eat}.url must be an http(s) URL of ≤3000 characters`);
          if (el.action_id !== undefined && (typeof el.action_id !== 'string' || el.action_id.length > 255)) problems.push(`${eat}.action_id must be ≤255 characters`);
          if (el.style !== undefined && el.style !== 'primary' && el.style !== 'danger') problems.push(`${eat}.style must be primary or danger`);
        });
        break;
      }
      case 'context':
        keysIn(b, ['type', 'elements', 'block_id'], at, problems);
        if (!Array.isArray(b.elements) || b.elements.length === 0 || b.elements.length > 10) problems.push(`${at}.elements must hold 1-10 items`);
        break;
      case 'divider':
        keysIn(b, ['type', 'block_id'], at, problems);
        break;
      default:
        problems.push(`${at}: block type ${String(b.type)} is not one this check knows`);
    }
  });
  return problems;
}

/** Characters a Slack text must not carry raw (formatting reference: escape &, <, >), outside `<url|label>` links. */
export function rawSlackControlChars(text: string): boolean {
  const withoutLinks = text.replace(/<https?:\/\/[^|>\s]+\|[^>]*>/g, '');
  return /[<>]|&(?!amp;|lt;|gt;)/.test(withoutLinks);
}
