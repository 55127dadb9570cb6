import { spawn, spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BIN } from '../helpers/cli.js';
import { cleanups } from '../helpers/cleanups.js';
import { startFakeKubeApi } from '../helpers/fake-kube-api.js';
import { httpsRequest, makeCert } from '../helpers/tls.js';
import { startCallbackProcess } from '../callback/engine/process.js';
import { until } from '../callback/engine/receiver.js';
import { NAMESPACE } from './helpers/install-model.js';
import { prometheusOperatorProblems } from './helpers/prometheus-operator-shape.js';
import { MANIFESTS, useRenderedInstalls, type K8sObject } from './helpers/render.js';

/**
 * The optional monitoring component (manifests/components/monitoring), as the documented combined
 * install renders it: ServiceMonitors that select real Services and ports, alert rules that promtool
 * accepts and that fire on the series they are about, a Grafana dashboard with the JSON model's
 * essentials, and not one metric name that the real processes do not export.
 */

const installs = useRenderedInstalls();
const scratch = cleanups('kfp-notify-monitoring-');
afterAll(() => scratch.run());

function combined(): K8sObject[] {
  const install = installs().find((i) => i.name === 'combined');
  if (!install) throw new Error('no combined install');
  return install.objects;
}

function ofKind<T extends K8sObject>(kind: string): T[] {
  return combined().filter((o): o is T => o.kind === kind);
}

interface ServiceMonitor extends K8sObject {
  spec: { selector: { matchLabels: Record<string, string> }; namespaceSelector?: { matchNames?: string[] }; endpoints: { port: string; path?: string; scheme?: string }[] };
}
interface Service extends K8sObject {
  spec: { ports: { name?: string; port: number }[] };
}
interface PrometheusRule extends K8sObject {
  spec: { groups: { name: string; rules: { alert?: string; expr: string; labels?: Record<string, string> }[] }[] };
}
interface Panel {
  id?: number;
  type?: string;
  title?: string;
  gridPos?: { x: number; y: number; w: number; h: number };
  targets?: { expr?: string; refId?: string }[];
}

function promtool(args: string[], cwd: string): { code: number | null; out: string } {
  const r = spawnSync('promtool', args, { cwd, encoding: 'utf8' });
  if (r.error) throw new Error(`promtool is not on PATH (test/system-deps.sh installs the Debian package prometheus): ${r.error.message}`);
  return { code: r.status, out: `${r.stdout}${r.stderr}` };
}

/** The rule file promtool reads: the PrometheusRule's .spec (the CRD's groups are the rule-file format). */
function ruleFile(): string {
  const [rule] = ofKind<PrometheusRule>('PrometheusRule');
  if (!rule) throw new Error('no PrometheusRule');
  const dir = scratch.tempDir();
  writeFileSync(join(dir, 'rules.json'), JSON.stringify(rule.spec));
  return dir;
}

const METRIC = /\bkfp_notify_[a-z_]+/g;
/** A histogram's series carry suffixes its TYPE line does not. */
const baseName = (m: string): string => m.replace(/_(bucket|sum|count)$/, '');

function dashboard(): { model: Record<string, unknown>; panels: Panel[] } {
  const model = JSON.parse(readFileSync(join(MANIFESTS, 'components', 'monitoring', 'kfp-notify-dashboard.json'), 'utf8')) as Record<string, unknown>;
  return { model, panels: (model.panels ?? []) as Panel[] };
}

