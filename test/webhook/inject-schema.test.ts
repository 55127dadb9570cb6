import { describe, expect, it } from 'vitest';
import { hookKeyFromSecret } from '../../common/hook-token.js';
import { injectWorkflow } from '../../webhook/inject/index.js';
import { defaultInjectOptions, type InjectOptions } from '../../webhook/inject/options.js';
import { ARGO_SCHEMA_VERSIONS, argoSchemaErrors } from '../helpers/argo-schema.js';
import { admittedFixture, TEST_HOOK_KEY_SECRET, workflowFixtures } from '../helpers/fixtures.js';

const hookKey = hookKeyFromSecret(TEST_HOOK_KEY_SECRET);
/** The configurations whose output differs in shape: modern container, HTTP templates, oldest Argo. */
const CONFIGS: Record<string, Partial<InjectOptions>> = {
  'container, Argo 4.0.5': {},
  'container, Argo 4.0.5, stepHooks all': { stepHooks: 'all' },
  'http, Argo 3.5.14': { mode: 'http', argoVersion: '3.5.14' },
  'container, Argo 3.2.3': { argoVersion: '3.2.3' },
};

describe('the relaxed Argo JSON schemas', () => {
  it.each(ARGO_SCHEMA_VERSIONS)('%s rejects a Workflow with a malformed template (the validator is not vacuous)', (version) => {
    const bad = { apiVersion: 'argoproj.io/v1alpha1', kind: 'Workflow', metadata: {}, spec: { templates: [{ name: 'x', dag: { tasks: 'not a list' } }] } };
    expect(argoSchemaErrors(version, bad)).not.toEqual([]);
  });
});

describe.each(workflowFixtures())('$name after injection', ({ path }) => {
  for (const [config, partial] of Object.entries(CONFIGS)) {
    it.each(ARGO_SCHEMA_VERSIONS)(`${config}: validates against Argo's %s schema`, (version) => {
      const input = admittedFixture(path);
      expect(argoSchemaErrors(version, input), 'the admitted input itself').toEqual([]);
      const result = injectWorkflow(input, defaultInjectOptions({ ...partial, hookKey }));
      expect(result.outcome, result.reason).toBe('injected');
      expect(argoSchemaErrors(version, result.workflow)).toEqual([]);
    });
  }
});
