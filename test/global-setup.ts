import { execFileSync } from 'node:child_process';

// Tests that run the CLI as a process use dist/: compile it once, fresh, before any test runs.
export default function setup(): void {
  execFileSync(process.execPath, ['node_modules/typescript/bin/tsc', '-p', 'tsconfig.build.json'], { stdio: 'inherit' });
}