describe('ServiceMonitors', () => {
  it('are valid (Prometheus Operator v1 shapes) and select a Service of the install by labels, with a port of that name', () => {
    const monitors = ofKind<ServiceMonitor>('ServiceMonitor');
    expect(monitors.map((m) => m.metadata.name).sort()).toEqual(['kfp-notify-callback', 'kfp-notify-webhook']);
    for (const m of monitors) {
      expect(prometheusOperatorProblems(m), m.metadata.name).toEqual([]);
      expect(m.metadata.labels?.release, 'kube-prometheus-stack selects by release').toBe('kube-prometheus-stack');
      const services = ofKind<Service>('Service').filter(
        (s) => (m.spec.namespaceSelector?.matchNames ?? [m.metadata.namespace]).includes(s.metadata.namespace ?? '') && Object.entries(m.spec.selector.matchLabels).every(([k, v]) => s.metadata.labels?.[k] === v),
      );
      expect(services.map((s) => s.metadata.name), m.metadata.name).toEqual([m.metadata.name]);
      for (const e of m.spec.endpoints) expect(services[0]?.spec.ports.map((p) => p.name)).toContain(e.port);
    }
  });

  it('the shape check refuses a numeric port and a missing selector', () => {
    const [m] = ofKind<ServiceMonitor>('ServiceMonitor');
    if (!m) throw new Error('no ServiceMonitor');
    expect(prometheusOperatorProblems({ ...m, spec: { ...m.spec, endpoints: [{ port: 8080 }] } } as unknown as K8sObject)).not.toEqual([]);
    const { selector: _drop, ...noSelector } = m.spec;
    expect(prometheusOperatorProblems({ ...m, spec: noSelector } as unknown as K8sObject)).not.toEqual([]);
  });
});

describe('PrometheusRule', () => {
  it('is valid, names the five alerts, and promtool checks its rules', () => {
    const [rule] = ofKind<PrometheusRule>('PrometheusRule');
    if (!rule) throw new Error('no PrometheusRule');
    expect(prometheusOperatorProblems(rule)).toEqual([]);
    expect(rule.spec.groups.flatMap((g) => g.rules.map((r) => r.alert)).sort()).toEqual([
      'KfpNotifyDeadLettersGrowing',
      'KfpNotifyHookCallsRefused',
      'KfpNotifySubscriberDisabled',
      'KfpNotifyWatcherNotSynced',
      'KfpNotifyWebhookFailingOpen',
    ]);
    const r = promtool(['check', 'rules', 'rules.json'], ruleFile());
    expect(r.out).toContain('SUCCESS: 5 rules found');
    expect(r.code).toBe(0);
  });

  it('promtool check rules fails on a broken expression (the check can fail)', () => {
    const dir = scratch.tempDir();
    writeFileSync(join(dir, 'rules.json'), JSON.stringify({ groups: [{ name: 'x', rules: [{ alert: 'Broken', expr: 'sum(rate(kfp_notify_deliveries_total[5m]' }] }] }));
    expect(promtool(['check', 'rules', 'rules.json'], dir).code).not.toBe(0);
  });

  it('each alert fires on the series it is about, with its labels and rendered annotations, and not before its `for`', () => {
    const dir = ruleFile();
    const warning = (labels: Record<string, string>, summary: string, description: string) => ({ exp_labels: { severity: 'warning', ...labels }, exp_annotations: { summary, description } });
    const tests = {
      rule_files: ['rules.json'],
      evaluation_interval: '1m',
      tests: [
        {
          interval: '1m',
          input_series: [
            { series: 'kfp_notify_deliveries_total{outcome="dead",subscriber="ops"}', values: '0 0 0 1 2 3 4 5 6 7 8 9 10' },
            { series: 'kfp_notify_deliveries_total{outcome="delivered",subscriber="fine"}', values: '0+10x30' },
            { series: 'kfp_notify_subscriber_disabled{subscriber="gone"}', values: '0 0 1 1 1 1 1 1 1 1 1 1' },
            { series: 'kfp_notify_subscriber_disabled{subscriber="fine"}', values: '0x30' },
            { series: 'kfp_notify_hook_calls_total{code="403"}', values: '0+1x30' },
            { series: 'kfp_notify_hook_calls_total{code="202"}', values: '0+5x30' },
            { series: 'kfp_notify_admission_requests_total{outcome="injected"}', values: '0+10x30' },
            { series: 'kfp_notify_admission_failed_open_total{cause="timeout"}', values: '0+1x30' },
            { series: 'kfp_notify_watcher_synced', values: '0x30' },
          ],
          alert_rule_test: [
            {
              eval_time: '10m',
              alertname: 'KfpNotifyDeadLettersGrowing',
              exp_alerts: [
                warning(
                  { subscriber: 'ops' },
                  'Deliveries to ops are being dead-lettered',
                  '8 deliveries to subscriber ops used up their retries in the last 15 minutes. List them with `kfp-notify dlq list --subscriber ops`; replay once the endpoint works.',
                ),
              ],
            },
            { eval_time: '5m', alertname: 'KfpNotifySubscriberDisabled', exp_alerts: [] },
            {
              eval_time: '10m',
              alertname: 'KfpNotifySubscriberDisabled',
              exp_alerts: [
                warning(
                  { subscriber: 'gone' },
                  'Subscriber gone is disabled',
                  'It answered 410 Gone or failed every attempt for --disable-after; its events go to the dead letters. Re-enable with `kfp-notify subscriber enable gone`, then `kfp-notify dlq replay --subscriber gone`.',
                ),
              ],
            },
            {
              eval_time: '25m',
              alertname: 'KfpNotifyHookCallsRefused',
              exp_alerts: [
                warning(
                  { code: '403' },
                  'The callback refuses hook calls (HTTP 403)',
                  "401/403: the hook key changed under running Workflows (docs/install.md, rotating the hook key). 400/413/415/422: a malformed call; the callback's log says why.",
                ),
              ],
            },
            {
              eval_time: '25m',
              alertname: 'KfpNotifyWebhookFailingOpen',
              exp_alerts: [
                warning(
                  {},
                  'The webhook admits Workflows without hooks (fail-open)',
                  "10% of admissions failed open in the last 10 minutes: those runs report nothing through hooks. The webhook's log says why (error or timeout).",
                ),
              ],
            },
            { eval_time: '5m', alertname: 'KfpNotifyWatcherNotSynced', exp_alerts: [] },
            {
              eval_time: '15m',
              alertname: 'KfpNotifyWatcherNotSynced',
              exp_alerts: [
                warning(
                  {},
                  'The status watcher has not listed Workflows',
                  "The callback's status watcher has no list of Workflows: what hooks miss is not reported. Check its RBAC (list/watch workflows) and kfp_notify_watch_errors_total.",
                ),
              ],
            },
          ],
        },
      ],
    };
    writeFileSync(join(dir, 'tests.json'), JSON.stringify(tests));
    const r = promtool(['test', 'rules', 'tests.json'], dir);
    expect(r.out).toContain('SUCCESS');
    expect(r.code, r.out).toBe(0);
  });
});

