import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { k8sName, isK8sName } from '../../../common/kfp/k8s-name.js';
import { pipelineNameOf } from '../../../common/kfp/kfp-meta.js';
import type { Workflow } from '../../../common/kfp/workflow-types.js';
import { parseDocuments } from '../../../common/yaml-docs.js';
import { FIXTURES_DIR, workflowFixtures } from '../../helpers/fixtures.js';

describe('k8sName: a pipeline name as KFP writes it into Kubernetes', () => {
  it.each([
    ['Save Most Frequent', 'save-most-frequent'],
    ['hello-world', 'hello-world'],
    ['  My_Pipeline v2!! ', 'my-pipeline-v2'],
    ['--a--b--', 'a-b'],
    ['Ünïcode Name', 'n-code-name'],
  ])('%j → %j', (name, expected) => {
    expect(k8sName(name)).toBe(expected);
    expect(isK8sName(expected)).toBe(true);
  });

  it('is the prefix the v1 compiler gave the Workflow (generateName) in every v1 fixture whose spec names it', () => {
    const v1 = workflowFixtures().filter((f) => f.flavour === 'v1');
    let checked = 0;
    for (const f of v1) {
      const wf = parseDocuments(readFileSync(f.path, 'utf8'))[0] as Workflow;
      const generateName = wf.metadata?.generateName;
      if (!generateName) continue;
      expect(`${k8sName(pipelineNameOf(wf))}-`, f.name).toBe(generateName);
      checked++;
    }
    expect(checked).toBeGreaterThan(3);
    const basic = parseDocuments(readFileSync(join(FIXTURES_DIR, 'kfp-v1-compiler/basic.yaml'), 'utf8'))[0] as Workflow;
    expect(pipelineNameOf(basic)).toBe('Save Most Frequent');
  });

  it('a display name with spaces or capitals is not a k8s name', () => {
    expect(isK8sName('Save Most Frequent')).toBe(false);
    expect(isK8sName('')).toBe(false);
  });
});
