/**
 * The wording of event messages, shared by the hook path (normalize.ts) and the status watcher so
 * that one fact reads the same whichever path reported it. Pure.
 *
 * The words mirror the Kubernetes Events Argo's controller emits, which is what kfp-event-handler
 * subscribers used to receive in `Message`: `Succeeded node <name>`, `Failed node <name>: <message>`
 * (argo-workflows `nodeMessage`), `Workflow Running`, `Workflow completed`.
 */

/** Longest Message an event carries; a longer one is cut, never refused (the event matters more). */
export const MAX_MESSAGE_CHARS = 4096;
/** How many failed steps a workflow failure summary names before it says "and N more". */
const MAX_SUMMARY_FAILURES = 5;

/**
 * Cuts text to at most `max` characters (UTF-16 units) with an ellipsis (…) as the last one; a cut
 * never splits a surrogate pair. Also what the chat formats use to meet each service's field limits.
 */
export function truncate(text: string, max = MAX_MESSAGE_CHARS): string {
  if (text.length <= max) return text;
  let cut = text.slice(0, Math.max(0, max - 1));
  if (/[\uD800-\uDBFF]$/.test(cut)) cut = cut.slice(0, -1);
  return `${cut}…`;
}

/** Argo's node event wording: `<Phase> node <argo node name>[: <message>]`. */
export function nodeMessage(phase: string, argoNodeName: string, message?: string): string {
  const base = `${phase} node ${argoNodeName}`;
  return truncate(message ? `${base}: ${message}` : base);
}

export const WORKFLOW_RUNNING_MESSAGE = 'Workflow Running';
export const WORKFLOW_SUCCEEDED_MESSAGE = 'Workflow completed';

/** A failed run's Message: what went wrong when known, else `Workflow <Phase>`. */
export function workflowFailedMessage(phase: string, detail?: string): string {
  return truncate(detail && detail.trim() !== '' ? detail : `Workflow ${phase}`);
}

/** One entry of Argo's `{{workflow.failures}}` (fields Argo may leave out are ''). */
export interface WorkflowFailure {
  displayName: string;
  message: string;
  templateName: string;
  phase: string;
  podName: string;
  finishedAt: string;
}

/** Bigger than any real failures list we expect; past it we skip decoding rather than spend on it. */
export const MAX_FAILURES_CHARS = 256 * 1024;

/**
 * Decode `{{workflow.failures}}` as it reaches a hook: Argo substitutes it Go-quoted
 * (`strconv.Quote`, outer quotes included), and it is `null` when nothing failed. Raw JSON (no
 * quoting) is accepted too. Never throws: anything unreadable is "no failures known" ([]), because
 * a bad failures value must never cost the event.
 */
