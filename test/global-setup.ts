import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

// The tests read real KFP and Argo fixtures from the project's shared/ folder, which sits beside the
// checkout (../shared), as it does in CI. Without it, say so once instead of failing every test.
function checkFixtures(): void {
  const dir = process.env.KFP_NOTIFY_FIXTURES ?? fileURLToPath(new URL('../../shared/fixtures', import.meta.url));
  if (!existsSync(`${dir}/SOURCES.md`)) {
    throw new Error(
      `kfp-notify tests: the fixtures are not at ${dir}. Put the project's shared/ folder beside this checkout ` +
        '(../shared/fixtures), or set KFP_NOTIFY_FIXTURES to a copy of it.',
    );
  }
}

// Tests that run the CLI as a process use dist/: compile it once, fresh, before any test runs.
export default function setup(): void {
  checkFixtures();
  execFileSync(process.execPath, ['node_modules/typescript/bin/tsc', '-p', 'tsconfig.build.json'], { stdio: 'inherit' });
  execFileSync(process.execPath, ['node_modules/typescript/bin/tsc', '-p', 'callback/ui/browser/tsconfig.json'], { stdio: 'inherit' });
}
