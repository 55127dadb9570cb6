import { readFileSync } from 'node:fs';
import type { Logger } from '../common/logger.js';
import { DataDirError, loadHookKeys } from '../common/data-dir.js';
import type { HookKey } from '../common/hook-token.js';
import { parseDocuments } from '../common/yaml-docs.js';
import { STEP_HOOK_POLICIES, defaultInjectOptions, type InjectOptions, type StepHooks } from './inject/options.js';
import { watchFiles, type FileWatch } from './tls-reload.js';
import { errorMessage } from '../common/error-message.js';

/**
 * The injector's settings. In the cluster they come from a mounted ConfigMap (a YAML file); command-line
 * flags override them one by one. Every error names the key (or flag) it is about.
 */
export interface InjectorSettings {
  callbackUrl?: string;
  argoVersion?: string;
  mode?: 'container' | 'http';
  sizeLimitBytes?: number;
  image?: string;
  stepHooks?: StepHooks;
}
type SettingKey = keyof InjectorSettings;

/** The flag that overrides each file key (image has none: it belongs in the ConfigMap). */
export const SETTING_FLAGS: Readonly<Record<SettingKey, string | undefined>> = {
  callbackUrl: '--callback-url',
  argoVersion: '--argo-version',
  mode: '--mode',
  sizeLimitBytes: '--size-limit',
  image: undefined,
  stepHooks: '--step-hooks',
};
const SETTING_KEYS = Object.keys(SETTING_FLAGS) as SettingKey[];

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

function shown(v: unknown): string {
  return typeof v === 'string' ? JSON.stringify(v) : `${Array.isArray(v) ? 'list' : typeof v} ${JSON.stringify(v)}`;
}

type Checked = { value: unknown } | { problem: string };
const problem = (text: string): Checked => ({ problem: text });

// Only the shape is checked here (what a YAML file or a flag can get wrong: a number where a string
// belongs, digits in a string); what a good value is (a base URL, a usable Argo version) is the
// injector's rule, applied by `defaultInjectOptions` to the merged settings.
const CHECKS: Record<SettingKey, (v: unknown) => Checked> = {
  callbackUrl: (v) => (typeof v === 'string' ? { value: v } : problem(`must be a URL string, got ${shown(v)}`)),
  // YAML reads `argoVersion: 3.4` as the number 3.4, which cannot be told apart from 3.40.
  argoVersion: (v) => (typeof v === 'string' ? { value: v } : problem(`must be a quoted version string such as "3.4.17", got ${shown(v)}`)),
  mode: (v) => (v === 'container' || v === 'http' ? { value: v } : problem(`must be "container" or "http", got ${shown(v)}`)),
  sizeLimitBytes: (v) => {
    const n = typeof v === 'string' && /^\d+$/.test(v.trim()) ? Number(v.trim()) : v;
    return typeof n === 'number' && Number.isSafeInteger(n) && n > 0 ? { value: n } : problem(`must be a positive whole number of bytes, got ${shown(v)}`);
  },
  image: (v) => (typeof v === 'string' ? { value: v } : problem(`must be a container image reference string, got ${shown(v)}`)),
  stepHooks: (v) =>
    (STEP_HOOK_POLICIES as readonly unknown[]).includes(v) ? { value: v } : problem(`must be one of ${STEP_HOOK_POLICIES.join(', ')}, got ${shown(v)}`),
};

/** Raw values (from YAML or flags) → checked settings. `where(key)` names the key in errors. */
export function checkSettings(raw: Readonly<Record<string, unknown>>, where: (key: string) => string): InjectorSettings {
  const out: Record<string, unknown> = {};
  const problems: string[] = [];
  for (const [key, value] of Object.entries(raw)) {
    if (value === undefined) continue;
    if (!(SETTING_KEYS as string[]).includes(key)) {
      problems.push(`${where(key)}: unknown key (known keys: ${SETTING_KEYS.join(', ')})`);
      continue;
    }
    const checked = CHECKS[key as SettingKey](value);
    if ('problem' in checked) problems.push(`${where(key)}: ${checked.problem}`);
    else out[key] = checked.value;
  }
  if (problems.length > 0) throw new ConfigError(problems.join('\n'));
  return out as InjectorSettings;
}

/** The ConfigMap's YAML (an empty file is all defaults). Pure. */
export function parseInjectorConfig(text: string, source: string): InjectorSettings {
  if (text.trim() === '') return {};
  const docs = parseDocuments(text, source);
  if (docs.length > 1) throw new ConfigError(`${source}: expected one YAML document, found ${docs.length}`);
  const doc = docs[0];
  if (doc === undefined) return {};
  return checkSettings(doc as Record<string, unknown>, (key) => `${source}: key "${key}"`);
}