export function decodeFailures(raw: string | undefined): WorkflowFailure[] {
  if (!raw || raw.length > MAX_FAILURES_CHARS) return [];
  let value: unknown = raw.trim();
  // A few rounds: a Go-quoted string decodes to JSON text, and a doubly quoted one to a quoted one.
  for (let round = 0; round < 3 && typeof value === 'string'; round++) {
    const text: string = value.trim();
    if (text.startsWith('"')) value = goUnquote(text);
    else if (text.startsWith('[') || text === 'null') value = parseJson(text);
    else return [];
  }
  if (!Array.isArray(value)) return [];
  return value.flatMap((item) => {
    const f = toFailure(item);
    return f ? [f] : [];
  });
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

function toFailure(item: unknown): WorkflowFailure | undefined {
  if (typeof item !== 'object' || item === null || Array.isArray(item)) return undefined;
  const rec = item as Record<string, unknown>;
  const str = (k: string): string => (typeof rec[k] === 'string' ? (rec[k] as string) : '');
  const f = {
    displayName: str('displayName'),
    message: str('message'),
    templateName: str('templateName'),
    phase: str('phase'),
    podName: str('podName'),
    finishedAt: str('finishedAt'),
  };
  return f.displayName || f.message || f.podName ? f : undefined;
}

const SIMPLE_ESCAPES: Record<string, string> = { a: '\x07', b: '\b', f: '\f', n: '\n', r: '\r', t: '\t', v: '\v', '\\': '\\', '"': '"', "'": "'" };

/**
 * The inverse of Go's strconv.Quote for a double-quoted literal: \a \b \f \n \r \t \v \\ \" \',
 * \xHH (raw bytes, which may form UTF-8 together), \NNN octal, \uHHHH, \UHHHHHHHH. Returns
 * undefined for anything that is not a well-formed literal.
 */
export function goUnquote(literal: string): string | undefined {
  if (literal.length < 2 || !literal.startsWith('"') || !literal.endsWith('"')) return undefined;
  const body = literal.slice(1, -1);
  const bytes: number[] = [];
  const pushText = (s: string): void => {
    for (const b of Buffer.from(s, 'utf8')) bytes.push(b);
  };
  for (let i = 0; i < body.length; i++) {
    const c = body[i] as string;
    if (c === '"') return undefined; // an unescaped quote inside: not one literal
    if (c !== '\\') {
      // Copy a run of plain characters at once (keeps surrogate pairs together).
      let j = i;
      while (j < body.length && body[j] !== '\\' && body[j] !== '"') j++;
      pushText(body.slice(i, j));
      i = j - 1;
      continue;
    }
    const e = body[i + 1];
    if (e === undefined) return undefined;
    if (e in SIMPLE_ESCAPES) {
      pushText(SIMPLE_ESCAPES[e] as string);
      i += 1;
    } else if (e === 'x' || e === 'u' || e === 'U') {
      const width = e === 'x' ? 2 : e === 'u' ? 4 : 8;
      const hex = body.slice(i + 2, i + 2 + width);
      if (!/^[0-9a-fA-F]+$/.test(hex) || hex.length !== width) return undefined;
      const n = parseInt(hex, 16);
      if (e === 'x') bytes.push(n);
      else if (n > 0x10ffff) return undefined;
      else pushText(String.fromCodePoint(n));
      i += 1 + width;
    } else if (/[0-7]/.test(e)) {
      const oct = body.slice(i + 1, i + 4);
      if (!/^[0-7]{3}$/.test(oct)) return undefined;
      const n = parseInt(oct, 8);
      if (n > 255) return undefined;
      bytes.push(n);
      i += 3;
    } else {
      return undefined;
    }
  }
  return Buffer.from(bytes).toString('utf8');
}

/** Argo's words on a DAG or retry parent whose child failed: propagation noise, not a cause. */
export const PROPAGATED_FAILURE = /^child '.*' (failed|errored)$/;

/**
 * A short, human summary of what failed, for a WorkflowFailed Message: the failed steps and their
 * messages, most specific first. Argo lists every failed node, DAG and retry parents included, and
 * those carry only propagation noise ("child 'x' failed"); they are left out when a step says more.
 */
export function failureSummary(failures: readonly WorkflowFailure[]): string | undefined {
  const described = failures.filter((f) => f.message !== '');
  const specific = described.filter((f) => !PROPAGATED_FAILURE.test(f.message));
  const chosen = specific.length > 0 ? specific : described;
  return joinFailureLines(chosen.map((f) => `${f.displayName || f.podName || f.templateName || 'step'}: ${f.message}`));
}

/** Failure lines joined with `; `, duplicates dropped, at most five named before "and N more"; undefined when none. */
export function joinFailureLines(lines: readonly string[]): string | undefined {
  const unique = [...new Set(lines)];
  if (unique.length === 0) return undefined;
  const shown = unique.slice(0, MAX_SUMMARY_FAILURES);
  const more = unique.length - shown.length;
  return truncate(more > 0 ? `${shown.join('; ')}; and ${more} more` : shown.join('; '));
}