describe('Grafana dashboard', () => {
  it('has the JSON model essentials: uid, title, schemaVersion, id null, time, a Prometheus datasource variable, laid-out panels with queries', () => {
    const { model, panels } = dashboard();
    expect(typeof model.uid === 'string' && model.uid.length >= 8 && model.uid.length <= 40).toBe(true);
    expect(model.title).toBe('kfp-notify');
    expect(typeof model.schemaVersion).toBe('number');
    expect(model.id).toBeNull();
    expect(model.time).toEqual({ from: expect.any(String), to: 'now' });
    const vars = (model.templating as { list: { name: string; type: string; query: string }[] }).list;
    expect(vars).toContainEqual(expect.objectContaining({ name: 'datasource', type: 'datasource', query: 'prometheus' }));
    expect(panels.length).toBeGreaterThan(8);
    expect(new Set(panels.map((p) => p.id)).size).toBe(panels.length);
    for (const p of panels) {
      expect(p.type && p.title, JSON.stringify(p)).toBeTruthy();
      const g = p.gridPos;
      expect(g && g.x >= 0 && g.w > 0 && g.x + g.w <= 24 && g.h > 0, `${p.title} gridPos`).toBe(true);
      if (p.type === 'row') continue;
      expect(p.targets?.length, p.title).toBeGreaterThan(0);
      for (const t of p.targets ?? []) expect(t.expr && t.refId, p.title).toBeTruthy();
      expect(new Set(p.targets?.map((t) => t.refId)).size, p.title).toBe(p.targets?.length);
    }
  });

  it('ships as a ConfigMap the Grafana sidecar loads, holding exactly the file', () => {
    const cm = combined().find((o) => o.kind === 'ConfigMap' && o.metadata.name === 'kfp-notify-grafana-dashboard') as (K8sObject & { data: Record<string, string> }) | undefined;
    expect(cm?.metadata.namespace).toBe(NAMESPACE);
    expect(cm?.metadata.labels?.grafana_dashboard).toBe('1');
    expect(JSON.parse(cm?.data['kfp-notify-dashboard.json'] ?? '{}')).toEqual(dashboard().model);
  });
});