/** File settings overridden by flag settings (a flag that was not given does not erase a file value). */
export function mergeSettings(file: InjectorSettings, flags: InjectorSettings): InjectorSettings {
  const merged: InjectorSettings = { ...file };
  for (const [k, v] of Object.entries(flags)) if (v !== undefined) Object.assign(merged, { [k]: v });
  return merged;
}

export interface InjectorSources {
  /** The mounted ConfigMap file; optional (flags and defaults suffice for local use). */
  configFile?: string;
  /** Already checked (see `checkSettings`); they win over the file. */
  flags: InjectorSettings;
  /** One key per line, the first signs; without it the data dir's key is used (created if absent). */
  hookKeyFile?: string;
  dataDir: string;
}

/** The key hook tokens are minted with: the first key of the file. */
export function loadSigningKey(src: Pick<InjectorSources, 'hookKeyFile' | 'dataDir'>): HookKey {
  try {
    const [first] = loadHookKeys({ keyFile: src.hookKeyFile, dataDir: src.dataDir });
    if (!first) throw new Error('no hook key found');
    return first;
  } catch (err) {
    if (err instanceof DataDirError) throw err; // the machine's problem, not the config's
    throw new ConfigError(`hook key${src.hookKeyFile ? ` (${src.hookKeyFile})` : ''}: ${errorMessage(err)}`);
  }
}

/** Reads the config file and the hook key now and builds the injector's options. Throws ConfigError. */
export function loadInjectOptions(src: InjectorSources): InjectOptions {
  let fileSettings: InjectorSettings = {};
  if (src.configFile !== undefined) {
    let text: string;
    try {
      text = readFileSync(src.configFile, 'utf8');
    } catch (err) {
      throw new ConfigError(`cannot read config file ${src.configFile}: ${errorMessage(err)}`);
    }
    try {
      fileSettings = parseInjectorConfig(text, src.configFile);
    } catch (err) {
      throw err instanceof ConfigError ? err : new ConfigError(errorMessage(err));
    }
  }
  const settings = mergeSettings(fileSettings, src.flags);
  const hookKey = loadSigningKey(src);
  try {
    return defaultInjectOptions({ ...settings, hookKey });
  } catch (err) {
    const message = errorMessage(err);
    // The injector names the key; say where that key's value came from, so the fix is obvious.
    const origins = SETTING_KEYS.filter((k) => settings[k] !== undefined && new RegExp(`\\b${k}\\b`).test(message))
      .map((k) => `${k} from ${src.flags[k] !== undefined ? (SETTING_FLAGS[k] ?? 'flags') : src.configFile}`);
    throw new ConfigError(`${message}${origins.length > 0 ? ` (${origins.join(', ')})` : ''}`);
  }
}

export interface InjectOptionsSource extends FileWatch {
  /** The options now in force: the last good load. */
  get(): InjectOptions;
}

/**
 * Loads the options now (throwing if they are bad: startup should fail loudly) and reloads them when the
 * config file or the hook key file changes; a bad change is logged and the last good options stay.
 */
export function watchInjectOptions(
  src: InjectorSources,
  opts: { logger: Logger; onResult?: (result: 'reloaded' | 'rejected') => void; pollMs?: number },
): InjectOptionsSource {
  let current = loadInjectOptions(src);
  const files = [src.configFile, src.hookKeyFile].filter((f): f is string => f !== undefined);
  const watch = watchFiles(
    files,
    () => {
      try {
        current = loadInjectOptions(src);
        opts.logger.info({ files, settings: describeOptions(current) }, 'injector settings reloaded');
        opts.onResult?.('reloaded');
      } catch (err) {
        opts.logger.error({ files, err: errorMessage(err) }, 'injector settings rejected; keeping the last good ones');
        opts.onResult?.('rejected');
      }
    },
    { logger: opts.logger, pollMs: opts.pollMs },
  );
  return { get: () => current, check: watch.check, close: watch.close };
}

/** The options as a log line may show them: the key's id, never the key. */
export function describeOptions(o: InjectOptions): Record<string, unknown> {
  return {
    callbackUrl: o.callbackUrl,
    argoVersion: o.argoVersion,
    mode: o.mode,
    sizeLimitBytes: o.sizeLimitBytes,
    image: o.image,
    stepHooks: o.stepHooks ?? 'default for the Argo version',
    hookKeyId: o.hookKey.kid,
  };
}
