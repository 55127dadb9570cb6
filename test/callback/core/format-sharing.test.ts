import { describe, expect, it } from 'vitest';
import { buildEvent } from '../../../callback/event-id.js';
import { formatDelivery } from '../../../callback/formats/index.js';
import type { KfpEvent, PayloadFormat } from '../../../callback/types.js';
import { EXAMPLE_FACTS } from './sample.js';

/** The store hands every subscriber of an event the same frozen object; its bodies are built once per format. */
describe('formatDelivery shares the bodies of a frozen event', () => {
  const FORMATS: PayloadFormat[] = ['json', 'cloudevents-structured', 'cloudevents-binary'];
  const fresh = (): KfpEvent => EXAMPLE_FACTS.map(buildEvent)[0] as KfpEvent;

  it('a frozen event: one delivery per format, the same object for every subscriber in that format, and read-only', () => {
    const event = Object.freeze(fresh());
    for (const format of FORMATS) {
      const first = formatDelivery(event, { format });
      expect(formatDelivery(event, { format })).toBe(first);
      expect(first).toEqual(formatDelivery(fresh(), { format }));
      expect(Object.isFrozen(first) && Object.isFrozen(first.headers)).toBe(true);
    }
    expect(formatDelivery(event, { format: 'json' }).body).not.toBe(formatDelivery(event, { format: 'cloudevents-structured' }).body);
  });

  it('an event that can still change is formatted afresh every time, so a change is never sent stale', () => {
    const event = fresh();
    const before = formatDelivery(event, { format: 'json' });
    event.Message = 'changed after the first send';
    const after = formatDelivery(event, { format: 'json' });
    expect(after).not.toBe(before);
    expect((JSON.parse(after.body) as { Message: string }).Message).toBe('changed after the first send');
  });
});