describe('every metric the alerts and the dashboard name is exported by a real process', () => {
  const exported = new Set<string>();

  /** `# TYPE` lines: a labelled counter with no sample yet is still declared. */
  const declared = (text: string): string[] => [...text.matchAll(/^# TYPE (\S+) /gm)].map((m) => m[1] ?? '');

  beforeAll(async () => {
    const dir = scratch.tempDir();
    // The callback with the cluster (a local stand-in for the Kubernetes API): its watcher's metrics too.
    const api = await startFakeKubeApi();
    scratch.push(() => api.close());
    api.apply({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'kfp-event-handler-config', namespace: NAMESPACE }, data: {} });
    const kubeconfig = join(dir, 'kubeconfig');
    writeFileSync(kubeconfig, api.kubeConfig().exportConfig());
    const cb = await startCallbackProcess(['--data-dir', join(dir, 'cb'), '--subscribers-configmap', 'kfp-event-handler-config', '--namespace', NAMESPACE], { KUBECONFIG: kubeconfig }, { cluster: true });
    scratch.push(() => cb.stop('SIGKILL'));
    let callbackMetrics = '';
    await until(async () => {
      callbackMetrics = await (await fetch(`${cb.url}/metrics`)).text();
      return /^kfp_notify_watcher_synced 1$/m.test(callbackMetrics);
    }, 'the watcher to sync and say so');
    for (const n of declared(callbackMetrics)) exported.add(n);

    // The webhook, as its Deployment runs it (HTTPS; /metrics beside /mutate).
    const pair = await makeCert();
    writeFileSync(join(dir, 'tls.crt'), pair.cert);
    writeFileSync(join(dir, 'tls.key'), pair.key);
    writeFileSync(join(dir, 'keys'), 'monitoring-test-hook-key-0123456789abcdef\n');
    const child = spawn(process.execPath, [BIN, 'webhook', '--port', '0', '--host', '127.0.0.1', '--tls-cert', join(dir, 'tls.crt'), '--tls-key', join(dir, 'tls.key'), '--hook-key-file', join(dir, 'keys'), '--data-dir', join(dir, 'wh')], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    scratch.push(() => child.kill('SIGKILL'));
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    await until(() => /"msg":"webhook listening"/.test(out), 'the webhook to listen');
    const line = out.split('\n').find((l) => l.includes('"msg":"webhook listening"')) ?? '{}';
    const url = (JSON.parse(line) as { url?: string }).url ?? '';
    const webhookMetrics = await httpsRequest(`${url}/metrics`, { ca: pair.cert });
    expect(webhookMetrics.status).toBe(200);
    for (const n of declared(webhookMetrics.body)) exported.add(n);
  });

  it('the alert rules', () => {
    const [rule] = ofKind<PrometheusRule>('PrometheusRule');
    const named = new Set((rule?.spec.groups ?? []).flatMap((g) => g.rules.flatMap((r) => String(r.expr).match(METRIC) ?? [])).map(baseName));
    expect(named.size).toBeGreaterThanOrEqual(6);
    expect([...named].filter((m) => !exported.has(m))).toEqual([]);
  });

  it('the dashboard', () => {
    const named = new Set(dashboard().panels.flatMap((p) => (p.targets ?? []).flatMap((t) => t.expr?.match(METRIC) ?? [])).map(baseName));
    expect(named.size).toBeGreaterThan(10);
    expect([...named].filter((m) => !exported.has(m))).toEqual([]);
  });

  it('a name the code does not export is caught', () => {
    expect(exported.has('kfp_notify_deliveries_total')).toBe(true);
    expect(exported.has('kfp_notify_dead_letters_total')).toBe(false);
  });
});
