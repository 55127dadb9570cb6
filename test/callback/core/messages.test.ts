import { describe, expect, it } from 'vitest';
import { decodeFailures, failureSummary, goUnquote, nodeMessage, truncate, MAX_MESSAGE_CHARS, type WorkflowFailure } from '../../../callback/messages.js';

describe('goUnquote (the inverse of Go strconv.Quote)', () => {
  it.each([
    // [Go literal as strconv.Quote writes it, the string it stands for]
    ['"plain"', 'plain'],
    ['""', ''],
    ['"a \\"quoted\\" word"', 'a "quoted" word'],
    ['"back\\\\slash"', 'back\\slash'],
    ['"\\a\\b\\f\\n\\r\\t\\v"', '\x07\b\f\n\r\t\v'],
    ['"caf\\u00e9 \\U0001f600"', 'café 😀'],
    ['"raw é and 😀 stay raw"', 'raw é and 😀 stay raw'],
    ['"\\xc3\\xa9"', 'é'], // UTF-8 bytes written one by one
    ['"\\101\\102"', 'AB'], // octal
    ['"json \\\\u003c escapes stay for JSON.parse"', 'json \\u003c escapes stay for JSON.parse'],
  ])('%s → %j', (literal, want) => {
    expect(goUnquote(literal)).toBe(want);
  });

  it.each(['plain', '"unterminated', '"bad \\q escape"', '"short \\x4"', '"inner " quote"', '"\\U00110000"', '"trailing \\"'])('%j is not a Go literal', (literal) => {
    expect(goUnquote(literal)).toBeUndefined();
  });
});

const failure = (f: Partial<WorkflowFailure>): WorkflowFailure => ({ displayName: '', message: '', templateName: '', phase: 'Failed', podName: '', finishedAt: '', ...f });

describe('decodeFailures', () => {
  // What Argo substitutes: json.Marshal of the list (which escapes <, >, & and newlines), then strconv.Quote.
  const argoValue =
    '"[{\\"displayName\\":\\"train\\",\\"message\\":\\"loss \\\\u003c 0\\\\nError (exit code 1)\\",\\"templateName\\":\\"train\\",\\"phase\\":\\"Failed\\",\\"podName\\":\\"wf-train-1\\",\\"finishedAt\\":\\"2025-03-01T11:58:00Z\\"}]"';

  it('reads the Go-quoted JSON list Argo substitutes', () => {
    expect(decodeFailures(argoValue)).toEqual([
      { displayName: 'train', message: 'loss < 0\nError (exit code 1)', templateName: 'train', phase: 'Failed', podName: 'wf-train-1', finishedAt: '2025-03-01T11:58:00Z' },
    ]);
  });

  it('reads plain JSON too (nothing quoted it)', () => {
    expect(decodeFailures('[{"displayName":"x","message":"m"}]')).toEqual([failure({ displayName: 'x', message: 'm', phase: '' })]);
  });

  it.each([undefined, '', 'null', '"null"', '[]', '{{workflow.failures}}', '"[{', '{"not":"a list"}', '[1, "two", null]', `"${'x'.repeat(300_000)}"`])(
    '%j → no failures, never an exception',
    (raw) => {
      expect(decodeFailures(raw)).toEqual([]);
    },
  );
});

describe('failureSummary', () => {
  it('names steps with their messages, leaving out DAG propagation noise', () => {
    const s = failureSummary([
      failure({ displayName: 'root', message: "child 'wf-1' failed" }),
      failure({ displayName: 'train', message: 'Error (exit code 1)' }),
      failure({ displayName: 'train', message: 'Error (exit code 1)' }),
      failure({ displayName: 'eval', message: 'pod deleted', phase: 'Error' }),
    ]);
    expect(s).toBe('train: Error (exit code 1); eval: pod deleted');
  });

  it('keeps the noise when it is all there is, and says nothing when nothing has a message', () => {
    expect(failureSummary([failure({ displayName: 'root', message: "child 'wf-1' failed" })])).toBe("root: child 'wf-1' failed");
    expect(failureSummary([failure({ displayName: 'root' })])).toBeUndefined();
    expect(failureSummary([])).toBeUndefined();
  });

  it('names at most five and counts the rest', () => {
    const many = Array.from({ length: 8 }, (_, i) => failure({ displayName: `s${i}`, message: 'boom' }));
    expect(failureSummary(many)).toBe('s0: boom; s1: boom; s2: boom; s3: boom; s4: boom; and 3 more');
  });
});

describe('message bounds', () => {
  it('a huge node message is cut to the limit, marked with an ellipsis', () => {
    const m = nodeMessage('Failed', 'wf.train', 'x'.repeat(10_000));
    expect(m).toHaveLength(MAX_MESSAGE_CHARS);
    expect(m.startsWith('Failed node wf.train: xxx')).toBe(true);
    expect(m.endsWith('…')).toBe(true);
    expect(truncate('short')).toBe('short');
  });
});
